//! The engine against the reference evaluator, the executable spec of DESIGN §2, through
//! the real engine call: each packet is a real frame (built from the packet's fields)
//! given to `Engine::process`, and what leaves is parsed back. Random policies with
//! several layers and groups, overlapping prefixes and port ranges, terminating flags,
//! ties in priority and defaults by protocol; random packet sequences in both directions
//! with repeats (warm flow table), replies (connections), time gaps (expiry) and policy
//! changes (reconciliation). Every verdict, deciding rule and output header must be the
//! same; groups are matched by the engine's scan or by its classifier (the engine shares
//! no matching code with the reference). A second property adds the header
//! transpositions (SNAT from a tiny port range so it runs out, DNAT, load balancing,
//! set-MAC) and compares the headers each forwarded frame leaves with.

use std::net::IpAddr;
use std::sync::Arc;

use proptest::prelude::*;
use strata_dataplane::engine::{Engine, Rx};
use strata_dataplane::packet::{self, testutil as tu};
use strata_dataplane::policy::{CompileOptions, CompiledPolicy, PortId};
use strata_dataplane::state::Limits;
use strata_dataplane::state::counters::PortCounters;
use strata_dataplane::state::ownership::{Owner, Share, owner};
use strata_dataplane::verdict::Verdict;
use strata_rules::conn::{TcpSeq, tcp_flags};
use strata_rules::model::*;
use strata_rules::reference::{RefPacket, RefSwitch};

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
    /// An RST in the direction of packet k steps back, at its next sequence number plus
    /// an offset (0: exact; small: inside the window; large: outside).
    Reset(usize, u32),
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
        (
            prop::bool::weighted(0.85),
            prop::sample::select(vec![1000u32, 1004, 2000, 70000]),
            prop::sample::select(vec![0u16, 8, 65535]),
            prop::option::weighted(0.3, 0u8..3),
        ),
    )
        .prop_map(
            |(
                v6,
                s4,
                d4,
                s6,
                d6,
                protocol,
                sp,
                dp,
                (sm, dm),
                flags,
                (id, ty),
                (own, seq, window, wscale),
            )| {
                let (mut src_ip, dst_ip) = if v6 {
                    (ip(V6[s6]), ip(V6[d6]))
                } else {
                    (ip(V4[s4]), ip(V4[d4]))
                };
                // An endpoint (MACs 1..=3) mostly sends as itself (its address, or
                // IPv6 link-local); sometimes it tries another's (spoofed-source).
                if own && (1..=3).contains(&sm) {
                    src_ip = match (v6, sm) {
                        (false, _) => ip(V4[usize::from(sm) - 1]),
                        (true, 3) => ip(V6[1]),
                        (true, _) => ip("fe80::1"),
                    };
                }
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
                    tcp_seq: tcp_seq(protocol, flags, seq, 1000, window, wscale),
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
            2 => ((0usize..6), prop::sample::select(vec![0u32, 6, 1_000_000])).prop_map(|(k, o)| Op::Reset(k, o)),
            1 => prop::sample::select(waits).prop_map(Op::Wait),
            1 => policy(transpose).prop_map(Op::NewPolicy),
        ],
        1..60,
    )
}

/// A TCP segment's sequence space as the engine will parse it from `frame_of`'s frame
/// (4 bytes of payload; the window scale option only on SYNs); zero for other protocols.
fn tcp_seq(protocol: u8, flags: u8, seq: u32, ack: u32, window: u16, wscale: Option<u8>) -> TcpSeq {
    if protocol != proto::TCP {
        return TcpSeq::default();
    }
    TcpSeq {
        seq,
        ack,
        window,
        wscale: wscale.filter(|_| flags & tcp_flags::SYN != 0),
        len: 4,
    }
}

fn reset(p: &RefPacket, offset: u32) -> RefPacket {
    let q = p.tcp_seq;
    let syn = u32::from(p.tcp_flags & tcp_flags::SYN != 0);
    let next = q.seq.wrapping_add(q.len + syn).wrapping_add(offset);
    RefPacket {
        tcp_flags: tcp_flags::RST | tcp_flags::ACK,
        tcp_seq: tcp_seq(p.fields.protocol, 0, next, q.ack, 0, None),
        ..*p
    }
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
    // The other side's segment: its sequence number is what this one acknowledged, and
    // it acknowledges what this one sent.
    let q = p.tcp_seq;
    let syn = u32::from(p.tcp_flags & tcp_flags::SYN != 0);
    let tcp_seq = tcp_seq(
        f.protocol,
        flags,
        q.ack,
        q.seq.wrapping_add(q.len + syn),
        q.window,
        q.wscale,
    );
    RefPacket {
        tcp_seq,
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

/// The frame a packet is: Ethernet with its MACs, IPv4 or IPv6 by its addresses, and its
/// protocol's header (ports, TCP flags, ICMP type/code/identifier) with a small payload.
fn frame_of(p: &RefPacket) -> Vec<u8> {
    let f = &p.fields;
    let l4 = match f.protocol {
        proto::TCP => {
            let s = p.tcp_seq;
            let options: &[u8] = match s.wscale {
                Some(w) => &[1, 3, 3, w],
                None => &[],
            };
            let mut t = tu::tcp(f.src_port, f.dst_port, p.tcp_flags, options, b"data");
            t[4..8].copy_from_slice(&s.seq.to_be_bytes());
            t[8..12].copy_from_slice(&s.ack.to_be_bytes());
            t[14..16].copy_from_slice(&s.window.to_be_bytes());
            t
        }
        proto::UDP => tu::udp(f.src_port, f.dst_port, b"data"),
        proto::ICMP | proto::ICMPV6 => {
            let (t, c) = f.icmp.unwrap_or((0, 0));
            let id = p.icmp_id.unwrap_or(0).to_be_bytes();
            tu::icmp(t, c, &[id[0], id[1], 0, 1])
        }
        _ => b"payload!".to_vec(),
    };
    let (ethertype, ip) = match (f.src_ip, f.dst_ip) {
        (IpAddr::V4(s), IpAddr::V4(d)) => (
            0x0800,
            tu::ipv4_full(f.protocol, s.octets(), d.octets(), &[], 0, &l4),
        ),
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut h = tu::ipv6(f.protocol, &l4);
            h[8..24].copy_from_slice(&s.octets());
            h[24..40].copy_from_slice(&d.octets());
            (0x86dd, h)
        }
        _ => unreachable!("the generator keeps one family per packet"),
    };
    let mut frame = tu::eth(ethertype, &[], &ip);
    frame[0..6].copy_from_slice(&f.dst_mac.0);
    frame[6..12].copy_from_slice(&f.src_mac.0);
    frame
}

/// Whether a forwarded packet's headers hold an address of another family than it was
/// sent with (a DNAT or backend of the other family): no frame can carry that, so the
/// engine drops it as `parse` when it rewrites the bytes.
fn crosses_family(sent: &Fields, left: &Fields) -> bool {
    left.src_ip.is_ipv4() != sent.src_ip.is_ipv4() || left.dst_ip.is_ipv4() != sent.dst_ip.is_ipv4()
}

fn engine_for(policy: &Policy, classify: bool) -> Engine {
    let options = CompileOptions {
        classifier_min_rules: if classify { 1 } else { usize::MAX },
    };
    Engine::new(
        Arc::new(CompiledPolicy::compile(policy, None, options)),
        Limits::default(),
    )
}

/// `classify`: every group goes through the compiled classifier, else through the scan.
fn run(policy: Policy, ops: Vec<Op>, classify: bool) -> Result<(), TestCaseError> {
    let mut reference = RefSwitch::new(policy.clone());
    let mut engine = engine_for(&policy, classify);
    let mut sent: Vec<RefPacket> = Vec::new();
    // Each sent packet as it left the switch (itself when dropped).
    let mut left: Vec<RefPacket> = Vec::new();
    let mut now = 1_000_000_000u64;
    for (step, op) in ops.into_iter().enumerate() {
        let pkt = match op {
            Op::Packet(p) => p,
            Op::Repeat(_) | Op::Reverse(_) | Op::Reply(_) | Op::Reset(..) if sent.is_empty() => {
                continue;
            }
            Op::Reset(k, offset) => reset(&sent[sent.len() - 1 - k.min(sent.len() - 1)], offset),
            Op::Reply(k) => reverse(&left[left.len() - 1 - k.min(left.len() - 1)]),
            Op::Repeat(k) => sent[sent.len() - 1 - k.min(sent.len() - 1)],
            Op::Reverse(k) => reverse(&sent[sent.len() - 1 - k.min(sent.len() - 1)]),
            Op::Wait(s) => {
                now += s * 1_000_000_000;
                continue;
            }
            Op::NewPolicy(p) => {
                reference.set_policy(p.clone());
                engine.set_policy(&p);
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
        let mut want = reference.process(ref_in, &pkt);
        if want.fields.is_some_and(|o| crosses_family(&f, &o)) {
            want = strata_rules::reference::RefVerdict {
                out_port: None,
                reason: Some("parse"),
                decided: want.decided,
                fields: None,
            };
        }
        let frame = frame_of(&pkt);
        let policy = Arc::clone(engine.policy());
        let ingress = policy.ingress_of(None, f.src_mac, Some(f.src_ip));
        let want_in = ref_in.map(|i| reference.policy.ports[i].name.as_str());
        prop_assert_eq!(
            (ingress != PortId::Uplink).then(|| policy.port_name(ingress)),
            want_in
        );
        let got = engine.process(Rx::frame(&frame, now));
        let got_out = got.output.map(|o| policy.port_name(o.port).to_string());
        prop_assert_eq!(
            &got_out,
            &want.out_port,
            "step {}: out port of {:?}",
            step,
            pkt
        );
        prop_assert_eq!(
            got.verdict.drop.map(|r| r.as_str()),
            want.reason,
            "step {}: reason",
            step
        );
        let got_decided = got.verdict.decided.and_then(|d| policy.decision_names(d));
        prop_assert_eq!(got_decided, want.decided, "step {}: decision", step);
        let out = got
            .output
            .map(|o| packet::parse(o.frame).map(|p| (p.fields, p.icmp_id)));
        let got_fields = out.map(|r| r.map(|(f, _)| f).map_err(|e| e.reason()));
        prop_assert_eq!(
            got_fields,
            want.fields.map(Ok),
            "step {}: headers of {:?}",
            step,
            pkt
        );
        let icmp_id = match out {
            Some(Ok((_, id))) => id,
            _ => pkt.icmp_id,
        };
        left.push(RefPacket {
            fields: want.fields.unwrap_or(f),
            icmp_id,
            ..pkt
        });
    }
    Ok(())
}

/// `count` workers, as the service runs them: each engine hands out only its share of
/// the NAT pools, and every frame goes to the worker that owns it
/// (`state::ownership::owner`).
struct Workers {
    engines: Vec<Engine>,
}

impl Workers {
    fn new(policy: &Policy, count: usize, limits: Limits) -> Workers {
        let compiled = Arc::new(CompiledPolicy::compile(
            policy,
            None,
            CompileOptions::default(),
        ));
        let engines = (0..count)
            .map(|i| {
                let mut e = Engine::new(Arc::clone(&compiled), limits);
                if count > 1 {
                    e.share_nat(Share {
                        index: i as u16,
                        count: count as u16,
                    });
                }
                e
            })
            .collect();
        Workers { engines }
    }

    fn set_policy(&mut self, p: &Policy) {
        for e in &mut self.engines {
            e.set_policy(p);
        }
    }

    /// The owner's verdict and what left (port, bytes).
    fn process(&mut self, frame: &[u8], now: u64) -> (Verdict, Option<(PortId, Vec<u8>)>) {
        let Some(first) = self.engines.first() else {
            unreachable!("at least one worker")
        };
        let policy = Arc::clone(first.policy());
        let parsed = packet::parse(frame).expect("the test's frames parse");
        let ingress = policy.ingress_of(None, parsed.fields.src_mac, Some(parsed.fields.src_ip));
        let i = match owner(&policy, ingress, frame, self.engines.len()) {
            Owner::Worker(i) => i,
            Owner::Any | Owner::All => 0,
        };
        let o = self.engines[i].process(Rx::frame(frame, now));
        (o.verdict, o.output.map(|o| (o.port, o.frame.to_vec())))
    }

    fn forwarded(&self) -> u64 {
        self.engines.iter().map(|e| e.stats().forwarded).sum()
    }

    /// Every worker's port counters (packets, bytes, drops, rule hits), less the fast
    /// and slow path counts, which are what a cache legitimately changes.
    fn port_counters(&self) -> Vec<Vec<Option<PortCounters>>> {
        self.engines
            .iter()
            .map(|e| {
                e.state()
                    .ports
                    .iter()
                    .map(|p| {
                        p.as_ref().map(|p| PortCounters {
                            fast_path: 0,
                            slow_path: 0,
                            ..p.counters.clone()
                        })
                    })
                    .collect()
            })
            .collect()
    }
}

/// The same traffic through a warm engine (flow table and path table) and a cold one
/// (nothing cached: every packet takes the slow path): the same verdict, the same bytes
/// out, packet by packet. The caches may only ever save work.
fn warm_and_cold(policy: Policy, ops: Vec<Op>, workers: usize) -> Result<(), TestCaseError> {
    let mut warm = Workers::new(&policy, workers, Limits::default());
    let cold_limits = Limits {
        flows: 0,
        ..Limits::default()
    };
    let mut cold = Workers::new(&policy, workers, cold_limits);
    let (mut sent, mut left): (Vec<RefPacket>, Vec<RefPacket>) = (Vec::new(), Vec::new());
    let mut now = 1_000_000_000u64;
    for (step, op) in ops.into_iter().enumerate() {
        let Some(pkt) = next_packet(op, &sent, &left, &mut now, |p| {
            warm.set_policy(p);
            cold.set_policy(p);
        }) else {
            continue;
        };
        sent.push(pkt);
        let frame = frame_of(&pkt);
        let (wv, wout) = warm.process(&frame, now);
        let (cv, cout) = cold.process(&frame, now);
        prop_assert_eq!(
            wv,
            cv,
            "step {}: verdict of {:?} ({} workers)",
            step,
            pkt,
            workers
        );
        prop_assert_eq!(
            &wout,
            &cout,
            "step {}: bytes out of {:?} ({} workers)",
            step,
            pkt,
            workers
        );
        let parsed = wout.and_then(|(_, f)| packet::parse(&f).ok());
        left.push(RefPacket {
            fields: parsed.map_or(pkt.fields, |p| p.fields),
            icmp_id: parsed.map_or(pkt.icmp_id, |p| p.icmp_id),
            ..pkt
        });
    }
    prop_assert_eq!(warm.forwarded(), cold.forwarded());
    prop_assert_eq!(warm.port_counters(), cold.port_counters(), "port counters");
    Ok(())
}

/// The same traffic through 1, 2 and 4 workers: the same verdict for every packet (the
/// ownership rule sends both directions of a connection to the same worker). Policies
/// without NAT: how a pool is shared out legitimately changes which ports SNAT picks.
fn worker_counts_agree(policy: Policy, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut runs: Vec<Workers> = [1, 2, 4]
        .into_iter()
        .map(|n| Workers::new(&policy, n, Limits::default()))
        .collect();
    let (mut sent, mut left): (Vec<RefPacket>, Vec<RefPacket>) = (Vec::new(), Vec::new());
    let mut now = 1_000_000_000u64;
    for (step, op) in ops.into_iter().enumerate() {
        let Some(pkt) = next_packet(op, &sent, &left, &mut now, |p| {
            runs.iter_mut().for_each(|w| w.set_policy(p));
        }) else {
            continue;
        };
        if !consistent(&pkt.fields) {
            // No ownership rule can follow a frame whose MACs and addresses disagree
            // (sent to one endpoint's MAC with another's address): real hosts don't.
            continue;
        }
        sent.push(pkt);
        let frame = frame_of(&pkt);
        let outcomes: Vec<_> = runs.iter_mut().map(|w| w.process(&frame, now)).collect();
        let names = |(v, out): &(Verdict, Option<(PortId, Vec<u8>)>)| {
            (
                v.egress,
                v.drop,
                v.decided,
                out.as_ref().map(|(p, f)| (*p, f.clone())),
            )
        };
        for (n, o) in [2, 4].iter().zip(&outcomes[1..]) {
            prop_assert_eq!(
                names(o),
                names(&outcomes[0]),
                "step {}: {} workers vs one: {:?}",
                step,
                n,
                pkt
            );
        }
        let parsed = outcomes[0]
            .1
            .as_ref()
            .and_then(|(_, f)| packet::parse(f).ok());
        left.push(RefPacket {
            fields: parsed.map_or(pkt.fields, |p| p.fields),
            icmp_id: parsed.map_or(pkt.icmp_id, |p| p.icmp_id),
            ..pkt
        });
    }
    Ok(())
}

/// Whether a packet's MACs and addresses name the same endpoints (the generated policies'
/// endpoint i has MAC i + 1 and address V4[i], endpoint 2 also V6[1]; link-local
/// addresses go with any MAC); a destination MAC of no endpoint is routed by address.
fn consistent(f: &Fields) -> bool {
    let by_mac = |m: Mac| (1..=3u8).find(|&i| mac(i) == m).map(|i| usize::from(i) - 1);
    let by_ip = |a: IpAddr| {
        (0..3)
            .find(|&i| ip(V4[i]) == a)
            .or((a == ip(V6[1])).then_some(2))
    };
    let link_local = |a: IpAddr| matches!(a, IpAddr::V6(v) if v.segments()[0] & 0xffc0 == 0xfe80);
    let src_ok = by_mac(f.src_mac) == by_ip(f.src_ip)
        || (link_local(f.src_ip) && by_mac(f.src_mac).is_some());
    let dst_ok = by_mac(f.dst_mac).is_none() || by_mac(f.dst_mac) == by_ip(f.dst_ip);
    src_ok && dst_ok
}

/// The packet an op sends (advancing time), or `None` for ops that send nothing
/// (waits, policy changes — applied through `new_policy`).
fn next_packet(
    op: Op,
    sent: &[RefPacket],
    left: &[RefPacket],
    now: &mut u64,
    mut new_policy: impl FnMut(&Policy),
) -> Option<RefPacket> {
    let back = |v: &[RefPacket], k: usize| v[v.len() - 1 - k.min(v.len() - 1)];
    let pkt = match op {
        Op::Packet(p) => p,
        Op::Repeat(_) | Op::Reverse(_) | Op::Reply(_) | Op::Reset(..) if sent.is_empty() => {
            return None;
        }
        Op::Reset(k, offset) => reset(&back(sent, k), offset),
        Op::Reply(k) => reverse(&back(left, k)),
        Op::Repeat(k) => back(sent, k),
        Op::Reverse(k) => reverse(&back(sent, k)),
        Op::Wait(s) => {
            *now += s * 1_000_000_000;
            return None;
        }
        Op::NewPolicy(p) => {
            new_policy(&p);
            return None;
        }
    };
    *now += 1_000_000;
    Some(RefPacket { ts_ns: *now, ..pkt })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn warm_and_cold_engines_agree_byte_for_byte(
        policy in policy(true),
        ops in ops(true),
        workers in prop::sample::select(vec![1usize, 2, 4]),
    ) {
        warm_and_cold(policy, ops, workers)?;
    }

    #[test]
    fn one_two_and_four_workers_agree(policy in policy(false), ops in ops(false)) {
        worker_counts_agree(policy, ops)?;
    }

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
