//! Maglev consistent hashing: which backend of a load balancer a connection goes to.
//!
//! A [`Maglev`] table (Eisenbud et al., "Maglev: A Fast and Reliable Software Network
//! Load Balancer", NSDI 2016) maps a flow hash to a backend index. It spreads flows
//! evenly (every backend owns ⌊M/N⌋ or ⌈M/N⌉ of the M entries) and, when a backend is
//! added or removed, moves little more than the flows of that backend, so most existing
//! clients keep their backend across a policy change.
//!
//! Everything here is deterministic: the hashes are seedless and fixed (FNV-1a 64 with a
//! MurmurHash3 finalizer, over a byte encoding that does not depend on the platform), so
//! the reference evaluator, the dataplane and a replay on another machine all pick the
//! same backend for the same packet.
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use strata_rules::maglev::{flow_hash, Maglev};
//! use strata_rules::{Backend, Distribution, Fields, Mac};
//!
//! let backends: Vec<Backend> = (1..=3)
//!     .map(|i| Backend { ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)), port: 8080 })
//!     .collect();
//! let table = Maglev::new(&backends);
//! let f = Fields {
//!     src_mac: Mac::ZERO,
//!     dst_mac: Mac::ZERO,
//!     vlan: None,
//!     vni: None,
//!     src_ip: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 7)),
//!     dst_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100)),
//!     protocol: 6,
//!     src_port: 40000,
//!     dst_port: 80,
//!     icmp: None,
//! };
//! let i = table.lookup(flow_hash(&f, Distribution::FiveTuple)).unwrap();
//! assert!(i < backends.len());
//! assert_eq!(Maglev::new(&[]).lookup(42), None);
//! ```

use std::net::IpAddr;

use crate::model::{Backend, Distribution, Fields};

/// The default table size: a prime well above 100 × any realistic backend count, so
/// shares stay within 1% of each other (the paper's guidance).
pub const DEFAULT_SIZE: usize = 65537;

/// The largest table [`Maglev::with_size`] builds (a larger request is clamped):
/// 2²⁴ entries is already 32 MiB and far beyond what even-spreading needs.
pub const MAX_SIZE: usize = 1 << 24;

/// A Maglev lookup table: entry `i` holds the index (into the backend list it was built
/// from) of the backend that owns hashes `h` with `h % size == i`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Maglev {
    /// Backend index per entry; empty when there are no backends.
    table: Vec<u16>,
}

impl Maglev {
    /// Builds the table of [`DEFAULT_SIZE`] entries for `backends`.
    pub fn new(backends: &[Backend]) -> Maglev {
        Maglev::with_size(backends, DEFAULT_SIZE)
    }

    /// Builds a table of `m` entries (smaller primes such as 251 or 4099 suit tests).
    ///
    /// The size must be prime so that every backend's permutation (`offset + j·skip`
    /// mod `m`) visits every entry; a non-prime `m` is rounded up to the next prime, and
    /// `m` is clamped to `2..=`[`MAX_SIZE`] first. Backends past the `m`-th (or past the
    /// 65536th, the most a `u16` index names) can own no entry and are never chosen.
    /// Duplicate backends are allowed; they share the load of one.
    pub fn with_size(backends: &[Backend], m: usize) -> Maglev {
        let m = next_prime(m.clamp(2, MAX_SIZE));
        let n = backends.len().min(m).min(usize::from(u16::MAX) + 1);
        if n == 0 {
            return Maglev { table: Vec::new() };
        }
        let m64 = m as u64;
        // (offset, skip) per backend: its permutation of the table's entries.
        let perms: Vec<(u64, u64)> = backends[..n]
            .iter()
            .map(|b| {
                let (bytes, len) = backend_identity(b);
                let id = &bytes[..len];
                let offset = hash_bytes(DOMAIN_OFFSET, id) % m64;
                let skip = hash_bytes(DOMAIN_SKIP, id) % (m64 - 1) + 1;
                (offset, skip)
            })
            .collect();
        let mut next = vec![0u64; n];
        let mut table = vec![u16::MAX; m];
        let mut owned = vec![false; m];
        let mut filled = 0;
        // Round robin: each backend in turn claims the next free entry of its own
        // permutation, so each owns ⌊m/n⌋ or ⌈m/n⌉ entries. Ends because each
        // permutation covers all m entries (m prime, 1 ≤ skip < m).
        'fill: loop {
            for (i, &(offset, skip)) in perms.iter().enumerate() {
                let mut c = ((offset + next[i] * skip) % m64) as usize;
                while owned[c] {
                    next[i] += 1;
                    c = ((offset + next[i] * skip) % m64) as usize;
                }
                owned[c] = true;
                table[c] = i as u16;
                next[i] += 1;
                filled += 1;
                if filled == m {
                    break 'fill;
                }
            }
        }
        Maglev { table }
    }

    /// The backend index for a flow hash (see [`flow_hash`]); `None` when the table was
    /// built from no backends. Allocates nothing.
    #[inline]
    pub fn lookup(&self, hash: u64) -> Option<usize> {
        let m = self.table.len() as u64;
        if m == 0 {
            return None;
        }
        self.table.get((hash % m) as usize).map(|&i| usize::from(i))
    }

    /// The backend for the packet `f` under distribution `d`: [`flow_hash`] then
    /// [`lookup`](Self::lookup), indexing `backends` (the list the table was built from).
    pub fn select<'a>(
        &self,
        backends: &'a [Backend],
        f: &Fields,
        d: Distribution,
    ) -> Option<&'a Backend> {
        self.lookup(flow_hash(f, d)).and_then(|i| backends.get(i))
    }

    /// The number of entries (a prime), or 0 when built from no backends.
    pub fn size(&self) -> usize {
        self.table.len()
    }

    /// How many entries each backend index owns (for tests and `strata ctl`).
    pub fn shares(&self) -> Vec<usize> {
        let n = self
            .table
            .iter()
            .map(|&i| usize::from(i) + 1)
            .max()
            .unwrap_or(0);
        let mut shares = vec![0; n];
        for &i in &self.table {
            shares[usize::from(i)] += 1;
        }
        shares
    }
}

/// The flow hash that picks a backend: over (source IP, destination IP, protocol,
/// source port, destination port) for [`Distribution::FiveTuple`], (source IP,
/// protocol) for [`Distribution::SourceIpProtocol`], the source IP alone for
/// [`Distribution::SourceIp`]. Fields outside the mode do not change it, which is what
/// makes a client stick to one backend. Deterministic across runs and platforms.
pub fn flow_hash(f: &Fields, d: Distribution) -> u64 {
    let mut h = Fnv1a::new();
    // The mode is hashed too, so the three modes spread the same client differently
    // only by design, never by accident of encoding.
    h.write(&[DOMAIN_FLOW, d as u8]);
    h.write_ip(f.src_ip);
    match d {
        Distribution::FiveTuple => {
            h.write_ip(f.dst_ip);
            h.write(&[f.protocol]);
            h.write(&f.src_port.to_be_bytes());
            h.write(&f.dst_port.to_be_bytes());
        }
        Distribution::SourceIpProtocol => h.write(&[f.protocol]),
        Distribution::SourceIp => {}
    }
    fmix64(h.0)
}

/// Domain tags: the offset and skip hashes must be independent of each other (the
/// paper uses two hash functions), and flow hashes independent of both.
const DOMAIN_OFFSET: u8 = 0x01;
const DOMAIN_SKIP: u8 = 0x02;
const DOMAIN_FLOW: u8 = 0x03;

/// A backend's identity as bytes: family tag, address (network order), port (big
/// endian). The tag keeps 10.0.0.1 apart from ::a00:1; fixed byte order keeps it the
/// same on every platform.
fn backend_identity(b: &Backend) -> ([u8; 19], usize) {
    let mut out = [0u8; 19];
    let len = match b.ip {
        IpAddr::V4(a) => {
            out[0] = 4;
            out[1..5].copy_from_slice(&a.octets());
            5
        }
        IpAddr::V6(a) => {
            out[0] = 6;
            out[1..17].copy_from_slice(&a.octets());
            17
        }
    };
    out[len..len + 2].copy_from_slice(&b.port.to_be_bytes());
    (out, len + 2)
}

fn hash_bytes(domain: u8, bytes: &[u8]) -> u64 {
    let mut h = Fnv1a::new();
    h.write(&[domain]);
    h.write(bytes);
    fmix64(h.0)
}

/// FNV-1a 64: tiny, seedless and specified bit for bit, so every build agrees.
struct Fnv1a(u64);

impl Fnv1a {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn new() -> Fnv1a {
        Fnv1a(Self::OFFSET_BASIS)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    fn write_ip(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(a) => {
                self.write(&[4]);
                self.write(&a.octets());
            }
            IpAddr::V6(a) => {
                self.write(&[6]);
                self.write(&a.octets());
            }
        }
    }
}

/// MurmurHash3's 64-bit finalizer. FNV-1a alone mixes its last bytes poorly into the
/// high bits, and `% m` of a prime m uses all of them.
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

fn is_prime(n: usize) -> bool {
    if n < 2 {
        return false;
    }
    if n < 4 {
        return true;
    }
    if n.is_multiple_of(2) {
        return false;
    }
    let mut d = 3;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

/// The smallest prime ≥ `n` (n ≤ MAX_SIZE, so trial division is instant).
fn next_prime(mut n: usize) -> usize {
    while !is_prime(n) {
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Mac, proto};
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn backends(n: usize) -> Vec<Backend> {
        (0..n)
            .map(|i| Backend {
                ip: IpAddr::V4(Ipv4Addr::new(10, 1, (i / 250) as u8, (i % 250 + 1) as u8)),
                port: 8080,
            })
            .collect()
    }

    fn fields(src: [u8; 4], dst: [u8; 4], protocol: u8, sport: u16, dport: u16) -> Fields {
        Fields {
            src_mac: Mac::ZERO,
            dst_mac: Mac::ZERO,
            vlan: None,
            vni: None,
            src_ip: IpAddr::V4(Ipv4Addr::from(src)),
            dst_ip: IpAddr::V4(Ipv4Addr::from(dst)),
            protocol,
            src_port: sport,
            dst_port: dport,
            icmp: None,
        }
    }

    /// SplitMix64: a fixed stream of test hashes, the same on every run.
    fn hashes(count: usize) -> impl Iterator<Item = u64> {
        let mut s: u64 = 0x5eed;
        (0..count).map(move |_| {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        })
    }

    #[test]
    fn fnv1a_matches_the_published_vectors() {
        let fnv = |s: &[u8]| {
            let mut h = Fnv1a::new();
            h.write(s);
            h.0
        };
        assert_eq!(fnv(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn no_backends_no_lookup() {
        let t = Maglev::new(&[]);
        assert_eq!(t.size(), 0);
        assert_eq!(t.lookup(0), None);
        assert_eq!(t.lookup(u64::MAX), None);
        let f = fields([1, 2, 3, 4], [5, 6, 7, 8], proto::TCP, 1, 2);
        assert_eq!(t.select(&[], &f, Distribution::FiveTuple), None);
    }

    #[test]
    fn sizes_are_primes_and_clamped() {
        let b = backends(3);
        assert_eq!(Maglev::new(&b).size(), 65537);
        assert_eq!(Maglev::with_size(&b, 251).size(), 251);
        assert_eq!(Maglev::with_size(&b, 4099).size(), 4099);
        assert_eq!(Maglev::with_size(&b, 250).size(), 251);
        assert_eq!(Maglev::with_size(&b, 0).size(), 2);
        assert_eq!(Maglev::with_size(&b, 1).size(), 2);
        assert!(is_prime(Maglev::with_size(&b, 100_000).size()));
    }

    #[test]
    fn one_backend_owns_everything() {
        let t = Maglev::with_size(&backends(1), 251);
        assert!(hashes(1000).all(|h| t.lookup(h) == Some(0)));
    }

    #[test]
    fn more_backends_than_entries_never_panics() {
        let b = backends(300);
        let t = Maglev::with_size(&b, 251);
        assert_eq!(t.shares(), vec![1; 251]);
        assert!(hashes(1000).all(|h| t.lookup(h).is_some_and(|i| i < 251)));
    }

    #[test]
    fn duplicate_backends_are_allowed() {
        let b = vec![backends(1)[0]; 4];
        let t = Maglev::with_size(&b, 4099);
        let shares = t.shares();
        assert_eq!(shares.iter().sum::<usize>(), 4099);
        assert!(shares.iter().all(|&s| s == 1024 || s == 1025));
    }

    /// (a) Every backend owns 1/N of the table within 1% (in fact within one entry).
    #[test]
    fn shares_are_even() {
        for n in 3..=10 {
            let t = Maglev::new(&backends(n));
            let shares = t.shares();
            assert_eq!(shares.len(), n);
            assert_eq!(shares.iter().sum::<usize>(), DEFAULT_SIZE);
            let ideal = DEFAULT_SIZE as f64 / n as f64;
            for (i, &s) in shares.iter().enumerate() {
                let err = (s as f64 - ideal).abs() / ideal;
                assert!(
                    err < 0.01,
                    "n={n} backend {i}: {s} entries, ideal {ideal:.1}"
                );
                assert!(s == DEFAULT_SIZE / n || s == DEFAULT_SIZE / n + 1);
            }
        }
    }

    /// (b) Removing 1 of 10 backends moves its own flows and few others; modulo hashing
    /// moves almost all of them.
    #[test]
    fn removing_a_backend_moves_few_flows() {
        const FLOWS: usize = 100_000;
        let before = backends(10);
        let removed = 3;
        let mut after = before.clone();
        after.remove(removed);
        let (t0, t1) = (Maglev::new(&before), Maglev::new(&after));

        let (mut moved, mut moved_mod, mut on_removed) = (0, 0, 0);
        for h in hashes(FLOWS) {
            let b0 = before[t0.lookup(h).unwrap()];
            let b1 = after[t1.lookup(h).unwrap()];
            if b0 == before[removed] {
                on_removed += 1;
                assert_ne!(b1, b0);
            }
            moved += usize::from(b0 != b1);
            let m0 = before[(h % 10) as usize];
            let m1 = after[(h % 9) as usize];
            moved_mod += usize::from(m0 != m1);
        }
        // Ideal: only the removed backend's ~10%.
        assert!(
            on_removed > FLOWS / 12 && on_removed < FLOWS / 8,
            "{on_removed}"
        );
        assert!(moved < 2 * FLOWS / 10, "Maglev moved {moved} of {FLOWS}");
        assert!(
            moved_mod > FLOWS * 8 / 10,
            "modulo moved {moved_mod} of {FLOWS}"
        );
        assert!(
            moved * 4 < moved_mod,
            "Maglev {moved} vs modulo {moved_mod}"
        );
    }

    /// (c) Same backends in the same order: the same table, and pinned values so that a
    /// change of hash (which would move every client) cannot pass unnoticed.
    #[test]
    fn tables_are_deterministic() {
        let b = backends(7);
        assert_eq!(Maglev::new(&b), Maglev::new(&b));
        assert_eq!(Maglev::with_size(&b, 251), Maglev::with_size(&b, 251));
        let mixed = vec![
            Backend {
                ip: IpAddr::V6(Ipv6Addr::LOCALHOST),
                port: 0,
            },
            Backend {
                ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                port: 0,
            },
        ];
        assert_eq!(Maglev::new(&mixed), Maglev::new(&mixed));

        let f = fields([192, 168, 1, 7], [10, 0, 0, 100], proto::TCP, 40000, 80);
        let pinned = [
            flow_hash(&f, Distribution::FiveTuple),
            flow_hash(&f, Distribution::SourceIpProtocol),
            flow_hash(&f, Distribution::SourceIp),
        ];
        assert_eq!(
            pinned, PINNED_FLOW_HASHES,
            "flow_hash changed: {pinned:#x?}"
        );
        let t = Maglev::with_size(&b, 251);
        assert_eq!(&t.table[..16], &PINNED_TABLE_PREFIX, "{:?}", &t.table[..16]);
    }

    const PINNED_FLOW_HASHES: [u64; 3] =
        [0x6969988055aee407, 0xffe3b5aa30f86158, 0xbed32e9ecbfd7bd4];
    const PINNED_TABLE_PREFIX: [u16; 16] = [3, 3, 4, 2, 6, 5, 2, 3, 6, 4, 4, 0, 6, 3, 6, 0];

    /// (d) Each distribution mode looks only at its own fields.
    #[test]
    fn distribution_modes_ignore_other_fields() {
        let base = fields([192, 168, 1, 7], [10, 0, 0, 100], proto::TCP, 40000, 80);
        let other_ports = fields([192, 168, 1, 7], [10, 0, 0, 100], proto::TCP, 40001, 443);
        let other_proto = fields([192, 168, 1, 7], [10, 0, 0, 100], proto::UDP, 40000, 80);
        let other_dst = fields([192, 168, 1, 7], [10, 0, 0, 200], proto::TCP, 40000, 80);
        let other_src = fields([192, 168, 1, 8], [10, 0, 0, 100], proto::TCP, 40000, 80);
        let h = flow_hash;
        use Distribution::*;

        for v in [&other_ports, &other_proto, &other_dst] {
            assert_eq!(h(&base, SourceIp), h(v, SourceIp));
        }
        assert_ne!(h(&base, SourceIp), h(&other_src, SourceIp));

        for v in [&other_ports, &other_dst] {
            assert_eq!(h(&base, SourceIpProtocol), h(v, SourceIpProtocol));
        }
        assert_ne!(
            h(&base, SourceIpProtocol),
            h(&other_proto, SourceIpProtocol)
        );
        assert_ne!(h(&base, SourceIpProtocol), h(&other_src, SourceIpProtocol));

        for v in [&other_ports, &other_proto, &other_dst, &other_src] {
            assert_ne!(h(&base, FiveTuple), h(v, FiveTuple));
        }
        // Swapping only the source port spreads too: clients from one IP do spread.
        let t = Maglev::new(&backends(5));
        let picked: std::collections::BTreeSet<usize> = (1024..1124)
            .map(|p| {
                let f = fields([192, 168, 1, 7], [10, 0, 0, 100], proto::TCP, p, 80);
                t.lookup(h(&f, FiveTuple)).unwrap()
            })
            .collect();
        assert_eq!(picked.len(), 5);
        let sticky: std::collections::BTreeSet<usize> = (1024..1124)
            .map(|p| {
                let f = fields([192, 168, 1, 7], [10, 0, 0, 100], proto::TCP, p, 80);
                t.lookup(h(&f, SourceIp)).unwrap()
            })
            .collect();
        assert_eq!(sticky.len(), 1);
    }

    #[test]
    fn v4_and_v6_identities_differ() {
        let v4 = Backend {
            ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            port: 80,
        };
        let v6 = Backend {
            ip: IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_compatible()),
            port: 80,
        };
        assert_ne!(backend_identity(&v4), backend_identity(&v6));
        let other_port = Backend { port: 81, ..v4 };
        assert_ne!(backend_identity(&v4), backend_identity(&other_port));
    }
}
