//! The compiled classifier: picks a group's best matching rule (lowest priority number,
//! ties to the lowest id) among many thousands, with builds in milliseconds and single
//! rule inserts and removals in microseconds.
//!
//! # Algorithm (TupleMerge)
//!
//! Each rule is expanded into *atoms*: one prefix per address, one range per port, at most
//! one protocol (the cross product of its lists). Atoms live in hash tables; a table keeps
//! the first `s` bits of the source, `d` bits of the destination, some port bits and the
//! protocol, and holds atoms whose own prefixes are at least that long, so one probe with
//! the packet's masked header finds every atom of that table that could match. A bucket
//! holds a few atoms sorted by rank, each verified exactly. Tables are visited in the
//! order of the best rank they hold, and the walk stops when no remaining table can beat
//! the best match so far.
//!
//! Fields few rules use (ICMP, MACs, VLAN, VNI) are not hashed: a rule's conditions on
//! them are checked after its atom matched ([`rare`]). Packets whose two addresses are
//! IPv4 search a space with 32-bit keys; all others (IPv6, or mixed) a space with 128-bit
//! keys and address-family bits, so that rules on either family, or on none, stay exact.
//!
//! ```
//! use strata_rules::classifier::{ClassRule, Classifier};
//! use strata_rules::{Conditions, Fields, Mac};
//!
//! let web = Conditions { dst_port: vec![strata_rules::PortRange::single(80)], ..Conditions::any() };
//! let rules = vec![
//!     ClassRule { id: 1, priority: 10, conditions: web },
//!     ClassRule { id: 2, priority: 20, conditions: Conditions::any() },
//! ];
//! let c = Classifier::build(&rules);
//! let mut f = Fields {
//!     src_mac: Mac::ZERO, dst_mac: Mac::ZERO, vlan: None, vni: None,
//!     src_ip: "10.0.0.1".parse().unwrap(), dst_ip: "10.0.0.2".parse().unwrap(),
//!     protocol: 6, src_port: 40000, dst_port: 80, icmp: None,
//! };
//! assert_eq!(c.classify(&f), Some(1));
//! f.dst_port = 443;
//! assert_eq!(c.classify(&f), Some(2));
//! ```

mod atoms;
mod rare;
mod space;
#[cfg(test)]
mod tests;

use std::net::IpAddr;

use ahash::AHashMap;

use crate::model::{Conditions, Fields};
use rare::{NO_RARE, RareConditions};
use space::{
    DPORT_SHIFT, DST_V6_BIT, LADDERS, Ladder, PROTO_SHIFT, Placement, Probe, SPORT_SHIFT,
    SRC_V6_BIT, TupleSpace,
};

/// Below this many rules one ladder is good enough and tuning is not worth its time.
const AUTOTUNE_MIN_RULES: usize = 512;
/// Packets sampled from the rules to estimate each ladder's lookup cost.
const AUTOTUNE_SAMPLES: usize = 2048;

/// A rule as the classifier sees it: what it matches and how it ranks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassRule {
    pub id: u32,
    /// Lower wins; ties go to the lower id.
    pub priority: u32,
    pub conditions: Conditions,
}

/// What the classifier keeps per rule to remove it again.
struct Installed {
    rank: u64,
    rare: u32,
    v4: Vec<Placement<u32>>,
    mixed: Vec<Placement<u128>>,
}

/// A compiled rule set. See the module documentation for how it works.
#[derive(Default)]
pub struct Classifier {
    /// Atoms that can match packets whose two addresses are IPv4.
    v4: TupleSpace<u32>,
    /// Atoms that can match every other packet (an IPv6 address on either side).
    mixed: TupleSpace<u128>,
    /// Post-filter conditions, by slot; freed slots are reused.
    rare: Vec<RareConditions>,
    rare_free: Vec<u32>,
    rules: AHashMap<u32, Installed>,
    /// Set only while a build compares ladders: candidates need not pay for the mixed
    /// space, which all-IPv4 lookups (what the comparison samples) never visit.
    v4_only: bool,
}

fn rank(priority: u32, id: u32) -> u64 {
    u64::from(priority) << 32 | u64::from(id)
}

impl Classifier {
    /// An empty classifier.
    pub fn new() -> Classifier {
        Classifier::default()
    }

    /// Compiles a rule set. An id given twice keeps the later rule.
    ///
    /// Large sets are compiled once per candidate table-shaping ladder ([`LADDERS`]), and
    /// the one whose estimated lookup cost is lowest on packets sampled from the rules
    /// themselves is kept: builds are cheap, and the best shape depends on the set.
    pub fn build(rules: &[ClassRule]) -> Classifier {
        let mut last: AHashMap<u32, usize> = AHashMap::with_capacity(rules.len());
        for (i, r) in rules.iter().enumerate() {
            last.insert(r.id, i);
        }
        // Best rules first: they open the tables, which then take the shapes that the
        // early-exit order benefits from, and buckets fill in rank order.
        let mut sorted: Vec<&ClassRule> = rules
            .iter()
            .enumerate()
            .filter(|(i, r)| last.get(&r.id) == Some(i))
            .map(|(_, r)| r)
            .collect();
        sorted.sort_by_key(|r| rank(r.priority, r.id));
        if sorted.len() < AUTOTUNE_MIN_RULES {
            return Classifier::build_with(&sorted, LADDERS[0], false);
        }
        let step = (sorted.len() / AUTOTUNE_SAMPLES).max(1);
        let samples: Vec<Probe<u32>> = sorted
            .iter()
            .step_by(step)
            .enumerate()
            .filter_map(|(i, r)| atoms::sample_v4(&r.conditions, i as u64))
            .collect();
        let mut best: Option<(u64, Classifier)> = None;
        for ladder in LADDERS {
            let c = Classifier::build_with(&sorted, ladder, true);
            let cost: u64 = samples.iter().map(|p| c.v4.lookup_cost(p)).sum();
            if best.as_ref().is_none_or(|(b, _)| cost < *b) {
                best = Some((cost, c));
            }
        }
        let mut c = match best {
            Some((_, c)) => c,
            None => Classifier::build_with(&sorted, LADDERS[0], true),
        };
        c.install_mixed(&sorted);
        c
    }

    /// Builds from rules already deduplicated and sorted by rank.
    fn build_with(sorted: &[&ClassRule], ladder: Ladder, v4_only: bool) -> Classifier {
        let mut c = Classifier {
            v4: TupleSpace::with_ladder(ladder),
            mixed: TupleSpace::with_ladder(ladder),
            v4_only,
            ..Classifier::default()
        };
        c.rules.reserve(sorted.len());
        for r in sorted {
            c.install(r);
        }
        c.v4.refresh_order();
        c.mixed.refresh_order();
        c
    }

    /// The id of the best matching rule: lowest priority number, ties to the lowest id.
    #[inline]
    pub fn classify(&self, f: &Fields) -> Option<u32> {
        let mut best = u64::MAX;
        let (sport, dport) = (f.src_port, f.dst_port);
        let ports = u64::from(sport) << SPORT_SHIFT
            | u64::from(dport) << DPORT_SHIFT
            | u64::from(f.protocol) << PROTO_SHIFT;
        match (f.src_ip, f.dst_ip) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let p = Probe {
                    src: u32::from(s),
                    dst: u32::from(d),
                    rest: ports,
                    sport,
                    dport,
                };
                self.v4.lookup(&p, f, &self.rare, &mut best);
            }
            (s, d) => {
                let (src, src_v6) = atoms::widen(s);
                let (dst, dst_v6) = atoms::widen(d);
                let fam = if src_v6 { SRC_V6_BIT } else { 0 } | if dst_v6 { DST_V6_BIT } else { 0 };
                let p = Probe {
                    src,
                    dst,
                    rest: ports | fam,
                    sport,
                    dport,
                };
                self.mixed.lookup(&p, f, &self.rare, &mut best);
            }
        }
        (best != u64::MAX).then_some(best as u32)
    }

    /// Classifies packets in bulk: `out[i]` gets the answer for `fs[i]` (extra slots on
    /// either side are left alone).
    pub fn classify_batch(&self, fs: &[Fields], out: &mut [Option<u32>]) {
        for (f, o) in fs.iter().zip(out.iter_mut()) {
            *o = self.classify(f);
        }
    }

    /// Adds a rule (replacing one with the same id) without rebuilding the rest.
    pub fn insert(&mut self, rule: ClassRule) {
        self.remove(rule.id);
        self.install(&rule);
        self.v4.refresh_order();
        self.mixed.refresh_order();
    }

    /// Removes the rule with this id; false if there was none.
    pub fn remove(&mut self, id: u32) -> bool {
        let Some(installed) = self.rules.remove(&id) else {
            return false;
        };
        for at in &installed.v4 {
            self.v4.remove(at, installed.rank);
        }
        for at in &installed.mixed {
            self.mixed.remove(at, installed.rank);
        }
        if let Some(slot) = self.rare.get_mut(installed.rare as usize) {
            // NO_RARE is never a valid slot, so this only frees real ones.
            *slot = RareConditions::default();
            self.rare_free.push(installed.rare);
        }
        self.v4.refresh_order();
        self.mixed.refresh_order();
        true
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Number of hash tables a lookup may probe (IPv4 space, mixed space).
    pub fn table_counts(&self) -> (usize, usize) {
        (self.v4.table_count(), self.mixed.table_count())
    }

    /// Approximate heap and inline size of the compiled structures.
    pub fn memory_bytes(&self) -> usize {
        let placements: usize = self
            .rules
            .values()
            .map(|r| {
                size_of::<Installed>()
                    + r.v4.capacity() * size_of::<Placement<u32>>()
                    + r.mixed.capacity() * size_of::<Placement<u128>>()
            })
            .sum();
        size_of::<Self>()
            + self.v4.memory_bytes()
            + self.mixed.memory_bytes()
            + self
                .rare
                .iter()
                .map(RareConditions::memory_bytes)
                .sum::<usize>()
            + self.rare_free.capacity() * 4
            + self.rules.capacity() * (size_of::<u32>() + 1)
            + placements
    }

    /// Stores a rule's atoms; the caller refreshes the lookup orders.
    fn install(&mut self, r: &ClassRule) {
        if self.rules.contains_key(&r.id) {
            self.remove(r.id);
        }
        let rank = rank(r.priority, r.id);
        let rare = match RareConditions::of(&r.conditions) {
            None => NO_RARE,
            Some(conds) => match self.rare_free.pop() {
                Some(slot) => {
                    self.rare[slot as usize] = conds;
                    slot
                }
                None => {
                    self.rare.push(conds);
                    (self.rare.len() - 1) as u32
                }
            },
        };
        let mut installed = Installed {
            rank,
            rare,
            v4: Vec::new(),
            mixed: Vec::new(),
        };
        let with_mixed = !self.v4_only;
        atoms::expand(&r.conditions, |a| match a {
            atoms::Placed::V4(a) => installed.v4.push(self.v4.insert(&a, rank, rare)),
            atoms::Placed::Mixed(a) if with_mixed => {
                installed.mixed.push(self.mixed.insert(&a, rank, rare))
            }
            atoms::Placed::Mixed(_) => {}
        });
        self.rules.insert(r.id, installed);
    }

    /// Completes a classifier built with `v4_only`: stores the rules' mixed-space atoms.
    fn install_mixed(&mut self, sorted: &[&ClassRule]) {
        self.v4_only = false;
        for r in sorted {
            let Some(installed) = self.rules.get_mut(&r.id) else {
                continue;
            };
            let (rank, rare) = (installed.rank, installed.rare);
            atoms::expand(&r.conditions, |a| {
                if let atoms::Placed::Mixed(a) = a {
                    installed.mixed.push(self.mixed.insert(&a, rank, rare));
                }
            });
        }
        self.mixed.refresh_order();
    }
}
