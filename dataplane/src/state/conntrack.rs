//! Connection tracking: the connections a port has recorded, so that replies pass
//! without rule evaluation (DESIGN §2 "Stateful").
//!
//! Connections live in a slab addressed by [`ConnRef`] (slot + serial, so a stale
//! reference from a flow-table entry is detected, never misapplied) and are indexed by
//! their originating direction and [`ConnKey`] twice: as the first packet entered the
//! port (`entry_key`: later packets of the same direction) and as it left it after the
//! layers' transpositions (`exit_key`: replies arrive as its reverse). An index holds
//! only the 8-byte reference under the key's hash and compares keys in the slab (as
//! VPP's and DPDK's flow tables do), so a key is stored once; the rewrites a connection
//! keeps are interned per table, its own NAT ports beside it ([`PerFlow`]). A removed
//! connection's NAT binding is queued in `released` for the owner of the NAT pools.
//! Timeouts and the TCP state machine are the shared definitions of `strata_rules::conn`,
//! so the engine and the reference evaluator age connections alike.

use ahash::RandomState;
use hashbrown::HashTable;

use strata_rules::conn::{self as spec, ConnKey, Segment, TcpSeq, TcpState, TcpTrack};
use strata_rules::model::{Direction, Fields, proto};

use super::intern::Interner;
use super::uft::FlowPins;
use crate::transpose::{PerFlow, Transposition};

/// A handle on a connection; detects that the slot was reused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ConnRef {
    slot: u32,
    serial: u32,
}

impl ConnRef {
    /// A reference to no connection (a placeholder: no slot is `u32::MAX`).
    pub const NONE: ConnRef = ConnRef {
        slot: u32::MAX,
        serial: u32::MAX,
    };
}

/// State a connection holds on to so that all its packets are translated alike.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bindings {
    /// The NAT port allocated by a SNAT layer: (external IP, protocol, port).
    pub snat: Option<(std::net::IpAddr, u8, u16)>,
    /// The backend a load-balancing layer chose: (layer, backend index).
    pub backend: Option<(u16, u16)>,
}

/// One recorded connection. Laid out as declared: what every packet reads or writes
/// first (its clock, generation, state, and the key's protocol), within the first cache
/// line of its slot; TCP's sequence tracking next; what only the slow path reads after.
#[derive(Clone, Debug)]
#[repr(C)]
pub struct Connection {
    pub last_seen: u64,
    /// The port generation under which it was last validated.
    pub generation: u64,
    pub tcp: TcpState,
    pub orig_dir: Direction,
    /// The first packet's key where it entered the port.
    pub key: ConnKey,
    /// TCP sequence tracking (judges RSTs).
    pub track: TcpTrack,
    /// Its key where it left the port, after the layers' transpositions.
    pub exit_key: ConnKey,
    /// The rewrite of the connection's own direction, and of its replies: set by
    /// [`ConnTable::insert`], read with [`ConnTable::rewrites`].
    pub rewrites: Rewrites,
    pub bindings: Bindings,
    /// The pins of the packet that opened (or last re-validated) it: with `key`, the
    /// fields re-evaluated when the policy changes ([`ConnTable::orig_fields`]);
    /// interned per table, set by [`ConnTable::insert`].
    pub orig_pins: u32,
    /// The ICMP type and code of the packet that opened it (echo: which type answers).
    pub opened_by: Option<(u8, u8)>,
}

impl Connection {
    fn expired(&self, now: u64) -> bool {
        now.saturating_sub(self.last_seen) > spec::idle_timeout(self.key.protocol, self.tcp)
    }
}

/// Where a connection's rewrites are: the shared part interned in its table, the
/// per-flow part (NAT ports) here.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rewrites {
    shared: u32,
    own: [PerFlow; 2],
}

/// What a connection has carried, for listings (`strata ctl flows`). Kept beside the
/// connection, not in it: the packet path only bumps it in `touch`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnUsage {
    /// Packet time of its first packet.
    pub opened: u64,
    /// Packets in its own direction (the opening one included), and replies.
    pub packets_orig: u64,
    pub packets_reply: u64,
}

/// A slab slot, on cache-line boundaries: its serial, its usage counts and the start of
/// its connection (see [`Connection`]) share the first line.
#[repr(C, align(64))]
struct Slot {
    serial: u32,
    usage: ConnUsage,
    conn: Option<Connection>,
}

/// The connection table of one port, bounded by `capacity`.
pub struct ConnTable {
    /// By `(orig_dir, key)`.
    index: HashTable<ConnRef>,
    /// By `(orig_dir, exit_key)`.
    by_exit: HashTable<ConnRef>,
    hasher: RandomState,
    /// The shared parts of the connections' rewrites (own direction, replies).
    rewrites: Interner<[Transposition; 2]>,
    /// The pins of their opening packets.
    pins: Interner<FlowPins>,
    /// Bindings of removed connections, for the NAT pools' owner to free.
    pub released: Vec<Bindings>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    capacity: usize,
    /// Where the incremental sweep resumes.
    cursor: usize,
    /// Slots the incremental sweep has looked at, ever: its cost, for tests and metrics.
    pub examined: u64,
}

/// Slots examined by the incremental sweep for every connection recorded: expired
/// connections are reclaimed at least as fast as new ones arrive, without a pause.
const SWEEP_PER_INSERT: usize = 2;
/// Slots examined when the table is full, before giving up on the new connection.
pub const SWEEP_WHEN_FULL: usize = 64;

/// What a packet did to its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Touch {
    /// It passes; the connection lives on.
    Alive,
    /// It passes, and ended the connection (an RST at the expected sequence number).
    Ended,
    /// It is refused (an RST outside the window); the connection is untouched.
    OutOfWindow,
    /// The connection no longer exists.
    Gone,
}

/// Where `(dir, key)` hashes in an index: as a packed flow key.
fn hash_of(hasher: &RandomState, dir: Direction, key: &ConnKey) -> u64 {
    hasher.hash_one(crate::flow::FlowKey::of_conn(dir, key))
}

/// Which of a table's two indexes.
#[derive(Clone, Copy)]
enum Index {
    Entry,
    Exit,
}

impl Index {
    fn key(self, c: &Connection) -> &ConnKey {
        match self {
            Index::Entry => &c.key,
            Index::Exit => &c.exit_key,
        }
    }
}

/// The table is full of live connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

impl ConnTable {
    /// A table of at most `capacity` connections, sized for `reserve` of them at start.
    pub fn new(capacity: usize, reserve: usize) -> ConnTable {
        let reserve = reserve.min(capacity);
        ConnTable {
            // Unless reserved, tables start empty and grow on the slow path up to their
            // capacity: a port with a handful of flows costs a handful of entries.
            index: HashTable::with_capacity(reserve),
            by_exit: HashTable::with_capacity(reserve),
            hasher: RandomState::new(),
            rewrites: Interner::default(),
            pins: Interner::default(),
            released: Vec::new(),
            slots: Vec::with_capacity(reserve),
            free: Vec::new(),
            capacity,
            cursor: 0,
            examined: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Bytes the table holds on the heap: the slab, its free list and both indexes.
    pub fn memory_bytes(&self) -> usize {
        let index = std::mem::size_of::<ConnRef>();
        self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.free.capacity() * std::mem::size_of::<u32>()
            + super::uft::hash_table_bytes(self.index.capacity(), index)
            + super::uft::hash_table_bytes(self.by_exit.capacity(), index)
            + self.rewrites.memory_bytes()
            + self.pins.memory_bytes()
    }

    pub fn get(&self, r: ConnRef) -> Option<&Connection> {
        let s = self.slots.get(r.slot as usize)?;
        if s.serial != r.serial {
            return None;
        }
        s.conn.as_ref()
    }

    /// The connection if it still exists and has not expired at `now`; an expired one is
    /// removed.
    pub fn live(&mut self, r: ConnRef, now: u64) -> Option<&mut Connection> {
        let expired = self.get(r)?.expired(now);
        if expired {
            self.remove(r);
            return None;
        }
        self.slots.get_mut(r.slot as usize)?.conn.as_mut()
    }

    /// Finds the live connection with this originating direction and key.
    pub fn lookup(&mut self, orig_dir: Direction, key: ConnKey, now: u64) -> Option<ConnRef> {
        let r = self.find(Index::Entry, orig_dir, &key)?;
        self.live(r, now).map(|_| r)
    }

    /// The rewrites of connection `r`: its own direction's, and its replies'.
    pub fn rewrites(&self, r: ConnRef) -> Option<[Transposition; 2]> {
        let w = self.get(r)?.rewrites;
        let shared = self.rewrites.get(w.shared)?;
        Some([w.own[0].join(&shared[0]), w.own[1].join(&shared[1])])
    }

    /// The fields (and ICMP echo identifier) of the packet that opened `c`, or last
    /// re-validated it.
    pub fn orig_fields(&self, c: &Connection) -> Option<(Fields, Option<u16>)> {
        Some(self.pins.get(c.orig_pins)?.with_key(&c.key))
    }

    /// Records the pins of a packet that re-validated connection `r`.
    pub fn repin(&mut self, r: ConnRef, pins: FlowPins) {
        let Some(old) = self.get(r).map(|c| c.orig_pins) else {
            return;
        };
        if self.pins.get(old) == Some(&pins) {
            return;
        }
        let new = self.pins.acquire(pins);
        self.pins.release(old);
        if let Some(c) = self
            .slots
            .get_mut(r.slot as usize)
            .and_then(|s| s.conn.as_mut())
        {
            c.orig_pins = new;
        }
    }

    fn hash(&self, dir: Direction, key: &ConnKey) -> u64 {
        hash_of(&self.hasher, dir, key)
    }

    /// The connection an index holds under `(dir, key)`.
    fn find(&self, which: Index, dir: Direction, key: &ConnKey) -> Option<ConnRef> {
        self.find_hashed(which, self.hash(dir, key), dir, key)
    }

    fn find_hashed(
        &self,
        which: Index,
        hash: u64,
        dir: Direction,
        key: &ConnKey,
    ) -> Option<ConnRef> {
        let (table, slots) = (self.table(which), &self.slots);
        let found = table.find(hash, |r| {
            slots
                .get(r.slot as usize)
                .and_then(|s| s.conn.as_ref())
                .is_some_and(|c| c.orig_dir == dir && which.key(c) == key)
        });
        found.copied()
    }

    fn table(&self, which: Index) -> &HashTable<ConnRef> {
        match which {
            Index::Entry => &self.index,
            Index::Exit => &self.by_exit,
        }
    }

    /// Takes `r` out of an index, where it is under `(dir, key)`.
    fn unindex(&mut self, which: Index, dir: Direction, key: &ConnKey, r: ConnRef) {
        let hash = self.hash(dir, key);
        let table = match which {
            Index::Entry => &mut self.index,
            Index::Exit => &mut self.by_exit,
        };
        if let Ok(e) = table.find_entry(hash, |x| *x == r) {
            e.remove();
        }
    }

    /// Puts `r` (already in its slot) in an index under `(dir, key)`.
    fn reindex(&mut self, which: Index, hash: u64, r: ConnRef) {
        let (table, slots, hasher) = match which {
            Index::Entry => (&mut self.index, &self.slots, &self.hasher),
            Index::Exit => (&mut self.by_exit, &self.slots, &self.hasher),
        };
        // Rehashing on growth reads each connection's key back from the slab.
        table.insert_unique(hash, r, |x| {
            slots
                .get(x.slot as usize)
                .and_then(|s| s.conn.as_ref())
                .map_or(0, |c| hash_of(hasher, c.orig_dir, which.key(c)))
        });
    }

    /// Finds the live connection whose replies look like `reply_key` arriving in
    /// `reply_dir`.
    pub fn lookup_reply(
        &mut self,
        reply_dir: Direction,
        reply_key: ConnKey,
        now: u64,
    ) -> Option<ConnRef> {
        let r = self.find(Index::Exit, reply_dir.reverse(), &reply_key.reverse())?;
        self.live(r, now).map(|_| r)
    }

    /// Records a new connection. Each insert sweeps a few slots (expiry is amortised);
    /// when full, a bounded sweep reclaims expired connections, else one that is only
    /// half-open or closing (established ones are never evicted), else it fails.
    pub fn insert(
        &mut self,
        mut conn: Connection,
        rewrites: [Transposition; 2],
        pins: FlowPins,
        now: u64,
    ) -> Result<ConnRef, Full> {
        self.sweep_some(now, SWEEP_PER_INSERT, false);
        if self.index.len() >= self.capacity
            && self.sweep_some(now, SWEEP_WHEN_FULL, false) == 0
            && self.sweep_some(now, SWEEP_WHEN_FULL, true) == 0
        {
            return Err(Full);
        }
        // A connection recorded under the same key, or leaving under the same exit key,
        // gives way to the new one.
        let (dir, key, exit_key) = (conn.orig_dir, conn.key, conn.exit_key);
        let (by_key, by_exit) = (self.hash(dir, &key), self.hash(dir, &exit_key));
        if let Some(old) = self.find_hashed(Index::Entry, by_key, dir, &key) {
            self.remove(old);
        }
        if let Some(old) = self.find_hashed(Index::Exit, by_exit, dir, &exit_key) {
            self.remove(old);
        }
        let [(own0, shared0), (own1, shared1)] = rewrites.map(|t| PerFlow::split(&t));
        conn.rewrites = Rewrites {
            shared: self.rewrites.acquire([shared0, shared1]),
            own: [own0, own1],
        };
        conn.orig_pins = self.pins.acquire(pins);
        let usage = ConnUsage {
            opened: now,
            packets_orig: 1,
            packets_reply: 0,
        };
        let reused = self
            .free
            .pop()
            .and_then(|slot| Some((slot, self.slots.get_mut(slot as usize)?)));
        let r = match reused {
            Some((slot, s)) => {
                s.serial = s.serial.wrapping_add(1);
                s.conn = Some(conn);
                s.usage = usage;
                ConnRef {
                    slot,
                    serial: s.serial,
                }
            }
            None => {
                let slot = self.slots.len() as u32;
                self.slots.push(Slot {
                    serial: 0,
                    conn: Some(conn),
                    usage,
                });
                ConnRef { slot, serial: 0 }
            }
        };
        self.reindex(Index::Entry, by_key, r);
        self.reindex(Index::Exit, by_exit, r);
        Ok(r)
    }

    pub fn remove(&mut self, r: ConnRef) {
        let Some(c) = self.get(r) else { return };
        let (dir, key, exit_key, bindings, shared, pins) = (
            c.orig_dir,
            c.key,
            c.exit_key,
            c.bindings,
            c.rewrites.shared,
            c.orig_pins,
        );
        self.unindex(Index::Entry, dir, &key, r);
        self.unindex(Index::Exit, dir, &exit_key, r);
        self.rewrites.release(shared);
        self.pins.release(pins);
        if let Some(s) = self.slots.get_mut(r.slot as usize)
            && s.serial == r.serial
            && s.conn.take().is_some()
        {
            self.free.push(r.slot);
        }
        if bindings != Bindings::default() {
            self.released.push(bindings);
        }
    }

    /// What a packet of connection `r` (from its originator, or not) does to it: its
    /// clock and TCP state move on, an exact RST ends it (after this packet, which
    /// passes), an RST outside the window is refused and changes nothing.
    pub fn touch(
        &mut self,
        r: ConnRef,
        flags: u8,
        seq: &TcpSeq,
        from_orig: bool,
        now: u64,
    ) -> Touch {
        let Some(s) = self
            .slots
            .get_mut(r.slot as usize)
            .filter(|s| s.serial == r.serial)
        else {
            return Touch::Gone;
        };
        let Some(c) = s.conn.as_mut() else {
            return Touch::Gone;
        };
        let step = if c.key.protocol == proto::TCP {
            spec::tcp_step(&mut c.tcp, &mut c.track, from_orig, flags, seq)
        } else {
            Segment::Pass
        };
        // Usage counts what passes (the packet that ends a connection included).
        if !matches!(step, Segment::OutOfWindow) {
            if from_orig {
                s.usage.packets_orig += 1;
            } else {
                s.usage.packets_reply += 1;
            }
        }
        match step {
            Segment::OutOfWindow => Touch::OutOfWindow,
            Segment::Ends => {
                self.remove(r);
                Touch::Ended
            }
            Segment::Pass => {
                c.last_seen = now;
                Touch::Alive
            }
        }
    }

    /// Every recorded connection (expired ones not yet swept included), with its usage.
    pub fn iter(&self) -> impl Iterator<Item = (&Connection, ConnUsage)> + '_ {
        self.slots
            .iter()
            .filter_map(|s| s.conn.as_ref().map(|c| (c, s.usage)))
    }

    /// Removes every expired connection (every connection at `u64::MAX`); returns how
    /// many. Walks the whole table: for a port that goes away, never on the packet path.
    pub fn sweep(&mut self, now: u64) -> usize {
        let dead: Vec<ConnRef> = self
            .index
            .iter()
            .copied()
            .filter(|r| self.get(*r).is_some_and(|c| c.expired(now)))
            .collect();
        for r in &dead {
            self.remove(*r);
        }
        dead.len()
    }

    /// Looks at up to `budget` slots from where the last call stopped and removes the
    /// expired connections among them (with `evict`, instead the first one that is not
    /// established: half-open or closing); returns how many it removed.
    pub fn sweep_some(&mut self, now: u64, budget: usize, evict: bool) -> usize {
        let n = self.slots.len();
        if n == 0 {
            return 0;
        }
        let mut removed = 0;
        for _ in 0..budget.min(n) {
            self.cursor = (self.cursor + 1) % n;
            self.examined += 1;
            let Some(slot) = self.slots.get(self.cursor) else {
                continue;
            };
            let Some(c) = slot.conn.as_ref() else {
                continue;
            };
            let r = ConnRef {
                slot: self.cursor as u32,
                serial: slot.serial,
            };
            let unestablished = c.key.protocol == proto::TCP && c.tcp != TcpState::Established;
            if c.expired(now) || (evict && unestablished) {
                self.remove(r);
                removed += 1;
                if evict {
                    break;
                }
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use super::*;

    #[test]
    fn what_every_packet_touches_shares_the_first_cache_line_of_a_slot() {
        let conn = offset_of!(Slot, conn);
        let last = conn + offset_of!(Connection, key) + offset_of!(ConnKey, protocol);
        assert!(last < 64, "the key's protocol at {last}");
        assert!(offset_of!(Slot, usage) + size_of::<ConnUsage>() <= 64);
        assert_eq!(size_of::<Option<Connection>>(), size_of::<Connection>());
        assert_eq!(std::mem::align_of::<Slot>(), 64);
        eprintln!(
            "slot {} bytes, connection {}",
            size_of::<Slot>(),
            size_of::<Connection>()
        );
    }
}
