//! NAT port allocation: which external port a new SNAT connection gets.
//!
//! A [`PortPool`] owns the ports of one (external IP, protocol) over a [`PortRange`]; a
//! [`NatPools`] holds one pool per (external IP, protocol), created the first time an
//! SNAT rule uses it. The allocation rule is the spec's (the reference evaluator does
//! the same): the connection's own port if it is inside the range and free (so most
//! connections keep their port, as HNS's NAT does), else the lowest free port of the
//! range, else nothing (the packet is dropped as `nat-ports-exhausted`).
//!
//! A pool is a bitmap allocated once; allocating and freeing never allocate, and the
//! lowest-free search skips whole full words, starting from a hint below which every
//! word is known full.
//!
//! ```
//! use strata_dataplane::state::nat::PortPool;
//! use strata_rules::PortRange;
//!
//! let mut pool = PortPool::new(PortRange { lo: 1024, hi: 1026 });
//! assert_eq!(pool.allocate(1025), Some(1025)); // its own port: free, in range
//! assert_eq!(pool.allocate(1025), Some(1024)); // taken: the lowest free one
//! assert_eq!(pool.allocate(80), Some(1026)); // out of range: the lowest free one
//! assert_eq!(pool.allocate(1024), None); // exhausted
//! assert!(pool.free(1025));
//! assert_eq!(pool.allocate(9999), Some(1025));
//! ```

use std::collections::HashMap;
use std::net::IpAddr;

use strata_rules::PortRange;

/// The ports in use of one (external IP, protocol), over a range.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PortPool {
    range: PortRange,
    /// Bit `p - range.lo` is set when port `p` is in use. Bits past the end of the range
    /// in the last word are set for good, so the search needs no end-of-range check.
    words: Vec<u64>,
    in_use: usize,
    /// Every word before this one is full: the lowest-free search starts here.
    hint: usize,
}

impl PortPool {
    /// A pool of the ports of `range`, all free. A range with `lo > hi` is empty: every
    /// allocation fails.
    pub fn new(range: PortRange) -> PortPool {
        let capacity = range_len(range);
        let mut words = vec![0u64; capacity.div_ceil(64)];
        let tail = capacity % 64;
        if let Some(last) = words.last_mut().filter(|_| tail != 0) {
            *last = u64::MAX << tail;
        }
        PortPool {
            range,
            words,
            in_use: 0,
            hint: 0,
        }
    }

    /// Allocates a port: `preferred` if it is inside the range and free, else the lowest
    /// free port of the range; `None` when every port is in use.
    pub fn allocate(&mut self, preferred: u16) -> Option<u16> {
        self.allocate_in(self.range, preferred)
    }

    /// [`allocate`](Self::allocate), restricted to the ports of `within` (intersected
    /// with the pool's range): for rules whose ranges differ but share one pool.
    pub fn allocate_in(&mut self, within: PortRange, preferred: u16) -> Option<u16> {
        let lo = within.lo.max(self.range.lo);
        let hi = within.hi.min(self.range.hi);
        if lo > hi {
            return None;
        }
        if (lo..=hi).contains(&preferred) && self.is_free(preferred) {
            self.set(preferred);
            return Some(preferred);
        }
        let bit = self.lowest_free(self.bit(lo), self.bit(hi))?;
        let port = self.range.lo + bit as u16;
        self.set(port);
        Some(port)
    }

    /// Returns `port` to the pool; `true` if it was in use. A port outside the range or
    /// already free is left alone.
    pub fn free(&mut self, port: u16) -> bool {
        if !self.range.contains(port) || self.is_free(port) {
            return false;
        }
        let bit = self.bit(port);
        if let Some(w) = self.words.get_mut(bit / 64) {
            *w &= !(1u64 << (bit % 64));
        }
        self.in_use -= 1;
        self.hint = self.hint.min(bit / 64);
        true
    }

    /// Whether `port` is inside the range and not in use.
    pub fn is_free(&self, port: u16) -> bool {
        if !self.range.contains(port) {
            return false;
        }
        let bit = self.bit(port);
        self.words
            .get(bit / 64)
            .is_some_and(|w| w & (1u64 << (bit % 64)) == 0)
    }

    /// How many ports are allocated.
    pub fn in_use(&self) -> usize {
        self.in_use
    }

    /// How many ports the range holds (0 for an empty range, 65536 for `0..=65535`).
    pub fn capacity(&self) -> usize {
        range_len(self.range)
    }

    /// The range the pool covers.
    pub fn range(&self) -> PortRange {
        self.range
    }

    /// Grows the pool to cover `range` too (the smallest range holding both), keeping
    /// the ports in use. Allocates: for the slow path only.
    pub fn widen(&mut self, range: PortRange) {
        if range.lo > range.hi || (self.range.contains(range.lo) && self.range.contains(range.hi)) {
            return;
        }
        let hull = if self.capacity() == 0 {
            range
        } else {
            PortRange {
                lo: self.range.lo.min(range.lo),
                hi: self.range.hi.max(range.hi),
            }
        };
        let mut wider = PortPool::new(hull);
        for port in self.range.lo..=self.range.hi {
            if !self.is_free(port) {
                wider.set(port);
            }
        }
        *self = wider;
    }

    fn bit(&self, port: u16) -> usize {
        usize::from(port.wrapping_sub(self.range.lo))
    }

    /// Marks an in-range, free port as in use.
    fn set(&mut self, port: u16) {
        let bit = self.bit(port);
        if let Some(w) = self.words.get_mut(bit / 64) {
            *w |= 1u64 << (bit % 64);
            self.in_use += 1;
        }
    }

    /// The lowest clear bit in `lo..=hi` (bit indices), skipping full words.
    fn lowest_free(&mut self, lo: usize, hi: usize) -> Option<usize> {
        let (first, last) = (lo / 64, hi / 64);
        // Words before the hint are full, so starting past them loses nothing.
        let mut w = first.max(self.hint);
        // Scanning from the hint, each word found full extends the known-full prefix.
        let mut extends_hint = w == self.hint;
        while w <= last {
            let word = *self.words.get(w)?;
            let mut free = !word;
            if w == first {
                free &= u64::MAX << (lo % 64);
            }
            if w == last {
                free &= u64::MAX >> (63 - hi % 64);
            }
            if free != 0 {
                return Some(w * 64 + free.trailing_zeros() as usize);
            }
            if extends_hint && word == u64::MAX {
                self.hint = w + 1;
            } else {
                extends_hint = false;
            }
            w += 1;
        }
        None
    }
}

fn range_len(r: PortRange) -> usize {
    if r.lo > r.hi {
        0
    } else {
        usize::from(r.hi - r.lo) + 1
    }
}

/// The NAT's port pools, one per (external IP, IP protocol): TCP port 1024 and UDP port
/// 1024 of one address are different ports.
#[derive(Clone, Debug, Default)]
pub struct NatPools {
    pools: HashMap<(IpAddr, u8), PortPool, ahash::RandomState>,
    /// With several workers: the ports this one may hand out (`state::ownership`).
    share: Option<super::ownership::Share>,
}

impl NatPools {
    pub fn new() -> NatPools {
        NatPools::default()
    }

    /// Restricts allocation to one worker's share of every pool.
    pub fn set_share(&mut self, share: super::ownership::Share) {
        self.share = Some(share);
    }

    /// Allocates a port of `ip` for `protocol` within the rule's `range` (see
    /// [`PortPool::allocate`]). The pool is created with `range` on first use; a rule
    /// with another range for the same address widens it, and allocates only within
    /// its own range, so ports are never handed out twice.
    pub fn allocate(
        &mut self,
        ip: IpAddr,
        protocol: u8,
        range: PortRange,
        preferred: u16,
    ) -> Option<u16> {
        let pool = self
            .pools
            .entry((ip, protocol))
            .or_insert_with(|| PortPool::new(range));
        pool.widen(range);
        match &self.share {
            Some(share) => share.allocate(pool, range, preferred),
            None => pool.allocate_in(range, preferred),
        }
    }

    /// Returns a port to its pool; `true` if it was in use.
    pub fn free(&mut self, ip: IpAddr, protocol: u8, port: u16) -> bool {
        self.pools
            .get_mut(&(ip, protocol))
            .is_some_and(|p| p.free(port))
    }

    /// The pool of (ip, protocol), if any rule has used it.
    pub fn pool(&self, ip: IpAddr, protocol: u8) -> Option<&PortPool> {
        self.pools.get(&(ip, protocol))
    }

    /// How many ports are in use over all pools.
    pub fn in_use(&self) -> usize {
        self.pools.values().map(PortPool::in_use).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::net::Ipv4Addr;
    use strata_rules::proto;

    fn range(lo: u16, hi: u16) -> PortRange {
        PortRange { lo, hi }
    }

    /// The spec, obviously: preferred if in range and free, else the lowest free.
    fn model_allocate(used: &mut BTreeSet<u16>, r: PortRange, preferred: u16) -> Option<u16> {
        let port = if r.contains(preferred) && !used.contains(&preferred) {
            Some(preferred)
        } else if r.lo <= r.hi {
            (r.lo..=r.hi).find(|p| !used.contains(p))
        } else {
            None
        };
        if let Some(p) = port {
            used.insert(p);
        }
        port
    }

    #[derive(Clone, Debug)]
    enum Op {
        Allocate(u16),
        Free(u16),
    }

    /// Ports mostly in and around the range, so that both hits and misses happen.
    fn op(r: PortRange) -> impl Strategy<Value = Op> {
        let port = prop_oneof![
            4 => (r.lo.saturating_sub(2))..=(r.hi.saturating_add(2)),
            1 => any::<u16>(),
        ];
        prop_oneof![
            3 => port.clone().prop_map(Op::Allocate),
            2 => port.prop_map(Op::Free),
        ]
    }

    fn pool_and_ops() -> impl Strategy<Value = (PortRange, Vec<Op>)> {
        let r = prop_oneof![
            (any::<u16>(), 0u16..300).prop_map(|(lo, len)| range(lo, lo.saturating_add(len))),
            Just(range(0, 0)),
            Just(range(65535, 65535)),
            Just(range(65400, 65535)),
            Just(range(0, 129)),
        ];
        r.prop_flat_map(|r| (Just(r), prop::collection::vec(op(r), 0..400)))
    }

    proptest! {
        #[test]
        fn pool_matches_the_model((r, ops) in pool_and_ops()) {
            let mut pool = PortPool::new(r);
            let mut used = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Allocate(p) => {
                        prop_assert_eq!(pool.allocate(p), model_allocate(&mut used, r, p));
                    }
                    Op::Free(p) => prop_assert_eq!(pool.free(p), used.remove(&p)),
                }
                prop_assert_eq!(pool.in_use(), used.len());
            }
            for p in r.lo.saturating_sub(1)..=r.hi.saturating_add(1) {
                prop_assert_eq!(pool.is_free(p), r.contains(p) && !used.contains(&p));
            }
        }

        #[test]
        fn shared_pools_with_different_ranges_match_the_model(
            ops in prop::collection::vec(
                (0usize..3, any::<bool>(), 0usize..2, 990u16..1210), 0..400),
        ) {
            // Overlapping, disjoint and nested rule ranges on one address.
            let ranges = [range(1000, 1099), range(1050, 1200), range(1150, 1160)];
            let ips = [
                IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
            ];
            let mut pools = NatPools::new();
            let mut used: [BTreeSet<u16>; 2] = Default::default();
            for (ri, alloc, ipi, port) in ops {
                if alloc {
                    let got = pools.allocate(ips[ipi], proto::TCP, ranges[ri], port);
                    prop_assert_eq!(got, model_allocate(&mut used[ipi], ranges[ri], port));
                } else {
                    prop_assert_eq!(
                        pools.free(ips[ipi], proto::TCP, port),
                        used[ipi].remove(&port)
                    );
                }
                prop_assert_eq!(pools.in_use(), used[0].len() + used[1].len());
            }
        }
    }

    #[test]
    fn exhaustion_and_recovery() {
        let mut pool = PortPool::new(range(2000, 2199));
        for i in 0..200 {
            assert_eq!(pool.allocate(0), Some(2000 + i));
        }
        assert_eq!(pool.in_use(), 200);
        assert_eq!(pool.allocate(2100), None);
        assert_eq!(pool.allocate(0), None);
        assert!(pool.free(2137));
        assert!(!pool.free(2137));
        assert_eq!(pool.allocate(2000), Some(2137));
        assert_eq!(pool.allocate(2000), None);
    }

    #[test]
    fn edge_ranges() {
        let mut zero = PortPool::new(range(0, 0));
        assert_eq!(zero.capacity(), 1);
        assert_eq!(zero.allocate(5), Some(0));
        assert_eq!(zero.allocate(0), None);
        assert!(zero.free(0));
        assert_eq!(zero.allocate(0), Some(0));

        let mut top = PortPool::new(range(65535, 65535));
        assert_eq!(top.capacity(), 1);
        assert!(!top.is_free(0));
        assert_eq!(top.allocate(0), Some(65535));
        assert_eq!(top.allocate(65535), None);
        assert!(!top.free(65534));
        assert!(top.free(65535));
        assert_eq!(top.allocate(65535), Some(65535));

        let mut full = PortPool::new(PortRange::ANY);
        assert_eq!(full.capacity(), 65536);
        assert_eq!(full.allocate(65535), Some(65535));
        assert_eq!(full.allocate(65535), Some(0));
        for p in 1..65535u16 {
            assert_eq!(full.allocate(65535), Some(p));
        }
        assert_eq!(full.in_use(), 65536);
        assert_eq!(full.allocate(1234), None);
        assert!(full.free(40000));
        assert!(full.free(7));
        assert_eq!(full.allocate(40000), Some(40000));
        assert_eq!(full.allocate(40000), Some(7));
        assert_eq!(full.allocate(0), None);

        let mut empty = PortPool::new(range(10, 9));
        assert_eq!(empty.capacity(), 0);
        assert_eq!(empty.allocate(10), None);
        assert!(!empty.free(10));
        assert!(!empty.is_free(9));
    }

    #[test]
    fn protocols_and_addresses_have_their_own_pools() {
        let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let other = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
        let r = range(5000, 5000);
        let mut pools = NatPools::new();
        assert_eq!(pools.allocate(ip, proto::TCP, r, 5000), Some(5000));
        assert_eq!(pools.allocate(ip, proto::TCP, r, 5000), None);
        assert_eq!(pools.allocate(ip, proto::UDP, r, 5000), Some(5000));
        assert_eq!(pools.allocate(other, proto::TCP, r, 1), Some(5000));
        assert_eq!(pools.pool(ip, proto::TCP).map(PortPool::in_use), Some(1));
        assert!(pools.pool(ip, proto::ICMP).is_none());
        assert!(pools.free(ip, proto::TCP, 5000));
        assert!(!pools.free(ip, proto::ICMP, 5000));
        assert_eq!(pools.allocate(ip, proto::TCP, r, 5000), Some(5000));
    }

    #[test]
    fn widening_keeps_ports_in_use() {
        let mut pool = PortPool::new(range(100, 199));
        assert_eq!(pool.allocate(150), Some(150));
        pool.widen(range(20, 60));
        assert_eq!(pool.range(), range(20, 199));
        assert!(!pool.is_free(150));
        assert_eq!(pool.in_use(), 1);
        assert_eq!(pool.allocate_in(range(150, 150), 150), None);
        assert_eq!(pool.allocate_in(range(20, 60), 150), Some(20));
        let mut empty = PortPool::new(range(1, 0));
        empty.widen(range(7, 8));
        assert_eq!(empty.range(), range(7, 8));
        assert_eq!(empty.allocate(0), Some(7));
    }
}
