//! Crafted frames for every header, and one broken frame per `ParseError` variant.

use std::net::{IpAddr, Ipv4Addr};

use super::testutil::*;
use super::*;

const IPV4: u16 = 0x0800;
const IPV6: u16 = 0x86dd;

fn err(frame: &[u8]) -> ParseError {
    match parse(frame) {
        Ok(p) => panic!("expected an error, parsed {p:?}"),
        Err(e) => e,
    }
}

#[test]
fn ipv4_udp() {
    let f = ipv4_udp_frame();
    let p = parse(&f).unwrap();
    assert_eq!(p.kind, FrameKind::Ip);
    assert_eq!(p.fields.src_mac, Mac(MAC_A));
    assert_eq!(p.fields.dst_mac, Mac(MAC_B));
    assert_eq!(p.fields.src_ip, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(p.fields.dst_ip, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
    assert_eq!(
        (p.fields.protocol, p.fields.src_port, p.fields.dst_port),
        (17, 1234, 53)
    );
    assert_eq!(
        (p.l3_offset, p.l4_offset, p.payload_offset),
        (14, Some(34), 42)
    );
    assert_eq!(p.l3_end as usize, f.len());
    assert_eq!(p.ip_len() as usize, f.len() - 14);
    assert_eq!(p.ttl, 64);
    assert_eq!(p.fragment, Fragment::None);
    assert!(!p.truncated);
    assert_eq!(p.src_ip_offset(), Some((26, 4)));
    assert_eq!(p.dst_ip_offset(), Some((30, 4)));
    assert_eq!(p.ipv4_checksum_offset(), Some(24));
    assert_eq!(p.port_offsets(), Some((34, 36)));
    assert_eq!(p.l4_checksum_offset(), Some(40));
    assert_eq!(p.ethertype_offset(), 12);
    assert!(ipv4::header_checksum_ok(&f, 14));
    assert_eq!(&f[payload_range(&p)], b"hello");
}

fn payload_range(p: &Parsed) -> std::ops::Range<usize> {
    p.payload_offset as usize..p.l3_end as usize
}

#[test]
fn ipv4_options_and_padding() {
    // 8 bytes of options (IHL 7), and Ethernet padding after the packet.
    let ip = ipv4_full(
        6,
        [1, 1, 1, 1],
        [2, 2, 2, 2],
        &[1; 8],
        0,
        &tcp(80, 4000, 0x12, &[1, 1, 1, 1], b"x"),
    );
    let mut f = eth(IPV4, &[], &ip);
    f.extend_from_slice(&[0; 10]);
    let p = parse(&f).unwrap();
    assert_eq!(p.l4_offset, Some(14 + 28));
    assert_eq!(p.payload_offset, 14 + 28 + 24);
    assert_eq!(p.tcp_flags, tcp::SYN | tcp::ACK);
    assert_eq!((p.fields.src_port, p.fields.dst_port), (80, 4000));
    assert_eq!(p.l3_end as usize, f.len() - 10);
    assert_eq!(p.l4_checksum_offset(), Some(14 + 28 + 16));
}

#[test]
fn ipv4_fragments() {
    // First fragment: MF set, offset 0: ports present.
    let f = eth(
        IPV4,
        &[],
        &ipv4_full(17, [1; 4], [2; 4], &[], 0x2000, &udp(1, 2, &[0; 16])),
    );
    let p = parse(&f).unwrap();
    assert_eq!(p.fragment, Fragment::First);
    assert_eq!(p.fields.dst_port, 2);
    // Non-first: no L4 header, ports 0, even when the bytes would look like one.
    let f = eth(
        IPV4,
        &[],
        &ipv4_full(17, [1; 4], [2; 4], &[], 0x0003, &udp(1, 2, &[0; 16])),
    );
    let p = parse(&f).unwrap();
    assert_eq!(p.fragment, Fragment::NonFirst);
    assert_eq!(
        (p.fields.src_port, p.fields.dst_port, p.l4_offset),
        (0, 0, None)
    );
    assert_eq!(p.fields.protocol, 17);
    assert_eq!(p.payload_offset, 34);
    // A non-first fragment too short for any L4 header is fine.
    let f = eth(
        IPV4,
        &[],
        &ipv4_full(6, [1; 4], [2; 4], &[], 0x0001, &[1, 2]),
    );
    assert_eq!(parse(&f).unwrap().fragment, Fragment::NonFirst);
}

#[test]
fn icmp_echo_and_errors() {
    let f = eth(IPV4, &[], &ipv4(1, &icmp(8, 0, &[0x12, 0x34, 0, 1])));
    let p = parse(&f).unwrap();
    assert_eq!(p.fields.icmp, Some((8, 0)));
    assert_eq!(p.icmp_id, Some(0x1234));
    assert_eq!(p.icmp_id_offset(), Some(34 + 4));
    assert_eq!((p.fields.src_port, p.fields.dst_port), (0, 0));
    assert_eq!(p.port_offsets(), None);
    // Destination unreachable: no identifier.
    let f = eth(IPV4, &[], &ipv4(1, &icmp(3, 3, &[0; 4])));
    let p = parse(&f).unwrap();
    assert_eq!((p.fields.icmp, p.icmp_id), (Some((3, 3)), None));
    // An echo without its identifier is cut short.
    let f = eth(IPV4, &[], &ipv4(1, &icmp(0, 0, &[0x12])));
    assert_eq!(err(&f), ParseError::TruncatedIcmp);
    let f = eth(IPV4, &[], &ipv4(1, &[3, 1]));
    assert_eq!(err(&f), ParseError::TruncatedIcmp);
}

#[test]
fn igmp_sctp_and_other_protocols() {
    let f = eth(IPV4, &[], &ipv4(2, &[0x16, 0, 0, 0, 224, 0, 0, 1]));
    let p = parse(&f).unwrap();
    assert_eq!(
        (p.fields.protocol, p.fields.icmp, p.l4_offset),
        (2, None, Some(34))
    );
    assert_eq!(
        err(&eth(IPV4, &[], &ipv4(2, &[0x16, 0]))),
        ParseError::TruncatedIgmp
    );
    let mut sctp = vec![0x0b, 0xb8, 0x00, 0x50];
    sctp.extend_from_slice(&[0; 8]);
    let p = parse(&eth(IPV4, &[], &ipv4(132, &sctp))).unwrap();
    assert_eq!((p.fields.src_port, p.fields.dst_port), (3000, 80));
    assert_eq!(p.l4_checksum_offset(), Some(34 + 8));
    assert_eq!(
        err(&eth(IPV4, &[], &ipv4(132, &sctp[..6]))),
        ParseError::TruncatedSctp
    );
    // GRE: known by number only.
    let p = parse(&eth(IPV4, &[], &ipv4(47, &[0, 0, 8, 0]))).unwrap();
    assert_eq!(
        (p.fields.protocol, p.fields.src_port, p.l4_offset),
        (47, 0, Some(34))
    );
    assert_eq!(p.l4_checksum_offset(), None);
}

#[test]
fn vlan_and_qinq() {
    let f = eth(IPV4, &[(0x8100, 0x2064)], &ipv4(17, &udp(1, 2, &[])));
    let p = parse(&f).unwrap();
    assert_eq!(
        (p.fields.vlan, p.outer_vlan, p.vlan_offset, p.vlan_count),
        (Some(100), None, Some(12), 1)
    );
    assert_eq!(p.l3_offset, 18);
    assert_eq!(p.fields.dst_port, 2);
    // 802.1ad outer tag, 802.1Q inner: the inner VID is the one rules see.
    let f = eth(
        IPV4,
        &[(0x88a8, 10), (0x8100, 20)],
        &ipv4(17, &udp(1, 2, &[])),
    );
    let p = parse(&f).unwrap();
    assert_eq!(
        (p.fields.vlan, p.outer_vlan, p.vlan_count, p.l3_offset),
        (Some(20), Some(10), 2, 22)
    );
    // Priority tag: VID 0 is no VLAN.
    let p = parse(&eth(IPV4, &[(0x8100, 0xe000)], &ipv4(17, &udp(1, 2, &[])))).unwrap();
    assert_eq!((p.fields.vlan, p.vlan_count), (None, 1));
    let f = eth(
        IPV4,
        &[(0x88a8, 1), (0x8100, 2), (0x8100, 3)],
        &ipv4(17, &udp(1, 2, &[])),
    );
    assert_eq!(err(&f), ParseError::TooManyVlanTags);
    let mut f = eth(0x8100, &[], &[]);
    f.extend_from_slice(&[0, 5]);
    assert_eq!(err(&f), ParseError::TruncatedVlan);
}

#[test]
fn arp() {
    let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1];
    a.extend_from_slice(&MAC_A);
    a.extend_from_slice(&[10, 0, 0, 1]);
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&[10, 0, 0, 2]);
    let p = parse(&eth(0x0806, &[], &a)).unwrap();
    let FrameKind::Arp(info) = p.kind else {
        panic!("not ARP: {p:?}")
    };
    assert_eq!(info.op, arp::OP_REQUEST);
    assert_eq!(info.sender_mac, Mac(MAC_A));
    assert_eq!(info.sender_ip, Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(info.target_ip, Ipv4Addr::new(10, 0, 0, 2));
    assert_eq!(p.fields.protocol, 0);
    assert_eq!(p.ip_version, 0);
    assert_eq!(err(&eth(0x0806, &[], &a[..20])), ParseError::TruncatedArp);
    let mut b = a.clone();
    b[4] = 8; // hardware address length
    assert_eq!(err(&eth(0x0806, &[], &b)), ParseError::UnsupportedArp);
}

#[test]
fn other_ethertypes_are_not_errors() {
    let p = parse(&eth(0x88cc, &[], &[1, 2, 3])).unwrap();
    assert_eq!(p.kind, FrameKind::Other { ethertype: 0x88cc });
    // 802.3 with a length field (LLC/STP).
    let p = parse(&eth(0x0026, &[(0x8100, 5)], &[0x42, 0x42, 3])).unwrap();
    assert_eq!(p.kind, FrameKind::Other { ethertype: 0x0026 });
    assert_eq!(p.fields.vlan, Some(5));
    assert_eq!(p.src_ip_offset(), None);
}

#[test]
fn ethernet_errors() {
    assert_eq!(err(&[]), ParseError::TruncatedEthernet);
    assert_eq!(err(&[0; 13]), ParseError::TruncatedEthernet);
}

#[test]
fn ipv4_errors() {
    let good = ipv4(17, &udp(1, 2, &[]));
    assert_eq!(err(&eth(IPV4, &[], &good[..19])), ParseError::TruncatedIpv4);
    let mut b = good.clone();
    b[0] = 0x65;
    assert_eq!(err(&eth(IPV4, &[], &b)), ParseError::Ipv4BadVersion);
    let mut b = good.clone();
    b[0] = 0x44;
    assert_eq!(err(&eth(IPV4, &[], &b)), ParseError::Ipv4BadIhl);
    let mut b = good.clone();
    b[0] = 0x4f; // 60-byte header in a 28-byte packet
    assert_eq!(err(&eth(IPV4, &[], &b)), ParseError::TruncatedIpv4);
    let mut b = good.clone();
    b[3] = 19; // total length below the header
    assert_eq!(err(&eth(IPV4, &[], &b)), ParseError::Ipv4BadTotalLength);
    let mut b = good.clone();
    b[3] = 200; // beyond the frame
    assert_eq!(err(&eth(IPV4, &[], &b)), ParseError::Ipv4BadTotalLength);
    // ... unless the capture cut the frame: then the L4 header must still be there.
    let f = eth(IPV4, &[], &b);
    let p = parse_captured(&f, 214).unwrap();
    assert!(p.truncated);
    assert_eq!(p.fields.dst_port, 2);
    assert_eq!(parse_captured(&f[..40], 214), Err(ParseError::TruncatedUdp));
    // Total length 0: a TSO super-packet; the buffer gives the length.
    let mut b = good.clone();
    b[2] = 0;
    b[3] = 0;
    let f = eth(IPV4, &[], &b);
    assert_eq!(parse(&f).unwrap().l3_end as usize, f.len());
}

#[test]
fn l4_errors() {
    let t = tcp(1, 2, tcp::SYN, &[], &[]);
    assert_eq!(
        err(&eth(IPV4, &[], &ipv4(6, &t[..19]))),
        ParseError::TruncatedTcp
    );
    let mut b = t.clone();
    b[12] = 0x40;
    assert_eq!(
        err(&eth(IPV4, &[], &ipv4(6, &b))),
        ParseError::TcpBadDataOffset
    );
    let mut b = t.clone();
    b[12] = 0x60; // 24-byte header, 20 present
    assert_eq!(err(&eth(IPV4, &[], &ipv4(6, &b))), ParseError::TruncatedTcp);
    assert_eq!(
        err(&eth(IPV4, &[], &ipv4(17, &[0; 7]))),
        ParseError::TruncatedUdp
    );
    // The IP length bounds the L4 header, not the frame: padding is not a header.
    let mut f = eth(IPV4, &[], &ipv4(17, &[0; 4]));
    f.extend_from_slice(&[0; 20]);
    assert_eq!(err(&f), ParseError::TruncatedUdp);
}

/// A generic extension header (hop-by-hop, routing, destination options): `len8`
/// 8-byte units beyond the first.
fn ext(next: u8, len8: u8) -> Vec<u8> {
    let mut e = vec![next, len8];
    e.resize(8 * (usize::from(len8) + 1), 0);
    e
}

fn frag(next: u8, offset: u16, more: bool) -> Vec<u8> {
    let w = (offset << 3) | u16::from(more);
    let mut e = vec![next, 0];
    e.extend_from_slice(&w.to_be_bytes());
    e.extend_from_slice(&[0, 0, 0, 7]);
    e
}

#[test]
fn ipv6_plain_and_icmpv6() {
    let f = eth(IPV6, &[], &ipv6(17, &udp(5353, 5353, b"q")));
    let p = parse(&f).unwrap();
    assert_eq!(p.ip_version, 6);
    assert_eq!(
        (p.fields.protocol, p.fields.dst_port, p.l4_offset),
        (17, 5353, Some(54))
    );
    assert_eq!(p.src_ip_offset(), Some((22, 16)));
    assert_eq!(p.dst_ip_offset(), Some((38, 16)));
    assert_eq!(p.ipv4_checksum_offset(), None);
    assert_eq!(p.ttl_offset(), Some(21));
    assert_eq!(p.fields.src_ip, "2001::1".parse::<IpAddr>().unwrap());
    let f = eth(IPV6, &[], &ipv6(58, &icmp(128, 0, &[0xab, 0xcd, 0, 1])));
    let p = parse(&f).unwrap();
    assert_eq!((p.fields.icmp, p.icmp_id), (Some((128, 0)), Some(0xabcd)));
    // ICMPv4 echo type 8 inside ICMPv6 is not an echo.
    let p = parse(&eth(IPV6, &[], &ipv6(58, &icmp(8, 0, &[])))).unwrap();
    assert_eq!(p.icmp_id, None);
}

#[test]
fn ipv6_extension_headers() {
    // hop-by-hop → routing (16 bytes) → destination options → AH (12 bytes) → TCP.
    let mut pl = ext(43, 0);
    pl.extend(ext(60, 1));
    pl.extend(ext(51, 0));
    let mut ah = vec![6, 1];
    ah.resize(12, 0);
    pl.extend(ah);
    let ext_len = pl.len();
    pl.extend(tcp(443, 50000, tcp::ACK, &[], &[]));
    let f = eth(IPV6, &[], &ipv6(0, &pl));
    let p = parse(&f).unwrap();
    assert_eq!(p.fields.protocol, 6);
    assert_eq!(p.l4_offset, Some((54 + ext_len) as u16));
    assert_eq!(p.fields.src_port, 443);
    assert_eq!(p.tcp_flags, tcp::ACK);
    // ESP and no-next-header stop the walk without an L4 header.
    let p = parse(&eth(
        IPV6,
        &[],
        &ipv6(60, &[ext(50, 0), vec![0; 16]].concat()),
    ))
    .unwrap();
    assert_eq!((p.fields.protocol, p.l4_offset), (50, None));
    let p = parse(&eth(IPV6, &[], &ipv6(59, &[]))).unwrap();
    assert_eq!((p.fields.protocol, p.l4_offset), (59, None));
}

#[test]
fn ipv6_fragments() {
    let pl = [frag(17, 0, true), udp(1, 2, &[0; 8])].concat();
    let p = parse(&eth(IPV6, &[], &ipv6(44, &pl))).unwrap();
    assert_eq!(
        (p.fragment, p.fields.protocol, p.fields.dst_port),
        (Fragment::First, 17, 2)
    );
    let pl = [frag(17, 100, false), vec![0; 8]].concat();
    let p = parse(&eth(IPV6, &[], &ipv6(44, &pl))).unwrap();
    assert_eq!(
        (p.fragment, p.fields.protocol, p.l4_offset),
        (Fragment::NonFirst, 17, None)
    );
    assert_eq!(p.payload_offset, 54 + 8);
    // Atomic fragment (offset 0, no more): a whole packet.
    let pl = [frag(17, 0, false), udp(1, 2, &[])].concat();
    let p = parse(&eth(IPV6, &[], &ipv6(44, &pl))).unwrap();
    assert_eq!((p.fragment, p.fields.dst_port), (Fragment::None, 2));
    // First fragment whose L4 header is cut: an error (RFC 7112).
    let pl = [frag(6, 0, true), vec![0; 8]].concat();
    assert_eq!(
        err(&eth(IPV6, &[], &ipv6(44, &pl))),
        ParseError::TruncatedTcp
    );
}

#[test]
fn ipv6_errors() {
    let good = ipv6(17, &udp(1, 2, &[]));
    assert_eq!(err(&eth(IPV6, &[], &good[..39])), ParseError::TruncatedIpv6);
    let mut b = good.clone();
    b[0] = 0x40;
    assert_eq!(err(&eth(IPV6, &[], &b)), ParseError::Ipv6BadVersion);
    let mut b = good.clone();
    b[5] = 9; // payload length 9, 8 present
    assert_eq!(err(&eth(IPV6, &[], &b)), ParseError::Ipv6BadPayloadLength);
    // An extension header longer than the packet.
    let pl = [ext(17, 0), vec![]].concat();
    let mut b = ipv6(0, &pl);
    b[41] = 3; // hdr ext len of the hop-by-hop header: 32 bytes
    assert_eq!(err(&eth(IPV6, &[], &b)), ParseError::TruncatedIpv6ExtHeader);
    assert_eq!(
        err(&eth(IPV6, &[], &ipv6(0, &[]))),
        ParseError::TruncatedIpv6ExtHeader
    );
    assert_eq!(
        err(&eth(IPV6, &[], &ipv6(44, &[17, 0, 0]))),
        ParseError::TruncatedIpv6ExtHeader
    );
    // A chain longer than the bound.
    let mut pl = Vec::new();
    for _ in 0..ipv6::MAX_EXT_HEADERS {
        pl.extend(ext(60, 0));
    }
    pl.extend(ext(17, 0));
    pl.extend(udp(1, 2, &[]));
    assert_eq!(
        err(&eth(IPV6, &[], &ipv6(60, &pl))),
        ParseError::Ipv6TooManyExtHeaders
    );
    // Jumbogram: payload length 0 behind a hop-by-hop header; and BIG TCP without it.
    let mut j = ipv6(0, &[ext(17, 0), udp(1, 2, &[])].concat());
    j[4] = 0;
    j[5] = 0;
    assert_eq!(parse(&eth(IPV6, &[], &j)).unwrap().fields.dst_port, 2);
    let mut j = ipv6(17, &udp(1, 2, &[0; 100]));
    j[4] = 0;
    j[5] = 0;
    let p = parse(&eth(IPV6, &[], &j)).unwrap();
    assert_eq!((p.fields.dst_port, p.l3_end as usize), (2, 14 + j.len()));
    // But never a fragment (RFC 2675 §3), as in tcpdump's ipv6_frag6_negative_len.pcap.
    let mut j = ipv6(
        44,
        &[vec![17, 0, 0, 1, 0, 0, 0, 1], udp(1, 2, &[0; 8])].concat(),
    );
    j[4] = 0;
    j[5] = 0;
    assert_eq!(err(&eth(IPV6, &[], &j)), ParseError::Ipv6BadPayloadLength);
}

#[test]
fn every_error_has_a_reason() {
    use ParseError::*;
    let all = [
        TruncatedEthernet,
        TruncatedVlan,
        TooManyVlanTags,
        TruncatedArp,
        UnsupportedArp,
        TruncatedIpv4,
        Ipv4BadVersion,
        Ipv4BadIhl,
        Ipv4BadTotalLength,
        TruncatedIpv6,
        Ipv6BadVersion,
        Ipv6BadPayloadLength,
        TruncatedIpv6ExtHeader,
        Ipv6TooManyExtHeaders,
        TruncatedTcp,
        TcpBadDataOffset,
        TruncatedUdp,
        TruncatedSctp,
        TruncatedIcmp,
        TruncatedIgmp,
    ];
    for e in all {
        assert!(!e.reason().is_empty());
        assert_eq!(e.drop_reason(), "parse");
        assert_eq!(e.to_string(), e.reason());
    }
}

#[test]
fn setters_are_bounds_checked() {
    let mut f = ipv4_udp_frame();
    let p = parse(&f).unwrap();
    let (sp, _) = p.port_offsets().unwrap();
    assert!(set_u16(&mut f, sp, 4321));
    assert_eq!(parse(&f).unwrap().fields.src_port, 4321);
    let len = f.len();
    assert!(!set_u16(&mut f, len - 1, 1));
    assert!(!set_u16(&mut f, usize::MAX, 1));
    assert!(set_bytes(&mut f, 26, &[192, 168, 0, 1]));
    assert!(!set_bytes(&mut f, usize::MAX - 1, &[1, 2, 3]));
}

/// Every prefix of every crafted frame, and every single-byte corruption, parses or
/// errs without panicking.
#[test]
fn prefixes_and_corruptions_never_panic() {
    let frames = [
        ipv4_udp_frame(),
        eth(
            IPV6,
            &[(0x88a8, 1), (0x8100, 2)],
            &ipv6(
                0,
                &[ext(44, 0), frag(6, 0, true), tcp(1, 2, 2, &[1; 8], b"abc")].concat(),
            ),
        ),
        eth(
            IPV4,
            &[],
            &ipv4_full(1, [1; 4], [2; 4], &[7; 4], 0, &icmp(8, 0, &[0; 8])),
        ),
    ];
    for f in &frames {
        for n in 0..=f.len() {
            let _ = parse(&f[..n]);
            let _ = parse_captured(&f[..n], f.len() as u32);
        }
        for i in 0..f.len() {
            for v in [0u8, 0xff, 0x0f, 0x60, 0x45] {
                let mut g = f.clone();
                g[i] = v;
                let _ = parse(&g);
            }
        }
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn seeds() -> Vec<Vec<u8>> {
        vec![
            ipv4_udp_frame(),
            eth(
                IPV4,
                &[(0x8100, 7)],
                &ipv4_full(
                    6,
                    [1; 4],
                    [2; 4],
                    &[1; 4],
                    0x2000,
                    &tcp(1, 2, 2, &[1; 4], b"x"),
                ),
            ),
            eth(
                IPV6,
                &[(0x88a8, 1), (0x8100, 2)],
                &ipv6(
                    0,
                    &[ext(44, 0), frag(6, 0, true), tcp(1, 2, 2, &[1; 8], b"abc")].concat(),
                ),
            ),
            eth(IPV6, &[], &ipv6(58, &icmp(128, 0, &[0, 1, 0, 1]))),
            eth(IPV4, &[], &ipv4(1, &icmp(0, 0, &[0, 1, 0, 1]))),
        ]
    }

    proptest! {
        /// Valid frames with random bytes overwritten and a random length: parse or err,
        /// never panic, and every offset of a successful parse is in bounds.
        #[test]
        fn mutated_frames(seed in 0usize..5, edits in prop::collection::vec((any::<u16>(), any::<u8>()), 0..6), cut in any::<u16>(), orig_extra in 0u32..100) {
            let mut f = seeds()[seed].clone();
            for (at, v) in edits {
                let i = usize::from(at) % f.len();
                f[i] = v;
            }
            let n = usize::from(cut) % (f.len() + 1);
            let f = &f[..n];
            if let Ok(p) = parse(f) {
                check_invariants(f, &p);
                prop_assert!(!p.truncated);
            }
            if let Ok(p) = parse_captured(f, n as u32 + orig_extra) {
                check_invariants(f, &p);
            }
        }

        #[test]
        fn random_bytes(f in prop::collection::vec(any::<u8>(), 0..128)) {
            if let Ok(p) = parse(&f) {
                check_invariants(&f, &p);
            }
        }
    }
}
