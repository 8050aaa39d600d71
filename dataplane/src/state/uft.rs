//! The unified flow table (UFT): each flow's composite decision, cached under its
//! [`FlowKey`] so that later packets skip the layers (DESIGN §2).
//!
//! An entry is valid only for the exact [`Fields`] it was computed for and the port
//! generation it was computed under; anything else sends the packet to the slow path,
//! which overwrites the entry. The table is bounded: when full, an entry is evicted (it
//! is only a cache; connection state lives in the `conntrack` table).

use std::collections::HashMap;

use ahash::RandomState;

use smallvec::SmallVec;
use strata_rules::model::Fields;

use super::conntrack::ConnRef;
use super::intern::Interner;
use crate::drop::DropReason;
use crate::flow::FlowKey;
use crate::policy::Decision;
use crate::transpose::{PerFlow, Transposition};

/// What the slow path decided for a flow on one port traversal.
#[derive(Clone, Debug)]
pub enum CachedAction {
    /// The flow replies to a recorded connection: pass without evaluation.
    Reply(ConnRef),
    /// Allowed by the layers; `conn` is the connection it keeps alive, if stateful.
    Allow {
        conn: Option<ConnRef>,
        decided: Option<Decision>,
    },
    /// Blocked.
    Drop {
        reason: DropReason,
        decided: Option<Decision>,
    },
}

/// The header fields a flow key does not pin but rules may look at: an entry answers
/// only for packets that have the same.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FlowPins {
    src_mac: strata_rules::model::Mac,
    dst_mac: strata_rules::model::Mac,
    vlan: Option<u16>,
    vni: Option<u32>,
    icmp: Option<(u8, u8)>,
}

impl FlowPins {
    pub fn of(f: &Fields) -> FlowPins {
        FlowPins {
            src_mac: f.src_mac,
            dst_mac: f.dst_mac,
            vlan: f.vlan,
            vni: f.vni,
            icmp: f.icmp,
        }
    }

    /// The header fields (and ICMP echo identifier) of a packet of connection key `k`
    /// with these pins: the inverse of `conn_key` and `FlowPins::of` together, so a
    /// connection keeps its opening packet's fields as its key and a pins index.
    pub fn with_key(&self, k: &strata_rules::conn::ConnKey) -> (Fields, Option<u16>) {
        // Only ICMP echo has a connection among ICMP messages; its key's ports are the
        // identifier, its fields' ports 0.
        let (src_port, dst_port, icmp_id) = match self.icmp {
            Some(_) => (0, 0, Some(k.src_port)),
            None => (k.src_port, k.dst_port, None),
        };
        let fields = Fields {
            src_mac: self.src_mac,
            dst_mac: self.dst_mac,
            vlan: self.vlan,
            vni: self.vni,
            src_ip: k.src_ip,
            dst_ip: k.dst_ip,
            protocol: k.protocol,
            src_port,
            dst_port,
            icmp: self.icmp,
        };
        (fields, icmp_id)
    }
}

/// Where the switch delivers a flow's packets after the sender's layers, when that is
/// fixed by the policy alone (bridged or routed to an endpoint slot, or to the uplink);
/// NAT owners and encapsulation depend on state and are never remembered. Valid only
/// under the policy topology it was found in (`FlowEntry::topology`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Delivery {
    #[default]
    Unknown,
    Uplink,
    Bridged(u32),
    Routed(u32),
}

/// A cached flow, whole: what the slow path records.
#[derive(Clone, Debug)]
pub struct FlowEntry {
    pub pins: FlowPins,
    pub generation: u64,
    pub action: CachedAction,
    /// The port's composite rewrite for this flow.
    pub rewrite: crate::transpose::Transposition,
    /// The switch's delivery of this flow, once known, and the policy topology it holds in.
    pub delivery: Delivery,
    pub topology: u64,
    /// Every layer decision taken ([`Decision::pack`]ed), for per-rule hit counters on
    /// the fast path.
    pub hits: SmallVec<[u64; 4]>,
}

/// A cached action less its connection, which is the flow's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum ActionShape {
    Reply,
    Allow {
        stateful: bool,
        decided: Option<Decision>,
    },
    Drop {
        reason: DropReason,
        decided: Option<Decision>,
    },
}

/// What the flows of one decision share: interned (`state::intern`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FlowShape {
    pins: FlowPins,
    generation: u64,
    action: ActionShape,
    /// The rewrite less its per-flow fields.
    rewrite: Transposition,
    pub hits: SmallVec<[u64; 4]>,
}

/// One flow's own part (40 bytes): its shape, connection, per-flow rewrite fields and where the
/// switch delivered it (learnt after the entry is made, so not part of the shape).
#[derive(Clone, Copy, Debug)]
struct Stored {
    shape: u32,
    own: PerFlow,
    conn: ConnRef,
    delivery: Delivery,
    topology: u64,
}

/// A flow-table hit.
pub struct Cached<'a> {
    pub action: CachedAction,
    pub rewrite: Transposition,
    pub delivery: Delivery,
    /// The policy topology `delivery` holds in.
    pub topology: u64,
    pub shape: &'a FlowShape,
}

/// A port's flow table.
pub struct FlowTable {
    map: HashMap<FlowKey, Stored, RandomState>,
    shapes: Interner<FlowShape>,
    capacity: usize,
    pub evictions: u64,
}

impl FlowTable {
    /// A table of at most `capacity` flows, sized for `reserve` of them at start.
    pub fn new(capacity: usize, reserve: usize) -> FlowTable {
        FlowTable {
            // Grows on the slow path up to `capacity` once `reserve` is reached.
            map: HashMap::with_capacity_and_hasher(reserve.min(capacity), RandomState::new()),
            shapes: Interner::default(),
            // 0: cache nothing (every packet takes the slow path: a cold engine).
            capacity,
            evictions: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes the table holds on the heap: its buckets (key, entry and control byte
    /// each) and the shapes they share.
    pub fn memory_bytes(&self) -> usize {
        hash_table_bytes(
            self.map.capacity(),
            std::mem::size_of::<(FlowKey, Stored)>(),
        ) + self.shapes.memory_bytes()
    }

    /// The entry for `key`, if it was computed for exactly these fields under `generation`.
    /// (The key already pins addresses, protocol and ports; the rest is compared here.)
    pub fn get(&self, key: &FlowKey, fields: &Fields, generation: u64) -> Option<Cached<'_>> {
        let e = self.map.get(key)?;
        let shape = self.shapes.get(e.shape)?;
        if shape.generation != generation || shape.pins != FlowPins::of(fields) {
            return None;
        }
        let action = match shape.action {
            ActionShape::Reply => CachedAction::Reply(e.conn),
            ActionShape::Allow { stateful, decided } => CachedAction::Allow {
                conn: stateful.then_some(e.conn),
                decided,
            },
            ActionShape::Drop { reason, decided } => CachedAction::Drop { reason, decided },
        };
        Some(Cached {
            action,
            rewrite: e.own.join(&shape.rewrite),
            delivery: e.delivery,
            topology: e.topology,
            shape,
        })
    }

    pub fn insert(&mut self, key: FlowKey, entry: FlowEntry) {
        if self.capacity == 0 {
            return;
        }
        if self.map.len() >= self.capacity && !self.map.contains_key(&key) {
            // Evict one entry: any will do, it is only a cache.
            if let Some(k) = self.map.keys().next().copied() {
                self.remove(&k);
                self.evictions += 1;
            }
        }
        let (action, conn) = match entry.action {
            CachedAction::Reply(c) => (ActionShape::Reply, c),
            CachedAction::Allow { conn, decided } => (
                ActionShape::Allow {
                    stateful: conn.is_some(),
                    decided,
                },
                conn.unwrap_or(ConnRef::NONE),
            ),
            CachedAction::Drop { reason, decided } => {
                (ActionShape::Drop { reason, decided }, ConnRef::NONE)
            }
        };
        let (own, rewrite) = PerFlow::split(&entry.rewrite);
        let shape = self.shapes.acquire(FlowShape {
            pins: entry.pins,
            generation: entry.generation,
            action,
            rewrite,
            hits: entry.hits,
        });
        let stored = Stored {
            shape,
            own,
            conn,
            delivery: entry.delivery,
            topology: entry.topology,
        };
        if let Some(old) = self.map.insert(key, stored) {
            self.shapes.release(old.shape);
        }
    }

    /// Remembers where the switch delivered this flow, under policy topology `topology`.
    pub fn remember_delivery(&mut self, key: &FlowKey, d: Delivery, topology: u64) {
        if let Some(e) = self.map.get_mut(key) {
            e.delivery = d;
            e.topology = topology;
        }
    }

    /// Forgets a flow; whether there was one.
    pub fn remove(&mut self, key: &FlowKey) -> bool {
        match self.map.remove(key) {
            Some(old) => {
                self.shapes.release(old.shape);
                true
            }
            None => false,
        }
    }
}

/// The heap bytes of a `HashMap` of `capacity` holding `entry`-byte entries: hashbrown
/// keeps a power-of-two number of buckets, at most 7/8 full, each with one control byte.
pub(crate) fn hash_table_bytes(capacity: usize, entry: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let buckets = (capacity * 8 / 7).next_power_of_two().max(4);
    buckets * (entry + 1)
}

#[cfg(test)]
mod tests {
    use strata_rules::conn::conn_key;
    use strata_rules::model::{Fields, Mac};

    use super::FlowPins;

    #[test]
    fn a_connection_key_and_its_pins_give_back_the_opening_fields() {
        let base = Fields {
            src_mac: Mac([0, 0x15, 0x5d, 0, 0, 1]),
            dst_mac: Mac([2, 0, 0, 0, 0, 1]),
            vlan: Some(7),
            vni: None,
            src_ip: "198.18.0.1".parse().unwrap(),
            dst_ip: "2001:db8::1".parse().unwrap(),
            protocol: 6,
            src_port: 40000,
            dst_port: 443,
            icmp: None,
        };
        let cases = [
            (base, None),
            (
                Fields {
                    protocol: 17,
                    ..base
                },
                None,
            ),
            (
                Fields {
                    protocol: 47,
                    src_port: 0,
                    dst_port: 0,
                    ..base
                },
                None,
            ),
            (
                Fields {
                    protocol: 1,
                    src_port: 0,
                    dst_port: 0,
                    icmp: Some((8, 0)),
                    ..base
                },
                Some(4242),
            ),
            (
                Fields {
                    protocol: 58,
                    src_port: 0,
                    dst_port: 0,
                    icmp: Some((129, 0)),
                    ..base
                },
                Some(7),
            ),
        ];
        for (f, id) in cases {
            let k = conn_key(&f, id).unwrap();
            assert_eq!(FlowPins::of(&f).with_key(&k), (f, id), "{f:?}");
        }
    }
}
