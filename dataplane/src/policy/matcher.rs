//! Conditions compiled for the packet path: the engine's own match, independent of the
//! model's `Conditions::matches` (which the reference evaluator uses), so that the
//! equivalence tests compare two implementations and a bug in either shows.
//!
//! Addresses are compared as masked 128-bit words (IPv4 in the low 32 bits, the family
//! kept apart), protocols and ICMP types/codes as 256-bit sets, and a group's rules are
//! kept sorted by (priority, position) so the first match is the best one.

use std::net::IpAddr;

use strata_rules::model::{Conditions, Fields, IpPrefix, Mac, Rule};

/// An address or prefix as the matcher compares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Net {
    v6: bool,
    bits: u128,
    mask: u128,
}

fn word(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(a) => (false, u128::from(u32::from(a))),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}

impl Net {
    fn of(p: &IpPrefix) -> Net {
        let (v6, bits) = word(p.addr());
        let width = if v6 { 128 } else { 32 };
        let len = u32::from(p.len()).min(width);
        let mask = match len {
            0 => 0,
            l => (u128::MAX << (128 - l)) >> (128 - width),
        };
        Net {
            v6,
            bits: bits & mask,
            mask,
        }
    }

    fn contains(&self, (v6, bits): (bool, u128)) -> bool {
        self.v6 == v6 && bits & self.mask == self.bits
    }
}

/// A set of byte values (protocols, ICMP types or codes); `None` = any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ByteSet([u64; 4]);

impl ByteSet {
    fn of(values: &[u8]) -> Option<ByteSet> {
        if values.is_empty() {
            return None;
        }
        let mut s = [0u64; 4];
        for &v in values {
            if let Some(w) = s.get_mut(usize::from(v >> 6)) {
                *w |= 1 << (v & 63);
            }
        }
        Some(ByteSet(s))
    }

    fn has(&self, v: u8) -> bool {
        self.0
            .get(usize::from(v >> 6))
            .is_some_and(|w| w & (1 << (v & 63)) != 0)
    }
}

/// The packet's fields in the matcher's terms, computed once per layer evaluation.
#[derive(Clone, Copy, Debug)]
pub struct Probe {
    src: (bool, u128),
    dst: (bool, u128),
    fields: Fields,
}

impl Probe {
    pub fn of(f: &Fields) -> Probe {
        Probe {
            src: word(f.src_ip),
            dst: word(f.dst_ip),
            fields: *f,
        }
    }
}

/// One rule's (or group's, or default entry's) conditions, compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    src: Box<[Net]>,
    dst: Box<[Net]>,
    src_port: Box<[(u16, u16)]>,
    dst_port: Box<[(u16, u16)]>,
    protocol: Option<ByteSet>,
    icmp_type: Option<ByteSet>,
    icmp_code: Option<ByteSet>,
    src_mac: Box<[Mac]>,
    dst_mac: Box<[Mac]>,
    vlan: Box<[u16]>,
    vni: Box<[u32]>,
}

impl Match {
    pub fn compile(c: &Conditions) -> Match {
        let ranges = |v: &[strata_rules::PortRange]| v.iter().map(|r| (r.lo, r.hi)).collect();
        Match {
            src: c.src_ip.iter().map(Net::of).collect(),
            dst: c.dst_ip.iter().map(Net::of).collect(),
            src_port: ranges(&c.src_port),
            dst_port: ranges(&c.dst_port),
            protocol: ByteSet::of(&c.protocol),
            icmp_type: ByteSet::of(&c.icmp_type),
            icmp_code: ByteSet::of(&c.icmp_code),
            src_mac: c.src_mac.clone().into(),
            dst_mac: c.dst_mac.clone().into(),
            vlan: c.vlan.clone().into(),
            vni: c.vni.clone().into(),
        }
    }

    /// AND across fields, OR within a field; an empty field matches anything, and a
    /// field the packet lacks (no ICMP, no VLAN tag, no VNI) matches only an empty one.
    pub fn matches(&self, p: &Probe) -> bool {
        let f = &p.fields;
        let within = |rs: &[(u16, u16)], v: u16| {
            rs.is_empty() || rs.iter().any(|&(lo, hi)| lo <= v && v <= hi)
        };
        let set =
            |s: &Option<ByteSet>, v: Option<u8>| s.is_none_or(|s| v.is_some_and(|v| s.has(v)));
        fn listed<T: PartialEq>(list: &[T], v: Option<T>) -> bool {
            list.is_empty() || v.is_some_and(|v| list.contains(&v))
        }
        (self.src.is_empty() || self.src.iter().any(|n| n.contains(p.src)))
            && (self.dst.is_empty() || self.dst.iter().any(|n| n.contains(p.dst)))
            && within(&self.src_port, f.src_port)
            && within(&self.dst_port, f.dst_port)
            && self.protocol.is_none_or(|s| s.has(f.protocol))
            && set(&self.icmp_type, f.icmp.map(|(t, _)| t))
            && set(&self.icmp_code, f.icmp.map(|(_, c)| c))
            && listed(&self.src_mac, Some(f.src_mac))
            && listed(&self.dst_mac, Some(f.dst_mac))
            && listed(&self.vlan, f.vlan)
            && listed(&self.vni, f.vni)
    }
}

/// A group's rules for a scan: sorted by (priority, position), so the first rule that
/// matches is the group's best.
#[derive(Clone, Debug)]
pub struct Scan {
    /// (rule index in the group, its conditions), best first.
    rules: Box<[(usize, Match)]>,
}

impl Scan {
    pub fn compile(rules: &[Rule]) -> Scan {
        let mut order: Vec<(usize, &Rule)> = rules.iter().enumerate().collect();
        // A stable sort keeps file order among equal priorities: ties go to the earlier rule.
        order.sort_by_key(|(_, r)| r.priority);
        Scan {
            rules: order
                .into_iter()
                .map(|(i, r)| (i, Match::compile(&r.conditions)))
                .collect(),
        }
    }

    /// The best matching rule's index in the group.
    pub fn best(&self, p: &Probe) -> Option<usize> {
        self.rules
            .iter()
            .find(|(_, m)| m.matches(p))
            .map(|&(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use strata_rules::model::PortRange;

    fn fields(src: &str, dst: &str, protocol: u8, sp: u16, dp: u16) -> Fields {
        Fields {
            src_mac: Mac([2, 0, 0, 0, 0, 1]),
            dst_mac: Mac([2, 0, 0, 0, 0, 2]),
            vlan: None,
            vni: None,
            src_ip: src.parse().unwrap(),
            dst_ip: dst.parse().unwrap(),
            protocol,
            src_port: sp,
            dst_port: dp,
            icmp: None,
        }
    }

    #[test]
    fn prefixes_of_each_family_match_only_their_family() {
        let c = Conditions {
            src_ip: vec![
                "198.18.0.0/15".parse().unwrap(),
                "2001:db8::/32".parse().unwrap(),
            ],
            ..Conditions::default()
        };
        let m = Match::compile(&c);
        assert!(m.matches(&Probe::of(&fields("198.19.3.4", "198.18.0.1", 6, 1, 2))));
        assert!(!m.matches(&Probe::of(&fields("198.20.0.1", "198.18.0.1", 6, 1, 2))));
        assert!(m.matches(&Probe::of(&fields("2001:db8:1::1", "2001:db8::2", 6, 1, 2))));
        assert!(!m.matches(&Probe::of(&fields("2001:db9::1", "2001:db8::2", 6, 1, 2))));
        let any = Match::compile(&Conditions {
            dst_ip: vec!["0.0.0.0/0".parse().unwrap()],
            ..Conditions::default()
        });
        assert!(any.matches(&Probe::of(&fields("198.18.0.1", "203.0.113.9", 17, 1, 2))));
        assert!(!any.matches(&Probe::of(&fields("2001:db8::1", "2001:db8::2", 17, 1, 2))));
    }

    #[test]
    fn scan_picks_lowest_priority_then_earliest() {
        let rule = |priority, lo| Rule {
            id: String::new(),
            priority,
            conditions: Conditions {
                dst_port: vec![PortRange { lo, hi: 100 }],
                ..Conditions::default()
            },
            action: strata_rules::Action::Allow,
            terminating: false,
            stateful: false,
        };
        let s = Scan::compile(&[rule(5, 0), rule(3, 50), rule(3, 0), rule(9, 0)]);
        let p = |dp| Probe::of(&fields("198.18.0.1", "198.18.0.2", 6, 1, dp));
        assert_eq!(s.best(&p(60)), Some(1));
        assert_eq!(s.best(&p(10)), Some(2));
        assert_eq!(s.best(&p(200)), None);
    }

    fn conditions() -> impl Strategy<Value = Conditions> {
        let v4 = (any::<u32>(), 0u8..=32)
            .prop_map(|(a, l)| IpPrefix::new(IpAddr::V4(a.into()), l).unwrap());
        let v6 = (any::<u128>(), 0u8..=128)
            .prop_map(|(a, l)| IpPrefix::new(IpAddr::V6(a.into()), l).unwrap());
        let prefix = prop_oneof![v4, v6];
        let range = (any::<u16>(), any::<u16>()).prop_map(|(a, b)| PortRange {
            lo: a.min(b),
            hi: a.max(b),
        });
        (
            prop::collection::vec(prefix.clone(), 0..3),
            prop::collection::vec(prefix, 0..3),
            prop::collection::vec(range.clone(), 0..2),
            prop::collection::vec(range, 0..2),
            prop::collection::vec(any::<u8>(), 0..3),
            prop::collection::vec(any::<u8>(), 0..2),
            prop::collection::vec(0u16..4, 0..2),
        )
            .prop_map(|(s, d, sp, dp, p, it, vlan)| Conditions {
                src_ip: s,
                dst_ip: d,
                src_port: sp,
                dst_port: dp,
                protocol: p,
                icmp_type: it,
                vlan,
                ..Conditions::default()
            })
    }

    proptest! {
        /// The compiled match agrees with the model's definition on random conditions.
        #[test]
        fn agrees_with_the_model(c in conditions(), a: u32, b: u128, p: u8, sp: u16, dp: u16,
                                 v6: bool, icmp: Option<(u8, u8)>, vlan in prop::option::of(0u16..4)) {
            let (src, dst) = if v6 {
                (IpAddr::V6(b.into()), IpAddr::V6((b ^ 0xff).into()))
            } else {
                (IpAddr::V4(a.into()), IpAddr::V4((a ^ 0xff).into()))
            };
            let f = Fields { src_ip: src, dst_ip: dst, protocol: p, src_port: sp, dst_port: dp,
                             icmp, vlan, ..fields("198.18.0.1", "198.18.0.2", 0, 0, 0) };
            prop_assert_eq!(Match::compile(&c).matches(&Probe::of(&f)), c.matches(&f));
        }
    }
}
