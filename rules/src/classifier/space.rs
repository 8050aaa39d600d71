//! One tuple space of the classifier (TupleMerge): hash tables keyed by masked header
//! fields, each table holding the rule atoms whose prefixes are at least as long as the
//! table's masks. Generic over the address width so that the all-IPv4 space hashes
//! 32-bit addresses and only the mixed/IPv6 space pays for 128-bit ones.

use std::collections::BTreeMap;
use std::hash::Hash;
use std::ops::BitAnd;

use ahash::{AHashMap, RandomState};
use smallvec::SmallVec;

use super::rare::{NO_RARE, RareConditions};
use crate::model::Fields;

/// Most atoms a hash bucket takes before an insert looks for another table (TupleMerge's
/// collision limit): buckets are scanned linearly on lookup, so this bounds that scan.
const COLLISION_LIMIT: usize = 8;

/// New tables round prefix lengths down to a multiple of this, so that rules with nearby
/// lengths share a table (fewer tables = fewer hash probes per lookup).
const LENGTH_ROUNDING: u8 = 8;

/// Bit layout of the `rest` word: the non-address fields of a key.
pub(super) const SPORT_SHIFT: u32 = 0;
pub(super) const DPORT_SHIFT: u32 = 16;
pub(super) const PROTO_SHIFT: u32 = 32;
/// Address family bits (1 = IPv6) of the mixed space; always 0 in the IPv4 space.
pub(super) const SRC_V6_BIT: u64 = 1 << 40;
pub(super) const DST_V6_BIT: u64 = 1 << 41;

/// An address as a left-aligned bit string.
pub(super) trait Addr: Copy + Eq + Hash + Default + BitAnd<Output = Self> {
    /// The mask of the first `len` bits (`len` is clamped to the width).
    fn prefix_mask(len: u8) -> Self;
}

impl Addr for u32 {
    fn prefix_mask(len: u8) -> u32 {
        match len {
            0 => 0,
            l => u32::MAX << (32 - u32::from(l.min(32))),
        }
    }
}

impl Addr for u128 {
    fn prefix_mask(len: u8) -> u128 {
        match len {
            0 => 0,
            l => u128::MAX << (128 - u32::from(l.min(128))),
        }
    }
}

/// The masked header fields a table hashes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(super) struct Key<A> {
    src: A,
    dst: A,
    rest: u64,
}

/// A table's shape: which bits of each field its keys keep.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct Tuple {
    src_len: u8,
    dst_len: u8,
    rest_mask: u64,
}

/// One conjunction of a rule: a single prefix per address, one range per port, at most one
/// protocol and address family per side. Rules with lists expand into several atoms.
#[derive(Clone, Copy, Debug)]
pub(super) struct Atom<A> {
    pub src: A,
    pub src_len: u8,
    pub dst: A,
    pub dst_len: u8,
    pub sport_lo: u16,
    pub sport_hi: u16,
    pub dport_lo: u16,
    pub dport_hi: u16,
    /// Exact-match bits of `rest` (protocol, address families) and their values.
    pub exact_mask: u64,
    pub exact_val: u64,
}

/// Length of the longest common prefix of a port range's ends: the bits of the port a
/// hash key can use for this range.
fn port_prefix_len(lo: u16, hi: u16) -> u8 {
    (lo ^ hi).leading_zeros() as u8
}

fn port_mask(len: u8) -> u64 {
    match len {
        0 => 0,
        l => u64::from(u16::MAX << (16 - u32::from(l.min(16)))),
    }
}

impl<A: Addr> Atom<A> {
    /// The most specific tuple this atom fits.
    fn tuple(&self) -> Tuple {
        let sport = port_mask(port_prefix_len(self.sport_lo, self.sport_hi)) << SPORT_SHIFT;
        let dport = port_mask(port_prefix_len(self.dport_lo, self.dport_hi)) << DPORT_SHIFT;
        Tuple {
            src_len: self.src_len,
            dst_len: self.dst_len,
            rest_mask: sport | dport | self.exact_mask,
        }
    }

    /// The tuple a new table gets for this atom: lengths rounded down so that neighbours
    /// can join it; port ranges that are not single ports are not hashed at all.
    fn relaxed_tuple(&self) -> Tuple {
        let exact = self.tuple();
        let keep_port = |shift: u32| {
            let m = (exact.rest_mask >> shift) & 0xffff;
            if m == 0xffff { m << shift } else { 0 }
        };
        Tuple {
            src_len: self.src_len - self.src_len % LENGTH_ROUNDING,
            dst_len: self.dst_len - self.dst_len % LENGTH_ROUNDING,
            rest_mask: keep_port(SPORT_SHIFT) | keep_port(DPORT_SHIFT) | self.exact_mask,
        }
    }

    fn rest(&self) -> u64 {
        u64::from(self.sport_lo) << SPORT_SHIFT
            | u64::from(self.dport_lo) << DPORT_SHIFT
            | self.exact_val
    }

    fn fits(&self, t: &Tuple) -> bool {
        let mine = self.tuple();
        t.src_len <= mine.src_len && t.dst_len <= mine.dst_len && t.rest_mask & !mine.rest_mask == 0
    }
}

/// What a bucket stores per atom: everything needed to verify a match exactly.
#[derive(Clone, Copy, Debug)]
struct Entry<A> {
    /// (priority << 32 | id): the lower, the better.
    rank: u64,
    src: A,
    src_mask: A,
    dst: A,
    dst_mask: A,
    exact_mask: u64,
    exact_val: u64,
    sport_lo: u16,
    sport_span: u16,
    dport_lo: u16,
    dport_span: u16,
    /// Slot of the rule's post-filter conditions, or [`NO_RARE`].
    rare: u32,
}

/// The header of one packet as a space sees it.
#[derive(Clone, Copy)]
pub(super) struct Probe<A> {
    pub src: A,
    pub dst: A,
    /// Ports, protocol and family bits laid out like [`Key::rest`].
    pub rest: u64,
    pub sport: u16,
    pub dport: u16,
}

impl<A: Addr> Entry<A> {
    #[inline(always)]
    fn matches(&self, p: &Probe<A>) -> bool {
        p.src & self.src_mask == self.src
            && p.dst & self.dst_mask == self.dst
            && p.rest & self.exact_mask == self.exact_val
            && p.sport.wrapping_sub(self.sport_lo) <= self.sport_span
            && p.dport.wrapping_sub(self.dport_lo) <= self.dport_span
    }
}

type Bucket<A> = SmallVec<[Entry<A>; 2]>;

struct Table<A> {
    tuple: Tuple,
    src_mask: A,
    dst_mask: A,
    map: std::collections::HashMap<Key<A>, Bucket<A>, RandomState>,
    /// Multiset of the ranks stored here: its first key is the table's best rank, which
    /// lookups compare against to stop early.
    ranks: BTreeMap<u64, u32>,
    atoms: usize,
}

impl<A: Addr> Table<A> {
    fn new(tuple: Tuple) -> Table<A> {
        // Fixed seeds: builds are deterministic, and keys are not attacker-chosen
        // collisions any more than in the rule set itself.
        let hasher = RandomState::with_seeds(
            0x243f_6a88_85a3_08d3,
            0x1319_8a2e_0370_7344,
            0xa409_3822_299f_31d0,
            0x082e_fa98_ec4e_6c89,
        );
        Table {
            tuple,
            src_mask: A::prefix_mask(tuple.src_len),
            dst_mask: A::prefix_mask(tuple.dst_len),
            map: std::collections::HashMap::with_hasher(hasher),
            ranks: BTreeMap::new(),
            atoms: 0,
        }
    }

    #[inline(always)]
    fn key(&self, src: A, dst: A, rest: u64) -> Key<A> {
        Key {
            src: src & self.src_mask,
            dst: dst & self.dst_mask,
            rest: rest & self.tuple.rest_mask,
        }
    }

    fn atom_key(&self, a: &Atom<A>) -> Key<A> {
        self.key(a.src, a.dst, a.rest())
    }

    fn bucket_len(&self, key: &Key<A>) -> usize {
        self.map.get(key).map_or(0, |b| b.len())
    }

    fn insert(&mut self, key: Key<A>, e: Entry<A>) {
        let bucket = self.map.entry(key).or_default();
        // Buckets stay sorted by rank so a lookup stops at the first match.
        let at = bucket.partition_point(|x| x.rank <= e.rank);
        bucket.insert(at, e);
        *self.ranks.entry(e.rank).or_insert(0) += 1;
        self.atoms += 1;
    }

    fn remove(&mut self, key: &Key<A>, rank: u64) -> usize {
        let Some(bucket) = self.map.get_mut(key) else {
            return 0;
        };
        let before = bucket.len();
        bucket.retain(|e| e.rank != rank);
        let removed = before - bucket.len();
        if bucket.is_empty() {
            self.map.remove(key);
        }
        if removed > 0 {
            self.atoms -= removed;
            if let Some(n) = self.ranks.get_mut(&rank) {
                *n = n.saturating_sub(removed as u32);
                if *n == 0 {
                    self.ranks.remove(&rank);
                }
            }
        }
        removed
    }

    fn best_rank(&self) -> u64 {
        self.ranks.first_key_value().map_or(u64::MAX, |(r, _)| *r)
    }

    fn memory_bytes(&self) -> usize {
        let slot = size_of::<Key<A>>() + size_of::<Bucket<A>>() + 1;
        let spilled: usize = self
            .map
            .values()
            .filter(|b| b.spilled())
            .map(|b| b.capacity() * size_of::<Entry<A>>())
            .sum();
        size_of::<Self>()
            + self.map.capacity() * slot
            + spilled
            + self.ranks.len() * (size_of::<u64>() + size_of::<u32>()) * 2
    }
}

/// Where an atom went, so that removing its rule can find it again.
pub(super) type Placement<A> = (u32, Key<A>);

/// A set of tables over one address width.
pub(super) struct TupleSpace<A> {
    tables: Vec<Table<A>>,
    by_tuple: AHashMap<Tuple, u32>,
    /// Non-empty tables by best rank, with that rank: the lookup order.
    order: Vec<(u64, u32)>,
    /// Tables by decreasing specificity: the order inserts try them in.
    by_specificity: Vec<u32>,
}

impl<A: Addr> Default for TupleSpace<A> {
    fn default() -> Self {
        TupleSpace {
            tables: Vec::new(),
            by_tuple: AHashMap::new(),
            order: Vec::new(),
            by_specificity: Vec::new(),
        }
    }
}

impl<A: Addr> TupleSpace<A> {
    /// Stores one atom of a rule; the caller calls [`TupleSpace::refresh_order`] once the
    /// whole rule (or rule set) is in.
    pub fn insert(&mut self, atom: &Atom<A>, rank: u64, rare: u32) -> Placement<A> {
        let entry = Entry {
            rank,
            src: atom.src & A::prefix_mask(atom.src_len),
            src_mask: A::prefix_mask(atom.src_len),
            dst: atom.dst & A::prefix_mask(atom.dst_len),
            dst_mask: A::prefix_mask(atom.dst_len),
            exact_mask: atom.exact_mask,
            exact_val: atom.exact_val & atom.exact_mask,
            sport_lo: atom.sport_lo,
            sport_span: atom.sport_hi.wrapping_sub(atom.sport_lo),
            dport_lo: atom.dport_lo,
            dport_span: atom.dport_hi.wrapping_sub(atom.dport_lo),
            rare,
        };
        // TupleMerge: join the most specific existing table that fits and whose bucket
        // still has room.
        for &ti in &self.by_specificity {
            let t = &mut self.tables[ti as usize];
            if !atom.fits(&t.tuple) {
                continue;
            }
            let key = t.atom_key(atom);
            if t.bucket_len(&key) < COLLISION_LIMIT {
                t.insert(key, entry);
                return (ti, key);
            }
        }
        // Otherwise open a table of the atom's relaxed shape, or failing that (its bucket
        // there is full) of its exact shape, where it goes even if its bucket is full:
        // no table could separate it better.
        let relaxed = atom.relaxed_tuple();
        let tuple = match self.by_tuple.get(&relaxed) {
            None => relaxed,
            Some(_) => atom.tuple(),
        };
        let ti = self.table_for(tuple);
        let t = &mut self.tables[ti as usize];
        let key = t.atom_key(atom);
        t.insert(key, entry);
        (ti, key)
    }

    fn table_for(&mut self, tuple: Tuple) -> u32 {
        if let Some(&ti) = self.by_tuple.get(&tuple) {
            return ti;
        }
        let ti = self.tables.len() as u32;
        self.tables.push(Table::new(tuple));
        self.by_tuple.insert(tuple, ti);
        self.by_specificity.push(ti);
        let tables = &self.tables;
        self.by_specificity.sort_by_key(|&i| {
            let t = &tables[i as usize].tuple;
            std::cmp::Reverse(
                u32::from(t.src_len) + u32::from(t.dst_len) + t.rest_mask.count_ones(),
            )
        });
        ti
    }

    /// Removes the atoms of rank `rank` placed at `at`.
    pub fn remove(&mut self, at: &Placement<A>, rank: u64) {
        if let Some(t) = self.tables.get_mut(at.0 as usize) {
            t.remove(&at.1, rank);
        }
    }

    /// Recomputes the lookup order after inserts or removals.
    pub fn refresh_order(&mut self) {
        self.order.clear();
        self.order.extend(
            self.tables
                .iter()
                .enumerate()
                .filter(|(_, t)| t.atoms > 0)
                .map(|(i, t)| (t.best_rank(), i as u32)),
        );
        self.order.sort_unstable();
    }

    /// Lowers `best` to the rank of the best atom matching the packet, if better.
    #[inline]
    pub fn lookup(&self, p: &Probe<A>, f: &Fields, rare: &[RareConditions], best: &mut u64) {
        for &(table_best, ti) in &self.order {
            // Tables are visited best first: none of the rest can win.
            if table_best >= *best {
                break;
            }
            let Some(t) = self.tables.get(ti as usize) else {
                continue;
            };
            let Some(bucket) = t.map.get(&t.key(p.src, p.dst, p.rest)) else {
                continue;
            };
            for e in bucket {
                if e.rank >= *best {
                    break;
                }
                if e.matches(p)
                    && (e.rare == NO_RARE
                        || rare.get(e.rare as usize).is_some_and(|r| r.matches(f)))
                {
                    *best = e.rank;
                    break;
                }
            }
        }
    }

    pub fn table_count(&self) -> usize {
        self.order.len()
    }

    pub fn memory_bytes(&self) -> usize {
        self.tables.iter().map(Table::memory_bytes).sum::<usize>()
            + self.order.capacity() * size_of::<(u64, u32)>()
            + self.by_specificity.capacity() * size_of::<u32>()
            + self.by_tuple.capacity() * (size_of::<Tuple>() + size_of::<u32>() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_prefix_lengths() {
        assert_eq!(port_prefix_len(0, 65535), 0);
        assert_eq!(port_prefix_len(80, 80), 16);
        assert_eq!(port_prefix_len(1024, 2047), 6);
        assert_eq!(port_mask(16), 0xffff);
        assert_eq!(port_mask(0), 0);
        assert_eq!(u32::prefix_mask(32), u32::MAX);
        assert_eq!(u32::prefix_mask(8), 0xff00_0000);
        assert_eq!(u128::prefix_mask(0), 0);
    }
}
