//! The switch: endpoint ports and the uplink, the MAC/IP table, and the paths of
//! DESIGN §2 — sender's layers outbound, then receiver's layers inbound; traffic from
//! the uplink crosses only the receiver's layers. ARP for known addresses is answered
//! by the switch itself (proxy ARP, as VFP does), so no ARP floods cross ports.
//!
//! Each frame has at most one output port: broadcast and multicast IP from an endpoint
//! goes to the uplink; flooding is not modelled.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use ahash::RandomState;
use strata_rules::model::{Direction, Driver, Mac, Policy};

use crate::drop::DropReason;
use crate::flow::PacketMeta;
use crate::layer::Decision;
use crate::packet::{ArpInfo, FrameKind, ParseError, Parsed};
use crate::port::{Limits, PortPipeline};

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
    /// Neither IP nor ARP.
    Unsupported,
    /// Could not be parsed.
    Malformed,
}

impl FrameInfo {
    /// What the switch needs of a parse result.
    pub fn of(parsed: &Result<Parsed, ParseError>) -> FrameInfo {
        match parsed {
            Err(_) => FrameInfo::Malformed,
            Ok(p) => match p.kind {
                FrameKind::Ip => FrameInfo::Ip(PacketMeta {
                    fields: p.fields,
                    icmp_id: p.icmp_id,
                    tcp_flags: p.tcp_flags,
                }),
                FrameKind::Arp(arp) => FrameInfo::Arp {
                    dst_mac: p.fields.dst_mac,
                    arp,
                },
                FrameKind::Other { .. } => FrameInfo::Unsupported,
            },
        }
    }
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
    /// The switch answered an ARP request: the answer (a frame to `ingress`) is this.
    pub arp_reply: Option<[u8; 42]>,
}

impl Verdict {
    fn drop(ingress: PortId, direction: Direction, reason: DropReason) -> Verdict {
        Verdict {
            ingress,
            direction,
            egress: None,
            drop: Some(reason),
            decided: None,
            arp_reply: None,
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

/// The host switch.
pub struct Switch {
    policy: Policy,
    ports: Vec<PortPipeline>,
    by_mac: HashMap<Mac, usize, RandomState>,
    by_ip: HashMap<IpAddr, usize, RandomState>,
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
            by_mac: HashMap::default(),
            by_ip: HashMap::default(),
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
        self.policy = policy;
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn ports(&self) -> &[PortPipeline] {
        &self.ports
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
        if src_mac == Mac::ZERO {
            if let Some(&i) = src_ip.and_then(|ip| self.by_ip.get(&ip)) {
                return PortId::Endpoint(i);
            }
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
        };
        self.stats.packets += 1;
        match v.drop {
            Some(r) => self.stats.dropped[r.index()] += 1,
            None => self.stats.forwarded += 1,
        }
        v
    }

    fn ip(&mut self, ingress: PortId, direction: Direction, m: &PacketMeta, now: u64) -> Verdict {
        let mut decided = None;
        if let PortId::Endpoint(p) = ingress {
            let t = self.ports[p].traverse(Direction::Out, m, now);
            decided = t.decided.map(|d| (ingress, d));
            if let Some(r) = t.drop {
                return Verdict {
                    decided,
                    ..Verdict::drop(ingress, direction, r)
                };
            }
        }
        let f = &m.fields;
        let dest = self
            .by_mac
            .get(&f.dst_mac)
            .or_else(|| self.by_ip.get(&f.dst_ip))
            .copied();
        let Some(q) = dest else {
            return match ingress {
                PortId::Endpoint(_) => Verdict {
                    ingress,
                    direction,
                    egress: Some(PortId::Uplink),
                    drop: None,
                    decided,
                    arp_reply: None,
                },
                PortId::Uplink => Verdict::drop(ingress, direction, DropReason::NoRoute),
            };
        };
        let t = self.ports[q].traverse(Direction::In, m, now);
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
            ingress,
            direction,
            egress: Some(egress),
            drop: None,
            decided,
            arp_reply: None,
        }
    }

    /// Who answers for `ip` when asked from `ingress`: an endpoint (its MAC), or a
    /// network gateway (the host's MAC) for an endpoint of that network.
    fn arp_owner(&self, ingress: PortId, ip: Ipv4Addr) -> Option<Mac> {
        let ip = IpAddr::V4(ip);
        if let Some(&i) = self.by_ip.get(&ip) {
            let target = &self.ports[i].port;
            let visible = match ingress {
                PortId::Endpoint(_) => true,
                // The physical network sees endpoints only where they are bridged to it.
                PortId::Uplink => self
                    .policy
                    .network(&target.network)
                    .is_some_and(|n| n.driver != Driver::Nat),
            };
            return visible.then_some(target.mac);
        }
        if let PortId::Endpoint(p) = ingress {
            let net = self.policy.network(&self.ports[p].port.network)?;
            if net.gateway == Some(ip) {
                return Some(self.policy.uplink.mac);
            }
        }
        None
    }

    fn arp(
        &mut self,
        ingress: PortId,
        direction: Direction,
        dst_mac: Mac,
        arp: &ArpInfo,
    ) -> Verdict {
        const REQUEST: u16 = 1;
        if arp.op == REQUEST {
            if let Some(mac) = self.arp_owner(ingress, arp.target_ip) {
                self.stats.arp_replies += 1;
                return Verdict {
                    ingress,
                    direction,
                    egress: Some(ingress),
                    drop: None,
                    decided: None,
                    arp_reply: Some(arp_reply(arp, mac)),
                };
            }
        }
        let egress = match (self.by_mac.get(&dst_mac), ingress) {
            (Some(&q), _) => Some(PortId::Endpoint(q)),
            (None, PortId::Endpoint(_)) => Some(PortId::Uplink),
            (None, PortId::Uplink) => None,
        };
        match egress {
            Some(e) => Verdict {
                ingress,
                direction,
                egress: Some(e),
                drop: None,
                decided: None,
                arp_reply: None,
            },
            None => Verdict::drop(ingress, direction, DropReason::NoRoute),
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

impl Switch {
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
