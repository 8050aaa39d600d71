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

use std::collections::HashMap;

use ahash::RandomState;
use smallvec::SmallVec;
use strata_rules::model::Direction;

use super::conntrack::ConnRef;
use super::uft::FlowPins;
use crate::drop::DropReason;
use crate::flow::FlowKey;
use crate::policy::{Decision, PortId};
use crate::transpose::Transposition;

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

/// One port traversal of a path.
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

/// A path's outcome.
#[derive(Clone, Debug)]
pub struct PathEntry {
    pub pins: FlowPins,
    pub topology: u64,
    pub underlay: u64,
    pub egress: Option<PortId>,
    pub drop: Option<DropReason>,
    pub decided: Option<(PortId, Decision)>,
    pub rewrite: Transposition,
    pub legs: SmallVec<[Leg; 2]>,
}

/// The paths, bounded: when full, one entry gives way (it is a cache).
pub struct PathTable {
    map: HashMap<PathKey, PathEntry, RandomState>,
    capacity: usize,
}

impl PathTable {
    pub fn new(capacity: usize) -> PathTable {
        PathTable {
            map: HashMap::default(),
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

    pub fn get(&self, key: &PathKey) -> Option<&PathEntry> {
        self.map.get(key)
    }

    pub fn insert(&mut self, key: PathKey, entry: PathEntry) {
        if self.capacity == 0 {
            return;
        }
        if self.map.len() >= self.capacity
            && !self.map.contains_key(&key)
            && let Some(k) = self.map.keys().next().copied()
        {
            self.map.remove(&k);
        }
        self.map.insert(key, entry);
    }

    /// Bytes on the heap.
    pub fn memory_bytes(&self) -> usize {
        super::uft::hash_table_bytes(
            self.map.capacity(),
            std::mem::size_of::<(PathKey, PathEntry)>(),
        )
    }
}
