//! The slow path: a flow's first packet (or one the cache cannot answer). A reply of a
//! recorded connection passes without evaluation once the connection is known to hold
//! under the current policy; anything else runs the layers, and an allowed stateful
//! traversal records (or continues) a connection with its translation and NAT binding.
//! The outcome is cached in the flow table under the flow's key.

use smallvec::SmallVec;
use strata_rules::conn::{
    ConnKey, Rewrite, TcpTrack, answers, conn_key, reopens, tcp_flags, tcp_initial,
};
use strata_rules::model::{Direction, Fields, proto};

use super::evaluate::{Evaluation, evaluate};
use super::{PortPath, Traversal};
use crate::drop::DropReason;
use crate::flow::{FlowKey, PacketMeta};
use crate::state::conntrack::{Bindings, ConnRef, Connection, Touch};
use crate::state::uft::{CachedAction, Delivery, FlowEntry, FlowPins};
use crate::state::{LastLeg, NatState};
use crate::transpose::Transposition;

/// The rewrite that turns a reply of a connection (entered as `entry`, left as `exit`)
/// back into the reverse of `entry`: the shared definition `Rewrite::reply_of`, as a
/// transposition.
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

/// What a connection step came to.
enum Step {
    /// The flow is cached with this action and rewrite.
    Cache(CachedAction, Transposition),
    /// This traversal, nothing cached: a RST opening nothing (so the next packet may open
    /// the connection), a full connection table, an RST outside the window.
    Return(Traversal),
}

/// Gives back a SNAT port this evaluation allocated and will not use.
fn release_fresh(nat: &mut NatState, ev: &Evaluation) {
    if ev.fresh_snat {
        nat.release(&Bindings {
            snat: ev.bindings.snat,
            backend: None,
        });
    }
}

impl PortPath<'_> {
    pub(super) fn slow_path(
        &mut self,
        fk: FlowKey,
        dir: Direction,
        m: &PacketMeta,
        now: u64,
        nat: &mut NatState,
    ) -> Traversal {
        let key = m.conn_key();
        if let Some(k) = key
            && let Some(c) = self.state.conns.lookup_reply(dir, k, now)
        {
            match self.state.conns.get(c) {
                // Not its reply (an echo request reusing the identifier): judged alone.
                Some(conn) if !answers(m.fields.protocol, conn.opened_by, m.fields.icmp) => {}
                // A bare SYN the other way over a finished connection opens a new one.
                Some(conn) if conn.key.protocol == proto::TCP && reopens(conn.tcp, m.tcp_flags) => {
                    self.state.conns.remove(c);
                }
                _ => {
                    if let Some(t) = self.reply(c, fk, m, now) {
                        return t;
                    }
                    // The policy no longer allows the connection: cut it, judge afresh.
                    self.state.conns.remove(c);
                }
            }
        }
        let existing = key.and_then(|k| self.state.conns.lookup(dir, k, now));
        let reuse = existing
            .and_then(|c| self.state.conns.get(c))
            .map(|c| c.bindings);
        let ev = evaluate(
            &self.port.layers,
            dir,
            &m.fields,
            m.icmp_id,
            Some(nat),
            reuse,
        );
        self.state.counters.count_hits(ev.hits.iter().copied());
        if let Some(reason) = ev.failed {
            return Traversal::drop(reason, ev.decided);
        }
        let (action, rewrite) = match (ev.allowed && ev.stateful, existing, key) {
            (true, Some(c), _) => match self.continue_connection(c, &ev, m, now, nat) {
                Step::Cache(action, rewrite) => (action, rewrite),
                Step::Return(t) => return t,
            },
            (true, None, Some(k)) => match self.open_connection(k, dir, &ev, m, now, nat) {
                Step::Cache(action, rewrite) => (action, rewrite),
                Step::Return(t) => return t,
            },
            (_, existing, _) => {
                if let Some(c) = existing {
                    // The policy no longer allows this connection statefully: cut it.
                    self.state.conns.remove(c);
                }
                release_fresh(nat, &ev);
                if ev.allowed {
                    let action = CachedAction::Allow {
                        conn: None,
                        decided: ev.decided,
                    };
                    (action, ev.rewrite)
                } else {
                    let action = CachedAction::Drop {
                        reason: ev.drop_reason(),
                        decided: ev.decided,
                    };
                    (action, Transposition::NONE)
                }
            }
        };
        let t = match &action {
            CachedAction::Drop { reason, decided } => Traversal::drop(*reason, *decided),
            CachedAction::Allow { decided, .. } => Traversal::allow(*decided, rewrite),
            CachedAction::Reply(_) => Traversal::allow(None, rewrite),
        };
        let hits = ev.hits.iter().map(|d| d.pack()).collect();
        self.cache(fk, m, action, rewrite, hits);
        t
    }

    /// A reply of connection `c`: passes, reverse-translated, if the connection holds
    /// under this generation's policy (re-evaluating its opening packet if the policy
    /// changed since); `None` if it no longer does.
    fn reply(&mut self, c: ConnRef, fk: FlowKey, m: &PacketMeta, now: u64) -> Option<Traversal> {
        let generation = self.port.generation;
        let conn = self.state.conns.get(c)?;
        let holds = conn.generation == generation || {
            let (fields, icmp_id) = self.state.conns.orig_fields(conn)?;
            let e = evaluate(
                &self.port.layers,
                conn.orig_dir,
                &fields,
                icmp_id,
                None,
                Some(conn.bindings),
            );
            e.allowed && e.stateful
        };
        if !holds {
            return None;
        }
        let mut rewrite = Transposition::NONE;
        if let Some(conn) = self.state.conns.live(c, now) {
            conn.generation = generation;
        }
        if let Some([_, reply]) = self.state.conns.rewrites(c) {
            rewrite = reply;
        }
        if self
            .state
            .conns
            .touch(c, m.tcp_flags, &m.tcp_seq, false, now)
            == Touch::OutOfWindow
        {
            return Some(Traversal::drop(DropReason::TcpOutOfWindow, None));
        }
        self.cache(fk, m, CachedAction::Reply(c), rewrite, SmallVec::new());
        Some(Traversal::allow(None, rewrite))
    }

    /// Another packet of connection `c` in its own direction, allowed again: it keeps the
    /// translation it started with, and the opening packet re-validation will use.
    fn continue_connection(
        &mut self,
        c: ConnRef,
        ev: &Evaluation,
        m: &PacketMeta,
        now: u64,
        nat: &mut NatState,
    ) -> Step {
        let mut rewrite = ev.rewrite;
        let live = self.state.conns.live(c, now).map(|conn| {
            conn.generation = self.port.generation;
            // Whether the evaluation allocated a NAT port the connection does not use.
            ev.fresh_snat && conn.bindings.snat != ev.bindings.snat
        });
        if let Some(unused_snat) = live {
            // Re-validated by this packet: its fields are what a policy change re-checks.
            self.state.conns.repin(c, FlowPins::of(&m.fields));
            if let Some([own, _]) = self.state.conns.rewrites(c) {
                rewrite = own;
            }
            if unused_snat {
                release_fresh(nat, ev);
            }
        }
        if self
            .state
            .conns
            .touch(c, m.tcp_flags, &m.tcp_seq, true, now)
            == Touch::OutOfWindow
        {
            return Step::Return(Traversal::drop(DropReason::TcpOutOfWindow, None));
        }
        let action = CachedAction::Allow {
            conn: Some(c),
            decided: ev.decided,
        };
        Step::Cache(action, rewrite)
    }

    /// Records a new connection for an allowed stateful first packet.
    fn open_connection(
        &mut self,
        k: ConnKey,
        dir: Direction,
        ev: &Evaluation,
        m: &PacketMeta,
        now: u64,
        nat: &mut NatState,
    ) -> Step {
        if m.fields.protocol == proto::TCP && m.tcp_flags & tcp_flags::RST != 0 {
            release_fresh(nat, ev);
            return Step::Return(Traversal::allow(ev.decided, ev.rewrite));
        }
        let exit_key = conn_key(&ev.out, ev.out_icmp_id).unwrap_or(k);
        let conn = Connection {
            key: k,
            exit_key,
            orig_dir: dir,
            rewrites: Default::default(),
            bindings: ev.bindings,
            orig_pins: 0,
            opened_by: m.fields.icmp,
            tcp: tcp_initial(m.tcp_flags),
            track: TcpTrack::opened(m.tcp_flags, &m.tcp_seq),
            last_seen: now,
            generation: self.port.generation,
        };
        let rewrites = [
            ev.rewrite,
            reply_rewrite(&m.fields, m.icmp_id, &ev.out, ev.out_icmp_id),
        ];
        let Ok(c) = self
            .state
            .conns
            .insert(conn, rewrites, FlowPins::of(&m.fields), now)
        else {
            release_fresh(nat, ev);
            return Step::Return(Traversal::drop(DropReason::ConnectionTableFull, ev.decided));
        };
        if let Some(b) = ev.bindings.snat {
            nat.owners.insert(b, (self.slot, c));
        }
        // A flow cached before this connection existed must now be seen as its reply.
        if self.state.flows.remove(&FlowKey::reply_of(dir, &exit_key)) {
            self.state.version += 1;
        }
        let action = CachedAction::Allow {
            conn: Some(c),
            decided: ev.decided,
        };
        Step::Cache(action, ev.rewrite)
    }

    fn cache(
        &mut self,
        fk: FlowKey,
        m: &PacketMeta,
        action: CachedAction,
        rewrite: Transposition,
        hits: SmallVec<[u64; 4]>,
    ) {
        // What the flow table now answers, the path table may replay.
        self.state.last = LastLeg {
            cacheable: true,
            conn: match action {
                CachedAction::Reply(c) => Some((c, false)),
                CachedAction::Allow { conn, .. } => conn.map(|c| (c, true)),
                CachedAction::Drop { .. } => None,
            },
            hits: hits.clone(),
        };
        let entry = FlowEntry {
            pins: FlowPins::of(&m.fields),
            generation: self.port.generation,
            action,
            rewrite,
            delivery: Delivery::Unknown,
            topology: self.topology,
            hits,
        };
        self.state.flows.insert(fk, entry);
    }
}
