//! The overlay end to end: two Strata hosts and a Linux kernel VXLAN host on one
//! underlay segment, containers talking across them in both directions, the first
//! packet always sent by a Strata side (so the remote host's MAC must be resolved by
//! ARP on the uplink, never taken from the remote container's). Once with one worker
//! per Strata host, once with two.
//!
//! ```text
//!  ns ca (198.18.17.10) ── ns a: strata (PA 198.19.16.10) ──┐
//!  ns cb (198.18.18.20) ── ns b: strata (PA 198.19.16.11) ──┤ ns net: the underlay
//!  ns k: kernel vxlan0 198.18.19.1, eth0 198.19.16.30 ───────┘ (a plain bridge)
//! ```

mod netlab;

use netlab::{Lab, ping, prerequisites, skip, tcp, udp};

const K_VXLAN_MAC: &str = "02:00:00:00:19:01";
const CA_MAC: &str = "00:15:5d:11:00:0a";
const CB_MAC: &str = "00:15:5d:12:00:14";

/// One Strata host: its PA, its containers' prefix and endpoint, routes to the others.
fn policy(
    pa: &str,
    mac: &str,
    subnet: &str,
    gw: &str,
    ep_mac: &str,
    ep_ip: &str,
    routes: &str,
) -> String {
    format!(
        r#"
[host]
mac = "{mac}"
addresses = ["{pa}"]
interface = "uplink"

[[network]]
name = "overlay"
driver = "overlay"
subnets = ["{subnet}"]
gateway = "{gw}"
vni = 4096
{routes}

[[endpoint]]
name = "c"
network = "overlay"
mac = "{ep_mac}"
ipv4 = "{ep_ip}"
interface = "c"
"#
    )
}

fn route(prefix: &str, pa: &str, mac: Option<&str>) -> String {
    let mac = mac.map(|m| format!("mac = \"{m}\"\n")).unwrap_or_default();
    format!(
        "\n[[network.remote_subnet_route]]\nprefix = \"{prefix}\"\nprovider_address = \"{pa}\"\n{mac}"
    )
}

fn overlay(workers: usize) {
    let test = format!("run_overlay (workers {workers})");
    if let Err(why) = prerequisites() {
        return skip(&test, &why);
    }
    let mut lab = Lab::new(&format!("ovl{workers}"));
    let net = lab.ns("net");
    lab.ip(&net, "link add br0 type bridge");
    lab.ip(&net, "link set dev br0 up");
    let (a, b) = (lab.ns("a"), lab.ns("b"));
    let k = lab.ns("k");
    for (ns, port) in [(&a, "pa"), (&b, "pb")] {
        lab.veth(&net, port, ns, "uplink");
        lab.ip(&net, &format!("link set dev {port} master br0"));
    }
    lab.veth(&net, "pk", &k, "eth0");
    lab.ip(&net, "link set dev pk master br0");
    // The containers' MTU leaves room for the 50 bytes of encapsulation.
    let ca = lab.container(
        &a,
        "c",
        "ca",
        CA_MAC,
        &["198.18.17.10/24"],
        Some("198.18.17.1"),
    );
    let cb = lab.container(
        &b,
        "c",
        "cb",
        CB_MAC,
        &["198.18.18.20/24"],
        Some("198.18.18.1"),
    );
    for ns in [&ca, &cb] {
        lab.ip(ns, "link set dev eth0 mtu 1450");
    }
    // The kernel host: a VXLAN device towards Strata host a (static neighbour and FDB:
    // the kernel learns nothing by flooding here).
    lab.ip(&k, "addr add 198.19.16.30/24 dev eth0");
    lab.ip(
        &k,
        "link add vxlan0 type vxlan id 4096 dstport 4789 local 198.19.16.30 dev eth0 nolearning",
    );
    lab.ip(&k, &format!("link set dev vxlan0 address {K_VXLAN_MAC}"));
    lab.ip(&k, "addr add 198.18.19.1/24 dev vxlan0");
    lab.ip(&k, "link set dev vxlan0 up");
    lab.ip(&k, "route add 198.18.17.0/24 dev vxlan0");
    lab.ip(
        &k,
        &format!("neigh replace 198.18.17.10 lladdr {CA_MAC} dev vxlan0"),
    );
    lab.exec(
        &k,
        &[
            "bridge",
            "fdb",
            "append",
            CA_MAC,
            "dev",
            "vxlan0",
            "dst",
            "198.19.16.10",
        ],
    );

    let pa = policy(
        "198.19.16.10",
        "02:00:00:00:16:10",
        "198.18.17.0/24",
        "198.18.17.1",
        CA_MAC,
        "198.18.17.10",
        &(route("198.18.18.0/24", "198.19.16.11", None)
            + &route("198.18.19.0/24", "198.19.16.30", Some(K_VXLAN_MAC))),
    );
    let pb = policy(
        "198.19.16.11",
        "02:00:00:00:16:11",
        "198.18.18.0/24",
        "198.18.18.1",
        CB_MAC,
        "198.18.18.20",
        &route("198.18.17.0/24", "198.19.16.10", None),
    );
    lab.strata(&a, &pa, workers);
    lab.strata(&b, &pb, workers);

    // Strata's side first: to the kernel host (Strata must have resolved 198.19.16.30).
    assert!(
        ping(&ca, "198.18.19.1", 3),
        "ca pings the kernel VXLAN host first\n{}",
        lab.stratas[0].log()
    );
    // Strata to Strata, both ways, each side starting a conversation.
    assert!(
        ping(&ca, "198.18.18.20", 3),
        "ca pings cb first\n{}\n{}",
        lab.stratas[0].log(),
        lab.stratas[1].log()
    );
    tcp(&ca, "198.18.17.10:7000", &cb, "198.18.17.10:7000").expect("cb -> ca TCP");
    udp(&cb, "198.18.18.20:7001", &ca, "198.18.18.20:7001").expect("ca -> cb UDP");
    let seen = tcp(&cb, "198.18.18.20:7002", &ca, "198.18.18.20:7002").expect("ca -> cb TCP");
    assert_eq!(
        seen.ip().to_string(),
        "198.18.17.10",
        "the overlay keeps addresses"
    );
    // The kernel side starting, and TCP both ways with it.
    assert!(ping(&k, "198.18.17.10", 3), "the kernel host pings ca");
    tcp(&k, "198.18.19.1:7003", &ca, "198.18.19.1:7003").expect("ca -> kernel TCP");
    tcp(&ca, "198.18.17.10:7004", &k, "198.18.17.10:7004").expect("kernel -> ca TCP");
}

#[test]
fn overlay_one_worker() {
    overlay(1);
}

#[test]
fn overlay_two_workers() {
    overlay(2);
}
