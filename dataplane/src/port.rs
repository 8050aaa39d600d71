//! One port's packet path: the unified flow table in front (fast path), the layers and
//! connection tracking behind it (slow path), and the port's counters.
//!
//! The slow path is `strata_rules::reference::RefSwitch::traverse` step for step, so the
//! two agree; the fast path answers only when the cached entry provably gives the same
//! answer (same fields, same generation, its connection still alive).

use std::collections::HashMap;
use std::net::IpAddr;

use ahash::RandomState;
use smallvec::SmallVec;
use strata_rules::maglev::flow_hash;
use strata_rules::model::{Action, Direction, Fields, Port, proto};
use strata_rules::reference::{ConnKey, DecidedBy, Rewrite, conn_key, tcp_flags, tcp_initial};

use crate::conntrack::{Bindings, ConnRef, ConnTable, Connection};
use crate::drop::DropReason;
use crate::flow::{FlowKey, PacketMeta};
use crate::layer::{CompiledLayer, Decision};
use crate::nat::NatPools;
use crate::transpose::{InnerRewrite, Transposition};
use crate::uft::{CachedAction, Delivery, FlowEntry, FlowPins, FlowTable};

/// The host's NAT state, shared by every port: the port pools of each external address,
/// and which port's connection owns each allocated binding (so the switch can deliver
/// replies that arrive on the uplink).
#[derive(Default)]
pub struct NatState {
    pub pools: NatPools,
    pub owners: HashMap<(IpAddr, u8, u16), (usize, ConnRef), RandomState>,
}

impl NatState {
    fn release(&mut self, b: &Bindings) {
        if let Some((ip, p, port)) = b.snat {
            self.pools.free(ip, p, port);
            self.owners.remove(&(ip, p, port));
        }
    }
}

/// Table sizes and compilation choices of a port.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub flows: usize,
    pub connections: usize,
    /// Groups with at least this many rules are compiled to a classifier; smaller ones
    /// are scanned (faster below a few dozen rules).
    pub classifier_min_rules: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            flows: 1 << 20,
            connections: 1 << 20,
            classifier_min_rules: 32,
        }
    }
}

/// Hit counters of one layer: per rule (by group), and per default entry for each
/// direction (the last slot counts `otherwise`).
#[derive(Clone, Debug, Default)]
pub struct LayerCounters {
    pub rules: Vec<Vec<u64>>,
    pub default_out: Vec<u64>,
    pub default_in: Vec<u64>,
}

/// Counters of one port.
#[derive(Clone, Debug, Default)]
pub struct PortCounters {
    pub packets_out: u64,
    pub packets_in: u64,
    pub dropped: u64,
    pub fast_path: u64,
    pub slow_path: u64,
    pub layers: Vec<LayerCounters>,
}

/// The result of one traversal of a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Traversal {
    /// `None` = allowed.
    pub drop: Option<DropReason>,
    /// The blocking decision, or for an allow the last layer evaluated; `None` for a
    /// connection's reply.
    pub decided: Option<Decision>,
    /// What the port's layers rewrite in the packet (identity for most flows).
    pub rewrite: Transposition,
    /// For an ICMP error about one of this port's connections: the rewrite of the packet
    /// it quotes.
    pub icmp_inner: Option<InnerRewrite>,
    /// Where the switch delivered this flow before, if the flow table remembers.
    pub delivery: Delivery,
}

impl Traversal {
    fn allow(decided: Option<Decision>, rewrite: Transposition) -> Traversal {
        Traversal {
            drop: None,
            decided,
            rewrite,
            icmp_inner: None,
            delivery: Delivery::Unknown,
        }
    }
    fn drop(reason: DropReason, decided: Option<Decision>) -> Traversal {
        Traversal {
            drop: Some(reason),
            decided,
            rewrite: Transposition::NONE,
            icmp_inner: None,
            delivery: Delivery::Unknown,
        }
    }
}

struct Evaluation {
    allowed: bool,
    stateful: bool,
    /// A drop that is not a layer's decision (NAT ports exhausted).
    failed: Option<DropReason>,
    decided: Option<Decision>,
    hits: SmallVec<[Decision; 4]>,
    rewrite: Transposition,
    /// The packet as it leaves the port.
    out: Fields,
    out_icmp_id: Option<u16>,
    /// What this evaluation allocated or reused.
    bindings: Bindings,
    /// Whether `bindings.snat` was newly allocated (to be released if unused).
    fresh_snat: bool,
}

/// The rewrite that turns a reply of a connection (entered as `entry`, left as `exit`)
/// back into the reverse of `entry`: the spec's `Rewrite::reply_of`, as a transposition.
fn reply_rewrite(
    entry: &Fields,
    entry_id: Option<u16>,
    exit: &Fields,
    exit_id: Option<u16>,
) -> Transposition {
    let r = Rewrite::reply_of(entry, entry_id, exit, exit_id);
    Transposition {
        src_mac: r.src_mac,
        dst_mac: r.dst_mac,
        src_ip: r.src_ip,
        dst_ip: r.dst_ip,
        src_port: r.src_port,
        dst_port: r.dst_port,
        ..Transposition::NONE
    }
}

/// A port with its compiled layers and state.
pub struct PortPipeline {
    pub port: Port,
    layers: Vec<CompiledLayer>,
    pub generation: u64,
    pub flows: FlowTable,
    pub conns: ConnTable,
    pub counters: PortCounters,
    limits: Limits,
}

impl PortPipeline {
    pub fn new(port: Port, limits: Limits) -> PortPipeline {
        let mut p = PortPipeline {
            port: Port {
                layers: Vec::new(),
                ..port.clone()
            },
            layers: Vec::new(),
            generation: 1,
            flows: FlowTable::new(limits.flows),
            conns: ConnTable::new(limits.connections),
            counters: PortCounters::default(),
            limits,
        };
        p.set_layers(port);
        p
    }

    /// Installs a new policy for this port: bumps the generation, so every cached flow
    /// and every connection is re-validated on its next packet.
    pub fn set_layers(&mut self, port: Port) {
        self.counters.layers = port
            .layers
            .iter()
            .map(|l| LayerCounters {
                rules: l.groups.iter().map(|g| vec![0; g.rules.len()]).collect(),
                default_out: vec![0; l.defaults.outbound.entries.len() + 1],
                default_in: vec![0; l.defaults.inbound.entries.len() + 1],
            })
            .collect();
        self.layers = port
            .layers
            .iter()
            .cloned()
            .map(|l| CompiledLayer::compile(l, self.limits.classifier_min_rules))
            .collect();
        self.port = Port {
            layers: Vec::new(),
            ..port
        };
        self.generation += 1;
    }

    pub fn layers(&self) -> &[CompiledLayer] {
        &self.layers
    }

    /// Runs the layers in `dir` order. Transpositions change what later layers see; a
    /// SNAT allocates a port from `nat` unless `reuse` holds the connection's binding
    /// (re-validation passes no `nat` and allocates nothing).
    fn evaluate(
        &self,
        dir: Direction,
        f: &Fields,
        icmp_id: Option<u16>,
        mut nat: Option<&mut NatState>,
        reuse: Option<Bindings>,
    ) -> Evaluation {
        let mut ev = Evaluation {
            allowed: true,
            stateful: false,
            failed: None,
            decided: None,
            hits: SmallVec::new(),
            rewrite: Transposition::NONE,
            out: *f,
            out_icmp_id: icmp_id,
            bindings: reuse.unwrap_or_default(),
            fresh_snat: false,
        };
        let n = self.layers.len();
        for step in 0..n {
            let li = match dir {
                Direction::Out => step,
                Direction::In => n - 1 - step,
            };
            let layer = &self.layers[li];
            let o = layer.evaluate(dir, &ev.out);
            let d = Decision {
                layer: li as u16,
                dir,
                by: o.by,
            };
            ev.hits.push(d);
            ev.decided = Some(d);
            let mut t = Transposition::NONE;
            match o.action {
                Action::Block => {
                    ev.allowed = false;
                    ev.stateful = false;
                    return ev;
                }
                Action::Allow => {}
                Action::Snat { ip, ports } => {
                    t.src_ip = Some(*ip);
                    let key = conn_key(&ev.out, ev.out_icmp_id);
                    if let Some(k) = key {
                        let port = match ev.bindings.snat {
                            Some((bip, bp, port)) if bip == *ip && bp == k.protocol => Some(port),
                            _ => nat.as_deref_mut().and_then(|nat| {
                                nat.pools.allocate(*ip, k.protocol, *ports, k.src_port)
                            }),
                        };
                        match port {
                            Some(port) => {
                                if ev.bindings.snat != Some((*ip, k.protocol, port)) {
                                    ev.bindings.snat = Some((*ip, k.protocol, port));
                                    ev.fresh_snat = true;
                                }
                                t.src_port = Some(port);
                            }
                            None if nat.is_some() => {
                                ev.allowed = false;
                                ev.failed = Some(DropReason::NatPortsExhausted);
                                return ev;
                            }
                            // Re-validation without a pool: the connection keeps its ports.
                            None => {}
                        }
                    }
                }
                Action::Dnat { ip, port } => {
                    t.dst_ip = Some(*ip);
                    t.dst_port = if proto::has_ports(ev.out.protocol) {
                        *port
                    } else {
                        None
                    };
                }
                Action::LoadBalance(lb) => {
                    let chosen = match ev.bindings.backend {
                        Some((l, b)) if l == li as u16 => Some(b as usize),
                        _ => layer
                            .maglev(o.by)
                            .and_then(|m| m.lookup(flow_hash(&ev.out, lb.distribution))),
                    };
                    if let Some(b) = chosen.and_then(|i| lb.backends.get(i).map(|b| (i, b))) {
                        ev.bindings.backend = Some((li as u16, b.0 as u16));
                        t.dst_ip = Some(b.1.ip);
                        if b.1.port != 0 && proto::has_ports(ev.out.protocol) {
                            t.dst_port = Some(b.1.port);
                        }
                    }
                }
                Action::SetMac { src, dst } => {
                    t.src_mac = *src;
                    t.dst_mac = *dst;
                }
            }
            if !t.is_identity() {
                let (out, id) = t.apply_fields(&ev.out, ev.out_icmp_id);
                ev.out = out;
                ev.out_icmp_id = id;
                ev.rewrite = ev.rewrite.then(&t);
            }
            ev.stateful |= o.stateful;
        }
        ev
    }

    /// Frees the NAT ports of connections the table removed.
    fn release(&mut self, nat: &mut NatState) {
        for b in self.conns.released.drain(..) {
            nat.release(&b);
        }
    }

    /// Forgets the connections idle past their timeout at `now` (all of them at
    /// `u64::MAX`) and gives their NAT ports back; returns how many.
    pub fn sweep(&mut self, now: u64, nat: &mut NatState) -> usize {
        let n = self.conns.sweep(now);
        self.release(nat);
        n
    }

    fn count(&mut self, dir: Direction, t: Traversal) -> Traversal {
        match dir {
            Direction::Out => self.counters.packets_out += 1,
            Direction::In => self.counters.packets_in += 1,
        }
        if t.drop.is_some() {
            self.counters.dropped += 1;
        }
        t
    }

    /// Remembers, in the flow's entry, where the switch delivered it.
    pub fn remember_delivery(&mut self, dir: Direction, m: &PacketMeta, d: Delivery) {
        self.flows.remember_delivery(&FlowKey::of(dir, m), d);
    }

    /// Runs one packet through this port (the switch's port number `me`) in `dir` at
    /// packet time `now`.
    pub fn traverse(
        &mut self,
        me: usize,
        dir: Direction,
        m: &PacketMeta,
        now: u64,
        nat: &mut NatState,
    ) -> Traversal {
        if let Some(t) = m.related.and_then(|inner| self.related(dir, inner, now)) {
            return self.count(dir, t);
        }
        let fk = FlowKey::of(dir, m);
        let t = match self.fast_path(&fk, m, now) {
            Some(t) => {
                self.counters.fast_path += 1;
                t
            }
            None => {
                self.counters.slow_path += 1;
                self.slow_path(me, fk, dir, m, now, nat)
            }
        };
        if !self.conns.released.is_empty() {
            self.release(nat);
        }
        self.count(dir, t)
    }

    /// An ICMP error arriving in `dir` about a packet (`inner`) that left this port the
    /// other way: either a packet of a connection opened that way (it left translated,
    /// as the connection's exit key), or a reply of a connection opened this way (it left
    /// as the reverse of the connection's entry key). The error is accepted as related
    /// traffic, without evaluation, and both it and its quote are translated back.
    fn related(&mut self, dir: Direction, inner: ConnKey, now: u64) -> Option<Traversal> {
        let changed =
            |ip: IpAddr, port: u16, was: (IpAddr, u16)| (was != (ip, port)).then_some((ip, port));
        let (outer_dst, quote) = if let Some(c) = self.conns.lookup_reply(dir, inner.reverse(), now)
        {
            let k = self.conns.get(c)?.key;
            let src = changed(k.src_ip, k.src_port, (inner.src_ip, inner.src_port));
            let dst = changed(k.dst_ip, k.dst_port, (inner.dst_ip, inner.dst_port));
            (k.src_ip, InnerRewrite { src, dst })
        } else if let Some(c) = self.conns.lookup(dir, inner.reverse(), now) {
            let x = self.conns.get(c)?.exit_key;
            let src = changed(x.dst_ip, x.dst_port, (inner.src_ip, inner.src_port));
            let dst = changed(x.src_ip, x.src_port, (inner.dst_ip, inner.dst_port));
            (x.dst_ip, InnerRewrite { src, dst })
        } else {
            return None;
        };
        let rewrite = if outer_dst != inner.src_ip {
            Transposition {
                dst_ip: Some(outer_dst),
                ..Transposition::NONE
            }
        } else {
            Transposition::NONE
        };
        Some(Traversal {
            icmp_inner: Some(quote),
            ..Traversal::allow(None, rewrite)
        })
    }

    fn fast_path(&mut self, fk: &FlowKey, m: &PacketMeta, now: u64) -> Option<Traversal> {
        let now_gen = self.generation;
        let e = self.flows.get(fk, &m.fields, now_gen)?;
        let (mut t, conn, from_orig) = match e.action {
            CachedAction::Reply(c) => (Traversal::allow(None, e.rewrite), Some(c), false),
            CachedAction::Allow { conn, decided } => {
                (Traversal::allow(decided, e.rewrite), conn, true)
            }
            CachedAction::Drop { reason, decided } => {
                (Traversal::drop(reason, decided), None, true)
            }
        };
        if let Some(c) = conn {
            let ok = self
                .conns
                .live(c, now)
                .is_some_and(|c| c.generation == now_gen);
            if !ok {
                return None;
            }
            self.conns.touch(c, m.tcp_flags, from_orig, now);
        }
        count_hits(
            &mut self.counters,
            e.hits.iter().map(|&w| Decision::unpack(w)),
        );
        t.delivery = e.delivery;
        Some(t)
    }

    fn slow_path(
        &mut self,
        me: usize,
        fk: FlowKey,
        dir: Direction,
        m: &PacketMeta,
        now: u64,
        nat: &mut NatState,
    ) -> Traversal {
        let now_gen = self.generation;
        let key = m.conn_key();
        // A reply of a recorded connection passes without evaluation and is
        // reverse-translated, once the connection is known to hold under this policy.
        if let Some(k) = key
            && let Some(c) = self.conns.lookup_reply(dir, k, now)
        {
            let (cgen, odir, ofields, oid, bindings) = match self.conns.get(c) {
                Some(conn) => (
                    conn.generation,
                    conn.orig_dir,
                    conn.orig_fields,
                    conn.orig_icmp_id,
                    conn.bindings,
                ),
                None => (0, dir, m.fields, None, Bindings::default()),
            };
            let holds = cgen == now_gen || {
                let e = self.evaluate(odir, &ofields, oid, None, Some(bindings));
                e.allowed && e.stateful
            };
            if holds {
                let mut rewrite = Transposition::NONE;
                if let Some(conn) = self.conns.live(c, now) {
                    conn.generation = now_gen;
                    rewrite = conn.reply_rewrite;
                }
                self.conns.touch(c, m.tcp_flags, false, now);
                self.flows.insert(
                    fk,
                    FlowEntry {
                        pins: FlowPins::of(&m.fields),
                        generation: now_gen,
                        action: CachedAction::Reply(c),
                        rewrite,
                        delivery: Delivery::Unknown,
                        hits: SmallVec::new(),
                    },
                );
                return Traversal::allow(None, rewrite);
            }
            self.conns.remove(c);
        }
        let existing = key.and_then(|k| self.conns.lookup(dir, k, now));
        let reuse = existing.and_then(|c| self.conns.get(c)).map(|c| c.bindings);
        let ev = self.evaluate(dir, &m.fields, m.icmp_id, Some(nat), reuse);
        count_hits(&mut self.counters, ev.hits.iter().copied());
        let release_fresh = |nat: &mut NatState, ev: &Evaluation| {
            if ev.fresh_snat {
                nat.release(&Bindings {
                    snat: ev.bindings.snat,
                    backend: None,
                });
            }
        };
        if let Some(reason) = ev.failed {
            return Traversal::drop(reason, ev.decided);
        }
        let drop_reason = |ev: &Evaluation| match ev.decided.map(|d| d.by) {
            Some(DecidedBy::Default { .. }) => DropReason::AclDefault,
            _ => DropReason::Acl,
        };
        let (action, rewrite) = match (ev.allowed && ev.stateful, existing, key) {
            (true, Some(c), _) => {
                let mut rewrite = ev.rewrite;
                if let Some(conn) = self.conns.live(c, now) {
                    conn.generation = now_gen;
                    conn.orig_fields = m.fields;
                    conn.orig_icmp_id = m.icmp_id;
                    // The connection keeps the translation it started with.
                    rewrite = conn.rewrite;
                    if ev.fresh_snat && conn.bindings.snat != ev.bindings.snat {
                        release_fresh(nat, &ev);
                    }
                }
                self.conns.touch(c, m.tcp_flags, true, now);
                (
                    CachedAction::Allow {
                        conn: Some(c),
                        decided: ev.decided,
                    },
                    rewrite,
                )
            }
            (true, None, Some(k)) => {
                if m.fields.protocol == proto::TCP && m.tcp_flags & tcp_flags::RST != 0 {
                    // A RST opens nothing; don't cache, so the next packet may open it.
                    release_fresh(nat, &ev);
                    return Traversal::allow(ev.decided, ev.rewrite);
                }
                let exit_key = conn_key(&ev.out, ev.out_icmp_id).unwrap_or(k);
                let conn = Connection {
                    key: k,
                    exit_key,
                    orig_dir: dir,
                    rewrite: ev.rewrite,
                    reply_rewrite: reply_rewrite(&m.fields, m.icmp_id, &ev.out, ev.out_icmp_id),
                    bindings: ev.bindings,
                    orig_fields: m.fields,
                    orig_icmp_id: m.icmp_id,
                    tcp: tcp_initial(m.tcp_flags),
                    last_seen: now,
                    generation: now_gen,
                };
                match self.conns.insert(conn, now) {
                    Ok(c) => {
                        if let Some(b) = ev.bindings.snat {
                            nat.owners.insert(b, (me, c));
                        }
                        // A flow cached before this connection existed must now be seen
                        // as its reply.
                        self.flows.remove(&FlowKey::reply_of(dir, &exit_key));
                        (
                            CachedAction::Allow {
                                conn: Some(c),
                                decided: ev.decided,
                            },
                            ev.rewrite,
                        )
                    }
                    Err(_) => {
                        release_fresh(nat, &ev);
                        return Traversal::drop(DropReason::FlowTableFull, ev.decided);
                    }
                }
            }
            (_, existing, _) => {
                if let Some(c) = existing {
                    // The policy no longer allows this connection statefully: cut it.
                    self.conns.remove(c);
                }
                release_fresh(nat, &ev);
                if ev.allowed {
                    (
                        CachedAction::Allow {
                            conn: None,
                            decided: ev.decided,
                        },
                        ev.rewrite,
                    )
                } else {
                    (
                        CachedAction::Drop {
                            reason: drop_reason(&ev),
                            decided: ev.decided,
                        },
                        Transposition::NONE,
                    )
                }
            }
        };
        let t = match &action {
            CachedAction::Drop { reason, decided } => Traversal::drop(*reason, *decided),
            CachedAction::Allow { decided, .. } => Traversal::allow(*decided, rewrite),
            CachedAction::Reply(_) => Traversal::allow(None, rewrite),
        };
        self.flows.insert(
            fk,
            FlowEntry {
                pins: FlowPins::of(&m.fields),
                generation: now_gen,
                action,
                rewrite,
                delivery: Delivery::Unknown,
                hits: ev.hits.iter().map(|d| d.pack()).collect(),
            },
        );
        t
    }
}

/// Bumps the hit counter of every decision taken.
fn count_hits(counters: &mut PortCounters, hits: impl Iterator<Item = Decision>) {
    for d in hits {
        let Some(lc) = counters.layers.get_mut(d.layer as usize) else {
            continue;
        };
        let slot = match d.by {
            DecidedBy::Rule { group, rule } => {
                lc.rules.get_mut(group).and_then(|g| g.get_mut(rule))
            }
            DecidedBy::Default { entry } => {
                let v = match d.dir {
                    Direction::Out => &mut lc.default_out,
                    Direction::In => &mut lc.default_in,
                };
                let i = entry.unwrap_or(v.len().saturating_sub(1));
                v.get_mut(i)
            }
        };
        if let Some(c) = slot {
            *c += 1;
        }
    }
}
