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
const COLLISION_LIMIT: usize = 32;

/// How new tables are shaped: each step rounds prefix lengths down to a multiple of its
/// first number, so that rules with nearby lengths share a table (fewer tables = fewer
/// probes per lookup), and hashes single ports only if its flag is set. An atom opens a
/// table at the first step whose shape has no table yet.
pub(super) type Ladder = &'static [(u8, bool)];

/// The ladders a build tries (see `Classifier::build`); the first is the default. Which
/// one wins depends on the rule set's prefix-length mix: on ClassBench's sets, acl1
/// and ipc1 favour hashing single ports from the start, fw1 and acl1_100k coarse shapes
/// without ports. Each candidate costs one build, so the list stays short.
pub(super) const LADDERS: &[Ladder] = &[
    &[(16, false), (8, false), (8, true)],
    &[(20, false), (12, false), (8, true)],
    &[(20, true), (12, false), (8, true)],
];

/// Bits of filter per key in a table: at 16 a table that lacks the packet's key is
/// skipped after one bit test in about 94% of cases, without touching its hash map.
const FILTER_BITS_PER_KEY: usize = 16;
const FILTER_K1: u64 = 0x9e37_79b9_7f4a_7c15;
const FILTER_K2: u64 = 0xc2b2_ae3d_27d4_eb4f;

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
    /// The (masked) source and destination mixed into one word for the filter hash.
    fn fold(src: Self, dst: Self) -> u64;
}

impl Addr for u32 {
    fn prefix_mask(len: u8) -> u32 {
        match len {
            0 => 0,
            l => u32::MAX << (32 - u32::from(l.min(32))),
        }
    }
    #[inline(always)]
    fn fold(src: u32, dst: u32) -> u64 {
        u64::from(src) | u64::from(dst) << 32
    }
}

impl Addr for u128 {
    fn prefix_mask(len: u8) -> u128 {
        match len {
            0 => 0,
            l => u128::MAX << (128 - u32::from(l.min(128))),
        }
    }
    #[inline(always)]
    fn fold(src: u128, dst: u128) -> u64 {
        let s = (src >> 64) as u64 ^ (src as u64).wrapping_mul(FILTER_K2);
        let d = (dst >> 64) as u64 ^ (dst as u64).wrapping_mul(FILTER_K2);
        s ^ d.rotate_left(29).wrapping_mul(FILTER_K1)
    }
}

/// The mask of an IPv4 prefix of length `len`.
pub(super) fn prefix_mask_v4(len: u8) -> u32 {
    u32::prefix_mask(len)
}

/// The masked header fields a table hashes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(super) struct Key<A> {
    src: A,
    dst: A,
    rest: u64,
}

impl<A: Addr> Key<A> {
    /// A cheap hash for the per-table filter (the maps use ahash).
    #[inline(always)]
    fn filter_hash(&self) -> u64 {
        (A::fold(self.src, self.dst).wrapping_mul(FILTER_K1) ^ self.rest).wrapping_mul(FILTER_K2)
    }
}

/// A one-hash Bloom filter over a table's keys: most lookups miss most tables, and this
/// makes a miss one bit test.
#[derive(Clone, Debug)]
struct KeyFilter {
    words: Vec<u64>,
    /// `64 - log2(bits)`: the top bits of the hash pick the bit.
    shift: u32,
    /// Keys the filter was sized for; grows by rebuilding.
    capacity: usize,
}

impl KeyFilter {
    fn sized_for<A: Addr>(keys: impl Iterator<Item = Key<A>>, n: usize) -> KeyFilter {
        let capacity = n.max(4).next_power_of_two();
        let bits = capacity * FILTER_BITS_PER_KEY;
        let mut f = KeyFilter {
            words: vec![0; bits / 64],
            shift: 64 - bits.trailing_zeros(),
            capacity,
        };
        for k in keys {
            f.add(k.filter_hash());
        }
        f
    }

    fn add(&mut self, h: u64) {
        let bit = (h >> self.shift) as usize;
        if let Some(w) = self.words.get_mut(bit / 64) {
            *w |= 1 << (bit % 64);
        }
    }
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

    /// The tuple a new table gets for this atom at relaxation step `step` (0 = most
    /// relaxed): lengths rounded down so that neighbours can join it, ports hashed only
    /// from the later steps on and only for single ports. `None` past the last step.
    fn relaxed_tuple(&self, ladder: Ladder, step: usize) -> Option<Tuple> {
        let (rounding, ports) = *ladder.get(step)?;
        let rounding = rounding.max(1);
        let exact = self.tuple();
        let keep_port = |shift: u32| {
            let m = (exact.rest_mask >> shift) & 0xffff;
            if ports && m == 0xffff { m << shift } else { 0 }
        };
        Some(Tuple {
            src_len: self.src_len - self.src_len % rounding,
            dst_len: self.dst_len - self.dst_len % rounding,
            rest_mask: keep_port(SPORT_SHIFT) | keep_port(DPORT_SHIFT) | self.exact_mask,
        })
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
        // Non-short-circuit `&`: one well-predicted branch per entry instead of five
        // data-dependent ones.
        (p.src & self.src_mask == self.src)
            & (p.dst & self.dst_mask == self.dst)
            & (p.rest & self.exact_mask == self.exact_val)
            & (p.sport.wrapping_sub(self.sport_lo) <= self.sport_span)
            & (p.dport.wrapping_sub(self.dport_lo) <= self.dport_span)
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
    filter: KeyFilter,
    /// Keys added since the filter was last rebuilt (removals leave stale bits, which
    /// only cost a map probe): rebuilding when this exceeds the capacity keeps it tight.
    filter_adds: usize,
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
            filter: KeyFilter::sized_for::<A>(std::iter::empty(), 0),
            filter_adds: 0,
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
        if !self.map.contains_key(&key) {
            self.filter_adds += 1;
            if self.filter_adds > self.filter.capacity {
                self.filter_adds = self.map.len() + 1;
                self.filter = KeyFilter::sized_for(self.map.keys().copied(), self.map.len() + 1);
            }
            self.filter.add(key.filter_hash());
        }
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
            + self.filter.words.capacity() * 8
    }
}

/// One table in the lookup order: its best rank and masks, and where its filter is.
#[derive(Clone, Copy, Debug)]
struct Visit<A> {
    best: u64,
    rest_mask: u64,
    src_mask: A,
    dst_mask: A,
    filter_at: u32,
    filter_shift: u32,
    table: u32,
}

/// Where an atom went, so that removing its rule can find it again.
pub(super) type Placement<A> = (u32, Key<A>);

/// A set of tables over one address width.
pub(super) struct TupleSpace<A> {
    tables: Vec<Table<A>>,
    by_tuple: AHashMap<Tuple, u32>,
    /// Non-empty tables by best rank: the lookup order, with what a miss needs.
    order: Vec<Visit<A>>,
    /// Copies of the tables' filters side by side, so a miss touches no table.
    filters: Vec<u64>,
    /// Tables by decreasing specificity: the order inserts try them in.
    by_specificity: Vec<u32>,
    ladder: Ladder,
}

impl<A: Addr> Default for TupleSpace<A> {
    fn default() -> Self {
        TupleSpace {
            tables: Vec::new(),
            by_tuple: AHashMap::new(),
            order: Vec::new(),
            filters: Vec::new(),
            by_specificity: Vec::new(),
            ladder: LADDERS[0],
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
        let tuple = (0..)
            .map_while(|step| atom.relaxed_tuple(self.ladder, step))
            .find(|t| !self.by_tuple.contains_key(t))
            .unwrap_or_else(|| atom.tuple());
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
        self.filters.clear();
        for (i, t) in self.tables.iter().enumerate() {
            if t.atoms == 0 {
                continue;
            }
            self.order.push(Visit {
                best: t.best_rank(),
                rest_mask: t.tuple.rest_mask,
                src_mask: t.src_mask,
                dst_mask: t.dst_mask,
                filter_at: self.filters.len() as u32,
                filter_shift: t.filter.shift,
                table: i as u32,
            });
            self.filters.extend_from_slice(&t.filter.words);
        }
        self.order.sort_unstable_by_key(|v| (v.best, v.table));
    }

    /// Lowers `best` to the rank of the best atom matching the packet, if better.
    #[inline]
    pub fn lookup(&self, p: &Probe<A>, f: &Fields, rare: &[RareConditions], best: &mut u64) {
        for v in &self.order {
            // Tables are visited best first: none of the rest can win.
            if v.best >= *best {
                break;
            }
            let key = Key {
                src: p.src & v.src_mask,
                dst: p.dst & v.dst_mask,
                rest: p.rest & v.rest_mask,
            };
            let bit = (key.filter_hash() >> v.filter_shift) as usize;
            let word = self
                .filters
                .get(v.filter_at as usize + bit / 64)
                .copied()
                .unwrap_or(u64::MAX);
            if word & (1 << (bit % 64)) == 0 {
                continue;
            }
            let Some(bucket) = self
                .tables
                .get(v.table as usize)
                .and_then(|t| t.map.get(&key))
            else {
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

    pub fn with_ladder(ladder: Ladder) -> Self {
        TupleSpace {
            ladder,
            ..TupleSpace::default()
        }
    }

    /// What [`TupleSpace::lookup`] would cost for this packet, in about nanoseconds:
    /// weights fitted to ClassBench lookups on this project's machine (a filter test
    /// ~4 ns with its loop, a map probe that passes the filter ~20 ns, mostly a cache
    /// miss, a bucket entry ~1 ns). Rare conditions are taken as matching. Used to pick a
    /// ladder, never on the packet path.
    pub fn lookup_cost(&self, p: &Probe<A>) -> u64 {
        const FILTER_TEST: u64 = 4;
        const MAP_PROBE: u64 = 20;
        let (mut cost, mut best) = (0, u64::MAX);
        for v in &self.order {
            if v.best >= best {
                break;
            }
            cost += FILTER_TEST;
            let key = Key {
                src: p.src & v.src_mask,
                dst: p.dst & v.dst_mask,
                rest: p.rest & v.rest_mask,
            };
            let bit = (key.filter_hash() >> v.filter_shift) as usize;
            let word = self
                .filters
                .get(v.filter_at as usize + bit / 64)
                .copied()
                .unwrap_or(u64::MAX);
            if word & (1 << (bit % 64)) == 0 {
                continue;
            }
            cost += MAP_PROBE;
            let Some(bucket) = self
                .tables
                .get(v.table as usize)
                .and_then(|t| t.map.get(&key))
            else {
                continue;
            };
            for e in bucket {
                if e.rank >= best {
                    break;
                }
                cost += 1;
                if e.matches(p) {
                    best = e.rank;
                    break;
                }
            }
        }
        cost
    }

    pub fn table_count(&self) -> usize {
        self.order.len()
    }

    pub fn memory_bytes(&self) -> usize {
        self.tables.iter().map(Table::memory_bytes).sum::<usize>()
            + self.order.capacity() * size_of::<Visit<A>>()
            + self.filters.capacity() * 8
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
