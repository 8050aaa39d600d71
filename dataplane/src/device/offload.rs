//! Undoing what the host's offloads did to a received frame, before the engine sees it
//! (DESIGN §5 "The host"): a TCP or UDP checksum left partial by checksum offload (Linux
//! AF_PACKET says so with `TP_STATUS_CSUMNOTREADY`: the field holds only the
//! pseudo-header sum), and a VLAN tag the NIC or veth stripped into metadata. Platform
//! independent, so that it is tested everywhere; the devices call it.

use strata_rules::model::proto;

use crate::packet::{self, Fragment, FrameKind, checksum, ethernet};

/// The IANA VXLAN port: partial checksums inside it are the inner packet's.
const VXLAN_PORT: u16 = 4789;

/// Completes the TCP or UDP checksum of an IP frame whose checksum the sender's stack
/// left to offload: computed over the pseudo-header and the whole segment. Returns
/// whether it wrote one (frames that are not TCP/UDP, fragments and frames cut short are
/// left alone: nothing in them is partial, or nothing can be computed).
///
/// In a VXLAN packet the partial checksum is the inner packet's (the sender's tunnel
/// offloaded it, and computed the outer UDP checksum, if any, as if it were done): the
/// inner one is completed, the outer left as it is.
pub fn complete_checksum(frame: &mut [u8]) -> bool {
    let Ok(p) = packet::parse(frame) else {
        return false;
    };
    if p.fields.protocol == proto::UDP
        && p.fields.dst_port == VXLAN_PORT
        && !p.truncated
        && let Some(inner) = frame.get_mut(usize::from(p.payload_offset)..p.l3_end as usize)
        && inner.first().is_some_and(|f| f & 0x08 != 0)
        && let Some(inner) = inner.get_mut(8..)
    {
        return complete_checksum(inner);
    }
    if !matches!(p.kind, FrameKind::Ip) || p.fragment != Fragment::None || p.truncated {
        return false;
    }
    let field = match p.fields.protocol {
        proto::TCP => 16,
        proto::UDP => 6,
        _ => return false,
    };
    let (Some(l4), end) = (p.l4_offset, p.l3_end as usize) else {
        return false;
    };
    let l4 = usize::from(l4);
    if end > frame.len() || l4 + field + 2 > end {
        return false;
    }
    let len = end - l4;
    let mut acc = 0u32;
    let l3 = usize::from(p.l3_offset);
    let addrs = if p.ip_version == 4 {
        frame.get(l3 + 12..l3 + 20)
    } else {
        frame.get(l3 + 8..l3 + 40)
    };
    let Some(addrs) = addrs else { return false };
    acc = checksum::sum(acc, addrs);
    acc = acc.wrapping_add(u32::from(p.fields.protocol));
    acc = acc.wrapping_add(len as u32 & 0xffff);
    acc = acc.wrapping_add((len as u32) >> 16);
    let Some(at) = frame.get_mut(l4 + field..l4 + field + 2) else {
        return false;
    };
    at.fill(0);
    let Some(segment) = frame.get(l4..end) else {
        return false;
    };
    let mut c = checksum::finish(wide_sum(acc, segment));
    if c == 0 && p.fields.protocol == proto::UDP {
        // RFC 768: a computed zero is sent as all ones (zero means "no checksum").
        c = 0xffff;
    }
    if let Some(at) = frame.get_mut(l4 + field..l4 + field + 2) {
        at.copy_from_slice(&c.to_be_bytes());
    }
    true
}

/// [`checksum::sum`] four bytes at a time (a one's complement sum of 32-bit words folds
/// to that of its 16-bit halves): this runs over every byte of every offloaded packet.
fn wide_sum(acc: u32, data: &[u8]) -> u32 {
    let mut wide = u64::from(acc);
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        if let Ok(w) = <[u8; 4]>::try_from(w) {
            wide += u64::from(u32::from_be_bytes(w));
        }
    }
    let folded = (wide & 0xffff_ffff) + (wide >> 32);
    let folded = (folded & 0xffff) + ((folded >> 16) & 0xffff) + (folded >> 32);
    checksum::sum(folded as u32, words.remainder())
}

/// Puts back the 802.1Q tag (`tpid`, `tci`) that the receiving device stripped into
/// metadata, right after the MAC addresses. A frame shorter than its MACs is left alone.
pub fn insert_vlan(frame: &mut Vec<u8>, tpid: u16, tci: u16) {
    const AT: usize = ethernet::field::ETHERTYPE;
    if frame.len() < AT {
        return;
    }
    let mut tag = [0u8; 4];
    tag[..2].copy_from_slice(&tpid.to_be_bytes());
    tag[2..].copy_from_slice(&tci.to_be_bytes());
    frame.splice(AT..AT, tag);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::testutil;

    /// Whether the TCP/UDP checksum of `frame` verifies.
    fn verifies(frame: &[u8]) -> bool {
        let p = packet::parse(frame).unwrap();
        let l3 = usize::from(p.l3_offset);
        let l4 = usize::from(p.l4_offset.unwrap());
        let end = p.l3_end as usize;
        let addrs = if p.ip_version == 4 {
            &frame[l3 + 12..l3 + 20]
        } else {
            &frame[l3 + 8..l3 + 40]
        };
        let mut acc = checksum::sum(0, addrs);
        acc += u32::from(p.fields.protocol) + (end - l4) as u32;
        checksum::finish(checksum::sum(acc, &frame[l4..end])) == 0
    }

    #[test]
    fn a_partial_udp_checksum_is_completed() {
        let mut f = testutil::ipv4_udp_frame();
        assert!(complete_checksum(&mut f));
        assert!(verifies(&f));
        let p = packet::parse(&f).unwrap();
        let c = usize::from(p.l4_offset.unwrap()) + 6;
        // What offload leaves: some other value (the pseudo-header sum).
        f[c] ^= 0x5a;
        f[c + 1] ^= 0xa5;
        assert!(!verifies(&f));
        assert!(complete_checksum(&mut f));
        assert!(verifies(&f));
    }

    #[test]
    fn tcp_over_ipv6_is_completed_and_other_frames_left_alone() {
        let mut f = testutil::eth(
            0x86dd,
            &[],
            &testutil::ipv6(6, &testutil::tcp(40000, 80, 0x02, &[], b"data!")),
        );
        assert!(!verifies(&f));
        assert!(complete_checksum(&mut f));
        assert!(verifies(&f));
        let mut lldp = testutil::eth(0x88cc, &[], &[0u8; 40]);
        let before = lldp.clone();
        assert!(!complete_checksum(&mut lldp));
        assert_eq!(lldp, before);
        let mut short = vec![0u8; 5];
        assert!(!complete_checksum(&mut short));
    }

    #[test]
    fn the_wide_sum_is_the_internet_sum() {
        let data: Vec<u8> = (0..1503u32).map(|i| (i * 7919 % 251) as u8).collect();
        for len in [0, 1, 2, 3, 4, 5, 63, 64, 65, 1500, 1503] {
            for acc in [0u32, 0xffff, 0x1_2345] {
                assert_eq!(
                    checksum::finish(wide_sum(acc, &data[..len])),
                    checksum::finish(checksum::sum(acc, &data[..len])),
                    "len {len} acc {acc:#x}"
                );
            }
        }
    }

    #[test]
    fn inside_vxlan_the_inner_checksum_is_completed() {
        let mut inner = testutil::ipv4_udp_frame();
        assert!(complete_checksum(&mut inner));
        let good = inner.clone();
        let p = packet::parse(&inner).unwrap();
        let c = usize::from(p.l4_offset.unwrap()) + 6;
        inner[c] ^= 0x11;
        let mut vx = vec![0x08, 0, 0, 0, 0, 0x10, 0, 0];
        vx.extend_from_slice(&inner);
        let mut f = testutil::eth(
            0x0800,
            &[],
            &testutil::ipv4(17, &testutil::udp(50000, 4789, &vx)),
        );
        assert!(complete_checksum(&mut f));
        assert_eq!(
            &f[f.len() - good.len()..],
            &good[..],
            "the inner frame is whole again"
        );
        let outer = packet::parse(&f).unwrap();
        let oc = usize::from(outer.l4_offset.unwrap()) + 6;
        assert_eq!(
            &f[oc..oc + 2],
            &[0, 0],
            "the outer UDP checksum (none) is left alone"
        );
    }

    #[test]
    fn a_stripped_tag_is_put_back() {
        let mut f = testutil::ipv4_udp_frame();
        insert_vlan(&mut f, 0x8100, 100);
        let p = packet::parse(&f).unwrap();
        assert_eq!(p.fields.vlan, Some(100));
        assert_eq!(p.fields.protocol, 17);
        let mut tiny = vec![1u8; 3];
        insert_vlan(&mut tiny, 0x8100, 1);
        assert_eq!(tiny, vec![1u8; 3]);
    }
}
