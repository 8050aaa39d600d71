//! The switch: endpoint ports and the uplink, the MAC/IP table, and the paths of
//! DESIGN §2 — the sender's layers outbound, delivery, the receiver's layers inbound;
//! traffic from the uplink crosses only the receiver's layers.
//!
//! Delivery is where the network drivers of DESIGN §1 differ:
//! - an endpoint reached by its MAC is bridged; one reached by IP (through the gateway)
//!   is routed: the destination MAC becomes the endpoint's, the source the host's;
//! - `nat`: replies to SNATed connections and port mappings arrive at a host address and
//!   are delivered to the endpoint that owns the binding (also from another endpoint:
//!   hairpin); traffic to the outside leaves with the host's MAC;
//! - `l2bridge`: the container MAC becomes the host MAC on egress, and back by IP on ingress;
//! - `l2tunnel`: everything an endpoint sends goes to the uplink, where policy applies;
//! - `overlay`: customer addresses of remote routes are VXLAN-encapsulated to the remote
//!   host's provider address; VXLAN from the uplink is decapsulated, its VNI checked;
//! - a network's VLAN is pushed on the uplink and must match (and is popped) on ingress.
//!
//! ARP for known addresses is answered by the switch itself (proxy ARP, as VFP does).
//! Each frame has at most one output port: flooding is not modelled.

use std::collections::HashMap;
use std::net::IpAddr;

use ahash::RandomState;
use strata_rules::model::{Direction, Driver, ENCAP_OVERHEAD, Mac, Network, Policy, proto};

use crate::drop::DropReason;
use crate::flow::PacketMeta;
use crate::layer::Decision;
use crate::packet::{ArpInfo, FrameKind, ParseError, Parsed};
use crate::port::{Limits, NatState, PortPipeline};
use crate::transpose::{Encap, InnerRewrite, Transposition, VlanOp, bytes};
use crate::uft::Delivery;
use strata_rules::reference::ConnKey;

/// A port of the switch.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum PortId {
    Endpoint(usize),
    Uplink,
}

/// What the switch needs to know of a frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FrameInfo {
    Ip(PacketMeta),
    Arp {
        dst_mac: Mac,
        arp: ArpInfo,
    },
    /// A VXLAN packet addressed to a VXLAN port: the outer packet and what it carries.
    Vxlan {
        vni: u32,
        outer: PacketMeta,
        inner: VxlanInner,
    },
    /// Neither IP nor ARP.
    Unsupported,
    /// Could not be parsed.
    Malformed,
}

/// The frame inside a VXLAN packet.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum VxlanInner {
    Ip(PacketMeta),
    Arp {
        dst_mac: Mac,
        arp: ArpInfo,
    },
    /// Unparseable or neither IP nor ARP.
    Other,
}

impl FrameInfo {
    /// What the switch needs of a parse result.
    pub fn of(parsed: &Result<Parsed, ParseError>) -> FrameInfo {
        match parsed {
            Err(_) => FrameInfo::Malformed,
            Ok(p) => match p.kind {
                FrameKind::Ip => FrameInfo::Ip(PacketMeta::of(p)),
                FrameKind::Arp(arp) => FrameInfo::Arp {
                    dst_mac: p.fields.dst_mac,
                    arp,
                },
                FrameKind::Other { .. } => FrameInfo::Unsupported,
            },
        }
    }
}

impl FrameInfo {
    /// What the switch needs of a frame: its parse, with VXLAN to one of `vxlan_ports`
    /// carrying its inner frame along, and an ICMP error the key of what it quotes.
    pub fn from_frame(
        data: &[u8],
        parsed: &Result<Parsed, ParseError>,
        vxlan_ports: &[u16],
    ) -> FrameInfo {
        let Ok(p) = parsed else {
            return FrameInfo::Malformed;
        };
        if !vxlan_ports.is_empty()
            && let Some(vx) = bytes::vxlan_of(data, p, vxlan_ports)
        {
            return FrameInfo::Vxlan {
                vni: vx.vni,
                outer: PacketMeta::of(p),
                inner: VxlanInner::of(&bytes::parse_inner(data, p, &vx)),
            };
        }
        match FrameInfo::of(parsed) {
            FrameInfo::Ip(mut m) => {
                if let Some((t, _)) = m.fields.icmp
                    && bytes::is_icmp_error(p.ip_version, t)
                {
                    m.related = bytes::icmp_error_inner(data, p).map(|i| ConnKey {
                        src_ip: i.src_ip,
                        dst_ip: i.dst_ip,
                        protocol: i.protocol,
                        src_port: i.src_port,
                        dst_port: i.dst_port,
                    });
                }
                FrameInfo::Ip(m)
            }
            other => other,
        }
    }
}

impl VxlanInner {
    pub fn of(parsed: &Result<Parsed, ParseError>) -> VxlanInner {
        match FrameInfo::of(parsed) {
            FrameInfo::Ip(m) => VxlanInner::Ip(m),
            FrameInfo::Arp { dst_mac, arp } => VxlanInner::Arp { dst_mac, arp },
            _ => VxlanInner::Other,
        }
    }
}

impl PacketMeta {
    /// The policy view of a parsed IP frame.
    pub fn of(p: &Parsed) -> PacketMeta {
        PacketMeta {
            fields: p.fields,
            icmp_id: p.icmp_id,
            tcp_flags: p.tcp_flags,
            ip_len: p.ip_len(),
            related: None,
        }
    }
}

/// Something the switch itself sends back to the ingress port.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Answer {
    /// The ARP reply frame for a proxied request.
    Arp([u8; 42]),
    /// ICMP "fragmentation needed" / "packet too big" with this MTU, to the sender.
    TooBig { mtu: u16 },
}

/// The verdict of one frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Verdict {
    pub ingress: PortId,
    pub direction: Direction,
    /// Where the frame leaves, for a forward.
    pub egress: Option<PortId>,
    pub drop: Option<DropReason>,
    /// The decision that mattered: the blocking one for a drop, else the receiving port's
    /// last evaluated layer (the sender's if the receiver saw a connection's reply).
    pub decided: Option<(PortId, Decision)>,
    /// The whole rewrite of the frame on its way (sender's layers, delivery, receiver's).
    pub rewrite: Transposition,
    /// What the switch answers on the ingress port, if anything.
    pub answer: Option<Answer>,
    /// For an ICMP error about a translated connection: the rewrite of its quote.
    pub icmp_inner: Option<InnerRewrite>,
}

impl Verdict {
    fn drop(ingress: PortId, direction: Direction, reason: DropReason) -> Verdict {
        Verdict {
            ingress,
            direction,
            egress: None,
            drop: Some(reason),
            decided: None,
            rewrite: Transposition::NONE,
            answer: None,
            icmp_inner: None,
        }
    }
    fn forward(ingress: PortId, direction: Direction, egress: PortId) -> Verdict {
        Verdict {
            egress: Some(egress),
            drop: None,
            ..Verdict::drop(ingress, direction, DropReason::Parse)
        }
    }
}

/// Totals over everything the switch processed.
#[derive(Clone, Debug, Default)]
pub struct SwitchStats {
    pub packets: u64,
    pub forwarded: u64,
    pub dropped: [u64; DropReason::ALL.len()],
    pub arp_replies: u64,
}

impl SwitchStats {
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }
}

/// Where delivery sends a packet, and what it rewrites on the way.
enum Route {
    Endpoint(usize, Transposition),
    Uplink(Transposition),
    Drop(DropReason),
    /// Too big once encapsulated: the largest inner packet that fits.
    TooBig {
        mtu: u16,
    },
}

/// The host switch.
pub struct Switch {
    policy: Policy,
    ports: Vec<PortPipeline>,
    /// Each port's network index.
    nets: Vec<Option<usize>>,
    by_mac: HashMap<Mac, usize, RandomState>,
    by_ip: HashMap<IpAddr, usize, RandomState>,
    /// Port mappings: (protocol, host port) → endpoint.
    mappings: HashMap<(u8, u16), usize, RandomState>,
    nat: NatState,
    /// Provider address → MAC, learned from the VXLAN the uplink receives: where
    /// encapsulated packets to that remote host are sent on the underlay.
    underlay: HashMap<IpAddr, Mac, RandomState>,
    /// Packet time never runs backwards for connection ageing.
    clock: u64,
    limits: Limits,
    pub stats: SwitchStats,
}

impl Switch {
    pub fn new(policy: Policy) -> Switch {
        Switch::with_limits(policy, Limits::default())
    }

    pub fn with_limits(policy: Policy, limits: Limits) -> Switch {
        let mut s = Switch {
            policy: Policy::default(),
            ports: Vec::new(),
            nets: Vec::new(),
            by_mac: HashMap::default(),
            by_ip: HashMap::default(),
            mappings: HashMap::default(),
            nat: NatState::default(),
            underlay: HashMap::default(),
            clock: 0,
            limits,
            stats: SwitchStats::default(),
        };
        s.set_policy(policy);
        s
    }

    /// Installs a new policy. Ports that keep their name keep their flows and connections
    /// under a new generation (reconciliation); new ports start empty.
    pub fn set_policy(&mut self, policy: Policy) {
        let mut old: HashMap<String, PortPipeline> = self
            .ports
            .drain(..)
            .map(|p| (p.port.name.clone(), p))
            .collect();
        self.ports = policy
            .ports
            .iter()
            .map(|p| match old.remove(&p.name) {
                Some(mut existing) => {
                    existing.set_layers(p.clone());
                    existing
                }
                None => PortPipeline::new(p.clone(), self.limits),
            })
            .collect();
        // Connections of removed ports give their NAT ports back.
        for mut gone in old.into_values() {
            gone.sweep(u64::MAX, &mut self.nat);
        }
        // Owners refer to ports by position: re-point them.
        let positions: HashMap<&str, usize> = policy
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.as_str(), i))
            .collect();
        let names: Vec<String> = self.ports.iter().map(|p| p.port.name.clone()).collect();
        for (owner, _) in self.nat.owners.values_mut() {
            if let Some(i) = names.get(*owner).and_then(|n| positions.get(n.as_str())) {
                *owner = *i;
            }
        }
        self.nets = policy
            .ports
            .iter()
            .map(|p| policy.networks.iter().position(|n| n.name == p.network))
            .collect();
        self.by_mac = policy
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| (p.mac, i))
            .collect();
        self.by_ip = policy
            .ports
            .iter()
            .enumerate()
            .flat_map(|(i, p)| p.ips.iter().map(move |ip| (*ip, i)))
            .collect();
        self.mappings = policy
            .ports
            .iter()
            .enumerate()
            .flat_map(|(i, p)| {
                p.port_mappings
                    .iter()
                    .map(move |m| ((m.protocol, m.external_port), i))
            })
            .collect();
        // A mapped host port is never handed out by SNAT.
        for &(protocol, port) in self.mappings.keys() {
            for &ip in &policy.uplink.ips {
                let single = strata_rules::model::PortRange::single(port);
                let _ = self.nat.pools.allocate(ip, protocol, single, port);
            }
        }
        self.policy = policy;
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn ports(&self) -> &[PortPipeline] {
        &self.ports
    }

    /// The gateway address of an endpoint's network (where ICMP errors come from).
    pub fn gateway_of(&self, p: PortId) -> Option<IpAddr> {
        match p {
            PortId::Endpoint(i) => self.network_of(i)?.gateway,
            PortId::Uplink => None,
        }
    }

    /// NAT ports in use on the host.
    pub fn nat_bindings(&self) -> usize {
        self.nat.owners.len()
    }

    /// The UDP ports on which the uplink receives VXLAN.
    pub fn vxlan_ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.policy
            .networks
            .iter()
            .filter(|n| n.driver == Driver::Overlay)
            .map(|n| n.vxlan_port)
    }

    pub fn port_name(&self, p: PortId) -> &str {
        match p {
            PortId::Endpoint(i) => self.ports.get(i).map_or("?", |p| p.port.name.as_str()),
            PortId::Uplink => &self.policy.uplink.name,
        }
    }

    pub fn port_by_name(&self, name: &str) -> Option<PortId> {
        if name == self.policy.uplink.name {
            return Some(PortId::Uplink);
        }
        self.ports
            .iter()
            .position(|p| p.port.name == name)
            .map(PortId::Endpoint)
    }

    /// The ingress port of a frame (DESIGN §4): the port named by the capture, else the
    /// endpoint whose MAC is the source MAC, else — for frames without a real link layer
    /// (zero source MAC: raw IP captures) — the endpoint owning the source IP, else the
    /// uplink.
    pub fn ingress_of(&self, named: Option<&str>, src_mac: Mac, src_ip: Option<IpAddr>) -> PortId {
        if let Some(p) = named.and_then(|n| self.port_by_name(n)) {
            return p;
        }
        if let Some(&i) = self.by_mac.get(&src_mac) {
            return PortId::Endpoint(i);
        }
        if src_mac == Mac::ZERO
            && let Some(&i) = src_ip.and_then(|ip| self.by_ip.get(&ip))
        {
            return PortId::Endpoint(i);
        }
        PortId::Uplink
    }

    /// Processes one frame entering at `ingress` at packet time `ts_ns`.
    pub fn process(&mut self, ingress: PortId, frame: &FrameInfo, ts_ns: u64) -> Verdict {
        self.clock = self.clock.max(ts_ns);
        let now = self.clock;
        let direction = match ingress {
            PortId::Endpoint(_) => Direction::Out,
            PortId::Uplink => Direction::In,
        };
        let v = match frame {
            FrameInfo::Malformed => Verdict::drop(ingress, direction, DropReason::Parse),
            FrameInfo::Unsupported => Verdict::drop(ingress, direction, DropReason::Unsupported),
            FrameInfo::Arp { dst_mac, arp } => self.arp(ingress, direction, *dst_mac, arp),
            FrameInfo::Ip(m) => self.ip(ingress, direction, m, now),
            FrameInfo::Vxlan { vni, outer, inner } => match ingress {
                PortId::Uplink => self.vxlan(direction, *vni, outer, inner, now),
                // An endpoint sending VXLAN is just sending UDP.
                PortId::Endpoint(_) => self.ip(ingress, direction, outer, now),
            },
        };
        self.stats.packets += 1;
        match v.drop {
            Some(r) => self.stats.dropped[r.index()] += 1,
            None => self.stats.forwarded += 1,
        }
        v
    }

    fn network_of(&self, port: usize) -> Option<&Network> {
        self.nets
            .get(port)
            .copied()
            .flatten()
            .and_then(|n| self.policy.networks.get(n))
    }

    fn is_host_address(&self, ip: IpAddr) -> bool {
        self.policy.uplink.ips.contains(&ip)
    }

    /// The endpoint that owns a NAT binding or a port mapping of a host address.
    fn nat_owner(&mut self, m: &PacketMeta, now: u64) -> Option<usize> {
        // The (host address, protocol, port) the packet is for; for an ICMP error about
        // a packet the host sent, the quoted packet's source is.
        let (ip, protocol, port) = match m.related {
            Some(q) => (q.src_ip, q.protocol, q.src_port),
            None if proto::has_ports(m.fields.protocol) => {
                (m.fields.dst_ip, m.fields.protocol, m.fields.dst_port)
            }
            None => (m.fields.dst_ip, m.fields.protocol, m.icmp_id?),
        };
        if let Some(&(owner, c)) = self.nat.owners.get(&(ip, protocol, port))
            && let Some(p) = self.ports.get_mut(owner)
            && p.conns.live(c, now).is_some()
        {
            return Some(owner);
        }
        if proto::has_ports(protocol) {
            return self.mappings.get(&(protocol, port)).copied();
        }
        None
    }

    /// The rewrite of a packet routed (not bridged) to endpoint `q`.
    fn routed_to(&self, q: usize) -> Transposition {
        Transposition {
            dst_mac: Some(self.ports[q].port.mac),
            src_mac: Some(self.policy.uplink.mac),
            ..Transposition::NONE
        }
    }

    /// What leaving through the uplink does to a packet of endpoint `p`'s network.
    fn uplink_delivery(&self, p: usize) -> Transposition {
        let (driver, vlan) = match self.network_of(p) {
            Some(n) => (Some(n.driver), n.vlan),
            None => (None, None),
        };
        let mut t = match driver {
            Some(Driver::Nat | Driver::L2Bridge | Driver::Overlay) => Transposition {
                src_mac: Some(self.policy.uplink.mac),
                ..Transposition::NONE
            },
            _ => Transposition::NONE,
        };
        if let Some(v) = vlan {
            t.vlan = VlanOp::Push(v);
        }
        t
    }

    /// A delivery the flow table remembered.
    fn remembered(&self, p: usize, d: Delivery) -> Option<Route> {
        Some(match d {
            Delivery::Unknown => return None,
            Delivery::Uplink => Route::Uplink(self.uplink_delivery(p)),
            Delivery::Bridged(q) => Route::Endpoint(q as usize, Transposition::NONE),
            Delivery::Routed(q) => Route::Endpoint(q as usize, self.routed_to(q as usize)),
        })
    }

    /// Where a packet from endpoint `p` goes after its layers, and whether that is fixed
    /// by the policy alone (the flow table may remember it).
    fn route_from_endpoint(&mut self, p: usize, m: &PacketMeta, now: u64) -> (Route, Delivery) {
        let f = m.fields;
        let (driver, vlan) = match self.network_of(p) {
            Some(n) => (Some(n.driver), n.vlan),
            None => (None, None),
        };
        let to_uplink = |mut t: Transposition| {
            if let Some(v) = vlan {
                t.vlan = VlanOp::Push(v);
            }
            Route::Uplink(t)
        };
        if driver == Some(Driver::L2Tunnel) {
            return (Route::Uplink(self.uplink_delivery(p)), Delivery::Uplink);
        }
        if let Some(&q) = self.by_mac.get(&f.dst_mac) {
            return (
                Route::Endpoint(q, Transposition::NONE),
                Delivery::Bridged(q as u32),
            );
        }
        if let Some(&q) = self.by_ip.get(&f.dst_ip) {
            return (
                Route::Endpoint(q, self.routed_to(q)),
                Delivery::Routed(q as u32),
            );
        }
        if self.is_host_address(f.dst_ip)
            && let Some(q) = self.nat_owner(m, now)
        {
            return (Route::Endpoint(q, self.routed_to(q)), Delivery::Unknown);
        }
        if let Some(net) = self.network_of(p).filter(|n| n.driver == Driver::Overlay)
            && let Some(route) = net
                .remote_routes
                .iter()
                .find(|r| r.prefix.contains(f.dst_ip))
        {
            let uplink = &self.policy.uplink;
            let src_ip = uplink
                .ips
                .iter()
                .copied()
                .find(|a| a.is_ipv4() == route.provider_address.is_ipv4());
            let Some(src_ip) = src_ip else {
                return (Route::Drop(DropReason::NoRoute), Delivery::Unknown);
            };
            // EncapOverhead: 50 bytes over IPv4, 70 over IPv6 (a 40-byte outer header).
            let overhead = if route.provider_address.is_ipv4() {
                ENCAP_OVERHEAD
            } else {
                ENCAP_OVERHEAD + 20
            };
            if m.ip_len + u32::from(overhead) > u32::from(uplink.mtu) {
                let mtu = uplink.mtu.saturating_sub(overhead);
                return (Route::TooBig { mtu }, Delivery::Unknown);
            }
            let inner = Transposition {
                dst_mac: route.mac,
                ..Transposition::NONE
            };
            // The remote host's MAC as learned from its VXLAN, else the route's, else
            // broadcast on the underlay segment.
            let next_hop = self.underlay.get(&route.provider_address).copied();
            let encap = Encap {
                src_mac: uplink.mac,
                dst_mac: next_hop.or(route.mac).unwrap_or(Mac::BROADCAST),
                src_ip,
                dst_ip: route.provider_address,
                udp_src: entropy_port(&f),
                udp_dst: net.vxlan_port,
                vni: net.vni.unwrap_or(0),
            };
            let encapsulated = Transposition {
                encap: Some(encap),
                ..inner
            };
            return (to_uplink(encapsulated), Delivery::Unknown);
        }
        (Route::Uplink(self.uplink_delivery(p)), Delivery::Uplink)
    }

    /// Where a packet from the uplink goes.
    fn route_from_uplink(&mut self, m: &PacketMeta, now: u64) -> Route {
        let f = m.fields;
        let (q, mut t) = if let Some(&q) = self.by_mac.get(&f.dst_mac) {
            (q, Transposition::NONE)
        } else if let Some(&q) = self.by_ip.get(&f.dst_ip) {
            let t = match self.network_of(q).map(|n| n.driver) {
                // L2Bridge: the host MAC the container hid behind becomes its own again;
                // the sender stays who it was.
                Some(Driver::L2Bridge) => Transposition {
                    dst_mac: Some(self.ports[q].port.mac),
                    ..Transposition::NONE
                },
                _ => self.routed_to(q),
            };
            (q, t)
        } else if self.is_host_address(f.dst_ip) {
            match self.nat_owner(m, now) {
                Some(q) => (q, self.routed_to(q)),
                None => return Route::Drop(DropReason::NoRoute),
            }
        } else {
            return Route::Drop(DropReason::NoRoute);
        };
        let want = self.network_of(q).and_then(|n| n.vlan);
        if f.vlan != want {
            return Route::Drop(DropReason::VlanMismatch);
        }
        if f.vlan.is_some() {
            t.vlan = VlanOp::Pop;
        }
        Route::Endpoint(q, t)
    }

    fn ip(
        &mut self,
        ingress: PortId,
        direction: Direction,
        first: &PacketMeta,
        now: u64,
    ) -> Verdict {
        let mut decided = None;
        let mut rewrite = Transposition::NONE;
        let mut icmp_inner = None;
        let mut m = *first;
        let mut remembered = Delivery::Unknown;
        if let PortId::Endpoint(p) = ingress {
            let t = self.traverse(p, Direction::Out, &m, now);
            remembered = t.delivery;
            decided = t.decided.map(|d| (ingress, d));
            if let Some(r) = t.drop {
                return Verdict {
                    decided,
                    ..Verdict::drop(ingress, direction, r)
                };
            }
            rewrite = t.rewrite;
            icmp_inner = t.icmp_inner;
            m = rewritten(&m, &t.rewrite);
        }
        let route = match ingress {
            PortId::Endpoint(p) => match self.remembered(p, remembered) {
                Some(r) => r,
                None => {
                    let (r, d) = self.route_from_endpoint(p, &m, now);
                    if d != Delivery::Unknown {
                        self.ports[p].remember_delivery(Direction::Out, first, d);
                    }
                    r
                }
            },
            PortId::Uplink => self.route_from_uplink(&m, now),
        };
        let (q, delivery) = match route {
            // Delivery decided, not a layer.
            Route::Drop(r) => return Verdict::drop(ingress, direction, r),
            Route::TooBig { mtu } => {
                return Verdict {
                    answer: Some(Answer::TooBig { mtu }),
                    ..Verdict::drop(ingress, direction, DropReason::TooBig)
                };
            }
            Route::Uplink(t) => {
                return Verdict {
                    decided,
                    rewrite: rewrite.then(&t),
                    icmp_inner,
                    ..Verdict::forward(ingress, direction, PortId::Uplink)
                };
            }
            Route::Endpoint(q, t) => (q, t),
        };
        let mut v = self.deliver(
            ingress,
            direction,
            q,
            rewrite.then(&delivery),
            rewritten(&m, &delivery),
            decided,
            now,
        );
        v.icmp_inner = match (icmp_inner, v.icmp_inner) {
            (Some(a), Some(b)) => Some(a.then(&b)),
            (a, b) => b.or(a),
        };
        v
    }

    /// One port's traversal. When a SNAT finds its ports exhausted, the connections
    /// that have expired meanwhile (on any port: the pools are the host's) give their
    /// ports back, and the packet is tried once more.
    fn traverse(
        &mut self,
        p: usize,
        dir: Direction,
        m: &PacketMeta,
        now: u64,
    ) -> crate::port::Traversal {
        let t = self.ports[p].traverse(p, dir, m, now, &mut self.nat);
        if t.drop != Some(DropReason::NatPortsExhausted) {
            return t;
        }
        let mut freed = 0;
        for port in &mut self.ports {
            freed += port.sweep(now, &mut self.nat);
        }
        if freed == 0 {
            return t;
        }
        self.ports[p].traverse(p, dir, m, now, &mut self.nat)
    }

    /// The receiver's layers, inbound.
    #[allow(clippy::too_many_arguments)]
    fn deliver(
        &mut self,
        ingress: PortId,
        direction: Direction,
        q: usize,
        rewrite: Transposition,
        m: PacketMeta,
        mut decided: Option<(PortId, Decision)>,
        now: u64,
    ) -> Verdict {
        let t = self.traverse(q, Direction::In, &m, now);
        let egress = PortId::Endpoint(q);
        if let Some(d) = t.decided {
            decided = Some((egress, d));
        }
        if let Some(r) = t.drop {
            return Verdict {
                decided,
                ..Verdict::drop(ingress, direction, r)
            };
        }
        Verdict {
            decided,
            rewrite: rewrite.then(&t.rewrite),
            icmp_inner: t.icmp_inner,
            ..Verdict::forward(ingress, direction, egress)
        }
    }

    /// VXLAN from the uplink: the VNI picks the overlay network, the inner frame is
    /// delivered within it.
    fn vxlan(
        &mut self,
        direction: Direction,
        vni: u32,
        outer: &PacketMeta,
        inner: &VxlanInner,
        now: u64,
    ) -> Verdict {
        let ingress = PortId::Uplink;
        if !self.is_host_address(outer.fields.dst_ip) {
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
        let from = (outer.fields.src_ip, outer.fields.src_mac);
        if self.underlay.get(&from.0) != Some(&from.1) {
            self.underlay.insert(from.0, from.1);
        }
        let in_net = |sw: &Switch, q: &usize| sw.nets.get(*q).copied().flatten() == Some(net);
        let decap = Transposition {
            decap: true,
            ..Transposition::NONE
        };
        match inner {
            VxlanInner::Ip(m) => {
                let mut m = *m;
                m.fields.vni = Some(vni);
                let f = m.fields;
                let (q, t) =
                    if let Some(q) = self.by_mac.get(&f.dst_mac).filter(|q| in_net(self, q)) {
                        (*q, decap)
                    } else if let Some(q) = self.by_ip.get(&f.dst_ip).filter(|q| in_net(self, q)) {
                        (*q, decap.then(&self.routed_to(*q)))
                    } else {
                        return Verdict::drop(ingress, direction, DropReason::NoRoute);
                    };
                let m = rewritten(&m, &t);
                self.deliver(ingress, direction, q, t, m, None, now)
            }
            VxlanInner::Arp { arp, .. } => {
                match self
                    .by_ip
                    .get(&IpAddr::V4(arp.target_ip))
                    .filter(|q| in_net(self, q))
                {
                    Some(&q) => Verdict {
                        rewrite: decap,
                        ..Verdict::forward(ingress, direction, PortId::Endpoint(q))
                    },
                    None => Verdict::drop(ingress, direction, DropReason::NoRoute),
                }
            }
            VxlanInner::Other => Verdict::drop(ingress, direction, DropReason::Parse),
        }
    }

    /// Who answers for `ip` when asked from `ingress`: an endpoint (its MAC), or a
    /// network gateway (the host's MAC) for an endpoint of that network.
    fn arp_owner(&self, ingress: PortId, ip: std::net::Ipv4Addr) -> Option<Mac> {
        let ip = IpAddr::V4(ip);
        if let Some(&i) = self.by_ip.get(&ip) {
            let visible = match ingress {
                PortId::Endpoint(_) => true,
                // The physical network sees endpoints only where they are bridged to it.
                PortId::Uplink => self.network_of(i).is_some_and(|n| {
                    matches!(
                        n.driver,
                        Driver::Transparent | Driver::L2Bridge | Driver::L2Tunnel
                    )
                }),
            };
            return visible.then_some(self.ports[i].port.mac);
        }
        match ingress {
            // The gateway is the host.
            PortId::Endpoint(p) if self.network_of(p)?.gateway == Some(ip) => {
                Some(self.policy.uplink.mac)
            }
            _ => None,
        }
    }

    fn arp(
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
            self.stats.arp_replies += 1;
            return Verdict {
                answer: Some(Answer::Arp(arp_reply(arp, mac))),
                ..Verdict::forward(ingress, direction, ingress)
            };
        }
        match (self.by_mac.get(&dst_mac), ingress) {
            (Some(&q), _) => Verdict::forward(ingress, direction, PortId::Endpoint(q)),
            (None, PortId::Endpoint(_)) => Verdict::forward(ingress, direction, PortId::Uplink),
            (None, PortId::Uplink) => Verdict::drop(ingress, direction, DropReason::NoRoute),
        }
    }

    /// The names (layer, group, rule) of a decision, as verdicts print them.
    pub fn decision_names(
        &self,
        (port, d): (PortId, Decision),
    ) -> Option<strata_rules::reference::DecisionNames> {
        let PortId::Endpoint(p) = port else {
            return None;
        };
        let layer = &self.ports.get(p)?.layers().get(d.layer as usize)?.layer;
        Some(strata_rules::reference::DecisionNames::of(
            layer, d.dir, d.by,
        ))
    }
}

/// What a packet looks like after `t` (to the next stage's policy).
fn rewritten(m: &PacketMeta, t: &Transposition) -> PacketMeta {
    if t.is_identity() {
        return *m;
    }
    let (fields, icmp_id) = t.apply_fields(&m.fields, m.icmp_id);
    PacketMeta {
        fields,
        icmp_id,
        ..*m
    }
}

/// The outer UDP source port of an encapsulated flow: a hash of the inner flow in the
/// dynamic range (RFC 7348 §5), so the underlay's ECMP spreads flows.
fn entropy_port(f: &strata_rules::model::Fields) -> u16 {
    // A seedless hash: the same flow gets the same port on every run and host.
    let h = strata_rules::maglev::flow_hash(f, strata_rules::model::Distribution::FiveTuple);
    49152 + (h % 16384) as u16
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
