//! Hostile traffic, one test per defect found by probing the engine as an attacker would
//! (issue "Hostile traffic"): each builds its frames, runs them through the engine call
//! and asserts the verdicts (and, where it matters, what leaves).

use std::net::IpAddr;

use strata_dataplane::engine::{Engine, Ingress, Rx};
use strata_dataplane::packet::{self, testutil as tu};
use strata_rules::conn::tcp_flags::{ACK, FIN, RST, SYN};

const EXAMPLE: &str = include_str!("../../examples/policy.toml");
const HOST_MAC: &str = "02:00:00:00:00:01";
const OUTSIDE_MAC: &str = "02:00:00:00:00:fe";
const PEER: &str = "198.19.0.100";
const WEB: (&str, &str) = ("00:15:5d:01:01:0a", "198.18.1.10");
const DB: (&str, &str) = ("00:15:5d:01:01:0b", "198.18.1.11");
const CLIENT: (&str, &str) = ("00:15:5d:01:01:0c", "198.18.1.12");

fn engine(text: &str) -> Engine {
    Engine::for_policy(
        &strata_rules::policy::load(text, "p.toml").unwrap_or_else(|e| panic!("{e}")),
    )
}

fn v4(s: &str) -> [u8; 4] {
    match s.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => a.octets(),
        _ => panic!("an IPv4 address: {s}"),
    }
}

fn mac(s: &str) -> [u8; 6] {
    s.parse::<strata_rules::Mac>().expect("a MAC").0
}

/// An Ethernet/IPv4 frame with `l4` of `protocol`.
fn frame(src: (&str, &str), dst: (&str, &str), protocol: u8, l4: &[u8]) -> Vec<u8> {
    let ip = tu::ipv4_full(protocol, v4(src.1), v4(dst.1), &[], 0, l4);
    let mut f = tu::eth(0x0800, &[], &ip);
    f[0..6].copy_from_slice(&mac(dst.0));
    f[6..12].copy_from_slice(&mac(src.0));
    f
}

fn tcp(src: (&str, &str, u16), dst: (&str, &str, u16), flags: u8) -> Vec<u8> {
    frame(
        (src.0, src.1),
        (dst.0, dst.1),
        6,
        &tu::tcp(src.2, dst.2, flags, &[], b""),
    )
}

fn udp(src: (&str, &str, u16), dst: (&str, &str, u16)) -> Vec<u8> {
    frame(
        (src.0, src.1),
        (dst.0, dst.1),
        17,
        &tu::udp(src.2, dst.2, b"hi"),
    )
}

fn ping(src: (&str, &str), dst: (&str, &str), icmp_type: u8, id: u16) -> Vec<u8> {
    let id = id.to_be_bytes();
    frame(src, dst, 1, &tu::icmp(icmp_type, 0, &[id[0], id[1], 0, 1]))
}

/// What became of a frame: the port it left by (or the drop reason), and what left.
struct Seen {
    out: Option<String>,
    reason: Option<&'static str>,
    left: Option<packet::Parsed>,
}

fn send_at(e: &mut Engine, ingress: Ingress<'_>, f: &[u8], t: u64) -> Seen {
    let policy = std::sync::Arc::clone(e.policy());
    let o = e.process(Rx {
        ingress,
        ..Rx::frame(f, t)
    });
    Seen {
        out: o.output.map(|o| policy.port_name(o.port).to_string()),
        reason: o.verdict.drop.map(|r| r.as_str()),
        left: o.output.and_then(|o| packet::parse(o.frame).ok()),
    }
}

fn send(e: &mut Engine, f: &[u8], t: u64) -> Seen {
    send_at(e, Ingress::Auto, f, t)
}

const MS: u64 = 1_000_000;

#[test]
fn the_outside_reaches_a_nat_container_only_through_port_mappings() {
    let mut e = engine(EXAMPLE);
    let outside = (OUTSIDE_MAC, PEER);
    for (what, f) in [
        (
            "tcp",
            tcp((OUTSIDE_MAC, PEER, 40000), (WEB.0, WEB.1, 80), SYN),
        ),
        ("udp", udp((OUTSIDE_MAC, PEER, 40000), (WEB.0, WEB.1, 9999))),
        ("icmp", ping(outside, WEB, 8, 7)),
        // Addressed through the host's MAC, by the private IP: routed, still refused.
        (
            "tcp via the host",
            tcp((OUTSIDE_MAC, PEER, 40001), (HOST_MAC, WEB.1, 80), SYN),
        ),
    ] {
        let s = send(&mut e, &f, MS);
        assert_eq!((s.out, s.reason), (None, Some("not-exposed")), "{what}");
    }
    // The host itself (its own address) reaches the internal prefix.
    let from_host = tcp((OUTSIDE_MAC, "198.19.0.10", 40003), (WEB.0, WEB.1, 80), SYN);
    assert_eq!(send(&mut e, &from_host, MS).out.as_deref(), Some("web"));
    // The port mapping is the way in, and web's answer leaves as the host's address.
    let s = send(
        &mut e,
        &tcp(
            (OUTSIDE_MAC, PEER, 40002),
            (HOST_MAC, "198.19.0.10", 8080),
            SYN,
        ),
        2 * MS,
    );
    assert_eq!(s.out.as_deref(), Some("web"));
    let s = send(
        &mut e,
        &tcp((WEB.0, WEB.1, 80), (HOST_MAC, PEER, 40002), SYN | ACK),
        3 * MS,
    );
    let left = s.left.expect("web's answer leaves");
    assert_eq!(
        (
            s.out.as_deref(),
            left.fields.src_ip.to_string(),
            left.fields.src_port
        ),
        (Some("uplink"), "198.19.0.10".into(), 8080)
    );
    // Anything web sends outside leaves SNATed, never from its private address.
    let s = send(
        &mut e,
        &udp((WEB.0, WEB.1, 5353), (HOST_MAC, PEER, 53)),
        4 * MS,
    );
    assert_eq!(
        s.left.map(|p| p.fields.src_ip.to_string()).as_deref(),
        Some("198.19.0.10")
    );
}

#[test]
fn nobody_poses_as_an_endpoint() {
    let mut e = engine(EXAMPLE);
    // client, with its own MAC, poses as web to pass db's `allow-web-pg`.
    let s = send(
        &mut e,
        &tcp((CLIENT.0, WEB.1, 50000), (DB.0, DB.1, 5432), SYN),
        MS,
    );
    assert_eq!(s.reason, Some("spoofed-source"));
    // client takes web's MAC too: the port it entered by (its interface) gives it away.
    let f = tcp((WEB.0, WEB.1, 50000), (DB.0, DB.1, 5432), SYN);
    assert_eq!(
        send_at(&mut e, Ingress::Named("client"), &f, 2 * MS).reason,
        Some("spoofed-source")
    );
    // The real web passes.
    assert_eq!(send(&mut e, &f, 3 * MS).out.as_deref(), Some("db"));
    // The outside claims web's address (to reach it, or anything else).
    let s = send(
        &mut e,
        &udp((OUTSIDE_MAC, WEB.1, 5000), (HOST_MAC, "198.19.0.10", 8080)),
        4 * MS,
    );
    assert_eq!(s.reason, Some("spoofed-source"));
    // What protocols need before an address is known still passes: DHCP from 0.0.0.0.
    let dhcp = udp(
        (CLIENT.0, "0.0.0.0", 68),
        ("ff:ff:ff:ff:ff:ff", "255.255.255.255", 67),
    );
    assert_eq!(send(&mut e, &dhcp, 5 * MS).reason, None);
    // ARP: client may not claim web's address.
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&mac(CLIENT.0));
    arp.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&mac(CLIENT.0));
    arp.extend_from_slice(&v4(WEB.1));
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&v4("198.18.1.1"));
    assert_eq!(send(&mut e, &arp, 6 * MS).reason, Some("spoofed-source"));
}

#[test]
fn an_echo_request_is_never_taken_for_the_reply_of_ones_own_ping() {
    // `e` blocks all inbound ICMP; it may ping out.
    let text = format!(
        "{}\n[[endpoint.acl]]\nid = \"no-icmp-in\"\naction = \"block\"\ndirection = \"in\"\nprotocols = [\"icmp\"]\npriority = 100\n",
        EXAMPLE
            .split("[[endpoint]]")
            .next()
            .map(|h| format!(
                "{h}[[endpoint]]\nname = \"e\"\nnetwork = \"nat\"\nmac = \"{}\"\nipv4 = \"{}\"",
                CLIENT.0, CLIENT.1
            ))
            .unwrap_or_default()
    );
    let mut e = engine(&text);
    let host = (HOST_MAC, "198.19.0.10");
    let s = send(&mut e, &ping(CLIENT, (HOST_MAC, PEER), 8, 7), MS);
    assert_eq!(s.out.as_deref(), Some("uplink"));
    let id = s
        .left
        .and_then(|p| p.icmp_id)
        .expect("the request leaves with an identifier");
    // The reply comes back.
    assert_eq!(
        send(&mut e, &ping((OUTSIDE_MAC, PEER), host, 0, id), 2 * MS)
            .out
            .as_deref(),
        Some("e")
    );
    // A request reusing the identifier is unsolicited inbound ICMP: blocked.
    let s = send(&mut e, &ping((OUTSIDE_MAC, PEER), host, 8, id), 3 * MS);
    assert_eq!((s.out, s.reason), (None, Some("acl")));
    // And the reply still passes after it.
    assert_eq!(
        send(&mut e, &ping((OUTSIDE_MAC, PEER), host, 0, id), 4 * MS)
            .out
            .as_deref(),
        Some("e")
    );
}

/// Connection-table slots the bounded sweeps examined, over all ports.
fn examined(e: &Engine) -> u64 {
    let st = e.state();
    st.ports.iter().flatten().map(|p| p.conns.examined).sum()
}

/// The most slots one packet may make the sweeps examine: the amortised sweep of an
/// insert, a sweep for expired connections and one for a half-open victim when full, or
/// a full NAT pool's sweep.
const MAX_EXAMINED_PER_PACKET: u64 =
    2 + 2 * strata_dataplane::state::conntrack::SWEEP_WHEN_FULL as u64;

#[test]
fn a_flood_of_new_flows_spares_established_ones_and_costs_bounded_work() {
    let text = "[host]\nmac = \"02:00:00:00:00:01\"\naddresses = [\"198.19.8.1\"]\n\
        [[network]]\nname = \"t\"\ndriver = \"transparent\"\nsubnets = [\"198.18.8.0/24\"]\n\
        [[endpoint]]\nname = \"srv\"\nnetwork = \"t\"\nmac = \"00:15:5d:08:08:0a\"\nipv4 = \"198.18.8.10\"\n";
    let policy = strata_rules::policy::load(text, "p.toml").unwrap_or_else(|e| panic!("{e}"));
    let limits = strata_dataplane::state::Limits {
        flows: 1000,
        connections: 1000,
        ..Default::default()
    };
    let compiled = strata_dataplane::CompiledPolicy::compile(&policy, None, Default::default());
    let mut e = Engine::new(std::sync::Arc::new(compiled), limits);
    let srv = ("00:15:5d:08:08:0a", "198.18.8.10");
    let mut t = MS;
    // Twenty established connections from outside.
    let clients: Vec<(String, u16)> = (0..20)
        .map(|i| (format!("198.19.8.{}", 10 + i), 40000 + i))
        .collect();
    for (ip, port) in &clients {
        let c = (OUTSIDE_MAC, ip.as_str(), *port);
        for (f, want) in [
            (tcp(c, (srv.0, srv.1, 80), SYN), "srv"),
            (tcp((srv.0, srv.1, 80), c, SYN | ACK), "uplink"),
            (tcp(c, (srv.0, srv.1, 80), ACK), "srv"),
        ] {
            t += MS;
            assert_eq!(send(&mut e, &f, t).out.as_deref(), Some(want));
        }
    }
    // 100,000 SYNs from other hosts, all distinct flows; every thousand of them, each
    // established connection carries a packet each way.
    let before = examined(&e);
    let (mut flood, mut established, mut refused) = (0u64, 0u64, 0u64);
    for i in 0..100_000u32 {
        let src = format!("198.19.{}.{}", 9 + i / 60000, (i / 250) % 250 + 1);
        let f = tcp(
            (OUTSIDE_MAC, &src, 1024 + (i % 60000) as u16),
            (srv.0, srv.1, 80),
            SYN,
        );
        t += 1000;
        flood += 1;
        if send(&mut e, &f, t).reason == Some("connection-table-full") {
            refused += 1;
        }
        if i % 1000 == 999 {
            for (ip, port) in &clients {
                let c = (OUTSIDE_MAC, ip.as_str(), *port);
                t += 1000;
                assert_eq!(
                    send(&mut e, &tcp(c, (srv.0, srv.1, 80), ACK), t)
                        .out
                        .as_deref(),
                    Some("srv")
                );
                t += 1000;
                assert_eq!(
                    send(&mut e, &tcp((srv.0, srv.1, 80), c, ACK), t)
                        .out
                        .as_deref(),
                    Some("uplink")
                );
                established += 2;
            }
            let st = e.state().port(0).expect("srv's state");
            assert!(
                st.conns.len() <= 1000 && st.flows.len() <= 1000,
                "bounded tables"
            );
        }
    }
    assert_eq!(established, 4000, "not one established packet lost");
    let per_packet = (examined(&e) - before) as f64 / flood as f64;
    assert!(
        per_packet <= MAX_EXAMINED_PER_PACKET as f64,
        "{per_packet} slots examined per flood packet"
    );
    // Half-open connections make room for new ones; established ones are never evicted.
    assert_eq!(
        refused, 0,
        "the flood's own half-open connections were evicted first"
    );
}

#[test]
fn a_full_nat_pool_refuses_new_flows_with_bounded_work_and_keeps_its_connections() {
    let text = "[host]\nmac = \"02:00:00:00:00:01\"\naddresses = [\"198.19.8.1\"]\n\
        [[network]]\nname = \"t\"\ndriver = \"transparent\"\nsubnets = [\"198.18.8.0/24\"]\n\
        [[endpoint]]\nname = \"c\"\nnetwork = \"t\"\nmac = \"00:15:5d:08:08:0c\"\nipv4 = \"198.18.8.12\"\n\
        [[endpoint.layer]]\nname = \"pool\"\n[[endpoint.layer.group]]\nname = \"out\"\ndirection = \"out\"\n\
        [[endpoint.layer.group.rule]]\nid = \"snat\"\naction = \"snat\"\nsnat = { ip = \"198.19.8.1\", ports = \"5000-5015\" }\n";
    let mut e = engine(text);
    let c = ("00:15:5d:08:08:0c", "198.18.8.12");
    let mut t = MS;
    // Sixteen flows take the sixteen ports; their replies come back.
    let mut bound = Vec::new();
    for i in 0..16u16 {
        t += MS;
        let s = send(&mut e, &udp((c.0, c.1, 30000 + i), (HOST_MAC, PEER, 53)), t);
        let port = s.left.map(|p| p.fields.src_port).expect("SNATed");
        bound.push((30000 + i, port));
    }
    let before = examined(&e);
    for i in 0..100_000u32 {
        t += 1000;
        let f = udp(
            (c.0, c.1, 1024 + (i % 28000) as u16),
            (HOST_MAC, "198.19.0.53", 53),
        );
        assert_eq!(send(&mut e, &f, t).reason, Some("nat-ports-exhausted"));
        if i % 10_000 == 0 {
            for &(sport, port) in &bound {
                t += 1000;
                let reply = udp((OUTSIDE_MAC, PEER, 53), (HOST_MAC, "198.19.8.1", port));
                let s = send(&mut e, &reply, t);
                assert_eq!(s.out.as_deref(), Some("c"));
                assert_eq!(s.left.map(|p| p.fields.dst_port), Some(sport));
            }
        }
    }
    let per_drop = (examined(&e) - before) as f64 / 100_000.0;
    assert!(
        per_drop <= MAX_EXAMINED_PER_PACKET as f64,
        "{per_drop} slots examined per drop"
    );
}

/// A TCP segment with its sequence space.
fn seg(src: (&str, &str, u16), dst: (&str, &str, u16), flags: u8, seq: u32, ack: u32) -> Vec<u8> {
    let mut t = tu::tcp(src.2, dst.2, flags, &[], b"");
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[14..16].copy_from_slice(&8192u16.to_be_bytes());
    frame((src.0, src.1), (dst.0, dst.1), 6, &t)
}

/// `client` (NAT) talks to the peer outside through SNAT; the peer answers the host.
struct Nat {
    e: Engine,
    t: u64,
    nat_port: u16,
}

impl Nat {
    const C: (&'static str, &'static str, u16) = (CLIENT.0, CLIENT.1, 40100);
    const P: (&'static str, &'static str, u16) = (HOST_MAC, PEER, 80);

    fn out(&mut self, flags: u8, seq: u32, ack: u32) -> Seen {
        self.t += MS;
        let s = send(&mut self.e, &seg(Self::C, Self::P, flags, seq, ack), self.t);
        if let Some(p) = &s.left {
            self.nat_port = p.fields.src_port;
        }
        s
    }

    fn back(&mut self, flags: u8, seq: u32, ack: u32) -> Seen {
        self.t += MS;
        let host = (HOST_MAC, "198.19.0.10", self.nat_port);
        send(
            &mut self.e,
            &seg((OUTSIDE_MAC, PEER, 80), host, flags, seq, ack),
            self.t,
        )
    }

    /// SYN, SYN+ACK, ACK: client's ISN 100, the peer's 500.
    fn open(&mut self) {
        assert_eq!(self.out(SYN, 100, 0).out.as_deref(), Some("uplink"));
        assert_eq!(
            self.back(SYN | ACK, 500, 101).out.as_deref(),
            Some("client")
        );
        assert_eq!(self.out(ACK, 101, 501).out.as_deref(), Some("uplink"));
    }
}

fn nat() -> Nat {
    Nat {
        e: engine(EXAMPLE),
        t: MS,
        nat_port: 0,
    }
}

#[test]
fn an_off_path_rst_is_refused_and_the_connection_carries_on() {
    let mut n = nat();
    n.open();
    // An attacker outside guesses: RSTs at sequence numbers outside the window.
    for guess in [0, 7, 500 + 100_000, u32::MAX / 2] {
        assert_eq!(
            n.back(RST, guess, 0).reason,
            Some("tcp-out-of-window"),
            "seq {guess}"
        );
    }
    // The connection is intact: the peer's next segment still reaches client.
    assert_eq!(n.back(ACK, 501, 101).out.as_deref(), Some("client"));
    // Inside the window but not exact: passes (client answers with a challenge ACK,
    // RFC 5961), and the connection survives it.
    assert_eq!(n.back(RST, 501 + 1000, 0).out.as_deref(), Some("client"));
    assert_eq!(n.back(ACK, 501, 101).out.as_deref(), Some("client"));
    // The exact RST ends it: the NAT binding is gone with it.
    assert_eq!(n.back(RST, 501, 0).out.as_deref(), Some("client"));
    assert_eq!(n.back(ACK, 501, 101).reason, Some("no-route"));
}

#[test]
fn tcp_lifecycles_see_no_wrongful_drop_and_give_their_state_back() {
    // Retransmitted SYN and SYN+ACK; FIN from the peer first.
    let mut n = nat();
    assert_eq!(n.out(SYN, 100, 0).out.as_deref(), Some("uplink"));
    let port = n.nat_port;
    assert_eq!(n.out(SYN, 100, 0).out.as_deref(), Some("uplink"));
    assert_eq!(n.nat_port, port, "a retransmitted SYN keeps its NAT port");
    assert_eq!(n.back(SYN | ACK, 500, 101).out.as_deref(), Some("client"));
    assert_eq!(n.back(SYN | ACK, 500, 101).out.as_deref(), Some("client"));
    assert_eq!(n.out(ACK, 101, 501).out.as_deref(), Some("uplink"));
    assert_eq!(n.back(FIN | ACK, 501, 101).out.as_deref(), Some("client"));
    assert_eq!(n.out(FIN | ACK, 101, 502).out.as_deref(), Some("uplink"));
    assert_eq!(n.back(ACK, 502, 102).out.as_deref(), Some("client"));
    // TIME_WAIT reuse: a new SYN on the same four-tuple starts it over.
    assert_eq!(n.out(SYN, 9000, 0).out.as_deref(), Some("uplink"));
    assert_eq!(n.back(SYN | ACK, 7000, 9001).out.as_deref(), Some("client"));
    assert_eq!(n.out(ACK, 9001, 7001).out.as_deref(), Some("uplink"));
    // FIN from client first this time.
    assert_eq!(n.out(FIN | ACK, 9001, 7001).out.as_deref(), Some("uplink"));
    assert_eq!(n.back(FIN | ACK, 7001, 9002).out.as_deref(), Some("client"));
    assert_eq!(n.out(ACK, 9002, 7002).out.as_deref(), Some("uplink"));
    // Closed both ways: reclaimed after the 30 s closing timeout, NAT port included.
    assert_eq!(n.e.state().nat_bindings(), 1);
    n.t += 31_000_000_000;
    let other = tcp((CLIENT.0, CLIENT.1, 40200), (HOST_MAC, PEER, 443), SYN);
    assert_eq!(send(&mut n.e, &other, n.t).out.as_deref(), Some("uplink"));
    assert_eq!(
        n.e.state().nat_bindings(),
        1,
        "the closed connection gave its port back"
    );

    // Simultaneous open: client's SYN crosses the peer's.
    let mut n = nat();
    assert_eq!(n.out(SYN, 100, 0).out.as_deref(), Some("uplink"));
    assert_eq!(n.back(SYN, 500, 0).out.as_deref(), Some("client"));
    assert_eq!(n.out(SYN | ACK, 100, 501).out.as_deref(), Some("uplink"));
    assert_eq!(n.back(SYN | ACK, 500, 101).out.as_deref(), Some("client"));

    // First seen mid-stream (Strata restarted under a live connection): nothing dropped.
    let mut n = nat();
    assert_eq!(n.out(ACK, 123_456, 654_321).out.as_deref(), Some("uplink"));
    assert_eq!(n.back(ACK, 654_321, 123_456).out.as_deref(), Some("client"));
    assert_eq!(n.out(ACK, 123_456, 654_321).out.as_deref(), Some("uplink"));
}

/// An IPv4 fragment: `flags_frag` holds More Fragments (0x2000) and the offset in
/// 8-byte units; `data` is this fragment's part of the datagram (identification 0x1234).
fn fragment(
    src: (&str, &str),
    dst: (&str, &str),
    protocol: u8,
    flags_frag: u16,
    data: &[u8],
) -> Vec<u8> {
    let ip = tu::ipv4_full(protocol, v4(src.1), v4(dst.1), &[], flags_frag, data);
    let mut f = tu::eth(0x0800, &[], &ip);
    f[0..6].copy_from_slice(&mac(dst.0));
    f[6..12].copy_from_slice(&mac(src.0));
    f
}

const MF: u16 = 0x2000;

/// A UDP datagram of `len` payload bytes from `src` to `dst`, cut in two fragments at
/// byte 32 of the datagram (the UDP header and 24 bytes, then the rest).
fn udp_in_two(src: (&str, &str, u16), dst: (&str, &str, u16), len: usize) -> (Vec<u8>, Vec<u8>) {
    let whole = tu::udp(src.2, dst.2, &vec![0x5a; len]);
    let (a, b) = whole.split_at(32);
    (
        fragment((src.0, src.1), (dst.0, dst.1), 17, MF, a),
        fragment((src.0, src.1), (dst.0, dst.1), 17, 32 / 8, b),
    )
}

#[test]
fn later_fragments_follow_their_first_through_nat() {
    let mut e = engine(EXAMPLE);
    let s = send(
        &mut e,
        &udp((CLIENT.0, CLIENT.1, 5300), (HOST_MAC, "198.19.0.53", 53)),
        MS,
    );
    let nat_port = s
        .left
        .map(|p| p.fields.src_port)
        .expect("the query leaves SNATed");
    let (first, second) = udp_in_two(
        ("02:00:00:00:00:fe", "198.19.0.53", 53),
        (HOST_MAC, "198.19.0.10", nat_port),
        1200,
    );
    let s = send(&mut e, &first, 2 * MS);
    assert_eq!(
        (s.out.as_deref(), s.left.map(|p| p.fields.dst_port)),
        (Some("client"), Some(5300))
    );
    let s = send(&mut e, &second, 3 * MS);
    assert_eq!(
        s.out.as_deref(),
        Some("client"),
        "the second fragment of the reply follows the first"
    );
    let left = s.left.expect("it leaves");
    assert_eq!(
        left.fields.dst_ip.to_string(),
        CLIENT.1,
        "translated back like the first"
    );
    assert_eq!(left.frag.offset, 32);
}

#[test]
fn later_fragments_of_a_dns_answer_reach_a_process_legacy_endpoint() {
    let text = "[host]\nmac = \"02:00:00:00:00:01\"\naddresses = [\"198.19.8.1\"]\n\
        [[network]]\nname = \"t\"\ndriver = \"transparent\"\nsubnets = [\"198.18.8.0/24\"]\n\
        [[endpoint]]\nname = \"old\"\nnetwork = \"t\"\nmac = \"00:15:5d:08:08:0b\"\nipv4 = \"198.18.8.11\"\n\
        isolation = \"process-legacy\"\n";
    let mut e = engine(text);
    let old = ("00:15:5d:08:08:0b", "198.18.8.11");
    assert_eq!(
        send(
            &mut e,
            &udp((old.0, old.1, 33000), (HOST_MAC, "198.19.0.53", 53)),
            MS
        )
        .out
        .as_deref(),
        Some("uplink")
    );
    let (first, second) = udp_in_two(
        (OUTSIDE_MAC, "198.19.0.53", 53),
        (old.0, old.1, 33000),
        1400,
    );
    assert_eq!(send(&mut e, &first, 2 * MS).out.as_deref(), Some("old"));
    assert_eq!(send(&mut e, &second, 3 * MS).out.as_deref(), Some("old"));
    // Without its first, a fragment has nothing to follow; process-legacy refuses it.
    let (_, stray) = udp_in_two(
        (OUTSIDE_MAC, "198.19.0.54", 53),
        (old.0, old.1, 33000),
        1400,
    );
    assert_eq!(send(&mut e, &stray, 4 * MS).reason, Some("fragment"));
}

#[test]
fn overlapping_and_tiny_fragments_are_refused() {
    let mut e = engine(EXAMPLE);
    let (first, second) = udp_in_two((CLIENT.0, CLIENT.1, 7000), (WEB.0, WEB.1, 7000), 200);
    assert_eq!(send(&mut e, &first, MS).out.as_deref(), Some("web"));
    // A fragment overlapping the first (offset 16 < 32): refused, and the datagram with it.
    let overlap = fragment(CLIENT, WEB, 17, MF | 2, &[0x77; 40]);
    assert_eq!(send(&mut e, &overlap, 2 * MS).reason, Some("fragment"));
    assert_eq!(
        send(&mut e, &second, 3 * MS).reason,
        Some("fragment"),
        "the poisoned datagram loses the rest"
    );
    // A TCP fragment at offset 8 would rewrite the first's flags (RFC 3128).
    let syn = tu::tcp(40000, 80, SYN, &[], &[0; 16]);
    let tcp_first = fragment(CLIENT, WEB, 6, MF, &syn[..24]);
    assert_eq!(send(&mut e, &tcp_first, 4 * MS).out.as_deref(), Some("web"));
    let flags_over = fragment(CLIENT, WEB, 6, 1, &[0; 16]);
    assert_eq!(send(&mut e, &flags_over, 5 * MS).reason, Some("fragment"));
    // A first fragment too short for its TCP header (RFC 1858's tiny fragment).
    let tiny = fragment(CLIENT, WEB, 6, MF, &syn[..8]);
    assert_eq!(send(&mut e, &tiny, 6 * MS).reason, Some("parse"));
}
