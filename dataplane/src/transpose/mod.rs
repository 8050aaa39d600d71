//! Header transpositions: what a flow's packets are rewritten with, header by header
//! (VFP's push / pop / modify / ignore), and their composition.
//!
//! The slow path composes each layer's action (and the switch's delivery steps) into one
//! [`Transposition`] per flow and caches it in the unified flow table; the fast path
//! applies that single rewrite. `apply_fields` gives what the following layers see;
//! the byte-level rewrite (with incremental checksums) lives in [`bytes`].

pub mod bytes;

use std::net::IpAddr;

use strata_rules::model::{Fields, Mac, proto};

/// The rewrite of the packet an ICMP error quotes: new (address, port) of its source and
/// destination, where they change.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct InnerRewrite {
    pub src: Option<(IpAddr, u16)>,
    pub dst: Option<(IpAddr, u16)>,
}

impl InnerRewrite {
    /// `self` then `next`: a later change wins.
    pub fn then(&self, next: &InnerRewrite) -> InnerRewrite {
        InnerRewrite {
            src: next.src.or(self.src),
            dst: next.dst.or(self.dst),
        }
    }
}

/// What happens to the 802.1Q tag.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum VlanOp {
    #[default]
    Keep,
    /// Add a tag (or retag an already tagged frame) with this VLAN ID.
    Push(u16),
    /// Remove the tag, if any.
    Pop,
}

/// VXLAN encapsulation: the outer headers to put in front of the frame.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Encap {
    pub src_mac: Mac,
    pub dst_mac: Mac,
    /// Outer (provider) addresses: both IPv4 or both IPv6.
    pub src_ip: IpAddr,
    pub dst_ip: IpAddr,
    /// Outer UDP source port: entropy from the inner flow's hash.
    pub udp_src: u16,
    pub udp_dst: u16,
    pub vni: u32,
}

/// The rewrite fields that differ from flow to flow on one path: the L4 ports (a NAT
/// chooses them per connection) and VXLAN's outer source port (an entropy hash of the
/// inner flow). The rest of a rewrite is shared, and interned by the tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PerFlow {
    src_port: Option<u16>,
    dst_port: Option<u16>,
    /// VXLAN's outer UDP source port.
    udp_src: u16,
}

impl PerFlow {
    /// Splits the per-flow fields off a rewrite.
    pub fn split(rewrite: &Transposition) -> (PerFlow, Transposition) {
        let mut shared = *rewrite;
        shared.src_port = None;
        shared.dst_port = None;
        let mut udp_src = 0;
        if let Some(e) = shared.encap.as_mut() {
            udp_src = std::mem::take(&mut e.udp_src);
        }
        let own = PerFlow {
            src_port: rewrite.src_port,
            dst_port: rewrite.dst_port,
            udp_src,
        };
        (own, shared)
    }

    pub fn join(self, shared: &Transposition) -> Transposition {
        let mut t = *shared;
        t.src_port = self.src_port;
        t.dst_port = self.dst_port;
        if let Some(e) = t.encap.as_mut() {
            e.udp_src = self.udp_src;
        }
        t
    }
}

/// A composite header rewrite. `None` / `Keep` / `false` leave a header as it is.
///
/// Order of application: `decap` strips the outer Ethernet/IP/UDP/VXLAN headers; then the
/// inner MACs, addresses and ports are modified; then the VLAN operation; then `encap`
/// puts new outer headers in front.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Transposition {
    pub decap: bool,
    pub src_mac: Option<Mac>,
    pub dst_mac: Option<Mac>,
    pub src_ip: Option<IpAddr>,
    pub dst_ip: Option<IpAddr>,
    /// TCP/UDP/SCTP source port, or an ICMP echo's identifier.
    pub src_port: Option<u16>,
    /// TCP/UDP/SCTP destination port (ICMP echo: the identifier too, see `apply_fields`).
    pub dst_port: Option<u16>,
    pub vlan: VlanOp,
    pub encap: Option<Encap>,
}

impl Transposition {
    /// The identity.
    pub const NONE: Transposition = Transposition {
        decap: false,
        src_mac: None,
        dst_mac: None,
        src_ip: None,
        dst_ip: None,
        src_port: None,
        dst_port: None,
        vlan: VlanOp::Keep,
        encap: None,
    };

    pub fn is_identity(&self) -> bool {
        // Field by field, cheapest first: asked for every packet, and most flows are
        // rewritten by nothing (a whole-value comparison costs ~50 instructions).
        self.src_port.is_none()
            && self.dst_port.is_none()
            && self.src_ip.is_none()
            && self.dst_ip.is_none()
            && self.src_mac.is_none()
            && self.dst_mac.is_none()
            && self.encap.is_none()
            && !self.decap
            && self.vlan == VlanOp::Keep
    }

    /// `self` then `next`, as one transposition: a later modification of a header wins.
    /// Encapsulation is last in a transposition, so anything after it applies to the
    /// outer headers; a `next` that modifies inner headers after an encap cannot be
    /// expressed and is not produced by the pipeline (it composes inner rewrites first).
    pub fn then(&self, next: &Transposition) -> Transposition {
        // Most flows are rewritten by nothing: don't build a new value for them.
        if next.is_identity() {
            return *self;
        }
        if self.is_identity() {
            return *next;
        }
        let vlan = match next.vlan {
            VlanOp::Keep => self.vlan,
            v => v,
        };
        Transposition {
            decap: self.decap || (next.decap && self.encap.is_none()),
            src_mac: next.src_mac.or(self.src_mac),
            dst_mac: next.dst_mac.or(self.dst_mac),
            src_ip: next.src_ip.or(self.src_ip),
            dst_ip: next.dst_ip.or(self.dst_ip),
            src_port: next.src_port.or(self.src_port),
            dst_port: next.dst_port.or(self.dst_port),
            vlan,
            encap: if next.decap {
                None
            } else {
                next.encap.or(self.encap)
            },
        }
    }

    /// The fields the following layers see. Ports change only for protocols with ports;
    /// for ICMP echo the rewrite of the identifier is returned separately.
    pub fn apply_fields(&self, f: &Fields, icmp_id: Option<u16>) -> (Fields, Option<u16>) {
        let mut g = *f;
        if let Some(m) = self.src_mac {
            g.src_mac = m;
        }
        if let Some(m) = self.dst_mac {
            g.dst_mac = m;
        }
        if let Some(ip) = self.src_ip {
            g.src_ip = ip;
        }
        if let Some(ip) = self.dst_ip {
            g.dst_ip = ip;
        }
        let mut id = icmp_id;
        if proto::has_ports(f.protocol) {
            if let Some(p) = self.src_port {
                g.src_port = p;
            }
            if let Some(p) = self.dst_port {
                g.dst_port = p;
            }
        } else if icmp_id.is_some() {
            // ICMP echo: the identifier plays both ports (see `strata_rules::conn::conn_key`).
            id = self.src_port.or(self.dst_port).or(icmp_id);
        }
        match self.vlan {
            VlanOp::Keep => {}
            VlanOp::Push(v) => g.vlan = Some(v),
            VlanOp::Pop => g.vlan = None,
        }
        (g, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_flow_fields_round_trip_through_a_shared_shape() {
        let mut t = Transposition {
            src_port: Some(5000),
            ..Transposition::NONE
        };
        t.encap = Some(Encap {
            src_mac: strata_rules::model::Mac([2, 0, 0, 0, 0, 1]),
            dst_mac: strata_rules::model::Mac([2, 0, 0, 0, 0, 2]),
            src_ip: std::net::Ipv4Addr::new(198, 19, 0, 1).into(),
            dst_ip: std::net::Ipv4Addr::new(198, 19, 0, 2).into(),
            udp_src: 49_999,
            udp_dst: 4789,
            vni: 7,
        });
        let (own, shared) = PerFlow::split(&t);
        assert_eq!(shared.src_port, None);
        assert_eq!(shared.encap.map(|e| e.udp_src), Some(0));
        assert_eq!(own.join(&shared), t);
    }
}
