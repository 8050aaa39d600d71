//! Delivery: where a packet goes after the sender's layers, and what the switch rewrites
//! on the way. This is where the network drivers of DESIGN §1 differ:
//! - an endpoint reached by its MAC is bridged; one reached by IP (through the gateway)
//!   is routed: the destination MAC becomes the endpoint's, the source the host's;
//! - `nat`: replies to SNATed connections and port mappings arrive at a host address and
//!   are delivered to the endpoint that owns the binding (also from another endpoint:
//!   hairpin); traffic to the outside leaves with the host's MAC;
//! - `l2bridge`: the container MAC becomes the host MAC on egress, and back by IP on
//!   ingress;
//! - `l2tunnel`: everything an endpoint sends goes to the uplink, where policy applies;
//! - `overlay`: see the `overlay` module;
//! - a network's VLAN is pushed on the uplink and must match (and is popped) on ingress.

use strata_rules::model::{Driver, proto};
use strata_rules::source::hidden_from_outside;

use super::{Route, Switch};
use crate::drop::DropReason;
use crate::flow::PacketMeta;
use crate::state::uft::Delivery;
use crate::transpose::{Transposition, VlanOp};

impl Switch<'_> {
    /// The endpoint that owns a NAT binding or a port mapping of a host address.
    pub(super) fn nat_owner(&mut self, m: &PacketMeta, now: u64) -> Option<usize> {
        // The (host address, protocol, port) the packet is for; for an ICMP error about
        // a packet the host sent, the quoted packet's source is.
        let (ip, protocol, port) = match m.related {
            Some(q) => (q.src_ip, q.protocol, q.src_port),
            None if proto::has_ports(m.fields.protocol) => {
                (m.fields.dst_ip, m.fields.protocol, m.fields.dst_port)
            }
            None => (m.fields.dst_ip, m.fields.protocol, m.icmp_id?),
        };
        let st = &mut *self.state;
        if let Some(&(owner, c)) = st.nat.owners.get(&(ip, protocol, port))
            && let Some(Some(p)) = st.ports.get_mut(owner)
            && p.conns.live(c, now).is_some()
        {
            return Some(owner);
        }
        if proto::has_ports(protocol) {
            return self.policy.mapping(protocol, port);
        }
        None
    }

    /// Whether endpoint `q`'s network hides it from the outside.
    pub(super) fn hidden(&self, q: usize) -> bool {
        self.policy
            .network_of(q)
            .is_some_and(|n| hidden_from_outside(n.driver))
    }

    /// The rewrite of a packet routed (not bridged) to endpoint `q`.
    pub(super) fn routed_to(&self, q: usize) -> Transposition {
        Transposition {
            dst_mac: self.policy.port(q).map(|p| p.port.mac),
            src_mac: Some(self.policy.uplink.mac),
            ..Transposition::NONE
        }
    }

    /// What leaving through the uplink does to a packet of endpoint `p`'s network.
    pub(super) fn uplink_delivery(&self, p: usize) -> Transposition {
        let net = self.policy.network_of(p);
        let mut t = match net.map(|n| n.driver) {
            Some(Driver::Nat | Driver::L2Bridge | Driver::Overlay) => Transposition {
                src_mac: Some(self.policy.uplink.mac),
                ..Transposition::NONE
            },
            _ => Transposition::NONE,
        };
        if let Some(v) = net.and_then(|n| n.vlan) {
            t.vlan = VlanOp::Push(v);
        }
        t
    }

    /// A delivery the flow table remembered.
    pub(super) fn remembered(&self, p: usize, d: Delivery) -> Option<Route> {
        Some(match d {
            Delivery::Unknown => return None,
            Delivery::Uplink => Route::Uplink(self.uplink_delivery(p)),
            Delivery::Bridged(q) => Route::Endpoint(q as usize, Transposition::NONE),
            Delivery::Routed(q) => Route::Endpoint(q as usize, self.routed_to(q as usize)),
        })
    }

    /// Where a packet from endpoint `p` goes after its layers, and whether that is fixed
    /// by the policy alone (the flow table may remember it).
    pub(super) fn route_from_endpoint(
        &mut self,
        p: usize,
        m: &PacketMeta,
        now: u64,
    ) -> (Route, Delivery) {
        let f = m.fields;
        if self.policy.network_of(p).map(|n| n.driver) == Some(Driver::L2Tunnel) {
            return (Route::Uplink(self.uplink_delivery(p)), Delivery::Uplink);
        }
        if let Some(q) = self.policy.slot_of_mac(&f.dst_mac) {
            return (
                Route::Endpoint(q, Transposition::NONE),
                Delivery::Bridged(q as u32),
            );
        }
        if let Some(q) = self.policy.slot_of_ip(&f.dst_ip) {
            return (
                Route::Endpoint(q, self.routed_to(q)),
                Delivery::Routed(q as u32),
            );
        }
        if self.policy.is_host_address(f.dst_ip)
            && let Some(q) = self.nat_owner(m, now)
        {
            return (Route::Endpoint(q, self.routed_to(q)), Delivery::Unknown);
        }
        if let Some(route) = self.encapsulate(p, m) {
            return (route, Delivery::Unknown);
        }
        (Route::Uplink(self.uplink_delivery(p)), Delivery::Uplink)
    }

    /// Where a packet from the uplink goes.
    pub(super) fn route_from_uplink(&mut self, m: &PacketMeta, now: u64) -> Route {
        let f = m.fields;
        let direct = self
            .policy
            .slot_of_mac(&f.dst_mac)
            .or_else(|| self.policy.slot_of_ip(&f.dst_ip));
        // A NAT network is reached from outside only through the host's addresses (port
        // mappings, replies of its connections), an overlay only encapsulated; only the
        // host itself reaches their containers directly. A capture's uplink also carries
        // the host's own stack (a frame from a host address); when Strata is the host
        // (the service) it does not, so a source claiming a host address there is the
        // host only for frames addressed to a host address.
        let from_host = self.policy.is_host_address(f.src_ip)
            && (!self.state.host || self.policy.is_host_address(f.dst_ip));
        if direct.is_some_and(|q| self.hidden(q)) && !from_host {
            return Route::Drop(DropReason::NotExposed);
        }
        let (q, mut t) = if let Some(q) = self.policy.slot_of_mac(&f.dst_mac) {
            (q, Transposition::NONE)
        } else if let Some(q) = self.policy.slot_of_ip(&f.dst_ip) {
            let t = match self.policy.network_of(q).map(|n| n.driver) {
                // L2Bridge: the host MAC the container hid behind becomes its own again;
                // the sender stays who it was.
                Some(Driver::L2Bridge) => Transposition {
                    dst_mac: self.policy.port(q).map(|p| p.port.mac),
                    ..Transposition::NONE
                },
                _ => self.routed_to(q),
            };
            (q, t)
        } else if self.policy.is_host_address(f.dst_ip) {
            match self.nat_owner(m, now) {
                Some(q) => (q, self.routed_to(q)),
                None => return Route::Drop(DropReason::NoRoute),
            }
        } else {
            return Route::Drop(DropReason::NoRoute);
        };
        let want = self.policy.network_of(q).and_then(|n| n.vlan);
        if f.vlan != want {
            return Route::Drop(DropReason::VlanMismatch);
        }
        if f.vlan.is_some() {
            t.vlan = VlanOp::Pop;
        }
        Route::Endpoint(q, t)
    }
}
