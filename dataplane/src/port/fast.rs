//! The fast path: a flow-table hit answers with the cached decision and rewrite, when
//! the entry was computed for exactly these header fields under this generation and its
//! connection is still alive (and of this generation).

use super::{PortPath, Traversal};
use crate::flow::{FlowKey, PacketMeta};
use crate::policy::Decision;
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
            let ok = st
                .conns
                .live(c, now)
                .is_some_and(|c| c.generation == generation);
            if !ok {
                return None;
            }
            st.conns.touch(c, m.tcp_flags, from_orig, now);
        }
        st.counters
            .count_hits(e.hits.iter().map(|&w| Decision::unpack(w)));
        if e.topology == self.topology {
            t.delivery = e.delivery;
        } else {
            t.delivery = Delivery::Unknown;
        }
        Some(t)
    }
}
