//! The reference evaluator: DESIGN §2 written as plainly as possible.
//!
//! This is the executable spec. It scans every list linearly, caches nothing, and keeps
//! connections in a `Vec`. The dataplane's fast engine (compiled classifiers, unified flow
//! table, connection table) must give the same verdict as [`RefSwitch::process`] for
//! every packet sequence; property tests hold it to that. Change semantics here first.
//!
//! What it decides, for one frame entering the switch:
//! 0. whether the sender may use its source (`crate::source`): an endpoint only its own
//!    MAC and addresses, the uplink no address of a container hidden from outside;
//! 1. the ingress port (the caller says which) and, for IP packets, the sender's layers
//!    outbound (top to bottom), unless the packet replies to a connection that port
//!    recorded;
//! 2. the destination: the endpoint whose MAC is the destination MAC (bridged), else the
//!    endpoint that owns the destination IP (routed: the destination MAC becomes the
//!    endpoint's and the source MAC the host's), else the uplink (traffic from the uplink
//!    that no endpoint owns is dropped with `no-route`);
//! 3. the receiver's layers inbound (bottom to top), with the same connection rule.
//!
//! Connections ("stateful"): a traversal that is allowed, where some layer's decision was
//! stateful (a stateful rule, or a default allow), records a connection on that port. A
//! packet in the other direction whose [`ConnKey`] is the reverse of a recorded one is
//! accepted without rule evaluation. Connections expire after [`crate::conn::timeouts`] of idleness;
//! a TCP RST ends one after it passes. When the policy changes (the generation bumps) a
//! connection is re-validated on its next packet: the original packet is evaluated against
//! the new policy, and if that is no longer a stateful allow the connection is cut.

use std::net::IpAddr;

use crate::conn::{
    ConnKey, Rewrite, Segment, TcpSeq, TcpState, TcpTrack, answers, conn_key, idle_timeout,
    reopens, tcp_flags, tcp_initial, tcp_step,
};
use crate::decision::{DecidedBy, DecisionNames};
use crate::model::{Action, Direction, Fields, Layer, Policy, Port, proto};

/// One layer's decision.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LayerDecision<'a> {
    pub action: &'a Action,
    pub by: DecidedBy,
    pub stateful: bool,
}

/// The best rule of a group for `f`: lowest priority number, ties to the earlier rule.
pub fn best_rule(rules: &[crate::model::Rule], f: &Fields) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, r) in rules.iter().enumerate() {
        if r.conditions.matches(f) && best.is_none_or(|b| r.priority < rules[b].priority) {
            best = Some(i);
        }
    }
    best
}

/// Evaluates one layer (DESIGN §2 "Evaluation of one layer").
pub fn evaluate_layer<'a>(layer: &'a Layer, dir: Direction, f: &Fields) -> LayerDecision<'a> {
    let mut last: Option<(usize, usize)> = None;
    for (gi, g) in layer.groups.iter().enumerate() {
        if !g.direction.applies(dir) || g.condition.as_ref().is_some_and(|c| !c.matches(f)) {
            continue;
        }
        if let Some(ri) = best_rule(&g.rules, f) {
            last = Some((gi, ri));
            if g.rules[ri].terminating {
                break;
            }
        }
    }
    if let Some((group, rule)) = last {
        let r = &layer.groups[group].rules[rule];
        return LayerDecision {
            action: &r.action,
            by: DecidedBy::Rule { group, rule },
            stateful: r.stateful || r.action.is_transposition(),
        };
    }
    let d = layer.defaults.for_direction(dir);
    match d.entries.iter().position(|e| e.conditions.matches(f)) {
        Some(i) => LayerDecision {
            action: &d.entries[i].action,
            by: DecidedBy::Default { entry: Some(i) },
            stateful: !d.entries[i].action.is_block(),
        },
        None => LayerDecision {
            action: &d.otherwise,
            by: DecidedBy::Default { entry: None },
            stateful: !d.otherwise.is_block(),
        },
    }
}

/// What a connection holds on to so that all its packets are translated alike: the NAT
/// port a SNAT allocated (external IP, protocol, port), and the backend a load balancer
/// chose (layer index, backend index).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct RefBindings {
    pub snat: Option<(IpAddr, u8, u16)>,
    pub backend: Option<(usize, usize)>,
}

/// The host's NAT ports in use. Allocation: the preferred port if it is in the rule's
/// range and free, else the lowest free port of the range.
#[derive(Clone, Debug, Default)]
pub struct RefNat {
    pub used: std::collections::BTreeSet<(IpAddr, u8, u16)>,
}

impl RefNat {
    pub fn allocate(
        &mut self,
        ip: IpAddr,
        p: u8,
        range: crate::model::PortRange,
        preferred: u16,
    ) -> Option<u16> {
        let port = if range.contains(preferred) && !self.used.contains(&(ip, p, preferred)) {
            Some(preferred)
        } else {
            (range.lo..=range.hi).find(|x| !self.used.contains(&(ip, p, *x)))
        }?;
        self.used.insert((ip, p, port));
        Some(port)
    }
}

/// The outcome of one port traversal.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PortDecision {
    pub allowed: bool,
    pub stateful: bool,
    /// The NAT had no port for this connection (the packet is dropped).
    pub exhausted: bool,
    /// The blocking layer's decision, or for an allow the last layer's (in traversal
    /// order). `None` for a port without layers.
    pub decided: Option<DecisionNames>,
    /// The packet as it leaves the port, and the layers' rewrite.
    pub out: Fields,
    pub out_icmp_id: Option<u16>,
    pub rewrite: Rewrite,
    pub bindings: RefBindings,
}

/// Traverses a port's layers in `dir` order. A block ends the traversal; a transposition
/// changes what the following layers see. SNAT takes its port from `reuse` (the
/// connection's binding) or else from `nat`; with neither, the source port stays.
pub fn evaluate_port(
    port: &Port,
    dir: Direction,
    f: &Fields,
    icmp_id: Option<u16>,
    mut nat: Option<&mut RefNat>,
    reuse: Option<RefBindings>,
) -> PortDecision {
    let n = port.layers.len();
    let mut d = PortDecision {
        allowed: true,
        stateful: false,
        exhausted: false,
        decided: None,
        out: *f,
        out_icmp_id: icmp_id,
        rewrite: Rewrite::default(),
        bindings: reuse.unwrap_or_default(),
    };
    for step in 0..n {
        let li = match dir {
            Direction::Out => step,
            Direction::In => n - 1 - step,
        };
        let layer = &port.layers[li];
        let e = evaluate_layer(layer, dir, &d.out);
        d.decided = Some(DecisionNames::of(layer, dir, e.by));
        let has_ports = proto::has_ports(d.out.protocol);
        let mut r = Rewrite::default();
        match e.action {
            Action::Block => {
                d.allowed = false;
                d.stateful = false;
                return d;
            }
            Action::Allow => {}
            Action::Snat { ip, ports } => {
                r.src_ip = Some(*ip);
                if let Some(k) = conn_key(&d.out, d.out_icmp_id) {
                    let port = match d.bindings.snat {
                        Some((bip, bp, port)) if bip == *ip && bp == k.protocol => Some(port),
                        _ => match nat.as_deref_mut() {
                            Some(nat) => match nat.allocate(*ip, k.protocol, *ports, k.src_port) {
                                Some(p) => Some(p),
                                None => {
                                    d.allowed = false;
                                    d.exhausted = true;
                                    return d;
                                }
                            },
                            None => None,
                        },
                    };
                    if let Some(port) = port {
                        d.bindings.snat = Some((*ip, k.protocol, port));
                        r.src_port = Some(port);
                    }
                }
            }
            Action::Dnat { ip, port } => {
                r.dst_ip = Some(*ip);
                r.dst_port = if has_ports { *port } else { None };
            }
            Action::LoadBalance(lb) => {
                let chosen = match d.bindings.backend {
                    Some((l, b)) if l == li => Some(b),
                    _ => crate::maglev::Maglev::new(&lb.backends)
                        .lookup(crate::maglev::flow_hash(&d.out, lb.distribution)),
                };
                if let Some((i, b)) = chosen.and_then(|i| lb.backends.get(i).map(|b| (i, b))) {
                    d.bindings.backend = Some((li, i));
                    r.dst_ip = Some(b.ip);
                    if b.port != 0 && has_ports {
                        r.dst_port = Some(b.port);
                    }
                }
            }
            Action::SetMac { src, dst } => {
                r.src_mac = *src;
                r.dst_mac = *dst;
            }
        }
        let (out, id) = r.apply(&d.out, d.out_icmp_id);
        d.out = out;
        d.out_icmp_id = id;
        d.rewrite = d.rewrite.then(r);
        d.stateful |= e.stateful;
    }
    d
}

/// A packet as the reference sees it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RefPacket {
    pub fields: Fields,
    pub icmp_id: Option<u16>,
    pub tcp_flags: u8,
    /// A TCP segment's sequence space.
    pub tcp_seq: TcpSeq,
    /// Packet time in nanoseconds.
    pub ts_ns: u64,
}

/// The reference verdict of one packet.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RefVerdict {
    /// The output port's name, for a forward.
    pub out_port: Option<String>,
    /// Drop reason name (`acl`, `acl-default`, `no-route`, `nat-ports-exhausted`).
    pub reason: Option<&'static str>,
    /// The decision that mattered: the blocking one for a drop, else the last port's last
    /// evaluated layer; `None` when every traversal was a connection's reply.
    pub decided: Option<DecisionNames>,
    /// The packet as it leaves, for a forward.
    pub fields: Option<Fields>,
}

#[derive(Clone, Debug)]
struct RefConn {
    port: usize,
    orig_dir: Direction,
    key: ConnKey,
    exit_key: ConnKey,
    /// The packet that opened (or last re-validated) the connection, for re-validation.
    orig_fields: Fields,
    orig_icmp_id: Option<u16>,
    /// The ICMP type and code of the packet that opened it (echo: which type answers).
    opened_by: Option<(u8, u8)>,
    rewrite: Rewrite,
    reply: Rewrite,
    bindings: RefBindings,
    tcp: TcpState,
    track: TcpTrack,
    last_seen: u64,
    generation: u64,
}

/// The whole switch as the spec sees it: a policy, a generation, connections, NAT ports.
pub struct RefSwitch {
    pub policy: Policy,
    generation: u64,
    conns: Vec<RefConn>,
    nat: RefNat,
    clock: u64,
}

/// One traversal's result inside the switch.
struct Pass {
    allowed: bool,
    reason: Option<&'static str>,
    decided: Option<DecisionNames>,
    fields: Fields,
    icmp_id: Option<u16>,
}

impl RefSwitch {
    pub fn new(policy: Policy) -> RefSwitch {
        let mut s = RefSwitch {
            policy: Policy::default(),
            generation: 0,
            conns: Vec::new(),
            nat: RefNat::default(),
            clock: 0,
        };
        s.set_policy(policy);
        s
    }

    /// Replaces the policy: every connection will be re-validated on its next packet.
    /// A mapped host port is never handed out by SNAT.
    pub fn set_policy(&mut self, policy: Policy) {
        for p in &policy.ports {
            for m in &p.port_mappings {
                for ip in &policy.uplink.ips {
                    self.nat.used.insert((*ip, m.protocol, m.external_port));
                }
            }
        }
        self.policy = policy;
        self.generation += 1;
    }

    fn expired(c: &RefConn, now: u64) -> bool {
        now.saturating_sub(c.last_seen) > idle_timeout(c.key.protocol, c.tcp)
    }

    fn remove(&mut self, i: usize) {
        let c = self.conns.remove(i);
        if let Some(b) = c.bindings.snat {
            self.nat.used.remove(&b);
        }
    }

    /// Finds a live connection matching `pred`, forgetting expired ones on the way.
    fn find(&mut self, now: u64, pred: impl Fn(&RefConn) -> bool) -> Option<usize> {
        let i = self.conns.iter().position(pred)?;
        if Self::expired(&self.conns[i], now) {
            self.remove(i);
            return None;
        }
        Some(i)
    }

    /// What a packet does to connection `i`: its TCP state and clock move on, an exact
    /// RST removes it (after the packet, which passes), an RST outside the window is
    /// refused and changes nothing.
    fn touch(&mut self, i: usize, pkt: &RefPacket, from_orig: bool) -> Segment {
        let c = &mut self.conns[i];
        let step = if c.key.protocol == proto::TCP {
            tcp_step(
                &mut c.tcp,
                &mut c.track,
                from_orig,
                pkt.tcp_flags,
                &pkt.tcp_seq,
            )
        } else {
            Segment::Pass
        };
        match step {
            Segment::Pass => c.last_seen = pkt.ts_ns,
            Segment::Ends => self.remove(i),
            Segment::OutOfWindow => {}
        }
        step
    }

    /// One traversal of `port` in `dir`.
    fn traverse(&mut self, port: usize, dir: Direction, pkt: &RefPacket) -> Pass {
        let (f, id) = (pkt.fields, pkt.icmp_id);
        let key = conn_key(&f, id);
        let now = pkt.ts_ns;
        let pass = |allowed, decided, (fields, icmp_id): (Fields, Option<u16>)| Pass {
            allowed,
            reason: None,
            decided,
            fields,
            icmp_id,
        };
        // A reply of a recorded connection passes without evaluation and is translated
        // back, once the connection is known to hold under the current policy.
        if let Some(k) = key
            && let Some(i) = self.find(now, |c| {
                c.port == port
                    && c.orig_dir == dir.reverse()
                    && c.exit_key == k.reverse()
                    && answers(f.protocol, c.opened_by, f.icmp)
            })
        {
            let c = &self.conns[i];
            let still_holds = c.generation == self.generation || {
                let d = evaluate_port(
                    &self.policy.ports[port],
                    c.orig_dir,
                    &c.orig_fields,
                    c.orig_icmp_id,
                    None,
                    Some(c.bindings),
                );
                d.allowed && d.stateful
            };
            let finished = c.key.protocol == proto::TCP && reopens(c.tcp, pkt.tcp_flags);
            if still_holds && !finished {
                self.conns[i].generation = self.generation;
                let out = self.conns[i].reply.apply(&f, id);
                if self.touch(i, pkt, false) == Segment::OutOfWindow {
                    return out_of_window(f, id);
                }
                return pass(true, None, out);
            }
            // Cut by the policy, or finished and reopened the other way by a bare SYN:
            // the packet is judged as a new one.
            self.remove(i);
        }
        let existing =
            key.and_then(|k| self.find(now, |c| c.port == port && c.orig_dir == dir && c.key == k));
        let reuse = existing.map(|i| self.conns[i].bindings);
        let d = evaluate_port(
            &self.policy.ports[port],
            dir,
            &f,
            id,
            Some(&mut self.nat),
            reuse,
        );
        let fresh = d
            .bindings
            .snat
            .filter(|b| reuse.and_then(|r| r.snat) != Some(*b));
        if d.exhausted {
            return Pass {
                allowed: false,
                reason: Some("nat-ports-exhausted"),
                decided: d.decided,
                fields: f,
                icmp_id: id,
            };
        }
        let free = |nat: &mut RefNat, b: Option<(IpAddr, u8, u16)>| {
            if let Some(b) = b {
                nat.used.remove(&b);
            }
        };
        match (d.allowed && d.stateful, existing, key) {
            (true, Some(i), _) => {
                let c = &mut self.conns[i];
                c.generation = self.generation;
                c.orig_fields = f;
                c.orig_icmp_id = id;
                let out = c.rewrite.apply(&f, id);
                if c.bindings.snat != d.bindings.snat {
                    free(&mut self.nat, fresh);
                }
                if self.touch(i, pkt, true) == Segment::OutOfWindow {
                    return out_of_window(f, id);
                }
                pass(true, d.decided, out)
            }
            (true, None, Some(k)) => {
                // A connection opened by a RST never exists.
                if f.protocol == proto::TCP && pkt.tcp_flags & tcp_flags::RST != 0 {
                    free(&mut self.nat, fresh);
                } else {
                    // A new connection replaces any whose replies would look the same
                    // (two connections translated to one exit key) or that it continues.
                    let exit_key = conn_key(&d.out, d.out_icmp_id).unwrap_or(k);
                    while let Some(i) = self.conns.iter().position(|c| {
                        c.port == port
                            && c.orig_dir == dir
                            && (c.key == k || c.exit_key == exit_key)
                    }) {
                        self.remove(i);
                    }
                    self.conns.push(RefConn {
                        port,
                        orig_dir: dir,
                        key: k,
                        exit_key,
                        orig_fields: f,
                        orig_icmp_id: id,
                        opened_by: f.icmp,
                        rewrite: d.rewrite,
                        reply: Rewrite::reply_of(&f, id, &d.out, d.out_icmp_id),
                        bindings: d.bindings,
                        tcp: tcp_initial(pkt.tcp_flags),
                        track: TcpTrack::opened(pkt.tcp_flags, &pkt.tcp_seq),
                        last_seen: now,
                        generation: self.generation,
                    });
                }
                pass(true, d.decided, (d.out, d.out_icmp_id))
            }
            (_, existing, _) => {
                free(&mut self.nat, fresh);
                if let Some(i) = existing {
                    // The policy no longer allows this connection statefully: cut it.
                    self.remove(i);
                }
                if d.allowed {
                    pass(true, d.decided, (d.out, d.out_icmp_id))
                } else {
                    let reason = match &d.decided {
                        Some(n) if n.group.is_none() => "acl-default",
                        _ => "acl",
                    };
                    Pass {
                        allowed: false,
                        reason: Some(reason),
                        decided: d.decided,
                        fields: f,
                        icmp_id: id,
                    }
                }
            }
        }
    }

    /// The index of the endpoint that owns `ip`.
    fn owner_of(&self, ip: IpAddr) -> Option<usize> {
        self.policy.ports.iter().position(|p| p.ips.contains(&ip))
    }

    /// The endpoint behind a host address: the owner of a live NAT binding, else a port
    /// mapping.
    fn nat_owner(&mut self, f: &Fields, icmp_id: Option<u16>, now: u64) -> Option<usize> {
        let port = if proto::has_ports(f.protocol) {
            f.dst_port
        } else {
            icmp_id?
        };
        let b = Some((f.dst_ip, f.protocol, port));
        if let Some(i) = self.find(now, |c| c.bindings.snat == b) {
            return Some(self.conns[i].port);
        }
        if !proto::has_ports(f.protocol) {
            return None;
        }
        self.policy.ports.iter().position(|p| {
            p.port_mappings
                .iter()
                .any(|m| m.protocol == f.protocol && m.external_port == f.dst_port)
        })
    }

    /// Whether the endpoint at `i` is on a network the outside cannot reach directly.
    fn hidden(&self, i: usize) -> bool {
        let net = self
            .policy
            .ports
            .get(i)
            .and_then(|p| self.policy.network(&p.network));
        net.is_some_and(|n| crate::source::hidden_from_outside(n.driver))
    }

    /// Processes one IP packet entering at `in_port` (`None` = the uplink).
    pub fn process(&mut self, in_port: Option<usize>, pkt: &RefPacket) -> RefVerdict {
        let now = self.clock.max(pkt.ts_ns);
        self.clock = now;
        // Source validation: an endpoint sends only as itself; the outside does not pose
        // as a container it cannot reach.
        let spoofed = match in_port {
            Some(p) => !crate::source::endpoint_may_send(&self.policy.ports[p], &pkt.fields),
            None => self
                .owner_of(pkt.fields.src_ip)
                .is_some_and(|i| self.hidden(i)),
        };
        if spoofed {
            return drop_verdict(Some("spoofed-source"), None);
        }
        let mut pkt = RefPacket { ts_ns: now, ..*pkt };
        let mut decided = None;
        if let Some(p) = in_port {
            let out = self.traverse(p, Direction::Out, &pkt);
            if !out.allowed {
                return drop_verdict(out.reason, out.decided);
            }
            decided = out.decided;
            pkt.fields = out.fields;
            pkt.icmp_id = out.icmp_id;
        }
        let f = pkt.fields;
        if in_port.is_none() {
            let direct = self
                .policy
                .ports
                .iter()
                .position(|q| q.mac == f.dst_mac)
                .or_else(|| self.owner_of(f.dst_ip));
            // Only the host itself reaches a hidden container directly.
            let from_host = self.policy.uplink.ips.contains(&f.src_ip);
            if direct.is_some_and(|i| self.hidden(i)) && !from_host {
                return drop_verdict(Some("not-exposed"), None);
            }
        }
        // Bridged when the destination MAC is the endpoint's; routed through the gateway
        // (destination MAC the endpoint's, source MAC the host's) when found by IP, or by
        // a NAT binding or port mapping of a host address.
        let by_mac = self.policy.ports.iter().position(|q| q.mac == f.dst_mac);
        let routed = match by_mac {
            Some(_) => None,
            None => self.owner_of(f.dst_ip).or_else(|| {
                if self.policy.uplink.ips.contains(&f.dst_ip) {
                    self.nat_owner(&f, pkt.icmp_id, now)
                } else {
                    None
                }
            }),
        };
        let dest = match (by_mac, routed) {
            (Some(q), _) => Some(q),
            (None, Some(q)) => {
                pkt.fields.dst_mac = self.policy.ports[q].mac;
                pkt.fields.src_mac = self.policy.uplink.mac;
                Some(q)
            }
            (None, None) => None,
        };
        let Some(q) = dest else {
            return match in_port {
                Some(_) => RefVerdict {
                    out_port: Some(self.policy.uplink.name.clone()),
                    reason: None,
                    decided,
                    fields: Some(pkt.fields),
                },
                None => drop_verdict(Some("no-route"), None),
            };
        };
        let inb = self.traverse(q, Direction::In, &pkt);
        if !inb.allowed {
            return drop_verdict(inb.reason, inb.decided);
        }
        RefVerdict {
            out_port: Some(self.policy.ports[q].name.clone()),
            reason: None,
            decided: inb.decided.or(decided),
            fields: Some(inb.fields),
        }
    }
}

/// A TCP RST outside the window: dropped, no rule decided it.
fn out_of_window(fields: Fields, icmp_id: Option<u16>) -> Pass {
    Pass {
        allowed: false,
        reason: Some("tcp-out-of-window"),
        decided: None,
        fields,
        icmp_id,
    }
}

fn drop_verdict(reason: Option<&'static str>, d: Option<DecisionNames>) -> RefVerdict {
    RefVerdict {
        out_port: None,
        reason,
        decided: d,
        fields: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    fn fields(src: &str, dst: &str, protocol: u8, sp: u16, dp: u16) -> Fields {
        Fields {
            src_mac: Mac::ZERO,
            dst_mac: Mac::ZERO,
            vlan: None,
            vni: None,
            src_ip: src.parse().unwrap(),
            dst_ip: dst.parse().unwrap(),
            protocol,
            src_port: sp,
            dst_port: dp,
            icmp: None,
        }
    }

    fn rule(id: &str, priority: u32, action: Action, terminating: bool, c: Conditions) -> Rule {
        Rule {
            id: id.into(),
            priority,
            conditions: c,
            action,
            terminating,
            stateful: true,
        }
    }

    fn tcp_port(p: u16) -> Conditions {
        Conditions {
            protocol: vec![proto::TCP],
            dst_port: vec![PortRange::single(p)],
            ..Conditions::default()
        }
    }

    #[test]
    fn priority_then_order_then_last_group_then_terminating() {
        let mut layer = Layer {
            name: "acl".into(),
            groups: vec![
                Group {
                    name: "g1".into(),
                    direction: GroupDirection::Both,
                    condition: None,
                    rules: vec![
                        rule("a", 10, Action::Allow, false, tcp_port(80)),
                        rule("b", 5, Action::Block, false, tcp_port(80)),
                        rule("c", 5, Action::Allow, false, tcp_port(80)),
                    ],
                },
                Group {
                    name: "g2".into(),
                    direction: GroupDirection::In,
                    condition: None,
                    rules: vec![rule("d", 100, Action::Allow, false, Conditions::any())],
                },
            ],
            defaults: Defaults::allow_all(),
        };
        let f = fields("198.18.0.1", "198.18.0.2", proto::TCP, 1000, 80);
        // Out: only g1 applies; priority 5 beats 10, and "b" is written before "c".
        let d = evaluate_layer(&layer, Direction::Out, &f);
        assert_eq!(d.by, DecidedBy::Rule { group: 0, rule: 1 });
        assert!(d.action.is_block());
        // In: g2 also selects a rule and, being last, decides.
        let d = evaluate_layer(&layer, Direction::In, &f);
        assert_eq!(d.by, DecidedBy::Rule { group: 1, rule: 0 });
        // A terminating rule in g1 decides at once.
        layer.groups[0].rules[1].terminating = true;
        let d = evaluate_layer(&layer, Direction::In, &f);
        assert_eq!(d.by, DecidedBy::Rule { group: 0, rule: 1 });
    }

    #[test]
    fn defaults_by_protocol() {
        let layer = Layer {
            name: "acl".into(),
            groups: vec![],
            defaults: Defaults {
                outbound: DefaultPolicy::allow_all(),
                inbound: DefaultPolicy {
                    entries: vec![DefaultRule {
                        name: "tcp".into(),
                        conditions: Conditions {
                            protocol: vec![proto::TCP],
                            ..Conditions::default()
                        },
                        action: Action::Allow,
                    }],
                    otherwise: Action::Block,
                },
            },
        };
        let tcp = fields("198.18.0.1", "198.18.0.2", proto::TCP, 1, 2);
        let gre = fields("198.18.0.1", "198.18.0.2", proto::GRE, 0, 0);
        let d = evaluate_layer(&layer, Direction::In, &tcp);
        assert_eq!(d.by, DecidedBy::Default { entry: Some(0) });
        assert!(d.stateful);
        let d = evaluate_layer(&layer, Direction::In, &gre);
        assert!(d.action.is_block());
        assert_eq!(
            DecisionNames::of(&layer, Direction::In, d.by).rule,
            "default".to_string()
        );
        assert!(
            !evaluate_layer(&layer, Direction::Out, &gre)
                .action
                .is_block()
        );
    }
}
