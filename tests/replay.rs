//! `strata replay` as users run it: the bundled example's verdicts and summary are the
//! ones its policy implies (tests/golden/demo.verdicts.jsonl, each line reviewed against
//! the story in examples/make_demo.rs), the pcapng output holds exactly the frames that
//! left a port, on interfaces named after the ports, with their verdict paths, and tshark
//! decodes every one of them with checksum validation on, with the addresses, ports,
//! MACs and VNI of tests/golden/demo.out.tsv; bad input exits 1 with a message.

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
        "packets             29",
        "forwarded           18",
        "dropped             11",
        "  parse                      1",
        "  unsupported                1",
        "  acl                        2",
        "  acl-default                1",
        "  no-route                   1",
        "  vni-mismatch               1",
        "  too-big                    1",
        "  spoofed-source             2",
        "  not-exposed                1",
        "arp replies          1",
    ] {
        assert!(
            stdout.lines().any(|l| l == expected),
            "missing `{expected}` in\n{stdout}"
        );
    }

    // What left the ports: the 18 forwarded frames and the ICMP "fragmentation needed"
    // the switch sent api; the first is the ARP answer.
    let frames: Vec<_> = CaptureReader::open(&o)
        .expect("pcapng written")
        .collect::<Result<_, _>>()
        .expect("readable pcapng");
    assert_eq!(frames.len(), 19);
    let arp = &frames[0].data;
    assert_eq!(&arp[12..14], &[0x08, 0x06]);
    assert_eq!(&arp[20..22], &[0, 2]);
    assert_eq!(&arp[6..12], &[2, 0, 0, 0, 0, 1]);

    if let Some(tshark) = tshark() {
        judge_with_tshark(&tshark, &o);
    }
}

/// tshark, or `None` on a developer machine without it (CI installs it: there, its
/// absence fails the test).
fn tshark() -> Option<String> {
    let found = Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    match (found, std::env::var_os("CI").is_some()) {
        (true, _) => Some("tshark".into()),
        (false, true) => panic!("tshark is missing: .ci/run installs it"),
        (false, false) => {
            eprintln!("skipping the tshark checks: tshark is not installed");
            None
        }
    }
}

fn tshark_run(tshark: &str, file: &PathBuf, args: &[&str]) -> String {
    let out = Command::new(tshark)
        .arg("-r")
        .arg(file)
        .args(args)
        .output()
        .expect("run tshark");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every frame decodes with IP, TCP, UDP and ICMP checksums verified, none malformed; the
/// headers are the golden ones. (An ICMP error quotes a cut-short original, whose TCP
/// checksum cannot be verified; those frames are checked with L4 validation off.)
fn judge_with_tshark(tshark: &str, file: &PathBuf) {
    let checks = [
        "-o",
        "ip.check_checksum:TRUE",
        "-o",
        "tcp.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
    ];
    let mut args = checks.to_vec();
    args.extend([
        "-Y",
        "(_ws.malformed || _ws.expert.severity >= warning) && !icmp.type == 3",
    ]);
    let bad = tshark_run(tshark, file, &args);
    assert!(bad.trim().is_empty(), "tshark found bad frames:\n{bad}");
    let bad = tshark_run(
        tshark,
        file,
        &[
            "-o",
            "ip.check_checksum:TRUE",
            "-Y",
            "icmp.type == 3 && (_ws.malformed || icmp.checksum.status != 1 || ip.checksum.status != 1)",
        ],
    );
    assert!(
        bad.trim().is_empty(),
        "tshark found bad ICMP errors:\n{bad}"
    );
    let fields = [
        "frame.interface_name",
        "eth.src",
        "eth.dst",
        "vlan.id",
        "ip.src",
        "ip.dst",
        "tcp.srcport",
        "tcp.dstport",
        "udp.srcport",
        "udp.dstport",
        "vxlan.vni",
        "icmp.type",
        "icmp.code",
        "icmp.mtu",
    ];
    let mut args = vec!["-T", "fields", "-E", "separator=|"];
    for f in &fields {
        args.extend(["-e", f]);
    }
    let got = tshark_run(tshark, file, &args);
    let want = include_str!("golden/demo.out.tsv");
    for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
        assert_eq!(g, w, "frame {} ({})", i + 1, fields.join("|"));
    }
    assert_eq!(got.lines().count(), want.lines().count());
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

#[test]
fn hns_json_policy_replays_like_its_toml_twin() {
    let (a, b) = (tmp("toml.jsonl"), tmp("json.jsonl"));
    let json = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policy.hns.json");
    assert!(
        strata(&["replay", "--verdicts", a.to_str().unwrap()])
            .status
            .success()
    );
    let out = strata(&[
        "replay",
        "--policy",
        json,
        "--verdicts",
        b.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (a, b) = (
        std::fs::read_to_string(a).unwrap(),
        std::fs::read_to_string(b).unwrap(),
    );
    assert_eq!(a.lines().count(), 29);
    assert_eq!(a, b);
}

#[test]
fn a_capture_damaged_mid_file_is_replayed_up_to_the_damage_then_exits_1() {
    // The bundled capture, cut in the middle of a record.
    let whole =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo.pcapng")).unwrap();
    let cut = tmp("cut.pcapng");
    std::fs::write(&cut, &whole[..whole.len() * 2 / 3]).unwrap();
    let v = tmp("cut.jsonl");
    let out = strata(&[
        "replay",
        cut.to_str().unwrap(),
        "--verdicts",
        v.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "invalid input exits 1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("truncated at byte") || stderr.contains("malformed capture at byte"),
        "{stderr}"
    );
    // The frames before the damage were replayed: verdicts and summary for them.
    let verdicts = std::fs::read_to_string(&v).unwrap().lines().count();
    assert!(verdicts > 10 && verdicts < 29, "{verdicts} verdicts");
    assert!(
        stderr.contains(&format!("the {verdicts} frames before it were replayed")),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("packets     {verdicts:>10}")));
}
