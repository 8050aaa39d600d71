//! The default ACL profiles (DESIGN §1) with real traffic through `strata run`: on a
//! transparent network (no NAT, so a neighbour's connection is unsolicited inbound),
//! a `process` endpoint accepts inbound TCP, UDP and ICMP but not GRE or SCTP; a
//! `process-legacy` one only ICMP, DHCP and DNS; a `hyperv` one everything. The
//! network is dual-stack-free IPv4 plus an IPv6 one, where neighbour discovery and
//! echo of the IPv6 gateway are answered by Strata.

mod netlab;

use netlab::{Lab, ping, prerequisites, raw_reaches, skip, tcp, udp};

const POLICY: &str = r#"
[host]
mac = "02:00:00:00:10:01"
addresses = ["198.19.16.10"]

[[network]]
name = "t"
driver = "transparent"
subnets = ["198.18.22.0/24"]
gateway = "198.18.22.1"

[[network]]
name = "t6"
driver = "transparent"
subnets = ["2001:db8:16::/64"]
gateway = "2001:db8:16::1"

[[endpoint]]
name = "client"
network = "t"
mac = "00:15:5d:16:00:0a"
ipv4 = "198.18.22.10"
isolation = "hyperv"
interface = "client"

[[endpoint]]
name = "proc"
network = "t"
mac = "00:15:5d:16:00:0b"
ipv4 = "198.18.22.11"
isolation = "process"
interface = "proc"

[[endpoint]]
name = "legacy"
network = "t"
mac = "00:15:5d:16:00:0c"
ipv4 = "198.18.22.12"
isolation = "process-legacy"
interface = "legacy"

[[endpoint]]
name = "hv"
network = "t"
mac = "00:15:5d:16:00:0d"
ipv4 = "198.18.22.13"
isolation = "hyperv"
interface = "hv"

[[endpoint]]
name = "v6a"
network = "t6"
mac = "00:15:5d:16:00:1a"
ipv6 = "2001:db8:16::a"
interface = "v6a"

[[endpoint]]
name = "v6b"
network = "t6"
mac = "00:15:5d:16:00:1b"
ipv6 = "2001:db8:16::b"
interface = "v6b"
"#;

const GRE: i32 = 47;
const SCTP: i32 = 132;

#[test]
fn default_profiles_with_real_traffic() {
    if let Err(why) = prerequisites() {
        return skip("run_profiles", &why);
    }
    let mut lab = Lab::new("prof");
    let host = lab.ns("host");
    let c = |lab: &mut Lab, name: &str, mac: &str, ip: &str| {
        lab.container(&host, name, name, mac, &[ip], Some("198.18.22.1"))
    };
    let client = c(&mut lab, "client", "00:15:5d:16:00:0a", "198.18.22.10/24");
    let proc_ = c(&mut lab, "proc", "00:15:5d:16:00:0b", "198.18.22.11/24");
    let legacy = c(&mut lab, "legacy", "00:15:5d:16:00:0c", "198.18.22.12/24");
    let hv = c(&mut lab, "hv", "00:15:5d:16:00:0d", "198.18.22.13/24");
    let v6a = lab.container(
        &host,
        "v6a",
        "v6a",
        "00:15:5d:16:00:1a",
        &["2001:db8:16::a/64"],
        Some("2001:db8:16::1"),
    );
    let v6b = lab.container(
        &host,
        "v6b",
        "v6b",
        "00:15:5d:16:00:1b",
        &["2001:db8:16::b/64"],
        Some("2001:db8:16::1"),
    );
    lab.strata(&host, POLICY, 1);

    // process: unsolicited TCP, UDP, ICMP in; GRE and SCTP not.
    assert!(ping(&client, "198.18.22.11", 3), "process: ICMP in");
    tcp(&proc_, "198.18.22.11:7000", &client, "198.18.22.11:7000").expect("process: TCP in");
    udp(&proc_, "198.18.22.11:7001", &client, "198.18.22.11:7001").expect("process: UDP in");
    assert!(
        !raw_reaches(&client, &proc_, "198.18.22.11", GRE),
        "process: GRE blocked"
    );
    assert!(
        !raw_reaches(&client, &proc_, "198.18.22.11", SCTP),
        "process: SCTP blocked"
    );

    // process-legacy: ICMP, DNS (UDP and TCP 53), DHCP; nothing else.
    assert!(ping(&client, "198.18.22.12", 3), "process-legacy: ICMP in");
    udp(&legacy, "198.18.22.12:53", &client, "198.18.22.12:53")
        .expect("process-legacy: DNS/UDP in");
    tcp(&legacy, "198.18.22.12:53", &client, "198.18.22.12:53")
        .expect("process-legacy: DNS/TCP in");
    assert!(
        tcp(&legacy, "198.18.22.12:7000", &client, "198.18.22.12:7000").is_err(),
        "process-legacy: TCP blocked"
    );
    assert!(
        udp(&legacy, "198.18.22.12:7001", &client, "198.18.22.12:7001").is_err(),
        "process-legacy: UDP blocked"
    );
    // ... while what it opens itself gets its replies.
    tcp(&client, "198.18.22.10:7002", &legacy, "198.18.22.10:7002")
        .expect("process-legacy: outbound");

    // hyperv: everything, GRE included.
    assert!(
        raw_reaches(&client, &hv, "198.18.22.13", GRE),
        "hyperv: GRE in"
    );
    tcp(&hv, "198.18.22.13:7003", &client, "198.18.22.13:7003").expect("hyperv: TCP in");

    // IPv6: neighbour discovery and echo of the gateway, and between containers.
    assert!(
        ping(&v6a, "2001:db8:16::1", 3),
        "v6a pings its IPv6 gateway\n{}",
        lab.stratas[0].log()
    );
    assert!(ping(&v6a, "2001:db8:16::b", 3), "v6a pings v6b");
    tcp(&v6b, "[2001:db8:16::b]:7004", &v6a, "[2001:db8:16::b]:7004").expect("IPv6 TCP");
}
