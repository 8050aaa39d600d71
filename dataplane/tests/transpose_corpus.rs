//! The rewriter on real frames: every frame of tcpdump's test captures
//! (shared/pcaps/tcpdump) that parses goes through NAT there and back (which must restore
//! its bytes exactly, checksums included), VLAN push then pop, encap then decap, and a
//! few rewrites that cannot apply (which must be errors, never panics); ICMP errors are
//! parsed and translated, too-big replies built. Skipped where the corpus is absent.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use strata_dataplane::capture::CaptureReader;
use strata_dataplane::packet::{self, FrameKind, Parsed};
use strata_dataplane::transpose::bytes::{
    DEFAULT_HEADROOM, PacketBuf, VXLAN_PORT, apply, icmp_error_inner, icmp_too_big,
    translate_icmp_error,
};
use strata_dataplane::transpose::{Encap, Transposition, VlanOp};
use strata_rules::model::Mac;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/pcaps/tcpdump");

fn run(t: &Transposition, f: &[u8], p: &Parsed) -> Option<Vec<u8>> {
    let mut b = PacketBuf::with_headroom(f, DEFAULT_HEADROOM);
    apply(t, &mut b, p).ok()?;
    Some(b.as_slice().to_vec())
}

fn reparse(f: &[u8], truncated: bool) -> Parsed {
    let r = if truncated {
        packet::parse_captured(f, u32::MAX)
    } else {
        packet::parse(f)
    };
    r.unwrap_or_else(|e| panic!("a rewritten frame no longer parses: {e}: {f:02x?}"))
}

/// A checksum of 0xffff is 0x0000's twin in one's complement: an update may turn one
/// into the other (TCP, ICMP and IPv4 never compute 0xffff; captures with offloaded or
/// broken checksums can hold it). Round trips compare with that allowed.
fn same_but_checksum_twins(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).enumerate().all(|(i, (x, y))| {
            x == y || {
                let w = i & !1;
                let pair = |s: &[u8]| s.get(w..w + 2).map(|s| [s[0], s[1]]);
                matches!(
                    (pair(a), pair(b)),
                    (Some([0, 0]), Some([0xff, 0xff])) | (Some([0xff, 0xff]), Some([0, 0]))
                )
            }
        })
}

#[test]
fn corpus_frames_round_trip_through_every_rewrite() {
    let dir = PathBuf::from(CORPUS);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("skipping: no capture corpus at {}", dir.display());
        return;
    };
    let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    let (mut ip, mut nat_ok, mut twins, mut icmp_errors, mut too_big) = (0, 0, 0, 0, 0);
    let gw = Mac([2, 0x99, 0, 0, 0, 1]);
    for path in paths {
        let Ok(reader) = CaptureReader::open(&path) else {
            continue;
        };
        for fr in reader.map_while(Result::ok) {
            if !fr.is_ethernet() {
                continue;
            }
            let f = &fr.data;
            let Ok(p) = packet::parse_captured(f, fr.orig_len) else {
                continue;
            };
            // Rewrites that cannot apply are errors.
            let decap = Transposition {
                decap: true,
                ..Transposition::NONE
            };
            let _ = run(&decap, f, &p);
            if !matches!(p.kind, FrameKind::Ip) {
                let t = Transposition {
                    src_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                    ..Transposition::NONE
                };
                assert!(run(&t, f, &p).is_none());
                continue;
            }
            ip += 1;
            let v6 = p.is_ipv6();
            let (new_src, new_dst) = if v6 {
                (
                    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x99)),
                    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x77)),
                )
            } else {
                (
                    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                    IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)),
                )
            };
            let fwd = Transposition {
                src_ip: Some(new_src),
                dst_ip: Some(new_dst),
                src_port: Some(61000),
                dst_port: Some(8080),
                ..Transposition::NONE
            };
            let there = run(&fwd, f, &p).expect("NAT applies to every IP frame");
            let tp = reparse(&there, p.truncated);
            let back = Transposition {
                src_ip: Some(p.fields.src_ip),
                dst_ip: Some(p.fields.dst_ip),
                src_port: Some(p.icmp_id.unwrap_or(p.fields.src_port)),
                dst_port: Some(p.icmp_id.unwrap_or(p.fields.dst_port)),
                ..Transposition::NONE
            };
            let again = run(&back, &there, &tp).unwrap();
            if again == *f {
                nat_ok += 1;
            } else {
                assert!(
                    same_but_checksum_twins(&again, f),
                    "NAT round trip changed {}: {f:02x?} -> {again:02x?}",
                    path.display()
                );
                twins += 1;
            }
            // VLAN push then pop; encap then decap.
            if p.vlan_count == 0 {
                let push = Transposition {
                    vlan: VlanOp::Push(42),
                    ..Transposition::NONE
                };
                let tagged = run(&push, f, &p).unwrap();
                let pop = Transposition {
                    vlan: VlanOp::Pop,
                    ..Transposition::NONE
                };
                let tpp = reparse(&tagged, p.truncated);
                assert_eq!(tpp.fields.vlan, Some(42));
                assert_eq!(run(&pop, &tagged, &tpp).unwrap(), *f);
            }
            let e = Encap {
                src_mac: Mac([2, 0xaa, 0, 0, 0, 1]),
                dst_mac: Mac([2, 0xbb, 0, 0, 0, 2]),
                src_ip: new_src,
                dst_ip: new_dst,
                udp_src: 49152,
                udp_dst: VXLAN_PORT,
                vni: 77,
            };
            let enc = Transposition {
                encap: Some(e),
                ..Transposition::NONE
            };
            if let Some(out) = run(&enc, f, &p) {
                let op = reparse(&out, p.truncated);
                let inner_end = (p.l3_end as usize).max(f.len());
                if inner_end == f.len() {
                    // Ethernet padding is kept inside the tunnel, and comes back out.
                    assert_eq!(run(&decap, &out, &op).unwrap(), *f);
                }
            }
            // ICMP errors: parsed, translated, answered.
            if let Some(inner) = icmp_error_inner(f, &p) {
                icmp_errors += 1;
                let mut b = PacketBuf::with_headroom(f, 0);
                let fam = |ip: IpAddr| (ip.is_ipv6() == v6).then_some(ip);
                let src = fam(new_src).map(|ip| (ip, 1));
                let dst = fam(new_dst).map(|ip| (ip, 2));
                translate_icmp_error(&mut b, &p, src, dst).unwrap();
                let tp = reparse(b.as_slice(), p.truncated);
                let t2 = icmp_error_inner(b.as_slice(), &tp).unwrap();
                assert_eq!((t2.src_ip, t2.dst_ip), (new_src, new_dst));
                assert_eq!(t2.l3_offset, inner.l3_offset);
            }
            if let Some(r) = icmp_too_big(f, &p, 1280, gw, new_src) {
                too_big += 1;
                let rp = packet::parse(&r).expect("a too-big reply parses");
                assert!(icmp_error_inner(&r, &rp).is_some());
            }
        }
    }
    eprintln!(
        "{ip} IP frames: {nat_ok} exact NAT round trips, {twins} with a 0/0xffff checksum \
         twin; {icmp_errors} ICMP errors translated; {too_big} too-big replies"
    );
}
