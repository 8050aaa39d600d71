//! `strata run` end to end on a NAT network, with real traffic between network
//! namespaces: two containers (`web`, `db`) on Strata's host, an external host beyond
//! the uplink. Containers reach each other (ping, TCP, UDP) and their gateway; a user
//! ACL blocks exactly what it names; outbound traffic is SNATed to the host address; a
//! port mapping is reachable from outside and nothing else is. Once with one worker,
//! once with two (DESIGN §5 ownership: NAT replies and handed-over frames).
//!
//! ```text
//!  ns web  eth0 198.18.16.11 ──┐
//!  ns db   eth0 198.18.16.12 ──┤ ns host: strata run (web, db, uplink: no addresses)
//!  ns ext  eth0 198.19.16.20 ──┘          host address 198.19.16.10 (Strata's)
//! ```

mod netlab;

use netlab::{Lab, ping, prerequisites, skip, tcp, udp};

const POLICY: &str = r#"
[host]
mac = "02:00:00:00:10:01"
addresses = ["198.19.16.10"]
interface = "uplink"

[[network]]
name = "nat"
driver = "nat"
subnets = ["198.18.16.0/24"]
gateway = "198.18.16.1"

[[endpoint]]
name = "web"
network = "nat"
mac = "00:15:5d:10:00:0b"
ipv4 = "198.18.16.11"
interface = "web"

[[endpoint.port_mapping]]
protocol = "tcp"
internal_port = 80
external_port = 8080

[[endpoint]]
name = "db"
network = "nat"
mac = "00:15:5d:10:00:0c"
ipv4 = "198.18.16.12"
interface = "db"

[[endpoint.acl]]
id = "block-pg"
action = "block"
direction = "in"
protocols = ["tcp"]
local_ports = ["5432"]
priority = 100
"#;

const HOST: &str = "198.19.16.10";

fn nat_network(workers: usize) {
    let test = format!("run_nat (workers {workers})");
    if let Err(why) = prerequisites() {
        return skip(&test, &why);
    }
    let mut lab = Lab::new(&format!("nat{workers}"));
    let host = lab.ns("host");
    let web = lab.container(
        &host,
        "web",
        "web",
        "00:15:5d:10:00:0b",
        &["198.18.16.11/24"],
        Some("198.18.16.1"),
    );
    let db = lab.container(
        &host,
        "db",
        "db",
        "00:15:5d:10:00:0c",
        &["198.18.16.12/24"],
        Some("198.18.16.1"),
    );
    let ext = lab.container(
        &host,
        "uplink",
        "ext",
        "02:00:00:00:10:20",
        &["198.19.16.20/24"],
        None,
    );
    // The outside knows the way to the containers' subnet (through the host), so that
    // "nothing else reachable" is Strata's doing, not the lack of a route.
    lab.ip(&ext, &format!("route add 198.18.16.0/24 via {HOST}"));
    lab.strata(&host, POLICY, workers);

    // Containers reach each other and their gateway.
    assert!(ping(&web, "198.18.16.1", 2), "web pings its gateway");
    assert!(ping(&web, "198.18.16.12", 3), "web pings db");
    let peer = tcp(&db, "198.18.16.12:7000", &web, "198.18.16.12:7000").expect("web->db TCP");
    assert_eq!(
        peer.ip().to_string(),
        "198.18.16.11",
        "bridged: no NAT inside the network"
    );
    udp(&db, "198.18.16.12:7001", &web, "198.18.16.12:7001").expect("web->db UDP");
    udp(&web, "198.18.16.11:7003", &db, "198.18.16.11:7003").expect("db->web UDP");

    // The ACL blocks exactly TCP to db's port 5432.
    let blocked = tcp(&db, "198.18.16.12:5432", &web, "198.18.16.12:5432");
    assert!(
        blocked.is_err(),
        "block-pg must block TCP 5432: {blocked:?}"
    );
    tcp(&db, "198.18.16.12:5433", &web, "198.18.16.12:5433").expect("TCP 5433 is not named");
    udp(&db, "198.18.16.12:5432", &web, "198.18.16.12:5432").expect("UDP 5432 is not named");

    // Outbound: SNAT to the host address.
    assert!(ping(&web, "198.19.16.20", 3), "web pings the external host");
    let seen = tcp(&ext, "198.19.16.20:7002", &web, "198.19.16.20:7002").expect("web->ext TCP");
    assert_eq!(seen.ip().to_string(), HOST, "SNAT to the host address");
    let seen = udp(&ext, "198.19.16.20:7004", &db, "198.19.16.20:7004").expect("db->ext UDP");
    assert_eq!(seen.ip().to_string(), HOST, "SNAT to the host address");

    // Inbound: the port mapping, and nothing else.
    let seen =
        tcp(&web, "0.0.0.0:80", &ext, "198.19.16.10:8080").expect("port mapping 8080->web:80");
    assert_eq!(
        seen.ip().to_string(),
        "198.19.16.20",
        "the mapping keeps the client's address"
    );
    assert!(ping(&ext, HOST, 2), "the host address answers ping");
    assert!(
        tcp(&web, "0.0.0.0:81", &ext, "198.19.16.10:8081").is_err(),
        "unmapped port"
    );
    assert!(
        tcp(&web, "0.0.0.0:80", &ext, "198.18.16.11:80").is_err(),
        "container address from outside"
    );
    assert!(
        udp(&web, "0.0.0.0:80", &ext, "198.19.16.10:80").is_err(),
        "unmapped UDP"
    );
    assert!(
        !ping(&ext, "198.18.16.11", 2),
        "container address from outside (ICMP)"
    );

    let strata = lab.stratas.last_mut().expect("strata");
    let status = strata.stop();
    let log = strata.log();
    assert!(
        status.is_some_and(|s| s.success()),
        "clean stop on SIGTERM: {status:?}\n{log}"
    );
    assert!(log.contains("stopped:"), "a last summary line:\n{log}");
    if workers > 1 {
        assert!(log.contains("workers=2"), "both workers report:\n{log}");
    }
}

#[test]
fn nat_network_one_worker() {
    nat_network(1);
}

#[test]
fn nat_network_two_workers() {
    nat_network(2);
}
