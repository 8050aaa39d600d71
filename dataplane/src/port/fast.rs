//! The fast path: a flow-table hit answers with the cached decision and rewrite, when
//! the entry was computed for exactly these header fields under this generation and its
//! connection is still alive (and of this generation).

use strata_rules::conn::reopens;
use strata_rules::model::proto;

use super::{PortPath, Traversal};
use crate::drop::DropReason;
use crate::flow::{FlowKey, PacketMeta};
use crate::policy::Decision;
use crate::state::LastLeg;
use crate::state::conntrack::Touch;
use crate::state::uft::{CachedAction, Delivery};

impl PortPath<'_> {
    pub(super) fn fast_path(
        &mut self,
        fk: &FlowKey,
        m: &PacketMeta,
        now: u64,
    ) -> Option<Traversal> {
        let generation = self.port.generation;
        let st = &mut *self.state;
        let e = st.flows.get(fk, &m.fields, generation)?;
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
            let live = st
                .conns
                .live(c, now)
                .filter(|c| c.generation == generation)?;
            if !from_orig && live.key.protocol == proto::TCP && reopens(live.tcp, m.tcp_flags) {
                // A new connection the other way over a finished one: the slow path's.
                return None;
            }
        }
        // The layers' decisions count even when connection tracking refuses the segment
        // below, as on the slow path, which evaluates the layers first.
        let shape = e.shape;
        st.counters
            .count_hits(shape.hits.iter().map(|&w| Decision::unpack(w)));
        if let Some(c) = conn
            && st.conns.touch(c, m.tcp_flags, &m.tcp_seq, from_orig, now) == Touch::OutOfWindow
        {
            return Some(Traversal::drop(DropReason::TcpOutOfWindow, None));
        }
        st.last = LastLeg {
            cacheable: true,
            conn: conn.map(|c| (c, from_orig)),
            hits: shape.hits.clone(),
        };
        if e.topology == self.topology {
            t.delivery = e.delivery;
        } else {
            t.delivery = Delivery::Unknown;
        }
        Some(t)
    }
}
