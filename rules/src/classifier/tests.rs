//! Property tests: the classifier against a linear scan with [`Conditions::matches`], on
//! small value domains so that rules overlap heavily, through inserts and removals.

use std::net::IpAddr;

use proptest::prelude::*;

use super::{ClassRule, Classifier};
use crate::model::{Conditions, Fields, IpPrefix, Mac, PortRange};

fn oracle(rules: &[ClassRule], f: &Fields) -> Option<u32> {
    rules
        .iter()
        .filter(|r| r.conditions.matches(f))
        .min_by_key(|r| (r.priority, r.id))
        .map(|r| r.id)
}

/// Addresses from a tiny pool, v4 and v6, so prefixes of all lengths collide.
fn addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        3 => (0u8..4, 0u8..4, prop_oneof![Just(0u8), Just(1), Just(128), Just(255)])
            .prop_map(|(a, b, c)| IpAddr::from([10, a, b, c])),
        1 => (0u16..3, 0u16..3, prop_oneof![Just(0u16), Just(1), Just(0x8000)])
            .prop_map(|(a, b, c)| IpAddr::from([0x2001, 0xdb8, a, 0, 0, b, 0, c])),
    ]
}

fn prefix() -> impl Strategy<Value = IpPrefix> {
    (addr(), any::<u8>()).prop_map(|(a, l)| {
        let max = if a.is_ipv4() { 33 } else { 129 };
        let choices = [0u8, 1, 8, 15, 16, 24, 30, 31, 32];
        let l = if l % 3 == 0 {
            l % max
        } else {
            choices[l as usize % choices.len()]
        };
        let l = if a.is_ipv6() && l % 5 == 0 {
            (u16::from(l) * 4).min(127) as u8
        } else {
            l
        };
        IpPrefix::new(a, l).unwrap_or(IpPrefix::host(a))
    })
}

fn port() -> impl Strategy<Value = u16> {
    prop_oneof![0u16..8, Just(80), Just(1023), Just(1024), Just(65535)]
}

fn range() -> impl Strategy<Value = PortRange> {
    (port(), port()).prop_map(|(a, b)| PortRange {
        lo: a.min(b),
        hi: a.max(b),
    })
}

fn mac() -> impl Strategy<Value = Mac> {
    (0u8..3).prop_map(|b| Mac([2, 0, 0, 0, 0, b]))
}

fn list<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T>,
    p_empty: u32,
) -> impl Strategy<Value = Vec<T>> {
    prop_oneof![p_empty => Just(vec![]), 1 => prop::collection::vec(s, 1..3)]
}

fn conditions() -> impl Strategy<Value = Conditions> {
    (
        (
            list(prefix(), 1),
            list(prefix(), 1),
            list(range(), 1),
            list(range(), 1),
        ),
        list(prop_oneof![Just(6u8), Just(17), Just(1), Just(58)], 1),
        (
            list(0u8..3, 6),
            list(0u8..3, 8),
            list(mac(), 8),
            list(mac(), 8),
        ),
        (list(0u16..3, 6), list(0u32..3, 6)),
    )
        .prop_map(
            |((si, di, sp, dp), proto, (it, ic, sm, dm), (vlan, vni))| Conditions {
                src_ip: si,
                dst_ip: di,
                src_port: sp,
                dst_port: dp,
                protocol: proto,
                icmp_type: it,
                icmp_code: ic,
                src_mac: sm,
                dst_mac: dm,
                vlan,
                vni,
            },
        )
}

fn rule(ids: u32) -> impl Strategy<Value = ClassRule> {
    (0..ids, 0u32..6, conditions()).prop_map(|(id, priority, conditions)| ClassRule {
        id,
        priority,
        conditions,
    })
}

fn fields() -> impl Strategy<Value = Fields> {
    (
        (addr(), addr(), port(), port()),
        prop_oneof![Just(6u8), Just(17), Just(1), Just(58), Just(2)],
        prop::option::of((0u8..3, 0u8..3)),
        (
            mac(),
            mac(),
            prop::option::of(0u16..3),
            prop::option::of(0u32..3),
        ),
    )
        .prop_map(
            |((s, d, sp, dp), protocol, icmp, (sm, dm, vlan, vni))| Fields {
                src_mac: sm,
                dst_mac: dm,
                vlan,
                vni,
                src_ip: s,
                dst_ip: d,
                protocol,
                src_port: sp,
                dst_port: dp,
                icmp,
            },
        )
}

/// Rules with distinct ids (the later of two with the same id wins, as in `build`).
fn dedup(rules: Vec<ClassRule>) -> Vec<ClassRule> {
    let mut out: Vec<ClassRule> = Vec::new();
    for r in rules {
        out.retain(|o| o.id != r.id);
        out.push(r);
    }
    out
}

#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // test data, built once per case
enum Op {
    Insert(ClassRule),
    Remove(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        rule(60).prop_map(Op::Insert),
        (0u32..60).prop_map(Op::Remove)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn build_matches_linear_scan(
        rules in prop::collection::vec(rule(60), 0..60),
        packets in prop::collection::vec(fields(), 64),
    ) {
        let c = Classifier::build(&rules);
        let rules = dedup(rules);
        prop_assert_eq!(c.len(), rules.len());
        for f in &packets {
            prop_assert_eq!(c.classify(f), oracle(&rules, f), "packet {:?}", f);
        }
    }

    #[test]
    fn updates_match_linear_scan(
        rules in prop::collection::vec(rule(60), 0..40),
        ops in prop::collection::vec(op(), 1..40),
        packets in prop::collection::vec(fields(), 48),
    ) {
        let mut c = Classifier::build(&rules);
        let mut live = dedup(rules);
        for op in ops {
            match op {
                Op::Insert(r) => {
                    live.retain(|o| o.id != r.id);
                    live.push(r.clone());
                    c.insert(r);
                }
                Op::Remove(id) => {
                    let had = live.iter().any(|o| o.id == id);
                    live.retain(|o| o.id != id);
                    prop_assert_eq!(c.remove(id), had);
                }
            }
        }
        prop_assert_eq!(c.len(), live.len());
        for f in &packets {
            prop_assert_eq!(c.classify(f), oracle(&live, f), "packet {:?}", f);
        }
        let mut out = vec![None; packets.len()];
        c.classify_batch(&packets, &mut out);
        for (f, o) in packets.iter().zip(&out) {
            prop_assert_eq!(*o, oracle(&live, f));
        }
    }
}

#[test]
fn many_rules_in_one_bucket_stay_exact() {
    // Identical headers, distinct port ranges: more than the collision limit share a key.
    let rules: Vec<ClassRule> = (0..40u32)
        .map(|i| ClassRule {
            id: i,
            priority: 40 - i,
            conditions: Conditions {
                src_ip: vec!["10.0.0.0/8".parse().unwrap()],
                dst_port: vec![PortRange {
                    lo: i as u16 * 10,
                    hi: i as u16 * 10 + 15,
                }],
                ..Conditions::any()
            },
        })
        .collect();
    let mut c = Classifier::build(&rules);
    let mut f = Fields {
        src_mac: Mac::ZERO,
        dst_mac: Mac::ZERO,
        vlan: None,
        vni: None,
        src_ip: "10.1.2.3".parse().unwrap(),
        dst_ip: "::1".parse().unwrap(),
        protocol: 6,
        src_port: 1,
        dst_port: 0,
        icmp: None,
    };
    for p in 0..420u16 {
        f.dst_port = p;
        assert_eq!(c.classify(&f), oracle(&rules, &f), "port {p}");
    }
    f.dst_ip = "10.9.9.9".parse().unwrap();
    for p in 0..420u16 {
        f.dst_port = p;
        assert_eq!(c.classify(&f), oracle(&rules, &f), "port {p}");
    }
    assert!(c.remove(39));
    assert!(!c.remove(39));
    f.dst_port = 395;
    assert_eq!(c.classify(&f), Some(38));
    assert!(c.memory_bytes() > 0);
}

proptest! {
    // Sets large enough that `build` compares ladders and keeps one.
    #![proptest_config(ProptestConfig::with_cases(6))]

    #[test]
    fn tuned_builds_match_linear_scan(
        rules in prop::collection::vec(rule(5000), 600..700),
        packets in prop::collection::vec(fields(), 64),
        removed in prop::collection::vec(0u32..5000, 20),
    ) {
        let mut c = Classifier::build(&rules);
        let mut live = dedup(rules);
        prop_assert_eq!(c.len(), live.len());
        for f in &packets {
            prop_assert_eq!(c.classify(f), oracle(&live, f), "packet {:?}", f);
        }
        for id in removed {
            c.remove(id);
            live.retain(|r| r.id != id);
        }
        for f in &packets {
            prop_assert_eq!(c.classify(f), oracle(&live, f), "packet {:?}", f);
        }
    }
}
