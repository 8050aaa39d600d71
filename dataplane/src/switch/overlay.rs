//! The overlay driver: customer addresses of an overlay network's remote routes are
//! VXLAN-encapsulated to the remote host's provider address (VNI, UDP 4789 or the
//! network's port, source port from the inner flow hash), with EncapOverhead accounted
//! against the uplink MTU; VXLAN from the uplink to this host is decapsulated, its VNI
//! choosing the network, and delivered within it.

use std::net::IpAddr;

use strata_rules::model::{Direction, Driver, ENCAP_OVERHEAD, Fields, Mac};

use super::classify::VxlanInner;
use super::{Route, Switch, rewritten};
use crate::drop::DropReason;
use crate::flow::PacketMeta;
use crate::policy::PortId;
use crate::transpose::{Encap, Transposition, VlanOp};
use crate::verdict::Verdict;

impl Switch<'_> {
    /// The encapsulation of a packet from endpoint `p` to a remote customer address, if
    /// `p` is on an overlay network with a route for it.
    pub(super) fn encapsulate(&self, p: usize, m: &PacketMeta) -> Option<Route> {
        let f = m.fields;
        let net = self
            .policy
            .network_of(p)
            .filter(|n| n.driver == Driver::Overlay)?;
        let route = net
            .remote_routes
            .iter()
            .find(|r| r.prefix.contains(f.dst_ip))?;
        let uplink = &self.policy.uplink;
        let family = route.provider_address.is_ipv4();
        let Some(src_ip) = uplink.ips.iter().copied().find(|a| a.is_ipv4() == family) else {
            return Some(Route::Drop(DropReason::NoRoute));
        };
        // EncapOverhead: 50 bytes over IPv4, 70 over IPv6 (a 40-byte outer header).
        let overhead = if family {
            ENCAP_OVERHEAD
        } else {
            ENCAP_OVERHEAD + 20
        };
        if m.ip_len + u32::from(overhead) > u32::from(uplink.mtu) {
            let mtu = uplink.mtu.saturating_sub(overhead);
            return Some(Route::TooBig { mtu });
        }
        // The remote host's MAC as learned from its VXLAN or resolved by ARP/ND on the
        // uplink (`resolve`), else broadcast on the underlay segment until it is: never
        // the route's `mac`, which is the remote container's and which the remote host
        // would drop.
        let next_hop = self.state.underlay.get(&route.provider_address).copied();
        let encap = Encap {
            src_mac: uplink.mac,
            dst_mac: next_hop.unwrap_or(Mac::BROADCAST),
            src_ip,
            dst_ip: route.provider_address,
            udp_src: entropy_port(&f),
            udp_dst: net.vxlan_port,
            vni: net.vni.unwrap_or(0),
        };
        let mut t = Transposition {
            dst_mac: route.mac,
            encap: Some(encap),
            ..Transposition::NONE
        };
        if let Some(v) = net.vlan {
            t.vlan = VlanOp::Push(v);
        }
        Some(Route::Uplink(t))
    }

    /// VXLAN from the uplink: the VNI picks the overlay network, the inner frame is
    /// delivered within it.
    pub(super) fn vxlan(
        &mut self,
        direction: Direction,
        vni: u32,
        outer: &PacketMeta,
        inner: &VxlanInner,
        now: u64,
    ) -> Verdict {
        let ingress = PortId::Uplink;
        if !self.policy.is_host_address(outer.fields.dst_ip) {
            // Not for this host's VTEP: an ordinary UDP packet.
            return self.ip(ingress, direction, outer, now);
        }
        let Some(net) = self
            .policy
            .networks
            .iter()
            .position(|n| n.driver == Driver::Overlay && n.vni == Some(vni))
        else {
            return Verdict::drop(ingress, direction, DropReason::VniMismatch);
        };
        self.learn_underlay(outer.fields.src_ip, outer.fields.src_mac);
        let in_net = |q: &usize| self.policy.network_index(*q) == Some(net);
        let decap = Transposition {
            decap: true,
            ..Transposition::NONE
        };
        match inner {
            VxlanInner::Ip(m) => {
                let mut m = *m;
                m.fields.vni = Some(vni);
                let f = m.fields;
                let (q, t) = if let Some(q) = self.policy.slot_of_mac(&f.dst_mac).filter(in_net) {
                    (q, decap)
                } else if let Some(q) = self.policy.slot_of_ip(&f.dst_ip).filter(in_net) {
                    (q, decap.then(&self.routed_to(q)))
                } else {
                    return Verdict::drop(ingress, direction, DropReason::NoRoute);
                };
                let m = rewritten(&m, &t);
                self.deliver(ingress, direction, q, t, m, None, now)
            }
            VxlanInner::Arp { arp, .. } => {
                match self
                    .policy
                    .slot_of_ip(&IpAddr::V4(arp.target_ip))
                    .filter(in_net)
                {
                    Some(q) => Verdict {
                        rewrite: decap,
                        ..Verdict::forward(ingress, direction, PortId::Endpoint(q))
                    },
                    None => Verdict::drop(ingress, direction, DropReason::NoRoute),
                }
            }
            VxlanInner::Other => Verdict::drop(ingress, direction, DropReason::Parse),
        }
    }

    /// Remembers which MAC a provider address sends VXLAN from.
    fn learn_underlay(&mut self, ip: IpAddr, mac: Mac) {
        if self.state.underlay.get(&ip) != Some(&mac) {
            self.state.underlay.insert(ip, mac);
            // Paths that encapsulate to this host must take the new MAC.
            self.state.underlay_epoch += 1;
        }
    }
}

/// The outer UDP source port of an encapsulated flow: a hash of the inner flow in the
/// dynamic range (RFC 7348 §5), so the underlay's ECMP spreads flows.
fn entropy_port(f: &Fields) -> u16 {
    // A seedless hash: the same flow gets the same port on every run and host.
    let h = strata_rules::maglev::flow_hash(f, strata_rules::model::Distribution::FiveTuple);
    49152 + (h % 16384) as u16
}
