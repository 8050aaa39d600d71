//! ICMP echo answered by the switch for the addresses it owns (DESIGN §5 "The host"): a
//! container pinging its gateway, or the network pinging a host (NAT) address, gets its
//! reply from Strata, as from the Windows host's vNIC — so that containers with a static
//! address and a default route work unchanged, and `ping gateway` says the switch is
//! there. No layer is crossed: the gateway is the switch itself.

use std::net::IpAddr;

use strata_rules::model::{Direction, Mac, proto};

use super::Switch;
use crate::flow::PacketMeta;
use crate::packet::{FrameKind, Parsed, checksum, ethernet};
use crate::policy::PortId;
use crate::verdict::{Answer, Verdict};

impl Switch<'_> {
    /// The switch's own echo reply to `m`, if `m` is an echo request to an address the
    /// switch owns on the side it came from, and Strata is the host (the service: in a
    /// capture, the host's own stack answered, outside the switch).
    pub(super) fn echo(
        &mut self,
        ingress: PortId,
        direction: Direction,
        m: &PacketMeta,
    ) -> Option<Verdict> {
        let f = &m.fields;
        let request = matches!(
            (f.protocol, f.icmp),
            (proto::ICMP, Some((8, 0))) | (proto::ICMPV6, Some((128, 0)))
        );
        if !request || !self.state.host || !self.owns(ingress, f.dst_ip) {
            return None;
        }
        Some(Verdict {
            answer: Some(Answer::Echo(self.policy.uplink.mac)),
            ..Verdict::forward(ingress, direction, ingress)
        })
    }

    /// Whether the switch itself is `ip` as seen from `ingress`: the gateway of an
    /// endpoint's network, or a host address seen from the uplink.
    pub(super) fn owns(&self, ingress: PortId, ip: IpAddr) -> bool {
        match ingress {
            PortId::Endpoint(p) => self
                .policy
                .network_of(p)
                .is_some_and(|n| n.gateway == Some(ip)),
            PortId::Uplink => self.policy.is_host_address(ip),
        }
    }
}

/// The echo reply to the echo request `frame` (parsed as `p`), sent from `mac`: MACs
/// and addresses swapped, type 0 (ICMPv6: 129), checksums recomputed; tags kept.
pub fn echo_reply(frame: &[u8], p: &Parsed, mac: Mac) -> Option<Vec<u8>> {
    if !matches!(p.kind, FrameKind::Ip) || p.truncated {
        return None;
    }
    let l3 = usize::from(p.l3_offset);
    let l4 = usize::from(p.l4_offset?);
    let end = p.l3_end as usize;
    let mut out = frame.get(..end)?.to_vec();
    put(&mut out, ethernet::field::DST, &p.fields.src_mac.0)?;
    put(&mut out, ethernet::field::SRC, &mac.0)?;
    let (s, d, n) = if p.ip_version == 4 {
        (l3 + 12, l3 + 16, 4)
    } else {
        (l3 + 8, l3 + 24, 16)
    };
    let src = out.get(s..s + n)?.to_vec();
    let dst = out.get(d..d + n)?.to_vec();
    put(&mut out, s, &dst)?;
    put(&mut out, d, &src)?;
    if p.ip_version == 4 {
        let ihl = usize::from(out.get(l3)? & 0x0f) * 4;
        put(&mut out, l3 + 8, &[64])?;
        put(&mut out, l3 + 10, &[0, 0])?;
        let c = checksum::finish(checksum::sum(0, out.get(l3..l3 + ihl)?));
        put(&mut out, l3 + 10, &c.to_be_bytes())?;
        put(&mut out, l4, &[0])?;
        put(&mut out, l4 + 2, &[0, 0])?;
        let c = checksum::finish(checksum::sum(0, out.get(l4..end)?));
        put(&mut out, l4 + 2, &c.to_be_bytes())?;
    } else {
        put(&mut out, l3 + 7, &[64])?;
        put(&mut out, l4, &[129])?;
        icmpv6_checksum(&mut out, l3, l4, end)?;
    }
    Some(out)
}

/// Writes `bytes` at `at`, if they fit.
pub(crate) fn put(out: &mut [u8], at: usize, bytes: &[u8]) -> Option<()> {
    out.get_mut(at..at.checked_add(bytes.len())?)?
        .copy_from_slice(bytes);
    Some(())
}

/// Writes the ICMPv6 checksum of the message at `l4..end` of the IPv6 packet at `l3`.
pub(crate) fn icmpv6_checksum(out: &mut [u8], l3: usize, l4: usize, end: usize) -> Option<()> {
    put(out, l4 + 2, &[0, 0])?;
    let len = u32::try_from(end.checked_sub(l4)?).ok()?;
    let mut acc = checksum::sum(0, out.get(l3 + 8..l3 + 40)?);
    acc = acc.wrapping_add(len >> 16).wrapping_add(len & 0xffff);
    acc = acc.wrapping_add(u32::from(proto::ICMPV6));
    let c = checksum::finish(checksum::sum(acc, out.get(l4..end)?));
    put(out, l4 + 2, &c.to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{parse, testutil};

    #[test]
    fn an_ipv4_echo_request_gets_a_valid_reply() {
        let icmp = {
            let mut m = testutil::icmp(8, 0, &[0x12, 0x34, 0, 1, b'p', b'i', b'n', b'g']);
            let c = checksum::finish(checksum::sum(0, &m));
            m[2..4].copy_from_slice(&c.to_be_bytes());
            m
        };
        let req = testutil::eth(
            0x0800,
            &[],
            &testutil::ipv4_full(1, [198, 18, 16, 11], [198, 18, 16, 1], &[], 0, &icmp),
        );
        let p = parse(&req).unwrap();
        let gw = Mac([2, 0, 0, 0, 0x10, 1]);
        let rep = echo_reply(&req, &p, gw).unwrap();
        let q = parse(&rep).unwrap();
        assert_eq!(q.fields.icmp, Some((0, 0)));
        assert_eq!(q.icmp_id, Some(0x1234));
        assert_eq!((q.fields.src_mac, q.fields.dst_mac), (gw, p.fields.src_mac));
        assert_eq!(
            (q.fields.src_ip, q.fields.dst_ip),
            (p.fields.dst_ip, p.fields.src_ip)
        );
        assert!(crate::packet::ipv4::header_checksum_ok(&rep, 14));
        let l4 = usize::from(q.l4_offset.unwrap());
        assert_eq!(checksum::finish(checksum::sum(0, &rep[l4..])), 0);
        assert_eq!(&rep[rep.len() - 4..], b"ping");
    }
}
