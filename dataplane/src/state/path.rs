//! The unified flow table proper (DESIGN §2): one entry per (ingress port, flow) holding
//! the outcome of the whole path — the verdict, the composite rewrite, and each port
//! traversal it took (its connection, its rule hits) — so that a later packet of the
//! flow is forwarded by one lookup: no layer, no delivery, no composition.
//!
//! An entry answers only when everything it was computed from still holds: the exact
//! header fields, the policy topology, the underlay MACs learned, and for each port it
//! crossed the same incarnation and generation and a connection still alive under it.
//! A hit replays each traversal's side effects (counters, rule hits, the connection's
//! clock and TCP tracking) exactly as the ports' own fast paths would. Everything else —
//! and any packet that could change a connection's life (TCP SYN, FIN, RST) — takes the
//! full path, whose per-port caches and connections stay the authority.
//!
//! Compact by sharing: what a path's flows have in common (the pins, the verdict, the
//! rewrite, every leg's port, generation and rule hits) is a [`PathShape`], interned
//! once and counted by its users; a flow's own [`PathEntry`] holds only the shape's
//! index, its connections and the few rewrite fields that differ per flow (L4 ports,
//! which a NAT chooses per connection, and VXLAN's outer source port, an entropy hash of
//! the inner flow): 32 bytes beside its 48-byte key, where each entry once carried 504
//! bytes of its own.

use std::collections::HashMap;

use ahash::RandomState;
use smallvec::SmallVec;
use strata_rules::model::Direction;

use super::conntrack::ConnRef;
use super::intern::Interner;
use super::uft::FlowPins;
use crate::drop::DropReason;
use crate::flow::FlowKey;
use crate::policy::{Decision, PortId};
use crate::transpose::{PerFlow, Transposition};

/// A flow, where it entered.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PathKey {
    pub flow: FlowKey,
    /// The ingress port's slot, or `u32::MAX` for the uplink.
    pub ingress: u32,
}

impl PathKey {
    pub fn new(flow: FlowKey, ingress: PortId) -> PathKey {
        let ingress = match ingress {
            PortId::Endpoint(s) => u32::try_from(s).unwrap_or(u32::MAX - 1),
            PortId::Uplink => u32::MAX,
        };
        PathKey { flow, ingress }
    }
}

/// One port traversal of the frame being decided, as the switch records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leg {
    pub slot: usize,
    pub incarnation: u64,
    pub generation: u64,
    /// The port's `PortState::version` when recorded.
    pub version: u64,
    pub dir: Direction,
    /// The connection it kept alive, and whether the packet went its original way.
    pub conn: Option<(ConnRef, bool)>,
    /// Its decisions, packed (rule hit counters).
    pub hits: SmallVec<[u64; 4]>,
    pub dropped: bool,
}

/// A leg as every flow taking it shares it: its connection is the flow's own.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LegShape {
    pub slot: usize,
    pub incarnation: u64,
    pub generation: u64,
    pub version: u64,
    pub dir: Direction,
    /// Whether the leg keeps a connection alive (the entry's), and whether the packet
    /// goes its original way.
    pub conn: Option<bool>,
    pub hits: SmallVec<[u64; 4]>,
    pub dropped: bool,
}

/// The most legs a path may have: the sender's port and the receiver's.
pub const MAX_LEGS: usize = 2;

/// What the flows of one path share.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PathShape {
    pub pins: FlowPins,
    pub topology: u64,
    pub underlay: u64,
    pub egress: Option<PortId>,
    pub drop: Option<DropReason>,
    pub decided: Option<(PortId, Decision)>,
    /// The composite rewrite less its per-flow fields ([`PerFlow`]).
    pub rewrite: Transposition,
    pub legs: SmallVec<[LegShape; MAX_LEGS]>,
}

/// One flow's path: its shape, its connections (one per leg that keeps one; the rest
/// unused) and its own rewrite fields.
#[derive(Clone, Copy, Debug)]
pub struct PathEntry {
    shape: u32,
    own: PerFlow,
    conns: [ConnRef; MAX_LEGS],
}

impl PathEntry {
    /// The composite rewrite of this flow.
    pub fn rewrite(&self, shape: &PathShape) -> Transposition {
        self.own.join(&shape.rewrite)
    }

    /// Leg `i`'s connection, if the shape says it keeps one.
    pub fn conn(&self, shape: &PathShape, i: usize) -> Option<(ConnRef, bool)> {
        let orig = shape.legs.get(i)?.conn?;
        Some((*self.conns.get(i)?, orig))
    }
}

/// A recorded path, before it is split into shape and entry: its outcome as a shape
/// whose rewrite is still whole and whose legs are still to come from `legs`.
pub struct Recorded<'a> {
    pub outcome: PathShape,
    pub legs: &'a [Leg],
}

/// The paths, bounded: when full, one entry gives way (it is a cache).
pub struct PathTable {
    map: HashMap<PathKey, PathEntry, RandomState>,
    shapes: Interner<PathShape>,
    capacity: usize,
}

impl PathTable {
    /// A table of at most `capacity` paths, sized for `reserve` of them at start.
    pub fn new(capacity: usize, reserve: usize) -> PathTable {
        PathTable {
            map: HashMap::with_capacity_and_hasher(reserve.min(capacity), RandomState::new()),
            shapes: Interner::default(),
            // 0: cache nothing.
            capacity,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    #[inline]
    pub fn get(&self, key: &PathKey) -> Option<(&PathEntry, &PathShape)> {
        let e = self.map.get(key)?;
        Some((e, self.shapes.get(e.shape)?))
    }

    /// Records a path; one with more legs than an entry holds is not recorded.
    pub fn insert(&mut self, key: PathKey, r: Recorded<'_>) {
        if self.capacity == 0 || r.legs.len() > MAX_LEGS {
            return;
        }
        let mut shape = r.outcome;
        let (own, rewrite) = PerFlow::split(&shape.rewrite);
        shape.rewrite = rewrite;
        let mut conns = [ConnRef::NONE; MAX_LEGS];
        shape.legs = r
            .legs
            .iter()
            .zip(conns.iter_mut())
            .map(|(l, c)| {
                if let Some((conn, _)) = l.conn {
                    *c = conn;
                }
                LegShape {
                    slot: l.slot,
                    incarnation: l.incarnation,
                    generation: l.generation,
                    version: l.version,
                    dir: l.dir,
                    conn: l.conn.map(|(_, orig)| orig),
                    hits: l.hits.clone(),
                    dropped: l.dropped,
                }
            })
            .collect();
        let shape = self.shapes.acquire(shape);
        if self.map.len() >= self.capacity
            && !self.map.contains_key(&key)
            && let Some(k) = self.map.keys().next().copied()
            && let Some(old) = self.map.remove(&k)
        {
            self.shapes.release(old.shape);
        }
        if let Some(old) = self.map.insert(key, PathEntry { shape, own, conns }) {
            self.shapes.release(old.shape);
        }
    }

    /// Bytes on the heap: the entries, and the shapes they share.
    pub fn memory_bytes(&self) -> usize {
        super::uft::hash_table_bytes(
            self.map.capacity(),
            std::mem::size_of::<(PathKey, PathEntry)>(),
        ) + self.shapes.memory_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_small() {
        assert!(std::mem::size_of::<PathEntry>() <= 32);
        assert!(std::mem::size_of::<PathKey>() <= 48);
    }
}
