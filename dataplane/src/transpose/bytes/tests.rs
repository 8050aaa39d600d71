//! Every rewrite on crafted frames, each checksum checked by full recomputation (the
//! incremental result must equal it bit for bit), and property tests of composition,
//! NAT round trips and encap/decap.

use std::net::{Ipv4Addr, Ipv6Addr};

use strata_rules::model::Mac;

use super::*;
use crate::packet::testutil as tu;

pub(crate) const IPV4: u16 = 0x0800;
pub(crate) const IPV6: u16 = 0x86dd;

/// The L4 checksum a full computation gives for the parsed frame (the field counted as
/// zero), or `None` when there is none to check: no L4 header, a fragment (the checksum
/// covers the reassembled datagram), a truncated frame, a protocol without one.
fn full_l4(f: &[u8], p: &Parsed) -> Option<(usize, u16)> {
    if p.fragment != Fragment::None || p.truncated {
        return None;
    }
    let l4 = p.l4_offset? as usize;
    let end = p.l3_end as usize;
    let (field, pseudo) = match p.fields.protocol {
        proto::TCP => (tcp::field::CHECKSUM, true),
        proto::UDP => (udp::field::CHECKSUM, true),
        proto::ICMPV6 => (icmp::field::CHECKSUM, true),
        proto::ICMP => (icmp::field::CHECKSUM, false),
        _ => return None,
    };
    let mut seg = f[l4..end].to_vec();
    seg[field..field + 2].fill(0);
    let mut acc = 0;
    if pseudo {
        let (s, n) = p.src_ip_offset().unwrap();
        let (d, _) = p.dst_ip_offset().unwrap();
        acc = checksum::sum(acc, &f[s..s + n]);
        acc = checksum::sum(acc, &f[d..d + n]);
        acc = checksum::sum(acc, &(seg.len() as u32).to_be_bytes());
        acc = checksum::sum(acc, &[0, 0, 0, p.fields.protocol]);
    }
    acc = checksum::sum(acc, &seg);
    let mut c = checksum::finish(acc);
    if p.fields.protocol == proto::UDP && c == 0 {
        c = 0xffff;
    }
    Some((l4 + field, c))
}

/// Sets every checksum of a crafted frame (IPv4 header and L4) by full computation.
/// `udp_zero`: leave a UDP-over-IPv4 checksum at 0 ("none").
pub(crate) fn fix(f: &mut [u8], udp_zero: bool) {
    let p = packet::parse(f).unwrap();
    if let Some(off) = p.ipv4_checksum_offset() {
        let l3 = p.l3_offset as usize;
        let ihl = usize::from(f[l3] & 0x0f) * 4;
        f[off..off + 2].fill(0);
        let c = checksum::finish(checksum::sum(0, &f[l3..l3 + ihl]));
        f[off..off + 2].copy_from_slice(&c.to_be_bytes());
    }
    if udp_zero && p.is_ipv4() && p.fields.protocol == proto::UDP {
        return;
    }
    if let Some((off, c)) = full_l4(f, &p) {
        f[off..off + 2].copy_from_slice(&c.to_be_bytes());
    }
}

/// Asserts that every checksum of `f` equals its full recomputation (UDP over IPv4: 0
/// allowed), recursing into VXLAN.
pub(crate) fn verify(f: &[u8]) {
    let p = packet::parse(f).unwrap_or_else(|e| panic!("{e}: {f:02x?}"));
    if p.is_ipv4() {
        assert!(
            ipv4::header_checksum_ok(f, p.l3_offset as usize),
            "IPv4 header checksum"
        );
    }
    if let Some((off, c)) = full_l4(f, &p) {
        let stored = u16::from_be_bytes([f[off], f[off + 1]]);
        let none = p.is_ipv4() && p.fields.protocol == proto::UDP && stored == 0;
        assert!(
            none || stored == c,
            "L4 checksum {stored:#06x}, full {c:#06x}: {f:02x?}"
        );
    }
    if let Some(vx) = vxlan_of(f, &p, &[VXLAN_PORT]) {
        verify(&f[vx.inner_offset..p.l3_end as usize]);
    }
}

pub(crate) fn v4(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

pub(crate) fn v6(last: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last))
}

/// IPv6 with the given addresses.
pub(crate) fn ipv6_pkt(next: u8, src: IpAddr, dst: IpAddr, payload: &[u8]) -> Vec<u8> {
    let mut h = tu::ipv6(next, payload);
    let (IpAddr::V6(s), IpAddr::V6(d)) = (src, dst) else {
        panic!("IPv6 addresses")
    };
    h[8..24].copy_from_slice(&s.octets());
    h[24..40].copy_from_slice(&d.octets());
    h
}

/// Crafted frames with correct checksums: every L4 over both families.
pub(crate) fn frames() -> Vec<(&'static str, Vec<u8>)> {
    let payload = b"some payload, odd length";
    let tcp = tu::tcp(
        40000,
        80,
        0x18,
        &[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2],
        payload,
    );
    let udp = tu::udp(5353, 53, payload);
    let echo4 = tu::icmp(8, 0, &[0x12, 0x34, 0, 1, 0xaa, 0xbb, 0xcc]);
    let echo6 = tu::icmp(128, 0, &[0x12, 0x34, 0, 1, 0xaa, 0xbb, 0xcc]);
    let (s6, d6) = (v6(1), v6(2));
    let mut out = vec![
        ("tcp4", tu::eth(IPV4, &[], &tu::ipv4(6, &tcp))),
        ("udp4", tu::eth(IPV4, &[], &tu::ipv4(17, &udp))),
        ("icmp4", tu::eth(IPV4, &[], &tu::ipv4(1, &echo4))),
        ("tcp6", tu::eth(IPV6, &[], &ipv6_pkt(6, s6, d6, &tcp))),
        ("udp6", tu::eth(IPV6, &[], &ipv6_pkt(17, s6, d6, &udp))),
        ("icmp6", tu::eth(IPV6, &[], &ipv6_pkt(58, s6, d6, &echo6))),
        (
            "tcp4-vlan",
            tu::eth(IPV4, &[(0x8100, 0x2007)], &tu::ipv4(6, &tcp)),
        ),
        (
            "udp6-qinq",
            tu::eth(
                IPV6,
                &[(0x88a8, 100), (0x8100, 7)],
                &ipv6_pkt(17, s6, d6, &udp),
            ),
        ),
    ];
    for (_, f) in &mut out {
        fix(f, false);
    }
    let mut z = tu::eth(IPV4, &[], &tu::ipv4(17, &udp));
    fix(&mut z, true);
    out.push(("udp4-nocsum", z));
    out
}

fn run(t: &Transposition, f: &[u8]) -> Result<Vec<u8>, TransposeError> {
    let p = packet::parse(f).unwrap();
    let mut b = PacketBuf::with_headroom(f, DEFAULT_HEADROOM);
    apply(t, &mut b, &p)?;
    Ok(b.as_slice().to_vec())
}

fn nat(src_ip: Option<IpAddr>, port: Option<u16>) -> Transposition {
    Transposition {
        src_ip,
        src_port: port,
        ..Transposition::NONE
    }
}

fn same_family(f: &[u8], v4a: [u8; 4], v6a: u16) -> IpAddr {
    if packet::parse(f).unwrap().is_ipv4() {
        v4(v4a)
    } else {
        v6(v6a)
    }
}

#[test]
fn packet_buf_operations() {
    let mut b = PacketBuf::with_headroom(&[1, 2, 3, 4, 5, 6], 4);
    assert_eq!((b.len(), b.headroom()), (6, 4));
    b.prepend(2).copy_from_slice(&[9, 9]);
    assert_eq!(b.as_slice(), &[9, 9, 1, 2, 3, 4, 5, 6]);
    b.strip_front(2);
    b.insert(2, 2).copy_from_slice(&[7, 7]);
    assert_eq!(b.as_slice(), &[1, 2, 7, 7, 3, 4, 5, 6]);
    b.remove(2, 2);
    assert_eq!(b.as_slice(), &[1, 2, 3, 4, 5, 6]);
    // Beyond the headroom: grows, keeps the frame.
    b.prepend(10).fill(0xee);
    assert_eq!(&b.as_slice()[10..], &[1, 2, 3, 4, 5, 6]);
    b.strip_front(100);
    assert!(b.is_empty());
    let mut c = PacketBuf::from_vec(vec![1, 2, 3]);
    c.insert(1, 1)[0] = 5;
    c.remove(10, 1);
    c.truncate(3);
    assert_eq!(c.into_vec(), vec![1, 5, 2]);
}

#[test]
fn headroom_suffices_without_reallocation() {
    let (_, f) = &frames()[0];
    let p = packet::parse(f).unwrap();
    let mut b = PacketBuf::with_headroom(f, DEFAULT_HEADROOM);
    let before = b.buf.as_ptr();
    let t = Transposition {
        vlan: VlanOp::Push(5),
        encap: Some(encap6()),
        ..nat(Some(v4([192, 0, 2, 1])), Some(1))
    };
    apply(&t, &mut b, &p).unwrap();
    assert_eq!(b.buf.as_ptr(), before);
    verify(b.as_slice());
}

#[test]
fn address_and_port_rewrites_keep_checksums_exact() {
    for (name, f) in frames() {
        for t in [
            nat(Some(same_family(&f, [192, 0, 2, 7], 0xbeef)), Some(61000)),
            Transposition {
                dst_ip: Some(same_family(&f, [198, 51, 100, 9], 0x99)),
                dst_port: Some(8080),
                src_mac: Some(Mac([2, 1, 2, 3, 4, 5])),
                dst_mac: Some(Mac([2, 9, 9, 9, 9, 9])),
                ..Transposition::NONE
            },
            nat(None, Some(7)),
        ] {
            let out = run(&t, &f).unwrap();
            verify(&out);
            let p = packet::parse(&out).unwrap();
            let q = packet::parse(&f).unwrap();
            let (want, id) = t.apply_fields(&q.fields, q.icmp_id);
            let mut got = p.fields;
            got.vni = want.vni;
            assert_eq!(got, want, "{name}");
            assert_eq!(p.icmp_id, id, "{name}");
            if name == "udp4-nocsum" {
                assert_eq!(&out[40..42], &[0, 0], "a zero UDP checksum stays zero");
            }
        }
    }
}

#[test]
fn family_mismatch_and_non_ip_are_errors_and_leave_the_frame() {
    let (_, f) = &frames()[0];
    let t = nat(Some(v6(1)), None);
    assert_eq!(run(&t, f), Err(TransposeError::AddressFamily));
    let arp = tu::eth(
        0x0806,
        &[],
        &[
            0, 1, 8, 0, 6, 4, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
    );
    assert_eq!(
        run(&nat(Some(v4([1, 2, 3, 4])), None), &arp),
        Err(TransposeError::NotIp)
    );
    // A MAC rewrite of a non-IP frame is fine.
    let t = Transposition {
        src_mac: Some(Mac([2, 0, 0, 0, 0, 1])),
        ..Transposition::NONE
    };
    assert_eq!(&run(&t, &arp).unwrap()[6..12], &[2, 0, 0, 0, 0, 1]);
    let bad = Encap {
        src_ip: v4([1, 1, 1, 1]),
        ..encap6()
    };
    let t = Transposition {
        encap: Some(bad),
        ..Transposition::NONE
    };
    assert_eq!(run(&t, f), Err(TransposeError::AddressFamily));
    let big = tu::eth(IPV4, &[], &tu::ipv4(17, &tu::udp(1, 2, &vec![0; 65_480])));
    let t = Transposition {
        encap: Some(encap4()),
        ..Transposition::NONE
    };
    assert!(matches!(run(&t, &big), Err(TransposeError::TooLong)));
}

#[test]
fn non_first_fragments_get_addresses_only() {
    let data = [0xabu8; 24];
    let mut f = tu::eth(
        IPV4,
        &[],
        &tu::ipv4_full(17, [10, 0, 0, 1], [10, 0, 0, 2], &[], 0x0003, &data),
    );
    fix(&mut f, false);
    let out = run(&nat(Some(v4([192, 0, 2, 1])), Some(9)), &f).unwrap();
    verify(&out);
    assert_eq!(&out[26..30], &[192, 0, 2, 1]);
    assert_eq!(&out[34..], &data, "fragment data untouched");
    // The first fragment's L4 checksum (over the whole datagram) is patched.
    let mut first = tu::eth(
        IPV4,
        &[],
        &tu::ipv4_full(
            6,
            [10, 0, 0, 1],
            [10, 0, 0, 2],
            &[],
            0x2000,
            &tu::tcp(1, 2, 2, &[], b"x"),
        ),
    );
    fix(&mut first, false);
    let before = u16::from_be_bytes([first[50], first[51]]);
    let out = run(&nat(Some(v4([192, 0, 2, 1])), Some(9)), &first).unwrap();
    assert_ne!(before, u16::from_be_bytes([out[50], out[51]]));
}

#[test]
fn truncated_frames_get_the_checksum_of_their_original() {
    for (name, f) in frames() {
        let t = Transposition {
            dst_ip: Some(same_family(&f, [203, 0, 113, 5], 0x77)),
            src_port: Some(1),
            ..Transposition::NONE
        };
        let full = run(&t, &f).unwrap();
        let p = packet::parse(&f).unwrap();
        let cut = (p.payload_offset as usize + 1).max(p.l4_offset.unwrap() as usize + 8);
        let q = packet::parse_captured(&f[..cut], f.len() as u32).unwrap();
        let mut b = PacketBuf::with_headroom(&f[..cut], 0);
        apply(&t, &mut b, &q).unwrap();
        assert_eq!(b.as_slice(), &full[..cut], "{name}");
        // And encapsulation counts the missing bytes in its lengths.
        let t = Transposition {
            encap: Some(encap4()),
            ..t
        };
        let mut b = PacketBuf::with_headroom(&f[..cut], DEFAULT_HEADROOM);
        apply(&t, &mut b, &q).unwrap();
        let total = u16::from_be_bytes([b.as_slice()[16], b.as_slice()[17]]) as usize;
        assert_eq!(total, 20 + 16 + f.len(), "{name}");
    }
}

#[test]
fn vlan_push_retag_pop() {
    let (_, f) = &frames()[0];
    let push = Transposition {
        vlan: VlanOp::Push(0x123),
        ..Transposition::NONE
    };
    let tagged = run(&push, f).unwrap();
    assert_eq!(&tagged[12..16], &[0x81, 0x00, 0x01, 0x23]);
    assert_eq!(&tagged[16..], &f[12..]);
    assert_eq!(&tagged[..12], &f[..12]);
    verify(&tagged);
    // Retag: the innermost tag becomes 802.1Q with that VID, priority 0 (as a pop
    // then a push would leave it).
    let (_, g) = &frames()[6];
    let retag = run(
        &Transposition {
            vlan: VlanOp::Push(9),
            ..push
        },
        g,
    )
    .unwrap();
    assert_eq!(&retag[12..16], &[0x81, 0x00, 0x00, 0x09]);
    let pop = Transposition {
        vlan: VlanOp::Pop,
        ..Transposition::NONE
    };
    assert_eq!(&run(&pop, &tagged).unwrap(), f);
    assert_eq!(&run(&pop, f).unwrap(), f, "pop of an untagged frame");
    // QinQ: the inner VID is set; pop removes the outer tag.
    let (_, q) = &frames()[7];
    let r = run(
        &Transposition {
            vlan: VlanOp::Push(42),
            ..push
        },
        q,
    )
    .unwrap();
    assert_eq!(packet::parse(&r).unwrap().fields.vlan, Some(42));
    assert_eq!(packet::parse(&r).unwrap().outer_vlan, Some(100));
    let r = run(&pop, q).unwrap();
    let pr = packet::parse(&r).unwrap();
    assert_eq!((pr.vlan_count, pr.fields.vlan), (1, Some(7)));
}

pub(crate) fn encap4() -> Encap {
    Encap {
        src_mac: Mac([2, 0xaa, 0, 0, 0, 1]),
        dst_mac: Mac([2, 0xbb, 0, 0, 0, 2]),
        src_ip: v4([172, 16, 0, 1]),
        dst_ip: v4([172, 16, 0, 2]),
        udp_src: 49152,
        udp_dst: VXLAN_PORT,
        vni: 0x12_3456,
    }
}

pub(crate) fn encap6() -> Encap {
    Encap {
        src_ip: v6(0xa1),
        dst_ip: v6(0xa2),
        udp_src: 50001,
        ..encap4()
    }
}

#[test]
fn encap_and_decap() {
    for (name, f) in frames() {
        for e in [encap4(), encap6()] {
            let t = Transposition {
                encap: Some(e),
                ..Transposition::NONE
            };
            let out = run(&t, &f).unwrap();
            verify(&out);
            let p = packet::parse(&out).unwrap();
            assert_eq!(p.fields.dst_port, VXLAN_PORT);
            assert_eq!(p.fields.src_ip, e.src_ip);
            assert_eq!(p.ttl, 64);
            let vx = vxlan_of(&out, &p, &[VXLAN_PORT]).unwrap();
            assert_eq!(vx.vni, 0x12_3456);
            assert_eq!(&out[vx.inner_offset..], &f[..], "{name}");
            if p.is_ipv4() {
                assert_eq!(&out[20..22], &[0x40, 0], "DF, fragment offset 0");
                assert_eq!(&out[40..42], &[0, 0], "no UDP checksum over IPv4");
            }
            let d = Transposition {
                decap: true,
                ..Transposition::NONE
            };
            assert_eq!(run(&d, &out).unwrap(), f, "{name}");
            // Decap, NAT the inner frame, re-encap: one transposition.
            let t = Transposition {
                decap: true,
                src_port: Some(999),
                vlan: VlanOp::Push(3),
                encap: Some(encap6()),
                ..Transposition::NONE
            };
            let again = run(&t, &out).unwrap();
            verify(&again);
            // Ethernet padding after the outer packet is not part of the inner frame.
            let mut padded = out.clone();
            padded.extend_from_slice(&[0; 7]);
            assert_eq!(run(&d, &padded).unwrap(), f, "{name} padded");
        }
    }
}

#[test]
fn decap_of_a_non_vxlan_frame_is_an_error() {
    let d = Transposition {
        decap: true,
        ..Transposition::NONE
    };
    for (_, f) in frames() {
        assert_eq!(run(&d, &f), Err(TransposeError::NotVxlan));
    }
    // VXLAN without the I flag.
    let e = Transposition {
        encap: Some(encap4()),
        ..Transposition::NONE
    };
    let mut out = run(&e, &frames()[0].1).unwrap();
    out[42] = 0;
    assert_eq!(run(&d, &out), Err(TransposeError::NotVxlan));
    // A fragment of a VXLAN packet.
    let mut frag = out.clone();
    frag[42] = VXLAN_FLAG_I;
    let whole = frag.clone();
    assert!(run(&d, &whole).is_ok());
    frag[20] = 0x20; // MF
    fix(&mut frag, true);
    assert_eq!(run(&d, &frag), Err(TransposeError::NotVxlan));
    // VXLAN whose inner frame is broken.
    let mut out = run(&e, &frames()[0].1).unwrap();
    out[50 + 14] = 0x75;
    assert!(matches!(run(&d, &out), Err(TransposeError::Inner(_))));
}

#[test]
fn sctp_port_rewrite_updates_the_crc() {
    let mut s = vec![0u8; 12];
    s[..2].copy_from_slice(&5000u16.to_be_bytes());
    s[2..4].copy_from_slice(&5001u16.to_be_bytes());
    s.extend_from_slice(&[1, 0, 0, 4]);
    sctp_fix_crc(&mut s);
    let f = tu::eth(IPV4, &[], &tu::ipv4(132, &s));
    let out = run(&nat(None, Some(7000)), &f).unwrap();
    let mut seg = out[34..].to_vec();
    let crc = seg[8..12].to_vec();
    sctp_fix_crc(&mut seg);
    assert_eq!(crc, &seg[8..12]);
    assert_eq!(&out[34..36], &7000u16.to_be_bytes());
    // Truncated: the same CRC as the whole packet gets.
    let q = packet::parse_captured(&f[..48], f.len() as u32).unwrap();
    let mut b = PacketBuf::with_headroom(&f[..48], 0);
    apply(&nat(None, Some(7000)), &mut b, &q).unwrap();
    assert_eq!(b.as_slice(), &out[..48]);
    // A broken CRC stays broken by as much (NAT does not launder it).
    let mut broken = f.clone();
    broken[42] ^= 1;
    let out2 = run(&nat(None, Some(7000)), &broken).unwrap();
    assert_eq!(out2[42] ^ out[42], 1);
    assert_eq!(run(&nat(None, Some(5000)), &out2).unwrap(), broken);
}

mod props {
    use proptest::prelude::*;

    use super::*;

    fn frame_index() -> impl Strategy<Value = usize> {
        0..frames().len()
    }

    /// A transposition without decap or encap for a frame of `v6` family.
    fn inner_t(v6f: bool) -> impl Strategy<Value = Transposition> {
        let ip = move |x: u32| {
            if v6f {
                IpAddr::V6(Ipv6Addr::from(u128::from(x) | (0x2001u128 << 112)))
            } else {
                IpAddr::V4(Ipv4Addr::from(x))
            }
        };
        (
            proptest::option::of(any::<[u8; 6]>()),
            proptest::option::of(any::<[u8; 6]>()),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u16>()),
            proptest::option::of(any::<u16>()),
            prop_oneof![
                Just(VlanOp::Keep),
                Just(VlanOp::Pop),
                (1u16..4095).prop_map(VlanOp::Push)
            ],
        )
            .prop_map(move |(sm, dm, s, d, sp, dp, vlan)| Transposition {
                src_mac: sm.map(Mac),
                dst_mac: dm.map(Mac),
                src_ip: s.map(ip),
                dst_ip: d.map(ip),
                src_port: sp,
                dst_port: dp,
                vlan,
                ..Transposition::NONE
            })
    }

    /// A frame and two transpositions for it. For ICMP echo the identifier is rewritten
    /// with `src_port.or(dst_port)` (as `apply_fields` does), which `then` does not
    /// compose (a's src_port would hide b's dst_port): echo frames get `src_port` only.
    fn case() -> impl Strategy<Value = (usize, Transposition, Transposition)> {
        frame_index().prop_flat_map(|i| {
            let p = packet::parse(&frames()[i].1).unwrap();
            let echo = p.icmp_id.is_some();
            let fix = move |t: Transposition| Transposition {
                dst_port: if echo { None } else { t.dst_port },
                ..t
            };
            (
                Just(i),
                inner_t(!p.is_ipv4()).prop_map(fix),
                inner_t(!p.is_ipv4()).prop_map(fix),
            )
        })
    }

    fn seq(ts: &[Transposition], f: &[u8]) -> Vec<u8> {
        let mut b = PacketBuf::with_headroom(f, DEFAULT_HEADROOM);
        for t in ts {
            let p = packet::parse(b.as_slice()).unwrap();
            apply(t, &mut b, &p).unwrap();
        }
        b.as_slice().to_vec()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// Composition: one composite rewrite is the two in a row. On a QinQ frame two
        /// VLAN operations do not compose (pop then pop removes both tags, `then` gives
        /// one pop; pop then push replaces the inner tag and drops the outer one).
        #[test]
        fn then_is_sequential((i, a, b) in case()) {
            let (name, f) = &frames()[i];
            prop_assume!(!(name.contains("qinq") && a.vlan != VlanOp::Keep && b.vlan != VlanOp::Keep));
            let one = seq(&[a.then(&b)], f);
            prop_assert_eq!(&one, &seq(&[a, b], f), "{}", name);
            verify(&one);
        }

        /// Inner rewrites then an encapsulation; decap with rewrites then re-encap.
        #[test]
        fn then_with_encap_and_decap((i, a, b) in case(), six in any::<bool>()) {
            let (name, f) = &frames()[i];
            prop_assume!(!(name.contains("qinq") && a.vlan != VlanOp::Keep && b.vlan != VlanOp::Keep));
            let e = if six { encap6() } else { encap4() };
            let b = Transposition { encap: Some(e), ..b };
            let one = seq(&[a.then(&b)], f);
            prop_assert_eq!(&one, &seq(&[a, b], f));
            verify(&one);
            let a2 = Transposition { decap: true, ..a };
            let one2 = seq(&[a2.then(&b)], &one);
            prop_assert_eq!(&one2, &seq(&[a2, b], &one));
            verify(&one2);
        }

        /// NAT there and back gives the original bytes, checksums included.
        #[test]
        fn nat_round_trip((i, a, _b) in case()) {
            let (_, f) = &frames()[i];
            let p = packet::parse(f).unwrap();
            let fwd = Transposition { vlan: VlanOp::Keep, ..a };
            let back = Transposition {
                src_mac: fwd.src_mac.map(|_| p.fields.src_mac),
                dst_mac: fwd.dst_mac.map(|_| p.fields.dst_mac),
                src_ip: fwd.src_ip.map(|_| p.fields.src_ip),
                dst_ip: fwd.dst_ip.map(|_| p.fields.dst_ip),
                src_port: fwd.src_port.map(|_| p.icmp_id.unwrap_or(p.fields.src_port)),
                dst_port: fwd.dst_port.map(|_| p.icmp_id.unwrap_or(p.fields.dst_port)),
                ..Transposition::NONE
            };
            // ICMP echo: one identifier plays both ports, src_port first.
            let back = if p.icmp_id.is_some() && fwd.src_port.or(fwd.dst_port).is_some() {
                Transposition { src_port: p.icmp_id, dst_port: None, ..back }
            } else {
                back
            };
            let there = seq(&[fwd], f);
            verify(&there);
            prop_assert_eq!(&seq(&[back], &there), f);
        }

        /// Damaged and cut frames (VXLAN ones and ICMP errors among them): nothing
        /// panics, whatever the rewrite.
        #[test]
        fn never_panics(
            (i, a, _b) in case(),
            which in 0usize..4,
            flips in proptest::collection::vec((any::<u16>(), any::<u8>()), 0..6),
            cut in any::<u16>(),
            decap in any::<bool>(),
            six in any::<bool>(),
        ) {
            let (_, f) = &frames()[i];
            let mut f = match which {
                0 => f.clone(),
                1 => seq(&[Transposition { encap: Some(if six { encap6() } else { encap4() }), ..Transposition::NONE }], f),
                2 => icmp_error(f, if packet::parse(f).unwrap().is_ipv4() { 11 } else { 3 }, 0, same_family(f, [9, 9, 9, 9], 9), 2000),
                _ => {
                    let p = packet::parse(f).unwrap();
                    let from = same_family(f, [10, 0, 0, 254], 0xfe);
                    icmp_too_big(f, &p, 1280, Mac([2, 0, 0, 0, 0, 1]), from).unwrap()
                }
            };
            for (at, x) in flips {
                let n = f.len();
                f[at as usize % n] ^= x;
            }
            let orig_len = f.len() as u32;
            f.truncate((cut as usize % (f.len() + 1)).max(14));
            let Ok(p) = packet::parse_captured(&f, orig_len) else { return Ok(()); };
            let e = if six { encap6() } else { encap4() };
            let t = Transposition { decap, encap: Some(e), ..a };
            for t in [a, t, Transposition { decap, ..a }] {
                let mut b = PacketBuf::with_headroom(&f, 8);
                let _ = apply(&t, &mut b, &p);
            }
            let mut b = PacketBuf::with_headroom(&f, 0);
            let src = a.src_ip.map(|ip| (ip, 1));
            let _ = translate_icmp_error(&mut b, &p, src, None);
            let _ = icmp_error_inner(&f, &p);
            let _ = icmp_too_big(&f, &p, 1280, Mac([2, 0, 0, 0, 0, 1]), p.fields.src_ip);
            let _ = vxlan_of(&f, &p, &[]);
        }

        /// Encapsulation then decapsulation restores the inner frame.
        #[test]
        fn encap_decap_round_trip((i, a, _b) in case(), six in any::<bool>(), vni in 0u32..(1 << 24), sport in any::<u16>()) {
            let (_, f) = &frames()[i];
            let inner = seq(&[a], f);
            let e = Encap { vni, udp_src: sport, ..if six { encap6() } else { encap4() } };
            let out = seq(&[Transposition { encap: Some(e), ..Transposition::NONE }], &inner);
            verify(&out);
            let p = packet::parse(&out).unwrap();
            prop_assert_eq!(vxlan_of(&out, &p, &[VXLAN_PORT]).map(|v| v.vni), Some(vni));
            let back = seq(&[Transposition { decap: true, ..Transposition::NONE }], &out);
            prop_assert_eq!(back, inner);
        }
    }
}

#[test]
fn vxlan_corpus_inner_frames_parse() {
    use crate::capture::CaptureReader;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/pcaps/tcpdump/");
    let files = [
        ("vxlan.pcap", &[VXLAN_PORT][..]),
        ("vxlan_port_8472.pcap", &[8472][..]),
        ("gso-ipv4-vxlan-ipv4.pcap", &[VXLAN_PORT][..]),
        ("gso-ipv6-vxlan-ipv6.pcap", &[VXLAN_PORT][..]),
    ];
    for (name, ports) in files {
        let path = format!("{dir}{name}");
        if !std::path::Path::new(&path).exists() {
            eprintln!("skipping {name}: corpus not found at {path}");
            continue;
        }
        let mut found = 0;
        for fr in CaptureReader::open(&path).unwrap().flatten() {
            let Ok(p) = packet::parse_captured(&fr.data, fr.orig_len) else {
                continue;
            };
            let Some(vx) = vxlan_of(&fr.data, &p, ports) else {
                continue;
            };
            found += 1;
            let q = parse_inner(&fr.data, &p, &vx).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                matches!(q.kind, FrameKind::Ip | FrameKind::Arp(_)),
                "{name}: {q:?}"
            );
            // Decap through `apply` gives the same inner frame.
            let mut b = PacketBuf::with_headroom(&fr.data, 0);
            let d = Transposition {
                decap: true,
                ..Transposition::NONE
            };
            apply(&d, &mut b, &p).unwrap();
            let end = (p.l3_end as usize).min(fr.data.len());
            assert_eq!(b.as_slice(), &fr.data[vx.inner_offset..end]);
        }
        assert!(found > 0, "{name}: no VXLAN frame found");
        if name == "vxlan.pcap" {
            // The same frames on another port are not VXLAN to us.
            for fr in CaptureReader::open(&path).unwrap().flatten() {
                if let Ok(p) = packet::parse_captured(&fr.data, fr.orig_len) {
                    assert!(vxlan_of(&fr.data, &p, &[8472]).is_none());
                }
            }
        }
    }
}

/// An ICMP error from `from` to the frame's sender quoting `orig`'s IP packet (cut to
/// `quote` bytes), with a correct checksum.
fn icmp_error(orig: &[u8], icmp_type: u8, code: u8, from: IpAddr, quote: usize) -> Vec<u8> {
    let p = packet::parse(orig).unwrap();
    let l3 = p.l3_offset as usize;
    let q = &orig[l3..(l3 + quote).min(orig.len())];
    let mut m = vec![icmp_type, code, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(q);
    let mut f = if p.is_ipv4() {
        let IpAddr::V4(a) = from else { panic!() };
        let IpAddr::V4(to) = p.fields.src_ip else {
            panic!()
        };
        tu::eth(
            IPV4,
            &[],
            &tu::ipv4_full(1, a.octets(), to.octets(), &[], 0, &m),
        )
    } else {
        tu::eth(IPV6, &[], &ipv6_pkt(58, from, p.fields.src_ip, &m))
    };
    fix(&mut f, false);
    f
}

/// Checks the quoted IPv4 header checksum, and, when the quote is the whole packet, the
/// quoted L4 checksum.
fn verify_quote(f: &[u8], whole: bool) {
    let p = packet::parse(f).unwrap();
    let inner = icmp_error_inner(f, &p).unwrap();
    if inner.ip_version == 4 {
        assert!(ipv4::header_checksum_ok(f, inner.l3_offset));
    }
    if whole {
        let ethertype = if inner.ip_version == 4 { IPV4 } else { IPV6 };
        verify(&tu::eth(ethertype, &[], &f[inner.l3_offset..inner.end]));
    }
}

#[test]
fn icmp_errors_quote_and_translate() {
    for (name, orig) in frames() {
        if name.contains("vlan") || name.contains("qinq") {
            continue;
        }
        let p = packet::parse(&orig).unwrap();
        let v6f = !p.is_ipv4();
        // The packet as it left after SNAT to 192.0.2.1:4444 / [2001:db8::99]:4444.
        let public = if v6f { v6(0x99) } else { v4([192, 0, 2, 1]) };
        let snat = nat(Some(public), Some(4444));
        let sent = run(&snat, &orig).unwrap();
        let router = if v6f {
            v6(0xfe)
        } else {
            v4([203, 0, 113, 254])
        };
        let (t, c) = if v6f { (1, 4) } else { (3, 3) };
        // IP header and 8 bytes (RFC 792), a bit more, the whole packet.
        let ip_hdr = if v6f { 40 } else { 20 };
        for quote in [ip_hdr + 8, ip_hdr + 28, 2000] {
            let err = icmp_error(&sent, t, c, router, quote);
            let ep = packet::parse(&err).unwrap();
            let inner = icmp_error_inner(&err, &ep).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(inner.src_ip, public, "{name}");
            assert_eq!(inner.dst_ip, p.fields.dst_ip, "{name}");
            assert_eq!(inner.protocol, p.fields.protocol);
            let q_l4 = inner.l4_offset.unwrap();
            if inner.end >= q_l4 + 8 {
                if p.icmp_id.is_some() {
                    assert!(inner.icmp_echo);
                    assert_eq!(inner.src_port, 4444);
                } else {
                    assert_eq!((inner.src_port, inner.dst_port), (4444, p.fields.dst_port));
                }
            }
            // Un-NAT: the outer destination back to the private address, and the quote's
            // source too.
            let mut b = PacketBuf::with_headroom(&err, 0);
            let back = Transposition {
                dst_ip: Some(p.fields.src_ip),
                ..Transposition::NONE
            };
            apply(&back, &mut b, &ep).unwrap();
            let ep2 = packet::parse(b.as_slice()).unwrap();
            let port = p.icmp_id.unwrap_or(p.fields.src_port);
            translate_icmp_error(&mut b, &ep2, Some((p.fields.src_ip, port)), None).unwrap();
            verify(b.as_slice());
            verify_quote(b.as_slice(), quote == 2000);
            // The quote is now the original packet.
            let out = b.as_slice();
            let l3 = p.l3_offset as usize;
            let n = inner.end - inner.l3_offset;
            assert_eq!(
                &out[inner.l3_offset..inner.end],
                &orig[l3..l3 + n],
                "{name} {quote}"
            );
        }
        // Not an error: an echo or a plain packet.
        assert!(icmp_error_inner(&orig, &p).is_none());
        let mut b = PacketBuf::with_headroom(&orig, 0);
        assert_eq!(
            translate_icmp_error(&mut b, &p, None, None),
            Err(TransposeError::NotIcmpError)
        );
    }
}

#[test]
fn icmp_too_big_replies() {
    let gw = Mac([2, 0x99, 0, 0, 0, 1]);
    for (name, f) in frames() {
        let p = packet::parse(&f).unwrap();
        let from = if p.is_ipv4() {
            v4([10, 0, 0, 254])
        } else {
            v6(0xfe)
        };
        let r = icmp_too_big(&f, &p, 1400, gw, from).unwrap_or_else(|| panic!("{name}"));
        verify(&r);
        let q = packet::parse(&r).unwrap();
        assert_eq!(q.fields.dst_mac, p.fields.src_mac);
        assert_eq!(q.fields.src_mac, gw);
        assert_eq!(q.fields.vlan, p.fields.vlan, "{name}: same VLAN");
        assert_eq!(q.fields.src_ip, from);
        assert_eq!(q.fields.dst_ip, p.fields.src_ip);
        let l4 = q.l4_offset.unwrap() as usize;
        if p.is_ipv4() {
            assert_eq!(q.fields.icmp, Some((3, 4)));
            assert_eq!(&r[l4 + 6..l4 + 8], &1400u16.to_be_bytes());
        } else {
            assert_eq!(q.fields.icmp, Some((2, 0)));
            assert_eq!(&r[l4 + 4..l4 + 8], &1400u32.to_be_bytes());
        }
        let inner = icmp_error_inner(&r, &q).unwrap();
        assert_eq!(
            &r[inner.l3_offset..],
            &f[p.l3_offset as usize..],
            "{name}: whole quote"
        );
        // Never an error about an error.
        assert!(icmp_too_big(&r, &q, 1280, gw, from).is_none());
        // Nor with an address of the other family.
        let other = if p.is_ipv4() { v6(1) } else { v4([1, 1, 1, 1]) };
        assert!(icmp_too_big(&f, &p, 1400, gw, other).is_none());
    }
    // Long packets: the quote is cut at 576 (IPv4) and 1280 (IPv6) bytes in all.
    let big4 = tu::eth(IPV4, &[], &tu::ipv4(17, &tu::udp(1, 2, &[7; 1400])));
    let p = packet::parse(&big4).unwrap();
    let r = icmp_too_big(&big4, &p, 1300, gw, v4([10, 0, 0, 254])).unwrap();
    assert_eq!(r.len(), 14 + 576);
    verify(&r);
    let big6 = tu::eth(
        IPV6,
        &[],
        &ipv6_pkt(17, v6(1), v6(2), &tu::udp(1, 2, &[7; 1400])),
    );
    let p = packet::parse(&big6).unwrap();
    let r = icmp_too_big(&big6, &p, 1300, gw, v6(0xfe)).unwrap();
    assert_eq!(r.len(), 14 + 1280);
    verify(&r);
    // A multicast destination (IPv4) gets no error.
    let mc = tu::eth(
        IPV4,
        &[],
        &tu::ipv4_full(
            17,
            [10, 0, 0, 1],
            [224, 0, 0, 1],
            &[],
            0,
            &tu::udp(1, 2, b"x"),
        ),
    );
    let p = packet::parse(&mc).unwrap();
    assert!(icmp_too_big(&mc, &p, 1300, gw, v4([10, 0, 0, 254])).is_none());
}
