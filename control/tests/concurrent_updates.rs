//! Policy updates racing live traffic, in process: a worker thread runs the real worker
//! loop over a stream of frames while the control side publishes hundreds of policies.
//! Every frame's verdict (output port, drop reason, deciding rule) must equal the
//! reference evaluator's under the snapshot the worker judged it by, and those snapshots
//! must follow the order they were published in — so each packet was judged by the policy
//! before or after the update it raced with, never by a mixture. Connections that a new
//! policy blocks are cut (the reference re-validates them, so equality covers it; a
//! deterministic case checks it on its own).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use crossbeam_channel::{Sender, unbounded};
use strata_control::api::{Control, Controller};
use strata_control::edit::{Edit, PolicyState};
use strata_control::local::LocalDataplane;
use strata_control::protocol::Document;
use strata_control::publish::Publisher;
use strata_dataplane::engine::Outcome;
use strata_dataplane::packet::testutil as tu;
use strata_dataplane::policy::{CompileOptions, CompiledPolicy};
use strata_dataplane::worker::{Observer, WorkerError};
use strata_rules::conn::{TcpSeq, tcp_flags};
use strata_rules::decision::DecisionNames;
use strata_rules::model::*;
use strata_rules::reference::{RefPacket, RefSwitch};

/// A small deterministic generator (xorshift), so a failure replays.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const IPS: [[u8; 4]; 3] = [[198, 18, 32, 1], [198, 18, 32, 2], [198, 18, 32, 3]];
/// A peer beyond the uplink.
const OUTSIDE: [u8; 4] = [198, 19, 32, 9];
const PORTS: [u16; 4] = [53, 80, 443, 5432];

fn mac(i: usize) -> Mac {
    Mac([0x00, 0x15, 0x5d, 0x20, 0, i as u8 + 1])
}
const OUTSIDE_MAC: Mac = Mac([0x02, 0, 0, 0, 0, 0x09]);
fn ip(a: [u8; 4]) -> IpAddr {
    IpAddr::from(a)
}

fn conditions(rng: &mut Rng) -> Conditions {
    let mut c = Conditions::default();
    if rng.chance(60) {
        c.protocol = vec![[proto::TCP, proto::UDP][rng.below(2)]];
    }
    if rng.chance(50) {
        let p = PORTS[rng.below(PORTS.len())];
        c.dst_port = vec![PortRange::single(p)];
    }
    if rng.chance(40) {
        let a = [IPS[0], IPS[1], IPS[2], OUTSIDE][rng.below(4)];
        c.src_ip = vec![IpPrefix::new(ip(a), [24, 32][rng.below(2)]).unwrap()];
    }
    c
}

/// One random policy: three endpoints, each with an `acl` layer of two groups.
fn policy(rng: &mut Rng) -> Policy {
    let ports = (0..3)
        .map(|i| {
            let groups = ["g-out", "g-in"]
                .iter()
                .enumerate()
                .map(|(gi, name)| Group {
                    name: name.to_string(),
                    direction: [GroupDirection::Out, GroupDirection::In][gi],
                    condition: None,
                    rules: (0..rng.below(5))
                        .map(|r| Rule {
                            id: format!("r{r}"),
                            priority: rng.below(3) as u32,
                            conditions: conditions(rng),
                            action: if rng.chance(50) {
                                Action::Allow
                            } else {
                                Action::Block
                            },
                            terminating: rng.chance(20),
                            stateful: rng.chance(60),
                        })
                        .collect(),
                })
                .collect();
            let default = |rng: &mut Rng| DefaultPolicy {
                entries: vec![DefaultRule {
                    name: "udp".into(),
                    conditions: Conditions {
                        protocol: vec![proto::UDP],
                        ..Conditions::default()
                    },
                    action: if rng.chance(50) {
                        Action::Allow
                    } else {
                        Action::Block
                    },
                }],
                otherwise: if rng.chance(70) {
                    Action::Allow
                } else {
                    Action::Block
                },
            };
            Port {
                name: format!("ep{i}"),
                network: "n".into(),
                mac: mac(i),
                ips: vec![ip(IPS[i])],
                isolation: Isolation::Process,
                interface: None,
                port_mappings: vec![],
                layers: vec![Layer {
                    name: "acl".into(),
                    groups,
                    defaults: Defaults {
                        outbound: default(rng),
                        inbound: default(rng),
                    },
                }],
            }
        })
        .collect();
    Policy {
        networks: vec![],
        ports,
        uplink: Uplink::default(),
        load_balancers: vec![],
    }
}

/// Packets of a few dozen flows between the endpoints and the outside, both ways.
fn packets(rng: &mut Rng, n: usize) -> Vec<RefPacket> {
    let hosts: Vec<(Mac, [u8; 4])> = (0..3)
        .map(|i| (mac(i), IPS[i]))
        .chain([(OUTSIDE_MAC, OUTSIDE)])
        .collect();
    let flows: Vec<(usize, usize, u8, u16, u16)> = (0..40)
        .map(|_| {
            let a = rng.below(4);
            let b = (a + 1 + rng.below(3)) % 4;
            let protocol = [proto::TCP, proto::UDP][rng.below(2)];
            (
                a,
                b,
                protocol,
                30000 + rng.below(4) as u16,
                PORTS[rng.below(4)],
            )
        })
        .collect();
    (0..n)
        .map(|i| {
            let (a, b, protocol, sp, dp) = flows[rng.below(flows.len())];
            let reply = rng.chance(40);
            let ((sm, sip), (dm, dip), sport, dport) = if reply {
                (hosts[b], hosts[a], dp, sp)
            } else {
                (hosts[a], hosts[b], sp, dp)
            };
            let flags = match (protocol, reply) {
                (proto::TCP, false) => [tcp_flags::SYN, tcp_flags::ACK][rng.below(2)],
                (proto::TCP, true) => tcp_flags::SYN | tcp_flags::ACK,
                _ => 0,
            };
            RefPacket {
                fields: Fields {
                    src_mac: sm,
                    dst_mac: dm,
                    vlan: None,
                    vni: None,
                    src_ip: ip(sip),
                    dst_ip: ip(dip),
                    protocol,
                    src_port: sport,
                    dst_port: dport,
                    icmp: None,
                },
                icmp_id: None,
                tcp_flags: flags,
                // What `frame_of`'s TCP header says (testutil: seq 1, ack 0, window
                // 0xffff, 4 bytes of data).
                tcp_seq: if protocol == proto::TCP {
                    TcpSeq {
                        seq: 1,
                        ack: 0,
                        window: 0xffff,
                        wscale: None,
                        len: 4,
                    }
                } else {
                    TcpSeq::default()
                },
                ts_ns: 1_000_000_000 + i as u64 * 1_000_000,
            }
        })
        .collect()
}

fn frame_of(p: &RefPacket) -> Vec<u8> {
    let f = &p.fields;
    let l4 = match f.protocol {
        proto::TCP => tu::tcp(f.src_port, f.dst_port, p.tcp_flags, &[], b"data"),
        _ => tu::udp(f.src_port, f.dst_port, b"data"),
    };
    let (IpAddr::V4(s), IpAddr::V4(d)) = (f.src_ip, f.dst_ip) else {
        unreachable!("IPv4 only here")
    };
    let ipp = tu::ipv4_full(f.protocol, s.octets(), d.octets(), &[], 0, &l4);
    let mut frame = tu::eth(0x0800, &[], &ipp);
    frame[0..6].copy_from_slice(&f.dst_mac.0);
    frame[6..12].copy_from_slice(&f.src_mac.0);
    frame
}

/// What the worker decided for one frame, and under which snapshot.
#[derive(Debug)]
struct Seen {
    index: u64,
    serial: u64,
    out: Option<String>,
    reason: Option<&'static str>,
    decided: Option<DecisionNames>,
}

struct Recorder(Sender<Seen>);

impl Observer for Recorder {
    fn observe(
        &mut self,
        index: u64,
        o: &Outcome<'_>,
        policy: &CompiledPolicy,
    ) -> Result<(), WorkerError> {
        let _ = self.0.send(Seen {
            index,
            serial: policy.serial,
            out: o.output.map(|x| policy.port_name(x.port).to_string()),
            reason: o.verdict.drop.map(|r| r.as_str()),
            decided: o.verdict.decided.and_then(|d| policy.decision_names(d)),
        });
        Ok(())
    }
}

#[test]
fn every_verdict_is_the_references_under_the_policy_before_or_after_each_update() {
    const UPDATES: usize = 300;
    const FRAMES: usize = 30_000;
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let variants: Vec<Policy> = (0..8).map(|_| policy(&mut rng)).collect();
    let pkts = packets(&mut rng, FRAMES);

    let (tx, rx) = unbounded();
    let dp = LocalDataplane::start(
        &variants[0],
        CompileOptions::default(),
        Box::new(Recorder(tx)),
    );
    let publisher = Publisher::following(dp.published());
    let mut by_serial: HashMap<u64, Policy> = HashMap::new();
    by_serial.insert(publisher.current().serial, variants[0].clone());
    let mut order = vec![publisher.current().serial];

    // Frames go out in slices, a publish between two slices: each publish lands while
    // the worker is busy with the frames queued before it.
    let frames: Vec<(Vec<u8>, u64)> = pkts.iter().map(|p| (frame_of(p), p.ts_ns)).collect();
    let slices: Vec<_> = frames.chunks(FRAMES / UPDATES).collect();
    for (u, slice) in slices.into_iter().enumerate() {
        for f in slice {
            assert!(dp.send(f.clone()));
        }
        if u == 0 || u > UPDATES {
            continue;
        }
        let p = &variants[u % variants.len()];
        publisher.apply(p);
        let serial = publisher.current().serial;
        by_serial.insert(serial, p.clone());
        order.push(serial);
        std::thread::sleep(Duration::from_micros(rng.below(100) as u64));
    }
    dp.sync();
    drop(dp);
    let seen: Vec<Seen> = rx.try_iter().collect();
    assert_eq!(seen.len(), FRAMES);

    // Snapshots are installed in publish order (some skipped when several came between
    // two batches), never out of it.
    let rank: HashMap<u64, usize> = order.iter().enumerate().map(|(i, s)| (*s, i)).collect();
    let mut last = 0;
    let mut distinct = 0;
    for s in &seen {
        let r = rank[&s.serial];
        assert!(r >= last, "frame {} judged by an older snapshot", s.index);
        distinct += usize::from(r != last);
        last = r;
    }
    assert!(
        distinct >= 10,
        "updates did not race the traffic ({distinct} switches)"
    );

    let mut reference = RefSwitch::new(variants[0].clone());
    let mut current = order[0];
    for (i, (s, pkt)) in seen.iter().zip(&pkts).enumerate() {
        assert_eq!(s.index as usize, i, "frames are observed in order");
        if s.serial != current {
            reference.set_policy(by_serial[&s.serial].clone());
            current = s.serial;
        }
        let in_port = reference
            .policy
            .ports
            .iter()
            .position(|p| p.mac == pkt.fields.src_mac);
        let want = reference.process(in_port, pkt);
        assert_eq!(
            (&s.out, s.reason, &s.decided),
            (&want.out_port, want.reason, &want.decided),
            "frame {} ({:?}) under snapshot {}",
            s.index,
            pkt.fields,
            s.serial
        );
    }
}

/// web's connection to db:5432 is allowed by `allow-web-pg`; removing that rule leaves
/// `block-pg`: the connection's next packet is dropped, by the new policy.
#[test]
fn a_connection_the_new_policy_blocks_is_cut() {
    let text = include_str!("../../examples/policy.toml");
    let state = PolicyState::new(Document::new("policy.toml", text)).unwrap();
    let dp = LocalDataplane::start(state.current(), CompileOptions::default(), Box::new(()));
    let c = Controller::new(dp, state);
    let web = [0x00, 0x15, 0x5d, 0x01, 0x01, 0x0a];
    let db = [0x00, 0x15, 0x5d, 0x01, 0x01, 0x0b];
    let frame = |flags| {
        let l4 = tu::tcp(40000, 5432, flags, &[], b"");
        let ipp = tu::ipv4_full(6, [198, 18, 1, 10], [198, 18, 1, 11], &[], 0, &l4);
        let mut f = tu::eth(0x0800, &[], &ipp);
        f[0..6].copy_from_slice(&db);
        f[6..12].copy_from_slice(&web);
        f
    };
    let dropped = |c: &Controller<LocalDataplane>| c.stats().unwrap().dropped;
    c.dataplane().send((frame(tcp_flags::SYN), 1_000));
    c.dataplane().send((frame(tcp_flags::ACK), 2_000));
    c.dataplane().sync();
    assert_eq!(dropped(&c), 0);
    assert_eq!(c.flows(Some("db")).unwrap().len(), 1);
    c.edit(Edit::RuleRemove {
        port: "db".into(),
        rule: "allow-web-pg".into(),
        layer: None,
        group: None,
    })
    .unwrap();
    c.dataplane().send((frame(tcp_flags::ACK), 3_000));
    c.dataplane().sync();
    let s = c.stats().unwrap();
    assert_eq!(s.dropped, 1, "{s:?}");
    assert!(
        s.top_rules
            .iter()
            .any(|(r, _)| r == "db/acl/acl-in/block-pg"),
        "{s:?}"
    );
}
