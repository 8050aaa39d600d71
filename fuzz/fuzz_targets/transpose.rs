//! Arbitrary bytes as a frame, rewritten by `transpose::bytes`: the first bytes choose the
//! rewrite (addresses, ports, VLAN, decap, encap), the rest is the frame. Nothing may
//! panic; a successful rewrite of a frame that parsed must parse again; ICMP error
//! translation and too-big replies run on it too.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use strata_dataplane::packet;
use strata_dataplane::transpose::bytes::{
    PacketBuf, apply, icmp_error_inner, icmp_too_big, translate_icmp_error, vxlan_of,
};
use strata_dataplane::transpose::{Encap, Transposition, VlanOp};
use strata_rules::model::Mac;

fuzz_target!(|data: &[u8]| {
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
});
