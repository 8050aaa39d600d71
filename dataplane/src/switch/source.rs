//! Source validation at ingress (`strata_rules::source`): an endpoint sends only as
//! itself; the uplink does not claim the addresses of containers the outside cannot
//! reach; a remote host's VXLAN does not carry a local container's address.

use strata_rules::source::{endpoint_may_arp, endpoint_may_send, hidden_from_outside};

use super::Switch;
use super::classify::{FrameInfo, VxlanInner};
use crate::drop::DropReason;
use crate::flow::PacketMeta;
use crate::policy::PortId;

impl Switch<'_> {
    /// Why a frame entering at `ingress` may not carry its source, if it may not.
    pub(super) fn spoofed(&self, ingress: PortId, frame: &FrameInfo) -> Option<DropReason> {
        let ok = match (ingress, frame) {
            (PortId::Endpoint(p), FrameInfo::Ip(m) | FrameInfo::Vxlan { outer: m, .. }) => self
                .policy
                .port(p)
                .is_some_and(|port| endpoint_may_send(&port.port, &m.fields)),
            (PortId::Endpoint(p), FrameInfo::Arp { arp, .. }) => self
                .policy
                .port(p)
                .is_some_and(|port| endpoint_may_arp(&port.port, arp.sender_mac, arp.sender_ip)),
            (PortId::Uplink, FrameInfo::Ip(m)) => !self.claims_hidden(m),
            (PortId::Uplink, FrameInfo::Vxlan { outer, inner, .. }) => {
                !self.claims_hidden(outer)
                    && !matches!(inner, VxlanInner::Ip(m) if self.claims_local(m))
            }
            _ => true,
        };
        (!ok).then_some(DropReason::SpoofedSource)
    }

    /// A packet from outside claiming the address of a container hidden from outside.
    fn claims_hidden(&self, m: &PacketMeta) -> bool {
        self.policy
            .slot_of_ip(&m.fields.src_ip)
            .and_then(|s| self.policy.network_of(s))
            .is_some_and(|n| hidden_from_outside(n.driver))
    }

    /// A packet from another host claiming the address of a container of this one.
    fn claims_local(&self, m: &PacketMeta) -> bool {
        self.policy.slot_of_ip(&m.fields.src_ip).is_some()
    }
}
