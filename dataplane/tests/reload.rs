//! Policy reloads with connections in flight (DESIGN §2 reconciliation, §5 stable port
//! ids): connections through NAT, a load balancer and plain allows; then a policy that
//! reorders the ports, removes one, adds one and changes one port's rules. Replies of the
//! surviving connections still reach their owners, the changed port's connections that
//! the new rules block are cut, and the unchanged ports keep their flows and counters.

use std::net::IpAddr;

use strata_dataplane::engine::{Engine, Rx};
use strata_dataplane::packet::{self, testutil as tu};
use strata_dataplane::report::PortReport;
use strata_rules::conn::tcp_flags::{ACK, SYN};
use strata_rules::model::Mac;

const HOST_MAC: &str = "02:00:00:00:00:01";
/// A host outside: reached through NAT.
const OUTSIDE: &str = "198.19.5.5";
const OUTSIDE_MAC: &str = "02:00:00:00:00:99";

fn endpoint(name: &str, last: u8, acl: &str) -> String {
    format!(
        "[[endpoint]]\nname = \"{name}\"\nnetwork = \"nat\"\nmac = \"00:15:5d:01:01:{last:02x}\"\n\
         ipv4 = \"198.18.1.{last}\"\n{acl}\n"
    )
}

fn policy(endpoints: &[String]) -> strata_rules::Policy {
    let mut text = format!(
        "[host]\nmac = \"{HOST_MAC}\"\naddresses = [\"198.19.0.10\"]\n\
         [[network]]\nname = \"nat\"\ndriver = \"nat\"\nsubnets = [\"198.18.1.0/24\"]\ngateway = \"198.18.1.1\"\n\
         [[load_balancer]]\nname = \"svc\"\nprotocol = \"tcp\"\nvip = \"198.18.100.1\"\nport = 80\n\
         backends = [\"198.18.1.11:80\"]\n"
    );
    for e in endpoints {
        text.push_str(e);
    }
    strata_rules::policy::load(&text, "reload.toml").unwrap_or_else(|e| panic!("{e}"))
}

/// `d` may reach `b`'s port 80 (the load balancer's backend), `c` may reach `d`'s 5432.
fn b(extra: &str) -> String {
    let acl = format!(
        "[[endpoint.acl]]\nid = \"allow-web\"\naction = \"allow\"\ndirection = \"in\"\nprotocols = [\"tcp\"]\n\
         local_ports = [\"80\"]\npriority = 100\n{extra}"
    );
    endpoint("b", 11, &acl)
}
fn d() -> String {
    endpoint(
        "d",
        13,
        "[[endpoint.acl]]\nid = \"allow-pg\"\naction = \"allow\"\ndirection = \"in\"\nprotocols = [\"tcp\"]\n\
         local_ports = [\"5432\"]\nremote_addresses = [\"198.18.1.12\"]\npriority = 100\n",
    )
}

fn mac(s: &str) -> Mac {
    s.parse().expect("a MAC")
}

/// A TCP segment as a frame.
fn tcp(src: (&str, &str, u16), dst: (&str, &str, u16), flags: u8) -> Vec<u8> {
    let ip = |s: &str| match s.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => a.octets(),
        _ => panic!("an IPv4 address: {s}"),
    };
    let seg = tu::tcp(src.2, dst.2, flags, &[], b"x");
    let mut f = tu::eth(
        0x0800,
        &[],
        &tu::ipv4_full(6, ip(src.1), ip(dst.1), &[], 0, &seg),
    );
    f[0..6].copy_from_slice(&mac(dst.0).0);
    f[6..12].copy_from_slice(&mac(src.0).0);
    f
}

/// Sends a frame; returns (out port, drop reason, the frame that left, parsed).
fn send(
    e: &mut Engine,
    frame: &[u8],
    t: u64,
) -> (Option<String>, Option<&'static str>, Option<packet::Parsed>) {
    let policy = std::sync::Arc::clone(e.policy());
    let o = e.process(Rx::frame(frame, t));
    let out = o.output.map(|o| policy.port_name(o.port).to_string());
    let parsed = o.output.and_then(|o| packet::parse(o.frame).ok());
    (out, o.verdict.drop.map(|r| r.as_str()), parsed)
}

fn port<'a>(ports: &'a [PortReport], name: &str) -> &'a PortReport {
    ports
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("port {name}"))
}

#[test]
fn reload_keeps_owners_cuts_what_the_new_rules_block_and_keeps_unchanged_ports() {
    let a = || endpoint("a", 10, "");
    let c = || endpoint("c", 12, "");
    let mut e = Engine::for_policy(&policy(&[a(), b(""), c(), d()]));
    let (a_mac, c_mac, d_mac) = (
        "00:15:5d:01:01:0a",
        "00:15:5d:01:01:0c",
        "00:15:5d:01:01:0d",
    );
    let ms = 1_000_000;

    // NAT: a opens a connection to the outside; it leaves SNATed.
    let (out, drop, left) = send(
        &mut e,
        &tcp((a_mac, "198.18.1.10", 40000), (HOST_MAC, OUTSIDE, 443), SYN),
        ms,
    );
    assert_eq!((out.as_deref(), drop), (Some("uplink"), None));
    let left = left.expect("the SYN leaves");
    assert_eq!(left.fields.src_ip.to_string(), "198.19.0.10");
    let nat_port = left.fields.src_port;
    // Load balancer: d reaches the VIP, b (the backend) gets it.
    let (out, drop, _) = send(
        &mut e,
        &tcp(
            (d_mac, "198.18.1.13", 41000),
            (HOST_MAC, "198.18.100.1", 80),
            SYN,
        ),
        2 * ms,
    );
    assert_eq!((out.as_deref(), drop), (Some("b"), None));
    // Plain allow: c reaches d's 5432.
    let (out, drop, _) = send(
        &mut e,
        &tcp(
            (c_mac, "198.18.1.12", 42000),
            (d_mac, "198.18.1.13", 5432),
            SYN,
        ),
        3 * ms,
    );
    assert_eq!((out.as_deref(), drop), (Some("d"), None));
    // a's connection is established and its flows cached both ways.
    let reply = tcp(
        (OUTSIDE_MAC, OUTSIDE, 443),
        (HOST_MAC, "198.19.0.10", nat_port),
        SYN | ACK,
    );
    assert_eq!(send(&mut e, &reply, 4 * ms).0.as_deref(), Some("a"));
    let ack = tcp((a_mac, "198.18.1.10", 40000), (HOST_MAC, OUTSIDE, 443), ACK);
    assert_eq!(send(&mut e, &ack, 5 * ms).0.as_deref(), Some("uplink"));
    let before = e.report();
    let a_before = port(&before.ports, "a").clone();

    // The reload: ports reordered (d first), c removed, e added, b's rules changed so
    // that d may no longer reach its port 80.
    let block_d = "[[endpoint.acl]]\nid = \"block-d\"\naction = \"block\"\ndirection = \"in\"\nprotocols = [\"tcp\"]\n\
                   remote_addresses = [\"198.18.1.13\"]\npriority = 50\n";
    e.set_policy(&policy(&[d(), endpoint("e", 14, ""), b(block_d), a()]));
    let after = e.report();
    let names: Vec<&str> = after.ports.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["d", "e", "b", "a"]);

    // The unchanged port keeps its flows, connections and counters.
    let a_after = port(&after.ports, "a");
    assert_eq!(a_after.counters, a_before.counters);
    assert_eq!(
        (a_after.flows, a_after.connections),
        (a_before.flows, a_before.connections)
    );
    // The NAT reply still reaches the port that owns the connection, through the cache.
    assert_eq!(send(&mut e, &reply, 6 * ms).0.as_deref(), Some("a"));
    let a_now = port(&e.report().ports, "a").counters.clone();
    assert_eq!(
        a_now.fast_path,
        a_before.counters.fast_path + 1,
        "a's flow survived the reload"
    );
    assert_eq!(a_now.slow_path, a_before.counters.slow_path);

    // b changed: d's connection to it is re-validated and cut by the new rule.
    let again = tcp(
        (d_mac, "198.18.1.13", 41000),
        (HOST_MAC, "198.18.100.1", 80),
        ACK,
    );
    let (out, drop, _) = send(&mut e, &again, 7 * ms);
    assert_eq!(
        (out, drop),
        (None, Some("acl")),
        "the connection the new rules block is cut"
    );
    // b's counters kept the count of its unchanged rule (the SYN it allowed).
    let report = e.report();
    let acl = port(&report.ports, "b")
        .counters
        .layers
        .first()
        .cloned()
        .expect("b's acl layer");
    assert!(
        acl.rules.iter().flatten().any(|&n| n == 1),
        "allow-web kept its hit: {acl:?}"
    );

    // c is gone: nothing reaches its address from outside; e, the newcomer, works.
    let to_c = tcp(
        (OUTSIDE_MAC, OUTSIDE, 443),
        (HOST_MAC, "198.18.1.12", 42000),
        ACK,
    );
    assert_eq!(send(&mut e, &to_c, 8 * ms).1, Some("no-route"));
    let (out, drop, _) = send(
        &mut e,
        &tcp(
            ("00:15:5d:01:01:0e", "198.18.1.14", 43000),
            (a_mac, "198.18.1.10", 22),
            SYN,
        ),
        9 * ms,
    );
    assert_eq!((out.as_deref(), drop), (Some("a"), None));
}
