//! One port's packet path: the unified flow table in front (fast path), the layers and
//! connection tracking behind it (slow path), and the port's counters.
//!
//! The fast path answers only when the cached entry provably gives the slow path's
//! answer: same header fields, same port generation, its connection still alive.
//!
//! - `evaluate`: the layers in traversal order, each action's effect on the packet;
//! - `fast`: a flow-table hit;
//! - `slow`: a connection's reply, or an evaluation that records a connection and
//!   caches the flow;
//! - `related`: ICMP errors about a connection, translated with it.

mod evaluate;
mod fast;
mod related;
mod slow;

use strata_rules::model::Direction;

use crate::drop::DropReason;
use crate::flow::{FlowKey, PacketMeta};
use crate::policy::{CompiledPort, Decision};
use crate::state::uft::Delivery;
use crate::state::{NatState, PortState};
use crate::transpose::{InnerRewrite, Transposition};

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
    pub(crate) fn allow(decided: Option<Decision>, rewrite: Transposition) -> Traversal {
        Traversal {
            drop: None,
            decided,
            rewrite,
            icmp_inner: None,
            delivery: Delivery::Unknown,
        }
    }

    pub(crate) fn drop(reason: DropReason, decided: Option<Decision>) -> Traversal {
        Traversal {
            drop: Some(reason),
            decided,
            rewrite: Transposition::NONE,
            icmp_inner: None,
            delivery: Delivery::Unknown,
        }
    }
}

/// A port with its state, for one traversal.
pub struct PortPath<'a> {
    pub port: &'a CompiledPort,
    pub state: &'a mut PortState,
    /// The port's slot: NAT owners name it.
    pub slot: usize,
    /// The policy topology (remembered deliveries hold only in theirs).
    pub topology: u64,
}

impl PortPath<'_> {
    /// Runs one packet through this port in `dir` at packet time `now`.
    pub fn traverse(
        &mut self,
        dir: Direction,
        m: &PacketMeta,
        now: u64,
        nat: &mut NatState,
    ) -> Traversal {
        // Not replayable unless the fast path or a cached slow-path decision says so.
        let last = &mut self.state.last;
        last.cacheable = false;
        last.conn = None;
        last.hits.clear();
        if let Some(t) = m.related.and_then(|inner| self.related(dir, inner, now)) {
            return self.count(dir, m.ip_len, t);
        }
        let fk = FlowKey::of(dir, m);
        let t = match self.fast_path(&fk, m, now) {
            Some(t) => {
                self.state.counters.fast_path += 1;
                t
            }
            None => {
                self.state.counters.slow_path += 1;
                self.slow_path(fk, dir, m, now, nat)
            }
        };
        if !self.state.conns.released.is_empty() {
            self.state.release(nat);
        }
        self.count(dir, m.ip_len, t)
    }

    fn count(&mut self, dir: Direction, ip_len: u32, t: Traversal) -> Traversal {
        let c = &mut self.state.counters;
        match dir {
            Direction::Out => {
                c.packets_out += 1;
                c.bytes_out += u64::from(ip_len);
            }
            Direction::In => {
                c.packets_in += 1;
                c.bytes_in += u64::from(ip_len);
            }
        }
        if t.drop.is_some() {
            c.dropped += 1;
        }
        t
    }
}
