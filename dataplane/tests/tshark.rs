//! A second opinion on the rewriter: frames rewritten by `transpose::bytes` (NAT over
//! every L4 and both families, VLAN push, VXLAN over IPv4 and IPv6 underlays, translated
//! ICMP errors, ICMP too-big replies) are written to a pcapng and dissected by tshark
//! with every checksum check on; no frame may be malformed or carry a warning (a bad
//! checksum is an error). Skipped, with a note, where tshark is not installed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;

use strata_dataplane::capture::PcapngWriter;
use strata_dataplane::packet::{self, checksum, testutil as tu};
use strata_dataplane::transpose::bytes::{
    DEFAULT_HEADROOM, PacketBuf, VXLAN_PORT, apply, icmp_too_big, translate_icmp_error, vxlan_of,
};
use strata_dataplane::transpose::{Encap, Transposition, VlanOp};
use strata_rules::model::{Mac, proto};

const IPV4: u16 = 0x0800;
const IPV6: u16 = 0x86dd;

fn v6(last: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last))
}

fn v4(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn ipv6_pkt(next: u8, src: IpAddr, dst: IpAddr, payload: &[u8]) -> Vec<u8> {
    let mut h = tu::ipv6(next, payload);
    if let (IpAddr::V6(s), IpAddr::V6(d)) = (src, dst) {
        h[8..24].copy_from_slice(&s.octets());
        h[24..40].copy_from_slice(&d.octets());
    }
    h
}

/// Sets the L4 checksum of a crafted frame by full computation (the IPv4 header
/// checksum is already right: `testutil` computes it).
fn fix(f: &mut [u8]) {
    let p = packet::parse(f).unwrap();
    let Some(l4) = p.l4_offset.map(usize::from) else {
        return;
    };
    let field = match p.fields.protocol {
        proto::TCP => 16,
        proto::UDP => 6,
        proto::ICMP | proto::ICMPV6 => 2,
        _ => return,
    };
    let end = p.l3_end as usize;
    f[l4 + field..l4 + field + 2].fill(0);
    let mut acc = 0;
    if p.fields.protocol != proto::ICMP {
        let (s, n) = p.src_ip_offset().unwrap();
        let (d, _) = p.dst_ip_offset().unwrap();
        acc = checksum::sum(acc, &f[s..s + n]);
        acc = checksum::sum(acc, &f[d..d + n]);
        acc = checksum::sum(acc, &((end - l4) as u32).to_be_bytes());
        acc = checksum::sum(acc, &[0, 0, 0, p.fields.protocol]);
    }
    let mut c = checksum::finish(checksum::sum(acc, &f[l4..end]));
    if c == 0 && p.fields.protocol == proto::UDP {
        c = 0xffff;
    }
    f[l4 + field..l4 + field + 2].copy_from_slice(&c.to_be_bytes());
}

fn frames() -> Vec<(&'static str, Vec<u8>)> {
    let payload = b"payload of odd length";
    let tcp = tu::tcp(40000, 80, 0x02, &[2, 4, 5, 0xb4], payload);
    let udp = tu::udp(5353, 5300, payload);
    let echo4 = tu::icmp(8, 0, &[0x12, 0x34, 0, 1, 0xaa, 0xbb, 0xcc]);
    let echo6 = tu::icmp(128, 0, &[0x12, 0x34, 0, 1, 0xaa, 0xbb, 0xcc]);
    let mut out = vec![
        ("tcp4", tu::eth(IPV4, &[], &tu::ipv4(6, &tcp))),
        ("udp4", tu::eth(IPV4, &[], &tu::ipv4(17, &udp))),
        ("icmp4", tu::eth(IPV4, &[], &tu::ipv4(1, &echo4))),
        ("tcp6", tu::eth(IPV6, &[], &ipv6_pkt(6, v6(1), v6(2), &tcp))),
        (
            "udp6",
            tu::eth(IPV6, &[], &ipv6_pkt(17, v6(1), v6(2), &udp)),
        ),
        (
            "icmp6",
            tu::eth(IPV6, &[], &ipv6_pkt(58, v6(1), v6(2), &echo6)),
        ),
    ];
    for (_, f) in &mut out {
        fix(f);
    }
    out
}

fn run(t: &Transposition, f: &[u8]) -> Vec<u8> {
    let p = packet::parse(f).unwrap();
    let mut b = PacketBuf::with_headroom(f, DEFAULT_HEADROOM);
    apply(t, &mut b, &p).unwrap();
    b.as_slice().to_vec()
}

fn encap(v6u: bool) -> Encap {
    Encap {
        src_mac: Mac([2, 0xaa, 0, 0, 0, 1]),
        dst_mac: Mac([2, 0xbb, 0, 0, 0, 2]),
        src_ip: if v6u { v6(0xa1) } else { v4([172, 16, 0, 1]) },
        dst_ip: if v6u { v6(0xa2) } else { v4([172, 16, 0, 2]) },
        udp_src: 49152,
        udp_dst: VXLAN_PORT,
        vni: 4242,
    }
}

/// Every rewrite worth a second opinion, named.
fn rewritten() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let gw = Mac([2, 0x99, 0, 0, 0, 1]);
    for (name, f) in frames() {
        let p = packet::parse(&f).unwrap();
        let is6 = !p.is_ipv4();
        let snat = Transposition {
            src_ip: Some(if is6 { v6(0x99) } else { v4([192, 0, 2, 1]) }),
            dst_ip: Some(if is6 { v6(0x77) } else { v4([198, 51, 100, 7]) }),
            src_port: Some(61000),
            dst_port: Some(8080),
            src_mac: Some(Mac([2, 1, 1, 1, 1, 1])),
            ..Transposition::NONE
        };
        let natted = run(&snat, &f);
        out.push((format!("{name} nat"), natted.clone()));
        let vlan = Transposition {
            vlan: VlanOp::Push(100),
            ..snat
        };
        out.push((format!("{name} nat+vlan"), run(&vlan, &f)));
        for v6u in [false, true] {
            let t = Transposition {
                encap: Some(encap(v6u)),
                ..snat
            };
            let e = run(&t, &f);
            out.push((format!("{name} nat+vxlan (v6 underlay {v6u})"), e.clone()));
            // Decap, un-NAT the inner packet, push a VLAN, re-encap: one transposition.
            let back = Transposition {
                decap: true,
                dst_ip: Some(p.fields.dst_ip),
                vlan: VlanOp::Push(7),
                encap: Some(encap(!v6u)),
                ..Transposition::NONE
            };
            out.push((format!("{name} decap+rewrite+encap"), run(&back, &e)));
        }
        let from = if is6 { v6(0xfe) } else { v4([10, 0, 0, 254]) };
        let tb = icmp_too_big(&f, &p, 1280, gw, from).unwrap();
        out.push((format!("{name} too big"), tb.clone()));
        // The too-big reply to the NATed packet, translated back for the original sender.
        let np = packet::parse(&natted).unwrap();
        let tb = icmp_too_big(&natted, &np, 1280, gw, from).unwrap();
        let tp = packet::parse(&tb).unwrap();
        let mut b = PacketBuf::with_headroom(&tb, 0);
        let un = Transposition {
            dst_ip: Some(p.fields.src_ip),
            ..Transposition::NONE
        };
        apply(&un, &mut b, &tp).unwrap();
        let tp = packet::parse(b.as_slice()).unwrap();
        let port = p.icmp_id.unwrap_or(p.fields.src_port);
        let dport = p.icmp_id.unwrap_or(p.fields.dst_port);
        translate_icmp_error(
            &mut b,
            &tp,
            Some((p.fields.src_ip, port)),
            Some((p.fields.dst_ip, dport)),
        )
        .unwrap();
        out.push((format!("{name} too big translated"), b.as_slice().to_vec()));
    }
    out
}

fn tshark_available() -> bool {
    Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Writes `frames` to a pcapng in a temporary directory and returns tshark's report of
/// every frame with a warning or worse, or malformed.
fn tshark_complaints(frames: &[(String, Vec<u8>)], tag: &str) -> String {
    let mut w = PcapngWriter::new(Vec::new());
    let i = w.interface("rewritten");
    for (n, (name, f)) in frames.iter().enumerate() {
        w.write(i, 1_000_000 * n as u64, f, f.len() as u32, Some(name))
            .unwrap();
    }
    let path =
        std::env::temp_dir().join(format!("strata-tshark-{}-{tag}.pcapng", std::process::id()));
    std::fs::write(&path, w.finish().unwrap()).unwrap();
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&path)
        .args([
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "udp.check_checksum:TRUE",
            // Crafted segments of one connection would look like losses.
            "-o",
            "tcp.analyze_sequence_numbers:FALSE",
            "-Y",
            "_ws.malformed || _ws.expert.severity >= warning",
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "frame.comment",
            "-e",
            "_ws.expert.message",
        ])
        .output()
        .expect("run tshark");
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn tshark_finds_no_bad_checksum_or_malformed_frame() {
    if !tshark_available() {
        eprintln!("skipping: tshark is not installed");
        return;
    }
    let frames = rewritten();
    assert!(frames.len() >= 48);
    let complaints = tshark_complaints(&frames, "good");
    assert!(
        complaints.trim().is_empty(),
        "tshark complains:\n{complaints}"
    );

    // The check itself works: a frame with a broken checksum of each kind is reported.
    let mut bad = Vec::new();
    for (name, f) in frames.iter().take(6) {
        let mut f = f.clone();
        let p = packet::parse(&f).unwrap();
        let off = p.l4_checksum_offset().unwrap();
        f[off] ^= 0x40;
        bad.push((format!("{name} broken"), f));
    }
    // Inside a VXLAN tunnel (over IPv4: no outer UDP checksum to give it away), and in a
    // too-big reply.
    for (name, f) in frames.iter() {
        let p = packet::parse(f).unwrap();
        let off = if name.ends_with("(v6 underlay false)") {
            let vx = vxlan_of(f, &p, &[VXLAN_PORT]).unwrap();
            let q = packet::parse(&f[vx.inner_offset..]).unwrap();
            vx.inner_offset + q.l4_checksum_offset().unwrap()
        } else if name.ends_with("too big translated") {
            p.l4_checksum_offset().unwrap()
        } else {
            continue;
        };
        let mut f = f.clone();
        f[off] ^= 0x40;
        bad.push((format!("{name} broken"), f));
    }
    assert_eq!(bad.len(), 6 + 6 + 6);
    let complaints = tshark_complaints(&bad, "bad");
    assert_eq!(
        complaints.lines().count(),
        bad.len(),
        "every broken frame reported:\n{complaints}"
    );
}
