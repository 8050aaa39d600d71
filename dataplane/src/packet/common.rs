//! The common case in one pass: an untagged Ethernet frame carrying a whole IPv4 packet
//! without options or fragmentation, and UDP or TCP in it — nearly every frame of a
//! container host's traffic. It reads the few fields in place and builds the result
//! once, where the general parser (`parse_any`) walks tags, options and protocols header
//! by header. Anything else answers `None` and takes the general parser, which gives the
//! same result for what this one accepts (the property test below holds it to that).

use std::net::{IpAddr, Ipv4Addr};

use strata_rules::conn::TcpSeq;
use strata_rules::model::{Fields, Mac, proto};

use super::{Fragment, FragmentInfo, FrameKind, Parsed, tcp};

const ETH: usize = 14;
const IP: usize = 20;
const L4: usize = ETH + IP;

/// The frame parsed, if it is the common case.
#[inline]
pub(crate) fn parse(frame: &[u8]) -> Option<Parsed> {
    let h: &[u8; L4 + 8] = frame.get(..L4 + 8)?.try_into().ok()?;
    // EtherType IPv4 (no tag), version 4 with a 20-byte header.
    if h[12..14] != [0x08, 0x00] || h[ETH] != 0x45 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([h[ETH + 2], h[ETH + 3]]));
    let end = ETH + total;
    // Neither more fragments nor an offset (DF may be set).
    let unfragmented = h[ETH + 6] & 0x3f == 0 && h[ETH + 7] == 0;
    if end > frame.len() || !unfragmented {
        return None;
    }
    let l4 = frame.get(L4..end)?;
    let protocol = h[ETH + 9];
    let (src_port, dst_port, header_len, tcp_flags, tcp_seq) = match protocol {
        proto::UDP if l4.len() >= 8 => (
            u16::from_be_bytes([h[L4], h[L4 + 1]]),
            u16::from_be_bytes([h[L4 + 2], h[L4 + 3]]),
            8,
            0,
            TcpSeq::default(),
        ),
        proto::TCP => {
            let t = tcp::parse(l4).ok()?;
            let seq = TcpSeq {
                seq: t.seq,
                ack: t.ack,
                window: t.window,
                wscale: t.wscale,
                len: u32::try_from(l4.len().saturating_sub(t.header_len)).unwrap_or(u32::MAX),
            };
            (t.src_port, t.dst_port, t.header_len, t.flags, seq)
        }
        _ => return None,
    };
    // Constant offsets into the 42 bytes checked above: the compiler drops the checks.
    let mac = |at: usize| {
        h.get(at..at + 6)
            .and_then(|s| <[u8; 6]>::try_from(s).ok())
            .map_or(Mac::ZERO, Mac)
    };
    let ip = |at: usize| {
        let a = h
            .get(at..at + 4)
            .and_then(|s| <[u8; 4]>::try_from(s).ok())
            .unwrap_or_default();
        IpAddr::V4(Ipv4Addr::from(a))
    };
    Some(Parsed {
        kind: FrameKind::Ip,
        fields: Fields {
            src_mac: mac(6),
            dst_mac: mac(0),
            vlan: None,
            vni: None,
            src_ip: ip(ETH + 12),
            dst_ip: ip(ETH + 16),
            protocol,
            src_port,
            dst_port,
            icmp: None,
        },
        vlan_offset: None,
        vlan_count: 0,
        outer_vlan: None,
        ethertype: 0x0800,
        l3_offset: ETH as u16,
        l4_offset: Some(L4 as u16),
        payload_offset: (L4 + header_len) as u16,
        l3_end: end as u32,
        ip_version: 4,
        fragment: Fragment::None,
        frag: FragmentInfo::default(),
        tcp_flags,
        tcp_seq,
        icmp_id: None,
        ttl: h[ETH + 8],
        truncated: false,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::packet::parse_any;

    /// Frames near the common case: a valid Ethernet/IPv4/L4 frame with any of its
    /// deciding bytes replaced and its length cut or padded.
    fn frame() -> impl Strategy<Value = Vec<u8>> {
        (
            prop::sample::select(vec![
                [0x08u8, 0x00],
                [0x81, 0x00],
                [0x86, 0xdd],
                [0x08, 0x06],
            ]),
            prop::sample::select(vec![0x45u8, 0x46, 0x44, 0x55, 0x4f]),
            0u16..120,
            prop::sample::select(vec![[0u8, 0], [0x40, 0], [0x20, 0], [0, 1], [0x40, 0x01]]),
            prop::sample::select(vec![6u8, 17, 1, 132, 47]),
            0u8..=0xff,
            0u8..=0xff,
            prop::collection::vec(any::<u8>(), 0..100),
        )
            .prop_map(
                |(ethertype, ver_ihl, total, frag, protocol, offset, flags, rest)| {
                    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
                    f.extend_from_slice(&ethertype);
                    f.extend_from_slice(&[ver_ihl, 0]);
                    f.extend_from_slice(&total.to_be_bytes());
                    f.extend_from_slice(&[0, 7]);
                    f.extend_from_slice(&frag);
                    f.extend_from_slice(&[64, protocol, 0, 0, 198, 18, 0, 1, 198, 19, 0, 2]);
                    // L4: ports, sequence numbers, data offset, flags, the rest random.
                    f.extend_from_slice(&[
                        0x30, 0x39, 0, 53, 0, 0, 0, 1, 0, 0, 0, 2, offset, flags,
                    ]);
                    f.extend_from_slice(&rest);
                    f
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn the_common_case_parses_as_the_general_parser_does(f in frame(), cut in 0usize..160) {
            let f = &f[..cut.min(f.len())];
            if let Some(p) = parse(f) {
                prop_assert_eq!(Ok(p), parse_any(f, false));
                prop_assert_eq!(Ok(p), parse_any(f, true));
            }
        }
    }

    #[test]
    fn the_workload_frames_take_the_shortcut() {
        let f = crate::packet::testutil::ipv4_udp_frame();
        assert!(parse(&f).is_some());
    }
}
