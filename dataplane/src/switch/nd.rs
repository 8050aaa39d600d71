//! IPv6 neighbour discovery answered by the switch (DESIGN §5 "The host"), the IPv6 twin
//! of proxy ARP: a neighbour solicitation for an address the switch knows — the gateway
//! of the sender's network, a host address asked from the uplink, an endpoint (from the
//! uplink only where its network is bridged to it) — gets a neighbour advertisement
//! from the switch, with the owner's MAC.
//!
//! The switch decides from the packet's fields, which do not carry the solicited target:
//! it answers when an address it owns is the destination (unicast solicitation) or
//! matches the solicited-node multicast group the packet went to; the engine then reads
//! the target from the bytes and builds the advertisement only if that target is the
//! one owned.

use std::net::{IpAddr, Ipv6Addr};

use strata_rules::model::{Direction, Driver, Mac, proto};

use super::Switch;
use super::echo::icmpv6_checksum;
use crate::flow::PacketMeta;
use crate::packet::{FrameKind, Parsed, ethernet};
use crate::policy::{CompiledPolicy, PortId};
use crate::verdict::{Answer, Verdict};

const SOLICITATION: u8 = 135;
const ADVERTISEMENT: u8 = 136;

impl Switch<'_> {
    /// The switch's advertisement answering `m`, if `m` solicits an address it owns.
    pub(super) fn solicitation(
        &mut self,
        ingress: PortId,
        direction: Direction,
        m: &PacketMeta,
    ) -> Option<Verdict> {
        let f = &m.fields;
        // As for echo: only when Strata is the host.
        if !self.state.host || f.protocol != proto::ICMPV6 || f.icmp != Some((SOLICITATION, 0)) {
            return None;
        }
        let IpAddr::V6(dst) = f.dst_ip else {
            return None;
        };
        let target = match solicited_group(dst) {
            Some(low) => candidates(self.policy, ingress).find(|a| low24(*a) == low)?,
            None => dst,
        };
        owner(self.policy, ingress, target)?;
        self.state.stats.arp_replies += 1;
        Some(Verdict {
            answer: Some(Answer::Neighbour),
            ..Verdict::forward(ingress, direction, ingress)
        })
    }
}

fn low24(a: Ipv6Addr) -> u32 {
    u32::from_be_bytes(a.octets()[12..16].try_into().unwrap_or([0; 4])) & 0x00ff_ffff
}

/// The low 24 bits a solicited-node multicast address (ff02::1:ffXX:XXXX) stands for.
fn solicited_group(a: Ipv6Addr) -> Option<u32> {
    let o = a.octets();
    let prefix = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff];
    (o[..13] == prefix).then(|| low24(a))
}

/// The IPv6 addresses the switch answers for on `ingress`'s side.
fn candidates(policy: &CompiledPolicy, ingress: PortId) -> impl Iterator<Item = Ipv6Addr> + '_ {
    let gateway = match ingress {
        PortId::Endpoint(p) => policy.network_of(p).and_then(|n| n.gateway),
        PortId::Uplink => None,
    };
    let host = policy
        .uplink
        .ips
        .iter()
        .copied()
        .filter(move |_| ingress == PortId::Uplink);
    let endpoints = policy.ports().flat_map(|(_, p)| p.port.ips.iter().copied());
    gateway
        .into_iter()
        .chain(host)
        .chain(endpoints)
        .filter_map(|a| match a {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(_) => None,
        })
}

/// Who answers for `target` asked from `ingress`: (MAC, whether it is a router).
pub fn owner(policy: &CompiledPolicy, ingress: PortId, target: Ipv6Addr) -> Option<(Mac, bool)> {
    let ip = IpAddr::V6(target);
    match ingress {
        PortId::Endpoint(p) if policy.network_of(p)?.gateway == Some(ip) => {
            return Some((policy.uplink.mac, true));
        }
        PortId::Uplink if policy.is_host_address(ip) => return Some((policy.uplink.mac, true)),
        _ => {}
    }
    let slot = policy.slot_of_ip(&ip)?;
    let visible = match ingress {
        PortId::Endpoint(p) => p != slot,
        PortId::Uplink => policy.network_of(slot).is_some_and(|n| {
            matches!(
                n.driver,
                Driver::Transparent | Driver::L2Bridge | Driver::L2Tunnel
            )
        }),
    };
    visible
        .then(|| policy.port(slot).map(|p| (p.port.mac, false)))
        .flatten()
}

/// The target of a neighbour solicitation or advertisement, from its bytes.
pub fn target_of(frame: &[u8], p: &Parsed) -> Option<Ipv6Addr> {
    if !matches!(p.kind, FrameKind::Ip) || p.ip_version != 6 {
        return None;
    }
    let l4 = usize::from(p.l4_offset?);
    let t: [u8; 16] = frame.get(l4 + 8..l4 + 24)?.try_into().ok()?;
    Some(Ipv6Addr::from(t))
}

/// The link-layer address an advertisement carries for its target (option 2).
pub fn advertised_mac(frame: &[u8], p: &Parsed) -> Option<Mac> {
    if p.fields.icmp != Some((ADVERTISEMENT, 0)) {
        return None;
    }
    let l4 = usize::from(p.l4_offset?);
    let end = (p.l3_end as usize).min(frame.len());
    let mut at = l4 + 24;
    while at + 8 <= end {
        let (kind, len) = (*frame.get(at)?, usize::from(*frame.get(at + 1)?) * 8);
        if len == 0 {
            return None;
        }
        if kind == 2 && len == 8 {
            return Some(Mac(frame.get(at + 2..at + 8)?.try_into().ok()?));
        }
        at += len;
    }
    None
}

/// The advertisement answering the solicitation `frame` for `target`, from `mac`.
pub fn advertisement(
    frame: &[u8],
    p: &Parsed,
    target: Ipv6Addr,
    mac: Mac,
    router: bool,
) -> Option<Vec<u8>> {
    let IpAddr::V6(asker) = p.fields.src_ip else {
        return None;
    };
    // Duplicate address detection (from ::): the address is taken, say so to all nodes.
    let (to, to_mac, solicited) = if asker.is_unspecified() {
        (
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
            Mac([0x33, 0x33, 0, 0, 0, 1]),
            false,
        )
    } else {
        (asker, p.fields.src_mac, true)
    };
    let tags = frame.get(ethernet::field::ETHERTYPE..p.ethertype_offset())?;
    let mut out = Vec::with_capacity(86 + tags.len());
    out.extend_from_slice(&to_mac.0);
    out.extend_from_slice(&mac.0);
    out.extend_from_slice(tags);
    out.extend_from_slice(&ethernet::ETHERTYPE_IPV6.to_be_bytes());
    let l3 = out.len();
    out.extend_from_slice(&[0x60, 0, 0, 0, 0, 32, proto::ICMPV6, 255]);
    out.extend_from_slice(&target.octets());
    out.extend_from_slice(&to.octets());
    let l4 = out.len();
    let flags = (u8::from(router) << 7) | (u8::from(solicited) << 6) | (1 << 5);
    out.extend_from_slice(&[ADVERTISEMENT, 0, 0, 0, flags, 0, 0, 0]);
    out.extend_from_slice(&target.octets());
    out.extend_from_slice(&[2, 1]);
    out.extend_from_slice(&mac.0);
    let end = out.len();
    icmpv6_checksum(&mut out, l3, l4, end)?;
    Some(out)
}

/// A solicitation for `target` from `src` (`mac`): how the switch resolves an address on
/// the uplink.
pub fn solicitation_frame(src: Ipv6Addr, mac: Mac, target: Ipv6Addr) -> Option<Vec<u8>> {
    let t = target.octets();
    let group = Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(t[13]),
        u16::from_be_bytes([t[14], t[15]]),
    );
    let g = group.octets();
    let mut out = Vec::with_capacity(86);
    out.extend_from_slice(&[0x33, 0x33, g[12], g[13], g[14], g[15]]);
    out.extend_from_slice(&mac.0);
    out.extend_from_slice(&ethernet::ETHERTYPE_IPV6.to_be_bytes());
    let l3 = out.len();
    out.extend_from_slice(&[0x60, 0, 0, 0, 0, 32, proto::ICMPV6, 255]);
    out.extend_from_slice(&src.octets());
    out.extend_from_slice(&g);
    let l4 = out.len();
    out.extend_from_slice(&[SOLICITATION, 0, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&t);
    out.extend_from_slice(&[1, 1]);
    out.extend_from_slice(&mac.0);
    let end = out.len();
    icmpv6_checksum(&mut out, l3, l4, end)?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{checksum, parse};

    fn verifies(f: &[u8]) -> bool {
        let p = parse(f).unwrap();
        let (l3, l4) = (usize::from(p.l3_offset), usize::from(p.l4_offset.unwrap()));
        let end = p.l3_end as usize;
        let mut acc = checksum::sum(0, &f[l3 + 8..l3 + 40]);
        acc += (end - l4) as u32 + u32::from(proto::ICMPV6);
        checksum::finish(checksum::sum(acc, &f[l4..end])) == 0
    }

    #[test]
    fn a_solicitation_and_its_advertisement_round_trip() {
        let me: Ipv6Addr = "2001:db8:16::10".parse().unwrap();
        let target: Ipv6Addr = "2001:db8:16::20".parse().unwrap();
        let mac = Mac([2, 0, 0, 0, 0x10, 1]);
        let ns = solicitation_frame(me, mac, target).unwrap();
        assert!(verifies(&ns));
        let p = parse(&ns).unwrap();
        assert_eq!(p.fields.icmp, Some((135, 0)));
        assert_eq!(target_of(&ns, &p), Some(target));
        let IpAddr::V6(group) = p.fields.dst_ip else {
            panic!("IPv6")
        };
        assert_eq!(solicited_group(group), Some(low24(target)));
        let theirs = Mac([2, 0, 0, 0, 0x10, 0x20]);
        let na = advertisement(&ns, &p, target, theirs, false).unwrap();
        assert!(verifies(&na));
        let q = parse(&na).unwrap();
        assert_eq!(q.fields.icmp, Some((136, 0)));
        assert_eq!(q.fields.dst_ip, IpAddr::V6(me));
        assert_eq!(q.fields.dst_mac, mac);
        assert_eq!(target_of(&na, &q), Some(target));
        assert_eq!(advertised_mac(&na, &q), Some(theirs));
        assert_eq!(advertised_mac(&ns, &p), None);
    }
}
