//! The fast engine (compiled layers, unified flow table, connection table) against the
//! reference evaluator, the executable spec of DESIGN §2: random policies with several
//! layers and groups, overlapping prefixes and port ranges, terminating flags, ties in
//! priority and defaults by protocol; random packet sequences in both directions with
//! repeats (warm flow table), replies (connections), time gaps (expiry) and policy
//! changes (reconciliation). Every verdict must be the same. A second property adds the
//! header transpositions (SNAT from a tiny port range so it runs out, DNAT, load
//! balancing, set-MAC) and compares the headers each forwarded packet leaves with.

use std::net::IpAddr;

use proptest::prelude::*;
use strata_dataplane::PacketMeta;
use strata_dataplane::port::Limits;
use strata_dataplane::switch::{FrameInfo, PortId, Switch};
use strata_rules::model::*;
use strata_rules::reference::{RefPacket, RefSwitch, tcp_flags};

const V4: [&str; 6] = [
    "198.18.0.1",
    "198.18.0.2",
    "198.18.0.3",
    "198.19.0.1",
    "198.19.0.2",
    HOST,
];
/// The host's address: SNAT's external address, where NAT replies arrive.
const HOST: &str = "198.19.0.10";
const V6: [&str; 3] = ["2001:db8::1", "2001:db8::2", "2001:db8:1::1"];
const PORTS: [u16; 6] = [53, 67, 80, 443, 1024, 5000];
const PROTOS: [u8; 6] = [
    proto::TCP,
    proto::UDP,
    proto::ICMP,
    proto::ICMPV6,
    proto::GRE,
    proto::IGMP,
];

fn mac(i: u8) -> Mac {
    Mac([0x00, 0x15, 0x5d, 0, 0, i])
}
fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn prefix() -> impl Strategy<Value = IpPrefix> {
    prop_oneof![
        (
            0..V4.len(),
            prop::sample::select(vec![0u8, 8, 15, 16, 24, 30, 32])
        )
            .prop_map(|(i, l)| IpPrefix::new(ip(V4[i]), l).unwrap()),
        (
            0..V6.len(),
            prop::sample::select(vec![0u8, 32, 48, 64, 128])
        )
            .prop_map(|(i, l)| IpPrefix::new(ip(V6[i]), l).unwrap()),
    ]
}

fn port_range() -> impl Strategy<Value = PortRange> {
    (0..PORTS.len(), 0..PORTS.len()).prop_map(|(a, b)| {
        let (lo, hi) = (PORTS[a.min(b)], PORTS[a.max(b)]);
        PortRange { lo, hi }
    })
}

fn conditions() -> impl Strategy<Value = Conditions> {
    (
        prop::collection::vec(prefix(), 0..3),
        prop::collection::vec(prefix(), 0..3),
        prop::collection::vec(port_range(), 0..2),
        prop::collection::vec(port_range(), 0..2),
        prop::collection::vec(prop::sample::select(PROTOS.to_vec()), 0..3),
        prop::collection::vec(prop::sample::select(vec![0u8, 3, 8, 128, 129]), 0..2),
        prop::collection::vec((1u8..4).prop_map(mac), 0..2),
    )
        .prop_map(|(s, d, sp, dp, p, it, sm)| Conditions {
            src_ip: s,
            dst_ip: d,
            src_port: sp,
            dst_port: dp,
            protocol: p,
            icmp_type: it,
            src_mac: sm,
            ..Conditions::default()
        })
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![Just(Action::Allow), Just(Action::Block)]
}

/// Allow, block, and (with `transpose`) every header transposition.
fn any_action(transpose: bool) -> BoxedStrategy<Action> {
    if !transpose {
        return action().boxed();
    }
    let endpoint = || (0usize..3).prop_map(|i| ip(V4[i]));
    let distribution = prop::sample::select(vec![
        Distribution::FiveTuple,
        Distribution::SourceIpProtocol,
        Distribution::SourceIp,
    ]);
    prop_oneof![
        3 => action(),
        2 => Just(Action::Snat { ip: ip(HOST), ports: PortRange { lo: 1024, hi: 1027 } }),
        1 => (endpoint(), prop::option::of(Just(80u16)))
            .prop_map(|(ip, port)| Action::Dnat { ip, port }),
        1 => (
            prop::collection::vec((endpoint(), prop::sample::select(vec![0u16, 443])), 0..3),
            distribution,
        )
            .prop_map(|(b, distribution)| Action::LoadBalance(LoadBalancer {
                name: "lb".into(),
                backends: b.into_iter().map(|(ip, port)| Backend { ip, port }).collect(),
                distribution,
            })),
        1 => (
            prop::option::of((1u8..4).prop_map(mac)),
            prop::option::of(Just(Mac([2, 0, 0, 0, 0, 7]))),
        )
            .prop_map(|(src, dst)| Action::SetMac { src, dst }),
    ]
    .boxed()
}

fn rule(transpose: bool) -> impl Strategy<Value = Rule> {
    (
        0u32..4,
        conditions(),
        any_action(transpose),
        prop::bool::weighted(0.2),
        any::<bool>(),
    )
        .prop_map(
            |(priority, conditions, action, terminating, stateful)| Rule {
                id: String::new(),
                priority,
                conditions,
                action,
                terminating,
                stateful,
            },
        )
}

fn group(transpose: bool) -> impl Strategy<Value = Group> {
    (
        prop::sample::select(vec![
            GroupDirection::In,
            GroupDirection::Out,
            GroupDirection::Both,
        ]),
        prop::option::weighted(0.2, conditions()),
        prop::collection::vec(rule(transpose), 0..5),
    )
        .prop_map(|(direction, condition, rules)| Group {
            name: String::new(),
            direction,
            condition,
            rules,
        })
}

fn default_policy() -> impl Strategy<Value = DefaultPolicy> {
    (
        prop::collection::vec((prop::sample::select(PROTOS.to_vec()), action()), 0..3),
        action(),
    )
        .prop_map(|(entries, otherwise)| DefaultPolicy {
            entries: entries
                .into_iter()
                .map(|(p, action)| DefaultRule {
                    name: format!("p{p}"),
                    conditions: Conditions {
                        protocol: vec![p],
                        ..Conditions::default()
                    },
                    action,
                })
                .collect(),
            otherwise,
        })
}

fn layer(transpose: bool) -> impl Strategy<Value = Layer> {
    (
        prop::collection::vec(group(transpose), 0..3),
        default_policy(),
        default_policy(),
    )
        .prop_map(|(groups, outbound, inbound)| Layer {
            name: String::new(),
            groups,
            defaults: Defaults { outbound, inbound },
        })
}

/// Three endpoints (198.18.0.1, 198.18.0.2, 198.18.0.3 + 2001:db8::2) with random layers.
fn policy(transpose: bool) -> impl Strategy<Value = Policy> {
    prop::collection::vec(prop::collection::vec(layer(transpose), 0..3), 3).prop_map(|ports| {
        let ports = ports
            .into_iter()
            .enumerate()
            .map(|(i, mut layers)| {
                for (li, l) in layers.iter_mut().enumerate() {
                    l.name = format!("l{li}");
                    for (gi, g) in l.groups.iter_mut().enumerate() {
                        g.name = format!("g{gi}");
                        for (ri, r) in g.rules.iter_mut().enumerate() {
                            r.id = format!("r{ri}");
                        }
                    }
                }
                let mut ips = vec![ip(V4[i])];
                if i == 2 {
                    ips.push(ip(V6[1]));
                }
                Port {
                    name: format!("ep{i}"),
                    network: "n".into(),
                    mac: mac(i as u8 + 1),
                    ips,
                    isolation: Isolation::Process,
                    interface: None,
                    port_mappings: vec![],
                    layers,
                }
            })
            .collect();
        Policy {
            networks: vec![],
            ports,
            uplink: Uplink {
                ips: vec![ip(HOST)],
                ..Uplink::default()
            },
            load_balancers: vec![],
        }
    })
}

#[derive(Clone, Debug)]
enum Op {
    Packet(RefPacket),
    /// Send packet k steps back again.
    Repeat(usize),
    /// Send the reverse of packet k steps back.
    Reverse(usize),
    /// Answer packet k steps back as it left the switch (after NAT): its reply.
    Reply(usize),
    /// Time passes (seconds).
    Wait(u64),
    NewPolicy(Policy),
}

fn packet() -> impl Strategy<Value = RefPacket> {
    (
        any::<bool>(),
        0..V4.len(),
        0..V4.len(),
        0..V6.len(),
        0..V6.len(),
        prop::sample::select(PROTOS.to_vec()),
        0..PORTS.len(),
        0..PORTS.len(),
        (0u8..5, 0u8..5),
        prop::sample::select(vec![
            tcp_flags::SYN,
            tcp_flags::SYN | tcp_flags::ACK,
            tcp_flags::ACK,
            tcp_flags::FIN | tcp_flags::ACK,
            tcp_flags::RST,
        ]),
        (0u16..3, prop::sample::select(vec![0u8, 3, 8, 128, 129])),
    )
        .prop_map(
            |(v6, s4, d4, s6, d6, protocol, sp, dp, (sm, dm), flags, (id, ty))| {
                let (src_ip, dst_ip) = if v6 {
                    (ip(V6[s6]), ip(V6[d6]))
                } else {
                    (ip(V4[s4]), ip(V4[d4]))
                };
                let icmp = proto::is_icmp(protocol).then_some((ty, 0));
                let (src_port, dst_port) = if proto::has_ports(protocol) {
                    (PORTS[sp], PORTS[dp])
                } else {
                    (0, 0)
                };
                RefPacket {
                    fields: Fields {
                        src_mac: if sm == 0 {
                            Mac([2, 0, 0, 0, 0, 9])
                        } else {
                            mac(sm)
                        },
                        dst_mac: if dm == 0 {
                            Mac([2, 0, 0, 0, 0, 1])
                        } else {
                            mac(dm)
                        },
                        vlan: None,
                        vni: None,
                        src_ip,
                        dst_ip,
                        protocol,
                        src_port,
                        dst_port,
                        icmp,
                    },
                    icmp_id: icmp.map(|_| id),
                    tcp_flags: if protocol == proto::TCP { flags } else { 0 },
                    ts_ns: 0,
                }
            },
        )
}

/// With transpositions, time never passes far enough to expire a connection: the
/// engine releases the NAT ports of expired connections lazily, so which port a SNAT
/// picks next may legitimately differ from the spec's once one has expired.
fn ops(transpose: bool) -> impl Strategy<Value = Vec<Op>> {
    let waits = if transpose {
        vec![1u64, 5]
    } else {
        vec![1u64, 20, 40, 100, 400]
    };
    prop::collection::vec(
        prop_oneof![
            6 => packet().prop_map(Op::Packet),
            4 => (0usize..6).prop_map(Op::Repeat),
            4 => (0usize..6).prop_map(Op::Reverse),
            4 => (0usize..6).prop_map(Op::Reply),
            1 => prop::sample::select(waits).prop_map(Op::Wait),
            1 => policy(transpose).prop_map(Op::NewPolicy),
        ],
        1..60,
    )
}

fn reverse(p: &RefPacket) -> RefPacket {
    let f = p.fields;
    let icmp = f.icmp.map(|(t, c)| {
        let t = match t {
            8 => 0,
            0 => 8,
            128 => 129,
            129 => 128,
            t => t,
        };
        (t, c)
    });
    let flags = match p.tcp_flags {
        tcp_flags::SYN => tcp_flags::SYN | tcp_flags::ACK,
        f => f,
    };
    RefPacket {
        fields: Fields {
            src_mac: f.dst_mac,
            dst_mac: f.src_mac,
            src_ip: f.dst_ip,
            dst_ip: f.src_ip,
            src_port: f.dst_port,
            dst_port: f.src_port,
            icmp,
            ..f
        },
        tcp_flags: flags,
        ..*p
    }
}

/// `classify`: every group goes through the compiled classifier, not the linear scan.
fn run(policy: Policy, ops: Vec<Op>, classify: bool) -> Result<(), TestCaseError> {
    let mut reference = RefSwitch::new(policy.clone());
    let limits = Limits {
        classifier_min_rules: if classify { 1 } else { usize::MAX },
        ..Limits::default()
    };
    let mut engine = Switch::with_limits(policy, limits);
    let mut sent: Vec<RefPacket> = Vec::new();
    // Each sent packet as it left the switch (itself when dropped).
    let mut left: Vec<RefPacket> = Vec::new();
    let mut now = 1_000_000_000u64;
    for (step, op) in ops.into_iter().enumerate() {
        let pkt = match op {
            Op::Packet(p) => p,
            Op::Repeat(_) | Op::Reverse(_) | Op::Reply(_) if sent.is_empty() => continue,
            Op::Reply(k) => reverse(&left[left.len() - 1 - k.min(left.len() - 1)]),
            Op::Repeat(k) => sent[sent.len() - 1 - k.min(sent.len() - 1)],
            Op::Reverse(k) => reverse(&sent[sent.len() - 1 - k.min(sent.len() - 1)]),
            Op::Wait(s) => {
                now += s * 1_000_000_000;
                continue;
            }
            Op::NewPolicy(p) => {
                reference.set_policy(p.clone());
                engine.set_policy(p);
                continue;
            }
        };
        now += 1_000_000;
        let pkt = RefPacket { ts_ns: now, ..pkt };
        sent.push(pkt);
        let f = pkt.fields;
        let ref_in = reference
            .policy
            .ports
            .iter()
            .position(|p| p.mac == f.src_mac);
        let want = reference.process(ref_in, &pkt);
        let ingress = engine.ingress_of(None, f.src_mac, Some(f.src_ip));
        prop_assert_eq!(ingress, ref_in.map_or(PortId::Uplink, PortId::Endpoint));
        let meta = PacketMeta {
            fields: f,
            icmp_id: pkt.icmp_id,
            tcp_flags: pkt.tcp_flags,
            ip_len: 100,
        };
        let got = engine.process(ingress, &FrameInfo::Ip(meta), now);
        let got_out = got.egress.map(|e| engine.port_name(e).to_string());
        prop_assert_eq!(
            &got_out,
            &want.out_port,
            "step {}: out port of {:?}",
            step,
            pkt
        );
        prop_assert_eq!(
            got.drop.map(|r| r.as_str()),
            want.reason,
            "step {}: reason",
            step
        );
        let got_decided = got.decided.and_then(|d| engine.decision_names(d));
        prop_assert_eq!(got_decided, want.decided, "step {}: decision", step);
        let got_fields = got
            .egress
            .map(|_| got.rewrite.apply_fields(&f, pkt.icmp_id).0);
        prop_assert_eq!(
            got_fields,
            want.fields,
            "step {}: headers of {:?}",
            step,
            pkt
        );
        left.push(RefPacket {
            fields: want.fields.unwrap_or(f),
            icmp_id: got
                .egress
                .map_or(pkt.icmp_id, |_| got.rewrite.apply_fields(&f, pkt.icmp_id).1),
            ..pkt
        });
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_reference(policy in policy(false), ops in ops(false), classify: bool) {
        run(policy, ops, classify)?;
    }

    #[test]
    fn engine_matches_reference_with_transpositions(
        policy in policy(true),
        ops in ops(true),
        classify: bool,
    ) {
        run(policy, ops, classify)?;
    }
}
