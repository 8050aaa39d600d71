//! `strata replay` as users run it: the bundled example's verdicts and summary are the
//! ones its policy implies (tests/golden/demo.verdicts.jsonl, each line reviewed against
//! the story in examples/make_demo.rs), the pcapng output holds exactly the frames that
//! left a port, on interfaces named after the ports, with their verdict paths; bad input
//! exits 1 with a message.

use std::path::PathBuf;
use std::process::Command;

use strata_dataplane::capture::CaptureReader;

fn strata(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .output()
        .expect("run strata")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("strata-replay-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

#[test]
fn bundled_example_verdicts_summary_and_pcapng() {
    let (v, o) = (tmp("v.jsonl"), tmp("o.pcapng"));
    let out = strata(&[
        "replay",
        "--verdicts",
        v.to_str().unwrap(),
        "--out",
        o.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let got = std::fs::read_to_string(&v).expect("verdicts written");
    let want = include_str!("golden/demo.verdicts.jsonl");
    for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
        assert_eq!(g, w, "verdict {i}");
    }
    assert_eq!(got.lines().count(), want.lines().count());

    for expected in [
        "packets             17",
        "forwarded           11",
        "dropped              6",
        "  parse                      1",
        "  unsupported                1",
        "  acl                        2",
        "  acl-default                1",
        "  no-route                   1",
        "arp replies          1",
    ] {
        assert!(
            stdout.lines().any(|l| l == expected),
            "missing `{expected}` in\n{stdout}"
        );
    }

    // What left the ports: the 11 forwarded frames, the first being the ARP answer.
    let frames: Vec<_> = CaptureReader::open(&o)
        .expect("pcapng written")
        .collect::<Result<_, _>>()
        .expect("readable pcapng");
    assert_eq!(frames.len(), 11);
    let ports: Vec<&str> = frames
        .iter()
        .map(|f| f.interface.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(
        ports,
        [
            "client", "db", "web", "db", "uplink", "client", "uplink", "client", "web", "uplink",
            "web"
        ]
    );
    // The proxy ARP reply: opcode 2, from the host MAC that stands for the gateway.
    let arp = &frames[0].data;
    assert_eq!(&arp[12..14], &[0x08, 0x06]);
    assert_eq!(&arp[20..22], &[0, 2]);
    assert_eq!(&arp[6..12], &[2, 0, 0, 0, 0, 1]);
}

#[test]
fn pcapng_comments_carry_the_verdict_path() {
    let o = tmp("c.pcapng");
    assert!(
        strata(&["replay", "--out", o.to_str().unwrap()])
            .status
            .success()
    );
    let bytes = std::fs::read(&o).expect("pcapng");
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("web out -> db: forward; by acl/acl-in/allow-web-pg"),
        "comments missing"
    );
    assert!(text.contains("reply of a recorded connection"));
}

#[test]
fn bad_inputs_exit_1_with_a_message() {
    let not_capture = tmp("not.pcap");
    std::fs::write(&not_capture, b"hello, this is not a capture").unwrap();
    let out = strata(&["replay", not_capture.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a pcap or pcapng"));

    let out = strata(&["replay", "/nonexistent/x.pcap"]);
    assert_eq!(out.status.code(), Some(1));

    let bad_policy = tmp("bad.toml");
    std::fs::write(
        &bad_policy,
        "[[network]]\nname = \"n\"\ndriver = \"bogus\"\n",
    )
    .unwrap();
    let out = strata(&["replay", "--policy", bad_policy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(":3:"),
        "error names the line"
    );

    let out = strata(&["replay", "--bogus-flag"]);
    assert_eq!(out.status.code(), Some(1));
}
