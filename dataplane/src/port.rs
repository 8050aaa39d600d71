//! One port's packet path: the unified flow table in front (fast path), the layers and
//! connection tracking behind it (slow path), and the port's counters.
//!
//! The slow path is `strata_rules::reference::RefSwitch::traverse` step for step, so the
//! two agree; the fast path answers only when the cached entry provably gives the same
//! answer (same fields, same generation, its connection still alive).

use smallvec::SmallVec;
use strata_rules::model::{Direction, Fields, Port, proto};
use strata_rules::reference::{DecidedBy, tcp_flags, tcp_initial};

use crate::conntrack::{ConnTable, Connection};
use crate::drop::DropReason;
use crate::flow::{FlowKey, PacketMeta};
use crate::layer::{CompiledLayer, Decision};
use crate::uft::{CachedAction, FlowEntry, FlowTable};

/// Table sizes of a port.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub flows: usize,
    pub connections: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            flows: 1 << 20,
            connections: 1 << 20,
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
}

struct Evaluation {
    allowed: bool,
    stateful: bool,
    decided: Option<Decision>,
    hits: SmallVec<[Decision; 4]>,
}

/// A port with its compiled layers and state.
pub struct PortPipeline {
    pub port: Port,
    layers: Vec<CompiledLayer>,
    pub generation: u64,
    pub flows: FlowTable,
    pub conns: ConnTable,
    pub counters: PortCounters,
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
            .map(CompiledLayer::compile)
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

    fn evaluate(&self, dir: Direction, f: &Fields) -> Evaluation {
        let mut ev = Evaluation {
            allowed: true,
            stateful: false,
            decided: None,
            hits: SmallVec::new(),
        };
        let n = self.layers.len();
        for step in 0..n {
            let li = match dir {
                Direction::Out => step,
                Direction::In => n - 1 - step,
            };
            let o = self.layers[li].evaluate(dir, f);
            let d = Decision {
                layer: li as u16,
                dir,
                by: o.by,
            };
            ev.hits.push(d);
            ev.decided = Some(d);
            if o.action.is_block() {
                ev.allowed = false;
                ev.stateful = false;
                return ev;
            }
            ev.stateful |= o.stateful;
        }
        ev
    }

    fn count_hits(&mut self, hits: &[Decision]) {
        for d in hits {
            let Some(lc) = self.counters.layers.get_mut(d.layer as usize) else {
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

    /// Runs one packet through this port in `dir` at packet time `now`.
    pub fn traverse(&mut self, dir: Direction, m: &PacketMeta, now: u64) -> Traversal {
        let fk = FlowKey::of(dir, m);
        if let Some(t) = self.fast_path(&fk, dir, m, now) {
            self.counters.fast_path += 1;
            return self.count(dir, t);
        }
        self.counters.slow_path += 1;
        let t = self.slow_path(fk, dir, m, now);
        self.count(dir, t)
    }

    fn fast_path(
        &mut self,
        fk: &FlowKey,
        dir: Direction,
        m: &PacketMeta,
        now: u64,
    ) -> Option<Traversal> {
        let now_gen = self.generation;
        let e = self.flows.get(fk, &m.fields, now_gen)?;
        let (t, conn, from_orig) = match e.action {
            CachedAction::Reply(c) => (
                Traversal {
                    drop: None,
                    decided: None,
                },
                Some(c),
                false,
            ),
            CachedAction::Allow { conn, decided } => (
                Traversal {
                    drop: None,
                    decided,
                },
                conn,
                true,
            ),
            CachedAction::Drop { reason, decided } => (
                Traversal {
                    drop: Some(reason),
                    decided,
                },
                None,
                true,
            ),
        };
        let hits = e.hits.clone();
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
        let _ = dir;
        self.count_hits(&hits);
        Some(t)
    }

    fn slow_path(&mut self, fk: FlowKey, dir: Direction, m: &PacketMeta, now: u64) -> Traversal {
        let now_gen = self.generation;
        let key = m.conn_key();
        // A reply of a recorded connection passes without evaluation, once the connection
        // is known to hold under the current policy.
        if let Some(k) = key {
            if let Some(c) = self.conns.lookup(dir.reverse(), k.reverse(), now) {
                let (cgen, odir, ofields) = match self.conns.get(c) {
                    Some(conn) => (conn.generation, conn.orig_dir, conn.orig_fields),
                    None => (0, dir, m.fields),
                };
                let holds = cgen == now_gen || {
                    let e = self.evaluate(odir, &ofields);
                    e.allowed && e.stateful
                };
                if holds {
                    if let Some(conn) = self.conns.live(c, now) {
                        conn.generation = now_gen;
                    }
                    self.conns.touch(c, m.tcp_flags, false, now);
                    self.flows.insert(
                        fk,
                        FlowEntry {
                            fields: m.fields,
                            generation: now_gen,
                            action: CachedAction::Reply(c),
                            hits: SmallVec::new(),
                        },
                    );
                    return Traversal {
                        drop: None,
                        decided: None,
                    };
                }
                self.conns.remove(c);
            }
        }
        let ev = self.evaluate(dir, &m.fields);
        self.count_hits(&ev.hits);
        let existing = key.and_then(|k| self.conns.lookup(dir, k, now));
        let drop_reason = |ev: &Evaluation| match ev.decided.map(|d| d.by) {
            Some(DecidedBy::Default { .. }) => DropReason::AclDefault,
            _ => DropReason::Acl,
        };
        let action = match (ev.allowed && ev.stateful, existing, key) {
            (true, Some(c), _) => {
                if let Some(conn) = self.conns.live(c, now) {
                    conn.generation = now_gen;
                    conn.orig_fields = m.fields;
                }
                self.conns.touch(c, m.tcp_flags, true, now);
                CachedAction::Allow {
                    conn: Some(c),
                    decided: ev.decided,
                }
            }
            (true, None, Some(k)) => {
                if m.fields.protocol == proto::TCP && m.tcp_flags & tcp_flags::RST != 0 {
                    // A RST opens nothing; don't cache, so the next packet may open it.
                    return Traversal {
                        drop: None,
                        decided: ev.decided,
                    };
                }
                let conn = Connection {
                    key: k,
                    orig_dir: dir,
                    orig_fields: m.fields,
                    tcp: tcp_initial(m.tcp_flags),
                    last_seen: now,
                    generation: now_gen,
                };
                match self.conns.insert(conn, now) {
                    Ok(c) => {
                        // A flow cached before this connection existed must now be seen
                        // as its reply.
                        self.flows.remove(&FlowKey::reply_of(dir, &k));
                        CachedAction::Allow {
                            conn: Some(c),
                            decided: ev.decided,
                        }
                    }
                    Err(_) => {
                        return Traversal {
                            drop: Some(DropReason::FlowTableFull),
                            decided: ev.decided,
                        };
                    }
                }
            }
            (false, Some(c), _) => {
                // The policy no longer allows this connection statefully: cut it.
                self.conns.remove(c);
                if ev.allowed {
                    CachedAction::Allow {
                        conn: None,
                        decided: ev.decided,
                    }
                } else {
                    CachedAction::Drop {
                        reason: drop_reason(&ev),
                        decided: ev.decided,
                    }
                }
            }
            _ if ev.allowed => CachedAction::Allow {
                conn: None,
                decided: ev.decided,
            },
            _ => CachedAction::Drop {
                reason: drop_reason(&ev),
                decided: ev.decided,
            },
        };
        let t = match &action {
            CachedAction::Drop { reason, decided } => Traversal {
                drop: Some(*reason),
                decided: *decided,
            },
            CachedAction::Allow { decided, .. } => Traversal {
                drop: None,
                decided: *decided,
            },
            CachedAction::Reply(_) => Traversal {
                drop: None,
                decided: None,
            },
        };
        self.flows.insert(
            fk,
            FlowEntry {
                fields: m.fields,
                generation: now_gen,
                action,
                hits: ev.hits,
            },
        );
        t
    }
}
