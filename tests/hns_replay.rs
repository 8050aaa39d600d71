//! What HNS documents do to packets: each test gives `strata replay` a shared document of
//! `../shared/hns-wild/orig` (read there; the addresses a test sends to come from the
//! document itself) or HNS JSON written here, with a host document for the host's facts,
//! replays frames built here, and checks the verdicts and the frames that left: an ACL
//! blocks, both address families are NATed, a route hands traffic to the host, a remote
//! pod's traffic leaves VXLAN-encapsulated to its provider address, a VIP reaches a
//! backend.
//!
//! Only the `strata` binary is used (its `replay --policy ... --verdicts --out`), so the
//! tests hold whatever the dataplane's inner API becomes.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use serde_json::Value;

const WILD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/hns-wild/orig/");
const HOST_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const GATEWAY_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
const POD_MAC: [u8; 6] = [0x00, 0x15, 0x5d, 0x01, 0x01, 0x0a];
const OUTSIDE: &str = "198.19.0.100";

fn wild(name: &str) -> String {
    std::fs::read_to_string(format!("{WILD}{name}")).expect("a shared HNS document")
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("JSON")
}

/// The host's facts and one dual-stack endpoint `pod` on `network`.
fn host(network: &str, driver: &str) -> String {
    format!(
        r#"[host]
mac = "02:00:00:00:00:01"
addresses = ["198.19.0.10", "2001:db8:ff::10"]

[[network]]
name = "{network}"
driver = "{driver}"
subnets = ["198.18.1.0/24", "2001:db8:1::/64"]
gateway = "198.18.1.1"

[[endpoint]]
name = "pod"
network = "{network}"
mac = "00:15:5d:01:01:0a"
ipv4 = "198.18.1.10"
ipv6 = "2001:db8:1::10"
"#
    )
}

/// A TCP SYN between two (address, port), IPv4 or IPv6.
fn tcp(smac: [u8; 6], dmac: [u8; 6], s: (&str, u16), d: (&str, u16)) -> Vec<u8> {
    let (sip, dip): (IpAddr, IpAddr) = (s.0.parse().expect("ip"), d.0.parse().expect("ip"));
    let eth = PacketBuilder::ethernet2(smac, dmac);
    let b = match (sip, dip) {
        (IpAddr::V4(a), IpAddr::V4(b)) => eth.ipv4(a.octets(), b.octets(), 64),
        (IpAddr::V6(a), IpAddr::V6(b)) => eth.ipv6(a.octets(), b.octets(), 64),
        _ => panic!("mixed families"),
    };
    let mut v = Vec::new();
    b.tcp(s.1, d.1, 7, 1024)
        .syn()
        .write(&mut v, b"")
        .expect("frame");
    v
}

/// A classic pcap of Ethernet frames.
fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes()); // version 2.4
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]); // time zone, accuracy
    out.extend_from_slice(&65535u32.to_le_bytes()); // snap length
    out.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
    for (i, f) in frames.iter().enumerate() {
        let len = u32::try_from(f.len()).expect("frame length");
        for v in [u32::try_from(i + 1).expect("ts"), 0, len, len] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(f);
    }
    std::fs::write(path, out).expect("capture");
}

/// The frames of a pcapng file with their interface names (enough of pcapng for
/// `strata replay --out`: section, interface and enhanced packet blocks).
fn read_pcapng(path: &Path) -> Vec<(String, Vec<u8>)> {
    let data = std::fs::read(path).expect("pcapng written");
    let u32_at =
        |at: usize| u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes")) as usize;
    let (mut names, mut frames, mut at) = (Vec::new(), Vec::new(), 0);
    while at + 12 <= data.len() {
        let (kind, len) = (u32_at(at), u32_at(at + 4));
        let body = &data[at + 8..at + len - 4];
        if kind == 1 {
            let mut o = 8;
            let mut name = String::new();
            while o + 4 <= body.len() {
                let code = u16::from_le_bytes([body[o], body[o + 1]]);
                let olen = usize::from(u16::from_le_bytes([body[o + 2], body[o + 3]]));
                if code == 2 {
                    name = String::from_utf8_lossy(&body[o + 4..o + 4 + olen]).into_owned();
                }
                if code == 0 {
                    break;
                }
                o += 4 + olen.div_ceil(4) * 4;
            }
            names.push(name);
        } else if kind == 6 {
            let iface = u32::from_le_bytes(body[..4].try_into().expect("id")) as usize;
            let cap = u32::from_le_bytes(body[12..16].try_into().expect("len")) as usize;
            frames.push((names[iface].clone(), body[20..20 + cap].to_vec()));
        }
        at += len;
    }
    frames
}

struct Replayed {
    verdicts: Vec<Value>,
    /// What left a port: (port, frame).
    out: Vec<(String, Vec<u8>)>,
}

fn replay(test: &str, policies: &[(&str, &str)], frames: &[Vec<u8>]) -> Replayed {
    let dir = std::env::temp_dir().join(format!("strata-hns-replay-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (capture, verdicts, out) = (
        dir.join("c.pcap"),
        dir.join("v.jsonl"),
        dir.join("o.pcapng"),
    );
    write_pcap(&capture, frames);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.arg("replay").arg(&capture);
    for (name, text) in policies {
        let path: PathBuf = dir.join(name);
        std::fs::write(&path, text).expect("policy");
        cmd.arg("--policy").arg(path);
    }
    let run = cmd
        .arg("--verdicts")
        .arg(&verdicts)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("strata");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let verdicts = std::fs::read_to_string(&verdicts)
        .expect("verdicts")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a verdict"))
        .collect();
    let out = read_pcapng(&out);
    let _ = std::fs::remove_dir_all(&dir);
    Replayed { verdicts, out }
}

fn field(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or("-").to_owned()
}

/// (source IP, destination IP, destination port) of a frame; for VXLAN, of its inner
/// frame, with the outer destination and UDP port.
fn addresses(frame: &[u8]) -> (String, String, u16) {
    let p = SlicedPacket::from_ethernet(frame).expect("a frame that parses");
    let (src, dst) = match &p.net {
        Some(NetSlice::Ipv4(ip)) => (
            ip.header().source_addr().to_string(),
            ip.header().destination_addr().to_string(),
        ),
        Some(NetSlice::Ipv6(ip)) => (
            ip.header().source_addr().to_string(),
            ip.header().destination_addr().to_string(),
        ),
        _ => panic!("not IP"),
    };
    let port = match &p.transport {
        Some(TransportSlice::Tcp(t)) => t.destination_port(),
        Some(TransportSlice::Udp(u)) => u.destination_port(),
        _ => 0,
    };
    (src, dst, port)
}

/// The first address of a prefix written in a document (`10.0.0.1/32` → `10.0.0.1`).
fn first_address(prefix: &str) -> String {
    let (a, _) = prefix.split_once('/').unwrap_or((prefix, ""));
    match a.parse::<IpAddr>().expect("an address") {
        IpAddr::V4(v4) if prefix.contains('/') && !prefix.ends_with("/32") => {
            std::net::Ipv4Addr::from(u32::from(v4) + 1).to_string()
        }
        ip => ip.to_string(),
    }
}

#[test]
fn an_acl_of_a_cni_template_blocks() {
    let name = "acn_azure_windows_multitenancy.json";
    let doc = wild(name);
    // The ACL that blocks: TCP to the Azure wire server's port 80.
    let acl = &json(&doc)["plugins"][0]["AdditionalArgs"][2]["Value"];
    assert_eq!(acl["Action"], "Block");
    let target = acl["RemoteAddresses"].as_str().expect("address").to_owned();
    let port: u16 = acl["RemotePorts"]
        .as_str()
        .expect("port")
        .parse()
        .expect("port");
    let frames = [
        tcp(
            POD_MAC,
            GATEWAY_MAC,
            ("198.18.1.10", 40000),
            (&target, port),
        ),
        tcp(POD_MAC, GATEWAY_MAC, ("198.18.1.10", 40001), (&target, 443)),
    ];
    let r = replay(
        "acn-acl",
        &[("host.toml", &host("azure", "l2bridge")), (name, &doc)],
        &frames,
    );
    let v = &r.verdicts[0];
    assert_eq!(
        (
            field(v, "verdict"),
            field(v, "reason"),
            field(v, "layer"),
            field(v, "rule")
        ),
        (
            "drop".into(),
            "acl".into(),
            "acl".into(),
            "template-acl1".into()
        )
    );
    assert_eq!(
        (
            field(&r.verdicts[1], "verdict"),
            field(&r.verdicts[1], "out_port")
        ),
        ("forward".into(), "uplink".into())
    );
    // Port 443 is allowed, and leaves NATed to the host (OutBoundNAT without a VIP).
    assert_eq!(r.out.len(), 1);
    assert_eq!(addresses(&r.out[0].1), ("198.19.0.10".into(), target, 443));
}

#[test]
fn calico_static_rules_block_on_every_endpoint() {
    let name = "calico_felix_static_rules.json";
    let doc = wild(name);
    let rule = &json(&doc)["Rules"][0]["Rule"];
    let target = first_address(rule["RemoteAddresses"].as_str().expect("address"));
    let port: u16 = rule["RemotePorts"]
        .as_str()
        .expect("port")
        .parse()
        .expect("port");
    let frames = [tcp(
        POD_MAC,
        GATEWAY_MAC,
        ("198.18.1.10", 40000),
        (&target, port),
    )];
    let r = replay(
        "calico",
        &[("host.toml", &host("l2", "l2bridge")), (name, &doc)],
        &frames,
    );
    assert_eq!(
        (
            field(&r.verdicts[0], "reason"),
            field(&r.verdicts[0], "rule")
        ),
        ("acl".into(), rule["ID"].as_str().expect("id").into())
    );
    assert!(r.out.is_empty());
}

#[test]
fn both_address_families_are_nated() {
    let name = "wcn_l2bridge_dualstack_hostlocal.json";
    let doc = wild(name);
    let args = &json(&doc)["AdditionalArgs"];
    let v6 = &args[1]["Value"]["Settings"];
    let vip = v6["VirtualIP"]
        .as_str()
        .expect("an IPv6 VirtualIP")
        .to_owned();
    let to = v6["Destinations"][0]
        .as_str()
        .expect("a destination")
        .to_owned();
    let excepted = first_address(
        args[0]["Value"]["Settings"]["Exceptions"][0]
            .as_str()
            .expect("exception"),
    );
    let frames = [
        tcp(POD_MAC, GATEWAY_MAC, ("198.18.1.10", 40000), (OUTSIDE, 443)),
        tcp(POD_MAC, GATEWAY_MAC, ("2001:db8:1::10", 40001), (&to, 443)),
        tcp(
            POD_MAC,
            GATEWAY_MAC,
            ("2001:db8:1::10", 40002),
            ("2001:db8:ee::99", 443),
        ),
        tcp(
            POD_MAC,
            GATEWAY_MAC,
            ("198.18.1.10", 40003),
            (&excepted, 443),
        ),
    ];
    let r = replay(
        "dual",
        &[
            ("host.toml", &host("winl2bridge", "l2bridge")),
            (name, &doc),
        ],
        &frames,
    );
    assert!(
        r.verdicts.iter().all(|v| field(v, "out_port") == "uplink"),
        "{:?}",
        r.verdicts
    );
    let got: Vec<(String, String, u16)> = r.out.iter().map(|(_, f)| addresses(f)).collect();
    assert_eq!(
        got,
        [
            // IPv4, no VirtualIP: the host's IPv4 address.
            ("198.19.0.10".into(), OUTSIDE.into(), 443),
            // IPv6: its VirtualIP, for its Destinations ...
            (vip, to, 443),
            // ... and only those.
            ("2001:db8:1::10".into(), "2001:db8:ee::99".into(), 443),
            // An exception keeps its source.
            ("198.18.1.10".into(), excepted, 443),
        ]
    );
}

#[test]
fn a_route_with_need_encap_hands_traffic_to_the_host() {
    let name = "wcn_l2bridge.json";
    let doc = wild(name);
    let route = &json(&doc)["AdditionalArgs"][2]["Value"]["Settings"];
    assert_eq!(route["NeedEncap"], true);
    let to_host = first_address(route["DestinationPrefix"].as_str().expect("prefix"));
    let frames = [
        tcp(
            POD_MAC,
            GATEWAY_MAC,
            ("198.18.1.10", 40000),
            (&to_host, 10250),
        ),
        tcp(POD_MAC, GATEWAY_MAC, ("198.18.1.10", 40001), (OUTSIDE, 443)),
    ];
    let r = replay(
        "route",
        &[
            ("host.toml", &host("l2bridgeNetwork", "l2bridge")),
            (name, &doc),
        ],
        &frames,
    );
    assert_eq!(r.out.len(), 2);
    // To the host: its MAC as destination; elsewhere: the gateway the pod chose.
    assert_eq!(
        (r.out[0].0.as_str(), &r.out[0].1[..6]),
        ("uplink", &HOST_MAC[..])
    );
    assert_eq!(&r.out[1].1[..6], &GATEWAY_MAC[..]);
    // The host's own address is an exception of the OutBoundNAT (10.124.24.0/23).
    assert_eq!(addresses(&r.out[0].1).0, "198.18.1.10");
}

/// An overlay network, a local and a remote endpoint, as HNS v1 dumps them.
const V1_OVERLAY: &str = r#"[
  {"ID": "7c0e5d43-0000-4000-8000-000000000001", "Name": "vxlan0", "Type": "Overlay",
   "Subnets": [{"AddressPrefix": "198.18.4.0/24", "GatewayAddress": "198.18.4.1",
                "Policies": [{"Type": "VSID", "VSID": 4096}]}]},
  {"Name": "local", "VirtualNetwork": "7c0e5d43-0000-4000-8000-000000000001",
   "IPAddress": "198.18.4.10", "MacAddress": "00-15-5D-04-04-0A"},
  {"Name": "remote-pod", "VirtualNetwork": "7c0e5d43-0000-4000-8000-000000000001",
   "IsRemoteEndpoint": true, "IPAddress": "198.18.5.20", "MacAddress": "02-11-C6-12-05-14",
   "Policies": [{"Type": "PA", "PA": "198.19.0.20"}]}
]"#;

/// The same as HostComputeNetwork and HostComputeEndpoints (v2).
const V2_OVERLAY: &str = r#"[
  {"ID": "7c0e5d43-0000-4000-8000-000000000002", "Name": "vxlan0", "Type": "Overlay",
   "SchemaVersion": {"Major": 2, "Minor": 0},
   "Ipams": [{"Subnets": [{"IpAddressPrefix": "198.18.4.0/24",
      "Routes": [{"NextHop": "198.18.4.1", "DestinationPrefix": "0.0.0.0/0"}],
      "Policies": [{"Type": "VSID", "Settings": {"IsolationId": 4096}}]}]}]},
  {"Name": "local", "HostComputeNetwork": "7c0e5d43-0000-4000-8000-000000000002",
   "IpConfigurations": [{"IpAddress": "198.18.4.10"}], "MacAddress": "00-15-5D-04-04-0A"},
  {"ID": "remote-pod", "HostComputeNetwork": "7c0e5d43-0000-4000-8000-000000000002", "Flags": 1,
   "IpConfigurations": [{"IpAddress": "198.18.5.20"}], "MacAddress": "02-11-C6-12-05-14",
   "Policies": [{"Type": "ProviderAddress", "Settings": {"ProviderAddress": "198.19.0.20"}}]}
]"#;

#[test]
fn a_remote_pods_traffic_leaves_encapsulated_to_its_provider_address() {
    let local = [0x00, 0x15, 0x5d, 0x04, 0x04, 0x0a];
    let host = "[host]\nmac = \"02:00:00:00:00:01\"\naddresses = [\"198.19.0.10\"]\n";
    for (version, doc) in [("v1", V1_OVERLAY), ("v2", V2_OVERLAY)] {
        let frames = [tcp(
            local,
            GATEWAY_MAC,
            ("198.18.4.10", 40000),
            ("198.18.5.20", 8080),
        )];
        let r = replay(
            &format!("remote-{version}"),
            &[("host.toml", host), ("hns.json", doc)],
            &frames,
        );
        assert_eq!(field(&r.verdicts[0], "out_port"), "uplink", "{version}");
        let (port, frame) = &r.out[0];
        assert_eq!(port, "uplink");
        // Outer: from the host to the remote host's provider address, VXLAN.
        let (outer_src, outer_dst, udp) = addresses(frame);
        assert_eq!(
            (outer_src.as_str(), outer_dst.as_str(), udp),
            ("198.19.0.10", "198.19.0.20", 4789),
            "{version}"
        );
        // Inner (after 14 + 20 + 8 + 8 bytes): the pod's packet, to the remote pod's MAC.
        let inner = &frame[50..];
        assert_eq!(&inner[..6], &[0x02, 0x11, 0xc6, 0x12, 0x05, 0x14]);
        assert_eq!(
            addresses(inner),
            ("198.18.4.10".into(), "198.18.5.20".into(), 8080)
        );
    }
}

#[test]
fn a_vip_of_an_elb_policy_list_reaches_its_backend() {
    let name = "sdn_hns_psm1_elb_policylist.json";
    let doc = wild(name);
    let list = json(&doc);
    let guid = list["References"][0]
        .as_str()
        .expect("reference")
        .trim_start_matches("/endpoints/")
        .to_owned();
    let elb = &list["Policies"][0];
    let vip = elb["VIPs"][0].as_str().expect("VIP").to_owned();
    let (external, internal) = (
        elb["ExternalPort"].as_u64().expect("port"),
        elb["InternalPort"].as_u64().expect("port"),
    );
    let backend = format!(
        r#"{{"ID": "{guid}", "Name": "web", "VirtualNetworkName": "l2", "IPAddress": "198.18.1.20",
            "MacAddress": "00-15-5D-01-01-14"}}"#
    );
    let frames = [tcp(
        POD_MAC,
        GATEWAY_MAC,
        ("198.18.1.10", 40000),
        (&vip, u16::try_from(external).expect("port")),
    )];
    let r = replay(
        "elb",
        &[
            ("host.toml", &host("l2", "l2bridge")),
            ("web.json", &backend),
            (name, &doc),
        ],
        &frames,
    );
    assert_eq!(field(&r.verdicts[0], "out_port"), "web");
    assert_eq!(r.out[0].0, "web");
    assert_eq!(
        addresses(&r.out[0].1),
        (
            "198.18.1.10".into(),
            "198.18.1.20".into(),
            u16::try_from(internal).expect("port")
        )
    );
}

#[test]
fn a_filled_in_template_blocks_the_infrastructure_and_nats_both_families() {
    let name = "wcn_l2bridge_dualstack_template.json";
    let doc = wild(name)
        .replace("{{NAME}}", "dual")
        .replace("{{TYPE}}", "sdnbridge")
        .replace("{{DNSSERVER}}", "198.19.0.53")
        .replace("{{LOCAL_ENDPOINT_IPV6}}", "2001:db8:ff::10")
        .replace("{{LOCAL_ENDPOINT}}", "198.19.0.10")
        .replace("{{INFRA_PREFIX_IPV6}}", "2001:db8:ee::/48")
        .replace("{{INFRA_PREFIX}}", "198.19.200.0/24");
    let frames = [
        tcp(
            POD_MAC,
            GATEWAY_MAC,
            ("198.18.1.10", 40000),
            ("198.19.200.5", 443),
        ),
        tcp(
            POD_MAC,
            GATEWAY_MAC,
            ("2001:db8:1::10", 40001),
            ("2001:db8:ee::5", 443),
        ),
        tcp(POD_MAC, GATEWAY_MAC, ("198.18.1.10", 40002), (OUTSIDE, 443)),
        tcp(
            POD_MAC,
            GATEWAY_MAC,
            ("2001:db8:1::10", 40003),
            ("2001:db8:aa::5", 443),
        ),
    ];
    let r = replay(
        "template",
        &[
            ("host.toml", &host("dual", "l2bridge")),
            ("dual.conf", &doc),
        ],
        &frames,
    );
    let rules: Vec<(String, String)> = r
        .verdicts
        .iter()
        .map(|v| (field(v, "reason"), field(v, "rule")))
        .collect();
    assert_eq!(rules[0], ("acl".into(), "template-acl4".into()));
    assert_eq!(rules[1], ("acl".into(), "template-acl5".into()));
    let got: Vec<String> = r.out.iter().map(|(_, f)| addresses(f).0).collect();
    assert_eq!(got, ["198.19.0.10", "2001:db8:ff::10"]);
}
