//! Proxy ARP: the switch answers ARP requests for the addresses it knows (endpoints, and
//! gateways, which are the host) itself, as VFP does; other ARP is switched by MAC.

use std::net::{IpAddr, Ipv4Addr};

use strata_rules::model::{Direction, Driver, Mac};

use super::Switch;
use crate::drop::DropReason;
use crate::packet::ArpInfo;
use crate::policy::PortId;
use crate::verdict::{Answer, Verdict};

impl Switch<'_> {
    /// Who answers for `ip` when asked from `ingress`: an endpoint (its MAC), or a
    /// network gateway (the host's MAC) for an endpoint of that network.
    fn arp_owner(&self, ingress: PortId, ip: Ipv4Addr) -> Option<Mac> {
        let ip = IpAddr::V4(ip);
        if let Some(i) = self.policy.slot_of_ip(&ip) {
            let visible = match ingress {
                PortId::Endpoint(_) => true,
                // The physical network sees endpoints only where they are bridged to it.
                PortId::Uplink => self.policy.network_of(i).is_some_and(|n| {
                    matches!(
                        n.driver,
                        Driver::Transparent | Driver::L2Bridge | Driver::L2Tunnel
                    )
                }),
            };
            return self.policy.port(i).filter(|_| visible).map(|p| p.port.mac);
        }
        // The gateway is the host; so are the host addresses on the uplink when Strata is
        // the host (the service; in a capture the host's own stack answered for them).
        let owned = match ingress {
            PortId::Endpoint(_) => self.owns(ingress, ip),
            PortId::Uplink => self.state.host && self.owns(ingress, ip),
        };
        owned.then_some(self.policy.uplink.mac)
    }

    pub(super) fn arp(
        &mut self,
        ingress: PortId,
        direction: Direction,
        dst_mac: Mac,
        arp: &ArpInfo,
    ) -> Verdict {
        const REQUEST: u16 = 1;
        if arp.op == REQUEST
            && let Some(mac) = self.arp_owner(ingress, arp.target_ip)
        {
            self.state.stats.arp_replies += 1;
            return Verdict {
                answer: Some(Answer::Arp(mac)),
                ..Verdict::forward(ingress, direction, ingress)
            };
        }
        match (self.policy.slot_of_mac(&dst_mac), ingress) {
            (Some(q), PortId::Uplink) if self.hidden(q) => {
                Verdict::drop(ingress, direction, DropReason::NotExposed)
            }
            (Some(q), _) => Verdict::forward(ingress, direction, PortId::Endpoint(q)),
            (None, PortId::Endpoint(_)) => Verdict::forward(ingress, direction, PortId::Uplink),
            (None, PortId::Uplink) => Verdict::drop(ingress, direction, DropReason::NoRoute),
        }
    }
}

/// The ARP reply frame answering `req` with `mac`.
pub fn arp_reply(req: &ArpInfo, mac: Mac) -> [u8; 42] {
    let mut f = [0u8; 42];
    f[0..6].copy_from_slice(&req.sender_mac.0);
    f[6..12].copy_from_slice(&mac.0);
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    f[14..16].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
    f[16..18].copy_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    f[18] = 6;
    f[19] = 4;
    f[20..22].copy_from_slice(&2u16.to_be_bytes()); // reply
    f[22..28].copy_from_slice(&mac.0);
    f[28..32].copy_from_slice(&req.target_ip.octets());
    f[32..38].copy_from_slice(&req.sender_mac.0);
    f[38..42].copy_from_slice(&req.sender_ip.octets());
    f
}
