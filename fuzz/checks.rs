//! What each fuzz target checks, one function per target. The fuzz binaries
//! (`fuzz_targets/*.rs`) call them, and so does the main workspace's
//! `tests/fuzz_regressions.rs`, which replays every input under `fuzz/regressions/` —
//! so a crash found once stays fixed. A check panics when something is wrong; it must
//! not panic for any input.
//!
//! Included with `#[path]` by both, so it may use only what both have: `strata_rules`
//! and `strata_dataplane`.
#![allow(dead_code)] // each fuzz binary uses one check

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;
use std::sync::atomic::AtomicBool;

use strata_dataplane::capture::CaptureReader;
use strata_dataplane::device::capture::CaptureDevice;
use strata_dataplane::engine::{Ingress, Rx};
use strata_dataplane::packet::{self, testutil};
use strata_dataplane::transpose::bytes::{
    PacketBuf, apply, icmp_error_inner, icmp_too_big, translate_icmp_error, vxlan_of,
};
use strata_dataplane::transpose::{Encap, Transposition, VlanOp};
use strata_dataplane::worker::Worker;
use strata_dataplane::{Engine, PortId};
use strata_rules::Policy;
use strata_rules::model::Mac;

/// A target's check: panics when the input shows a bug.
pub type Check = fn(&[u8]);

/// Every target by the name of its fuzz binary and of its folder under `regressions/`.
pub const TARGETS: &[(&str, Check)] = &[
    ("parse_frame", parse_frame),
    ("read_capture", read_capture),
    ("transpose", transpose),
    ("replay", replay),
    ("policy", policy),
];

/// The bundled example policy (NAT, port mappings, overlay).
fn example() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| {
        strata_rules::policy::load(include_str!("../examples/policy.toml"), "policy.toml")
            .expect("the example policy is valid")
    })
}

/// Arbitrary bytes as an Ethernet frame: the parser must never panic, and every offset
/// it reports must lie within the frame (`testutil::check_invariants`).
pub fn parse_frame(data: &[u8]) {
    // The first byte doubles as how much the "capture" cut, to exercise snapped parsing.
    let orig = data.len() as u32 + u32::from(data.first().copied().unwrap_or(0));
    for p in [packet::parse(data), packet::parse_captured(data, orig)]
        .into_iter()
        .flatten()
    {
        testutil::check_invariants(data, &p);
    }
}

/// Arbitrary bytes as a capture file: reading must end (with frames and at most one
/// error, last) and never panic; every frame must parse or fail cleanly.
pub fn read_capture(data: &[u8]) {
    let Ok(reader) = CaptureReader::from_bytes(data.to_vec()) else {
        return;
    };
    let mut errored = false;
    for r in reader {
        assert!(!errored, "a frame after the error");
        match r {
            Ok(f) => {
                if f.is_ethernet()
                    && let Ok(p) = packet::parse_captured(&f.data, f.orig_len)
                {
                    testutil::check_invariants(&f.data, &p);
                }
            }
            Err(e) => {
                let _ = e.to_string();
                errored = true;
            }
        }
    }
}

/// Arbitrary bytes as a frame, rewritten by `transpose::bytes`: the first bytes choose
/// the rewrite (addresses, ports, VLAN, decap, encap), the rest is the frame. Nothing
/// may panic; a successful rewrite of a frame that parsed must parse again; ICMP error
/// translation and too-big replies run on it too.
pub fn transpose(data: &[u8]) {
    let Some((&[sel, cut, vid], frame)) = data.split_first_chunk::<3>() else {
        return;
    };
    let orig = frame.len() as u32 + u32::from(cut);
    let Ok(p) = packet::parse_captured(frame, orig) else {
        return;
    };
    let v6 = p.is_ipv6();
    let ip = |last: u8| {
        if v6 {
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(last)))
        } else {
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
        }
    };
    let underlay6 = sel & 0x40 != 0;
    let outer = |last: u8| {
        if underlay6 {
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(last)))
        } else {
            IpAddr::V4(Ipv4Addr::new(172, 16, 0, last))
        }
    };
    let t = Transposition {
        decap: sel & 0x01 != 0,
        src_mac: (sel & 0x02 != 0).then_some(Mac([2, 0, 0, 0, 0, vid])),
        dst_mac: None,
        src_ip: (sel & 0x04 != 0).then(|| ip(vid)),
        dst_ip: (sel & 0x08 != 0).then(|| ip(vid.wrapping_add(1))),
        src_port: (sel & 0x10 != 0).then_some(u16::from(vid) << 4),
        dst_port: (sel & 0x20 != 0).then_some(u16::from(vid)),
        vlan: match (sel >> 6) & 3 {
            0 => VlanOp::Keep,
            1 => VlanOp::Pop,
            _ => VlanOp::Push(u16::from(vid)),
        },
        encap: (sel & 0x80 != 0).then(|| Encap {
            src_mac: Mac([2, 0xaa, 0, 0, 0, 1]),
            dst_mac: Mac([2, 0xbb, 0, 0, 0, 2]),
            src_ip: outer(1),
            dst_ip: outer(2),
            udp_src: 49152,
            udp_dst: 4789,
            vni: u32::from(vid),
        }),
    };
    let mut b = PacketBuf::with_headroom(frame, usize::from(cut & 0x7f));
    if apply(&t, &mut b, &p).is_ok() {
        let r = packet::parse_captured(b.as_slice(), u32::MAX);
        assert!(r.is_ok(), "a rewritten frame no longer parses: {r:?}");
    }
    let _ = vxlan_of(frame, &p, &[]);
    if icmp_error_inner(frame, &p).is_some() {
        let mut b = PacketBuf::with_headroom(frame, 0);
        let _ = translate_icmp_error(&mut b, &p, Some((ip(1), 1)), Some((ip(2), 2)));
    }
    let _ = icmp_too_big(frame, &p, 1280, Mac([2, 0, 0, 0, 0, 1]), ip(254));
}

/// Arbitrary bytes as a capture, replayed through the bundled example policy (NAT, port
/// mappings, overlay) by the worker loop over a capture device — what `strata replay`
/// runs: the whole packet path (parse, VXLAN and ICMP-error handling, connections, NAT,
/// delivery, byte rewrites) must never panic, and must give one verdict per record.
pub fn replay(data: &[u8]) {
    let Ok(reader) = CaptureReader::from_bytes(data.to_vec()) else {
        return;
    };
    let records = CaptureReader::from_bytes(data.to_vec())
        .map(|r| r.take_while(|f| f.is_ok()).count())
        .unwrap_or(0);
    let mut worker = Worker::new(Engine::for_policy(example()));
    let mut device = CaptureDevice::new(reader, None);
    if worker
        .run(&mut [&mut device], &mut (), &AtomicBool::new(false))
        .is_ok()
    {
        assert_eq!(worker.engine().stats().packets as usize, records);
    }
}

/// Arbitrary bytes as a policy file: the first byte's low bit picks TOML (0) or HNS JSON
/// (1), the rest is the file (read lossily as UTF-8: `strata check` refuses a file that
/// is not UTF-8 before parsing it). Loading must never panic; a refusal must say at
/// least one thing, each error pointing into the file in file order; a policy that loads
/// must compile into the engine and carry traffic between its endpoints, the uplink and
/// the outside, and be installed over (and replaced by) the bundled example as a reload.
pub fn policy(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let (loaded, file) = if sel & 1 == 0 {
        (strata_rules::policy::load(&text, "fuzz.toml"), "fuzz.toml")
    } else {
        (
            strata_rules::policy::load_hns_json(&text, "fuzz.json"),
            "fuzz.json",
        )
    };
    let policy = match loaded {
        Ok(policy) => policy,
        Err(errors) => {
            assert!(!errors.is_empty(), "a refusal without an error");
            let lines = text.split('\n').count();
            let mut last = (0, 0);
            for e in errors.iter() {
                let shown = e.to_string();
                assert!(shown.starts_with(file), "{shown:?} does not name {file}");
                assert!(
                    e.line >= 1 && e.line <= lines && e.col >= 1,
                    "{shown:?}: not a position in a file of {lines} lines"
                );
                assert!(
                    (e.line, e.col) >= last,
                    "{shown:?} after {last:?}: unsorted"
                );
                last = (e.line, e.col);
            }
            return;
        }
    };
    let frames = traffic(&policy);
    let mut engine = Engine::for_policy(&policy);
    run_traffic(&mut engine, &policy, &frames, 0);
    // A reload: the example's engine takes the fuzzed policy, then the example back.
    if sel & 2 != 0 {
        let mut engine = Engine::for_policy(example());
        run_traffic(&mut engine, &policy, &frames, 0);
        engine.set_policy(&policy);
        run_traffic(&mut engine, &policy, &frames, 1_000_000_000);
        engine.set_policy(example());
        run_traffic(&mut engine, &policy, &frames, 2_000_000_000);
    }
}

/// Frames sent into an engine: each (source port, frame); `None` lets the engine find
/// the ingress from the frame's addresses.
type Traffic = Vec<(Option<usize>, Vec<u8>)>;

/// A little traffic for `policy`: from each of its first endpoints to the next one and
/// to the outside (UDP, TCP SYN, ICMP echo), from the outside to each endpoint and to the
/// host's addresses, and a fixed frame from nowhere in particular.
fn traffic(policy: &Policy) -> Traffic {
    const OUT4: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
    const OUT6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 7));
    const OUT_MAC: Mac = Mac([0x02, 0xee, 0, 0, 0, 0x07]);
    let outside = |like: IpAddr| if like.is_ipv4() { OUT4 } else { OUT6 };
    let mut t: Traffic = vec![(None, testutil::ipv4_udp_frame())];
    let ports = &policy.ports[..policy.ports.len().min(4)];
    for (i, p) in ports.iter().enumerate() {
        let Some(&src) = p.ips.first() else {
            continue;
        };
        let next = &ports[(i + 1) % ports.len()];
        let peer = next
            .ips
            .iter()
            .copied()
            .find(|a| a.is_ipv4() == src.is_ipv4());
        for (dst_mac, dst) in [(next.mac, peer), (policy.uplink.mac, Some(outside(src)))] {
            let Some(dst) = dst else { continue };
            for l4 in [17, 6, 1] {
                t.push((Some(i), frame(p.mac, dst_mac, src, dst, l4)));
            }
        }
        // From the outside, to the endpoint and to each host address (port mappings).
        let mut to = vec![src];
        to.extend(policy.uplink.ips.iter().copied().take(2));
        for dst in to {
            t.push((
                None,
                frame(OUT_MAC, policy.uplink.mac, outside(dst), dst, 6),
            ));
            t.push((
                None,
                frame(OUT_MAC, policy.uplink.mac, outside(dst), dst, 17),
            ));
        }
    }
    t
}

fn run_traffic(engine: &mut Engine, policy: &Policy, frames: &Traffic, t0: u64) {
    for (n, (from, f)) in frames.iter().enumerate() {
        let ts = t0 + n as u64 * 1000;
        // By address, then as received by the port it comes from (by name and by id).
        engine.process(Rx::frame(f, ts));
        let name = from.map_or(policy.uplink.name.as_str(), |i| &policy.ports[i].name);
        engine.process(Rx {
            ingress: Ingress::Named(name),
            ..Rx::frame(f, ts + 1)
        });
        let port = match from {
            Some(_) => engine.policy().port_by_name(name),
            None => Some(PortId::Uplink),
        };
        if let Some(port) = port {
            engine.process(Rx {
                ingress: Ingress::Port(port),
                ..Rx::frame(f, ts + 2)
            });
        }
    }
}

/// An Ethernet frame from `src` to `dst`: UDP (17) to port 53, TCP (6) SYN to port 80,
/// or an ICMP (1) echo request, over IPv4 or IPv6 as the addresses are (both the same).
fn frame(src_mac: Mac, dst_mac: Mac, src: IpAddr, dst: IpAddr, l4: u8) -> Vec<u8> {
    let payload = match l4 {
        17 => testutil::udp(40000, 53, b"query"),
        6 => testutil::tcp(40001, 80, 0x02, &[], &[]),
        _ => testutil::icmp(if src.is_ipv4() { 8 } else { 128 }, 0, &[0, 1, 0, 1]),
    };
    let mut f = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => testutil::eth(
            0x0800,
            &[],
            &testutil::ipv4_full(l4, s.octets(), d.octets(), &[], 0, &payload),
        ),
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let next = if l4 == 1 { 58 } else { l4 };
            let mut ip = testutil::ipv6(next, &payload);
            ip[8..24].copy_from_slice(&s.octets());
            ip[24..40].copy_from_slice(&d.octets());
            testutil::eth(0x86dd, &[], &ip)
        }
        _ => testutil::ipv4_udp_frame(),
    };
    f[0..6].copy_from_slice(&dst_mac.0);
    f[6..12].copy_from_slice(&src_mac.0);
    f
}
