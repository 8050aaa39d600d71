//! Replay goldens per network driver and policy (DESIGN §1): each scenario writes a
//! policy and a capture, runs `strata replay`, checks the verdicts, and has tshark decode
//! every frame that left a port with checksum validation on: no bad checksum, no
//! malformed frame, and the expected addresses, ports, MACs and VLAN tags.

use std::path::{Path, PathBuf};
use std::process::Command;

use etherparse::PacketBuilder;
use serde_json::Value;
use strata_dataplane::capture::PcapngWriter;

const HOST_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const ROUTER: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
const OUTSIDE: [u8; 4] = [198, 19, 0, 100];

fn tcp(smac: [u8; 6], dmac: [u8; 6], s: ([u8; 4], u16), d: ([u8; 4], u16), syn: bool) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(smac, dmac)
        .ipv4(s.0, d.0, 64)
        .tcp(s.1, d.1, 7, 1024);
    let b = if syn { b.syn() } else { b.syn().ack(8) };
    let mut v = Vec::new();
    b.write(&mut v, b"").expect("frame");
    v
}

fn tagged(vid: u16, smac: [u8; 6], dmac: [u8; 6], s: ([u8; 4], u16), d: ([u8; 4], u16)) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(smac, dmac)
        .single_vlan(etherparse::VlanId::try_new(vid).expect("vid"))
        .ipv4(s.0, d.0, 64)
        .udp(s.1, d.1)
        .write(&mut v, b"tagged")
        .expect("frame");
    v
}

fn udp(smac: [u8; 6], dmac: [u8; 6], s: ([u8; 4], u16), d: ([u8; 4], u16)) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(smac, dmac)
        .ipv4(s.0, d.0, 64)
        .udp(s.1, d.1)
        .write(&mut v, b"payload")
        .expect("frame");
    v
}

struct Replayed {
    verdicts: Vec<Value>,
    /// tshark's fields of each frame that left, `|`-separated (None without tshark).
    out: Option<Vec<String>>,
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("strata-drivers-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn tshark_available() -> bool {
    let found = Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found && std::env::var_os("CI").is_some() {
        panic!("tshark is missing: .ci/run installs it");
    }
    found
}

const FIELDS: [&str; 8] = [
    "frame.interface_name",
    "eth.src",
    "eth.dst",
    "vlan.id",
    "ip.src",
    "ip.dst",
    "tcp.srcport",
    "tcp.dstport",
];

fn replay(name: &str, policy: &str, frames: &[Vec<u8>]) -> Replayed {
    let d = dir(name);
    let (p, c, v, o) = (
        d.join("p.toml"),
        d.join("c.pcapng"),
        d.join("v.jsonl"),
        d.join("o.pcapng"),
    );
    std::fs::write(&p, policy).expect("policy");
    let mut w = PcapngWriter::new(std::fs::File::create(&c).expect("capture"));
    let i = w.interface("capture");
    for (n, f) in frames.iter().enumerate() {
        w.write(i, 1_000_000 * (n as u64 + 1), f, f.len() as u32, None)
            .expect("write");
    }
    w.finish().expect("finish");
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["replay"])
        .arg(&c)
        .arg("--policy")
        .arg(&p)
        .arg("--verdicts")
        .arg(&v)
        .arg("--out")
        .arg(&o)
        .output()
        .expect("strata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts = std::fs::read_to_string(&v)
        .expect("verdicts")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    Replayed {
        verdicts,
        out: tshark_available().then(|| judge(&o)),
    }
}

/// tshark's view of what left: checksums and well-formedness first, then the fields.
fn judge(file: &Path) -> Vec<String> {
    let run = |args: &[&str]| {
        let o = Command::new("tshark")
            .arg("-r")
            .arg(file)
            .args(args)
            .output()
            .expect("tshark");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let bad = run(&[
        "-o",
        "ip.check_checksum:TRUE",
        "-o",
        "tcp.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
        "-Y",
        "_ws.malformed || _ws.expert.severity >= warning",
    ]);
    assert!(bad.trim().is_empty(), "tshark found bad frames:\n{bad}");
    let mut args = vec!["-T", "fields", "-E", "separator=|"];
    for f in FIELDS {
        args.extend(["-e", f]);
    }
    run(&args).lines().map(str::to_string).collect()
}

fn verdict(v: &Value) -> (String, String) {
    let s = |k: &str| v[k].as_str().unwrap_or("-").to_string();
    (s("out_port"), s("reason"))
}

#[test]
fn l2bridge_load_balancer_with_affinity_and_mac_rewrite() {
    let policy = include_str!("../examples/lb.toml");
    let client = ([0x00, 0x15, 0x5d, 0x05, 0x05, 0x0d], [198, 18, 5, 20]);
    let vip = [198, 18, 5, 100];
    let mut frames = Vec::new();
    // Eight connections to the service, and the first one's packet repeated four times.
    for port in 40000..40008 {
        frames.push(tcp(client.0, HOST_MAC, (client.1, port), (vip, 80), true));
    }
    for _ in 0..4 {
        frames.push(tcp(client.0, HOST_MAC, (client.1, 40000), (vip, 80), true));
    }
    // The outside, both ways: the container MAC becomes the host's, and back by IP.
    frames.push(tcp(
        client.0,
        ROUTER,
        (client.1, 41000),
        (OUTSIDE, 443),
        true,
    ));
    frames.push(tcp(
        ROUTER,
        HOST_MAC,
        (OUTSIDE, 443),
        (client.1, 41000),
        false,
    ));
    let r = replay("lb", policy, &frames);
    let backends: Vec<String> = r.verdicts[..12].iter().map(|v| verdict(v).0).collect();
    assert!(
        backends.iter().all(|b| b == "web-1" || b == "web-2"),
        "{backends:?}"
    );
    assert!(backends.contains(&"web-1".to_string()) && backends.contains(&"web-2".to_string()));
    // Affinity: every packet of the first flow goes where its first packet went.
    assert!(
        backends[8..].iter().all(|b| *b == backends[0]),
        "{backends:?}"
    );
    assert_eq!(verdict(&r.verdicts[12]).0, "uplink");
    assert_eq!(verdict(&r.verdicts[13]).0, "client");
    if let Some(out) = r.out {
        let (ip, mac) = match backends[0].as_str() {
            "web-1" => ("198.18.5.11", "00:15:5d:05:05:0b"),
            _ => ("198.18.5.12", "00:15:5d:05:05:0c"),
        };
        // DNAT to the backend's port 8080, routed: the backend's MAC, from the host's.
        assert_eq!(
            out[0],
            format!(
                "{}|02:00:00:00:00:01|{mac}||198.18.5.20|{ip}|40000|8080",
                backends[0]
            )
        );
        assert_eq!(
            out[12],
            "uplink|02:00:00:00:00:01|02:00:00:00:00:fe||198.18.5.20|198.19.0.100|41000|443"
        );
        assert_eq!(
            out[13],
            "client|02:00:00:00:00:fe|00:15:5d:05:05:0d||198.19.0.100|198.18.5.20|443|41000"
        );
    }
}

#[test]
fn load_balancer_replies_come_back_from_the_vip() {
    let policy = include_str!("../examples/lb.toml");
    let client = ([0x00, 0x15, 0x5d, 0x05, 0x05, 0x0d], [198, 18, 5, 20]);
    let first = replay(
        "lb-pick",
        policy,
        &[tcp(
            client.0,
            HOST_MAC,
            (client.1, 40000),
            (vip(), 80),
            true,
        )],
    );
    let backend = verdict(&first.verdicts[0]).0;
    let (bmac, bip) = match backend.as_str() {
        "web-1" => ([0x00, 0x15, 0x5d, 0x05, 0x05, 0x0b], [198, 18, 5, 11]),
        _ => ([0x00, 0x15, 0x5d, 0x05, 0x05, 0x0c], [198, 18, 5, 12]),
    };
    let r = replay(
        "lb-reply",
        policy,
        &[
            tcp(client.0, HOST_MAC, (client.1, 40000), (vip(), 80), true),
            tcp(bmac, client.0, (bip, 8080), (client.1, 40000), false),
        ],
    );
    assert_eq!(verdict(&r.verdicts[1]), ("client".into(), "-".into()));
    if let Some(out) = r.out {
        // Reverse-translated: the client sees the VIP and port 80 answer.
        assert!(
            out[1].ends_with("|198.18.5.100|198.18.5.20|80|40000"),
            "{}",
            out[1]
        );
    }
}

fn vip() -> [u8; 4] {
    [198, 18, 5, 100]
}

const VLAN_POLICY: &str = r#"
[host]
mac = "02:00:00:00:00:01"
addresses = ["198.19.0.10"]

[[network]]
name = "t"
driver = "transparent"
subnets = ["198.19.7.0/24"]
vlan = 100

[[endpoint]]
name = "e1"
network = "t"
mac = "00:15:5d:07:07:01"
ipv4 = "198.19.7.1"
"#;

#[test]
fn vlan_pushed_on_the_uplink_checked_and_popped_on_ingress() {
    let e1 = ([0x00, 0x15, 0x5d, 0x07, 0x07, 0x01], [198, 19, 7, 1]);
    let r = replay(
        "vlan",
        VLAN_POLICY,
        &[
            udp(e1.0, ROUTER, (e1.1, 5000), (OUTSIDE, 9999)),
            tagged(100, ROUTER, e1.0, (OUTSIDE, 9999), (e1.1, 5000)),
            tagged(200, ROUTER, e1.0, (OUTSIDE, 9999), (e1.1, 5001)),
            udp(ROUTER, e1.0, (OUTSIDE, 9999), (e1.1, 5002)),
        ],
    );
    let got: Vec<_> = r.verdicts.iter().map(verdict).collect();
    assert_eq!(
        got,
        [
            ("uplink".into(), "-".into()),
            ("e1".into(), "-".into()),
            ("-".into(), "vlan-mismatch".into()),
            ("-".into(), "vlan-mismatch".into()),
        ]
    );
    if let Some(out) = r.out {
        // Transparent: MACs kept; the tag pushed on the way out, popped on the way in.
        assert_eq!(
            out[0],
            "uplink|00:15:5d:07:07:01|02:00:00:00:00:fe|100|198.19.7.1|198.19.0.100||"
        );
        assert_eq!(
            out[1],
            "e1|02:00:00:00:00:fe|00:15:5d:07:07:01||198.19.0.100|198.19.7.1||"
        );
    }
}

#[test]
fn l2tunnel_hairpins_everything_through_the_uplink() {
    let policy = r#"
[host]
mac = "02:00:00:00:00:01"
addresses = ["198.19.0.10"]

[[network]]
name = "tun"
driver = "l2tunnel"
subnets = ["198.18.8.0/24"]

[[endpoint]]
name = "a"
network = "tun"
mac = "00:15:5d:08:08:0a"
ipv4 = "198.18.8.10"

[[endpoint]]
name = "b"
network = "tun"
mac = "00:15:5d:08:08:0b"
ipv4 = "198.18.8.11"
"#;
    let (a, b) = (
        ([0x00, 0x15, 0x5d, 0x08, 0x08, 0x0a], [198, 18, 8, 10]),
        ([0x00, 0x15, 0x5d, 0x08, 0x08, 0x0b], [198, 18, 8, 11]),
    );
    let r = replay(
        "l2tunnel",
        policy,
        &[tcp(a.0, b.0, (a.1, 1000), (b.1, 80), true)],
    );
    // Even to a neighbour on the same host: out through the uplink, unchanged.
    assert_eq!(verdict(&r.verdicts[0]), ("uplink".into(), "-".into()));
    if let Some(out) = r.out {
        assert_eq!(
            out[0],
            "uplink|00:15:5d:08:08:0a|00:15:5d:08:08:0b||198.18.8.10|198.18.8.11|1000|80"
        );
    }
}
