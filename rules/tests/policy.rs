//! The policy file: every validation error names its line and object, and each isolation
//! profile and ACL translation compiles to the layers DESIGN §1–2 prescribe.

use strata_rules::model::{
    Action, Backend, Conditions, DefaultPolicy, Distribution, Driver, Group, GroupDirection,
    Isolation, Layer, LoadBalancer, OutboundNat, PortRange, RemoteRoute, Rule, proto,
};
use strata_rules::policy::{self, PolicyErrors};
use strata_rules::{IpPrefix, Policy};

const EXAMPLE: &str = include_str!("../../examples/policy.toml");

/// A host and one NAT network, to which tests append endpoints.
const BASE: &str = r#"
[host]
mac = "02:00:00:00:00:01"
addresses = ["198.19.0.10"]

[[network]]
name = "nat"
driver = "nat"
subnets = ["198.18.1.0/24"]
gateway = "198.18.1.1"

[[network]]
name = "l2"
driver = "l2bridge"
subnet = "10.0.0.0/24"

[[network]]
name = "ov"
driver = "overlay"
subnets = ["10.1.0.0/24", "2001:db8:1::/64"]
vni = 4096
"#;

fn load(extra: &str) -> Result<Policy, PolicyErrors> {
    policy::load(&format!("{BASE}{extra}"), "test.toml")
}

fn ok(extra: &str) -> Policy {
    match load(extra) {
        Ok(p) => p,
        Err(e) => panic!("expected a valid policy, got:\n{e}"),
    }
}

/// The 1-based line of the first occurrence of `marker` in BASE + extra.
fn line_of(extra: &str, marker: &str) -> usize {
    let text = format!("{BASE}{extra}");
    let at = text.find(marker).expect("marker in text");
    text[..at].matches('\n').count() + 1
}

/// Asserts that loading fails with an error at the line of `marker` that names `object`
/// and whose message contains `message`.
#[track_caller]
fn fails(extra: &str, marker: &str, object: &str, message: &str) {
    let errors = match load(extra) {
        Ok(_) => panic!("expected an error about {message:?}"),
        Err(e) => e,
    };
    let line = line_of(extra, marker);
    let want = format!("test.toml:{line}:");
    let found = errors
        .iter()
        .map(|e| e.to_string())
        .any(|e| e.starts_with(&want) && e.contains(object) && e.contains(message));
    assert!(
        found,
        "no error at line {line} for {object} containing {message:?}; got:\n{errors}"
    );
}

fn endpoint(name: &str, network: &str, mac_last: u8, ip: &str) -> String {
    format!(
        "\n[[endpoint]]\nname = \"{name}\"\nnetwork = \"{network}\"\nmac = \"00:15:5d:01:01:{mac_last:02x}\"\nipv4 = \"{ip}\"\n"
    )
}

// ---- validation errors ----

#[test]
fn syntax_error() {
    let extra = "\n[[endpoint]]\nname = \"web\nnetwork = \"nat\"\n";
    fails(extra, "name = \"web", "TOML", "");
}

#[test]
fn unknown_field_in_endpoint() {
    let extra = endpoint("web", "nat", 10, "198.18.1.10") + "isolaton = \"process\"\n";
    fails(
        &extra,
        "isolaton",
        "endpoint \"web\"",
        "unknown field `isolaton`",
    );
}

#[test]
fn unknown_field_in_acl() {
    let extra = endpoint("web", "nat", 10, "198.18.1.10")
        + "[[endpoint.acl]]\naction = \"allow\"\ndirection = \"in\"\n\
           [[endpoint.acl]]\naction = \"allow\"\ndirection = \"in\"\nprotocol = \"tcp\"\n";
    fails(
        &extra,
        "protocol =",
        "endpoint \"web\" acl #2",
        "unknown field `protocol`",
    );
}

#[test]
fn unknown_section() {
    fails(
        "\n[[endpoints]]\nname = \"x\"\n",
        "[[endpoints]]",
        "file",
        "unknown section",
    );
}

#[test]
fn bad_cidr_with_host_bits() {
    let extra =
        "\n[[network]]\nname = \"t\"\ndriver = \"transparent\"\nsubnets = [\"172.16.0.1/16\"]\n";
    fails(extra, "172.16.0.1/16", "network \"t\"", "host bits set");
}

#[test]
fn bad_address() {
    fails(
        &endpoint("web", "nat", 10, "198.18.1"),
        "198.18.1\"",
        "endpoint \"web\"",
        "not an IP address",
    );
    let acl = endpoint("web", "nat", 10, "198.18.1.10")
        + "[[endpoint.acl]]\naction = \"allow\"\ndirection = \"in\"\nremote_addresses = [\"10.0.0.0/33\"]\n";
    fails(
        &acl,
        "10.0.0.0/33",
        "endpoint \"web\" acl #1",
        "prefix length",
    );
}

#[test]
fn bad_mac() {
    let extra = "\n[[endpoint]]\nname = \"web\"\nnetwork = \"nat\"\nmac = \"00:15:5d:01:01\"\nipv4 = \"198.18.1.10\"\n";
    fails(
        extra,
        "mac = \"00:15",
        "endpoint \"web\"",
        "not a MAC address",
    );
    let bcast = "\n[[endpoint]]\nname = \"web\"\nnetwork = \"nat\"\nmac = \"ff:ff:ff:ff:ff:ff\"\nipv4 = \"198.18.1.10\"\n";
    fails(bcast, "mac = \"ff", "endpoint \"web\"", "unicast");
}

#[test]
fn port_out_of_range_and_reversed() {
    let extra = endpoint("web", "nat", 10, "198.18.1.10")
        + "[[endpoint.acl]]\nid = \"a\"\naction = \"allow\"\ndirection = \"in\"\nprotocols = [\"tcp\"]\nlocal_ports = [70000]\n\
           [[endpoint.acl]]\nid = \"b\"\naction = \"allow\"\ndirection = \"in\"\nprotocols = [\"tcp\"]\nremote_ports = [\"90-80\"]\n";
    fails(
        &extra,
        "70000",
        "endpoint \"web\" acl #1 \"a\"",
        "out of range",
    );
    fails(
        &extra,
        "90-80",
        "endpoint \"web\" acl #2 \"b\"",
        "low end above its high end",
    );
}

#[test]
fn unknown_protocol() {
    let extra = endpoint("web", "nat", 10, "198.18.1.10")
        + "[[endpoint.acl]]\naction = \"block\"\ndirection = \"out\"\nprotocols = [\"tcp\", \"ftp\"]\n";
    fails(
        &extra,
        "\"ftp\"",
        "endpoint \"web\" acl #1",
        "unknown protocol `ftp`",
    );
}

#[test]
fn duplicate_endpoint_name_ip_mac() {
    let extra =
        endpoint("web", "nat", 10, "198.18.1.10") + &endpoint("web", "nat", 11, "198.18.1.11");
    let second = line_of(&extra, "name = \"web\"") + 6;
    let errors = load(&extra).unwrap_err().to_string();
    assert!(errors.contains(&format!("test.toml:{second}:")), "{errors}");
    assert!(
        errors.contains("endpoint \"web\": duplicate endpoint name"),
        "{errors}"
    );

    let ip = endpoint("web", "nat", 10, "198.18.1.10") + &endpoint("db", "nat", 11, "198.18.1.10");
    let errors = load(&ip).unwrap_err().to_string();
    let line = line_of(&ip, "name = \"db\"") + 3;
    assert!(
        errors.contains(&format!(
            "test.toml:{line}:8: endpoint \"db\": duplicate IP 198.18.1.10"
        )),
        "{errors}"
    );

    let mac = endpoint("web", "nat", 10, "198.18.1.10") + &endpoint("db", "nat", 10, "198.18.1.11");
    let errors = load(&mac).unwrap_err().to_string();
    let line = line_of(&mac, "name = \"db\"") + 2;
    assert!(
        errors.contains(&format!(
            "test.toml:{line}:7: endpoint \"db\": duplicate MAC"
        )),
        "{errors}"
    );
}

#[test]
fn duplicate_network_name() {
    let extra =
        "\n[[network]]\nname = \"l2\"\ndriver = \"l2tunnel\"\nsubnets = [\"10.9.0.0/24\"]\n";
    fails(
        extra,
        "name = \"l2\"\ndriver = \"l2tunnel",
        "network \"l2\"",
        "duplicate network name",
    );
}

#[test]
fn unknown_network() {
    let extra = endpoint("web", "natt", 10, "198.18.1.10");
    fails(
        &extra,
        "\"natt\"",
        "endpoint \"web\"",
        "unknown network `natt`",
    );
}

#[test]
fn ip_outside_subnets() {
    let extra = endpoint("web", "nat", 10, "198.18.2.10");
    fails(
        &extra,
        "198.18.2.10",
        "endpoint \"web\"",
        "outside the subnets of network \"nat\"",
    );
}

#[test]
fn second_nat_network() {
    let extra = "\n[[network]]\nname = \"nat2\"\ndriver = \"nat\"\nsubnets = [\"172.20.0.0/16\"]\n";
    fails(
        extra,
        "driver = \"nat\"\nsubnets = [\"172",
        "network \"nat2\"",
        "only one NAT network per host",
    );
}

#[test]
fn vlan_and_vni_out_of_range() {
    let vlan = "\n[[network]]\nname = \"v\"\ndriver = \"l2bridge\"\nsubnets = [\"10.5.0.0/24\"]\nvlan = 4095\n";
    fails(
        vlan,
        "vlan = 4095",
        "network \"v\"",
        "vlan 4095 is out of range 1..=4094",
    );
    let vni = "\n[[network]]\nname = \"o2\"\ndriver = \"overlay\"\nsubnets = [\"10.6.0.0/24\"]\nvni = 16777216\n";
    fails(
        vni,
        "vni = 16777216",
        "network \"o2\"",
        "out of range 1..=16777215",
    );
    let dup = "\n[[network]]\nname = \"o3\"\ndriver = \"overlay\"\nsubnets = [\"10.7.0.0/24\"]\nvni = 0x1000\n";
    fails(dup, "vni = 0x1000", "network \"o3\"", "already used");
    let missing =
        "\n[[network]]\nname = \"o4\"\ndriver = \"overlay\"\nsubnets = [\"10.8.0.0/24\"]\n";
    fails(missing, "name = \"o4\"", "network \"o4\"", "needs a vni");
}

#[test]
fn duplicate_external_port_per_protocol() {
    let pm = |proto: &str, int: u16, ext: u16| {
        format!(
            "[[endpoint.port_mapping]]\nprotocol = \"{proto}\"\ninternal_port = {int}\nexternal_port = {ext}\n"
        )
    };
    // Same external port on tcp and udp is fine.
    ok(&(endpoint("web", "nat", 10, "198.18.1.10") + &pm("tcp", 80, 8080) + &pm("udp", 53, 8080)));
    let extra = endpoint("web", "nat", 10, "198.18.1.10")
        + &pm("tcp", 80, 8080)
        + &endpoint("api", "nat", 11, "198.18.1.11")
        + &pm("tcp", 81, 8080);
    let text = format!("{BASE}{extra}");
    let line = text
        .rfind("external_port = 8080")
        .map(|i| text[..i].matches('\n').count() + 1);
    let errors = load(&extra).unwrap_err().to_string();
    assert!(
        errors.contains(&format!("test.toml:{}:17: endpoint \"api\" port_mapping #1: duplicate port mapping: external port tcp/8080", line.unwrap())),
        "{errors}"
    );
    let range = endpoint("web", "nat", 10, "198.18.1.10") + &pm("tcp", 0, 8080);
    fails(
        &range,
        "internal_port = 0",
        "endpoint \"web\" port_mapping #1",
        "internal_port 0 is out of range",
    );
    let not_nat = endpoint("web", "l2", 10, "10.0.0.10") + &pm("tcp", 80, 8080);
    fails(
        &not_nat,
        "[[endpoint.port_mapping]]",
        "endpoint \"web\" port_mapping #1",
        "need a nat network",
    );
}

#[test]
fn hyperv_acl_on_nat_is_refused() {
    let acl = "[[endpoint.acl]]\naction = \"block\"\ndirection = \"in\"\n";
    let extra = endpoint("vm", "nat", 10, "198.18.1.10") + "isolation = \"hyperv\"\n" + acl;
    fails(
        &extra,
        "[[endpoint.acl]]",
        "endpoint \"vm\" acl #1",
        "nobody may reconfigure the default ACLs for Hyper-V isolation",
    );
    let transparent =
        "\n[[network]]\nname = \"t\"\ndriver = \"transparent\"\nsubnets = [\"172.16.0.0/16\"]\n"
            .to_owned()
            + &endpoint("vm", "t", 10, "172.16.0.10")
            + "isolation = \"hyperv\"\n"
            + acl;
    fails(
        &transparent,
        "[[endpoint.acl]]",
        "endpoint \"vm\" acl #1",
        "Hyper-V",
    );
    // The switch may reconfigure them on L2Bridge, L2Tunnel and Overlay networks.
    ok(&(endpoint("vm", "l2", 10, "10.0.0.10") + "isolation = \"hyperv\"\n" + acl));
    ok(&(endpoint("vm", "ov", 10, "10.1.0.10") + "isolation = \"hyperv\"\n" + acl));
    // No ACL, no problem.
    ok(&(endpoint("vm", "nat", 10, "198.18.1.10") + "isolation = \"hyperv\"\n"));
}

#[test]
fn ports_need_port_protocols() {
    let extra = endpoint("web", "nat", 10, "198.18.1.10")
        + "[[endpoint.acl]]\naction = \"allow\"\ndirection = \"in\"\nlocal_ports = [\"80\"]\n\
           [[endpoint.acl]]\naction = \"allow\"\ndirection = \"in\"\nprotocols = [\"tcp\", \"icmp\"]\nremote_ports = \"80\"\n";
    fails(
        &extra,
        "local_ports",
        "endpoint \"web\" acl #1",
        "local_ports needs protocols tcp, udp or sctp",
    );
    fails(
        &extra,
        "remote_ports",
        "endpoint \"web\" acl #2",
        "remote_ports needs protocols tcp, udp or sctp",
    );
}

#[test]
fn custom_layer_errors() {
    let extra = endpoint("web", "nat", 10, "198.18.1.10")
        + "[[endpoint.layer]]\nname = \"acl\"\n\
           [[endpoint.layer]]\nname = \"custom\"\n\
           [[endpoint.layer.group]]\nname = \"g1\"\n\
           [[endpoint.layer.group.rule]]\nid = \"r1\"\naction = \"block\"\nvlans = [0]\n\
           [[endpoint.layer.group.rule]]\nid = \"r1\"\naction = \"block\"\nsrc_macs = [\"zz\"]\n";
    fails(
        &extra,
        "name = \"acl\"",
        "endpoint \"web\" layer \"acl\"",
        "duplicate layer name",
    );
    fails(
        &extra,
        "vlans = [0]",
        "layer \"custom\" group \"g1\" rule \"r1\"",
        "VLAN ID 0 is out of range",
    );
    fails(
        &extra,
        "id = \"r1\"\naction = \"block\"\nsrc",
        "layer \"custom\" group \"g1\" rule \"r1\"",
        "duplicate rule id",
    );
    fails(
        &extra,
        "[\"zz\"]",
        "layer \"custom\" group \"g1\" rule \"r1\"",
        "not a MAC address",
    );
}

#[test]
fn errors_are_collected_and_sorted() {
    let extra = endpoint("a", "nope", 10, "198.18.1.10") + &endpoint("b", "nat", 10, "10.9.9.9");
    let errors = load(&extra).unwrap_err();
    assert!(errors.len() >= 3, "{errors}");
    let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
    let mut sorted = lines.clone();
    sorted.sort_unstable();
    assert_eq!(lines, sorted);
}

#[test]
fn one_bad_acl_hides_nothing_else() {
    let extra = endpoint("web", "natt", 10, "198.18.1.10")
        + "[[endpoint.acl]]\naction = \"allow\"\ndirection = \"in\"\nprotcols = [\"tcp\"]\n\
           [[endpoint.acl]]\naction = \"allow\"\ndirection = \"in\"\nprotocols = [\"tcp\"]\nlocal_ports = [\"99999\"]\n\
           [[endpoint.port_mapping]]\ninternal_port = 80\nexternal_port = 8080\nextra = 1\n";
    fails(
        &extra,
        "protcols",
        "endpoint \"web\" acl #1",
        "unknown field `protcols`",
    );
    fails(&extra, "99999", "endpoint \"web\" acl #2", "out of range");
    fails(
        &extra,
        "extra = 1",
        "endpoint \"web\" port_mapping #1",
        "unknown field `extra`",
    );
    fails(&extra, "\"natt\"", "endpoint \"web\"", "unknown network");
    let kinds = "\n[[endpoint]]\nname = \"web\"\nnetwork = \"nat\"\nmac = \"00:15:5d:01:01:0a\"\nipv4 = \"198.18.1.10\"\nacl = 5\n";
    fails(kinds, "acl = 5", "endpoint \"web\"", "array of tables");
}

#[test]
fn endpoint_needs_an_address() {
    let extra = "\n[[endpoint]]\nname = \"web\"\nnetwork = \"nat\"\nmac = \"00:15:5d:01:01:0a\"\n";
    fails(
        extra,
        "name = \"web\"",
        "endpoint \"web\"",
        "needs an address",
    );
}

// ---- compilation ----

fn acl_layer<'a>(p: &'a Policy, port: &str) -> &'a strata_rules::Layer {
    let port = p.port(port).expect("port");
    assert_eq!(port.layers[0].name, "acl");
    &port.layers[0]
}

fn entry_names(d: &DefaultPolicy) -> Vec<&str> {
    d.entries.iter().map(|e| e.name.as_str()).collect()
}

#[test]
fn example_policy_compiles() {
    let p = policy::load(EXAMPLE, "examples/policy.toml").unwrap();
    assert_eq!(p.networks.len(), 2);
    assert_eq!(p.networks[0].driver, Driver::Nat);
    let overlay = &p.networks[1];
    assert_eq!(
        (
            overlay.name.as_str(),
            overlay.driver,
            overlay.vni,
            overlay.vxlan_port
        ),
        ("overlay", Driver::Overlay, Some(4096), 4789)
    );
    assert_eq!(
        overlay.outbound_nat,
        Some(OutboundNat {
            vip: ip("198.19.0.10"),
            exceptions: vec![pfx("198.18.0.0/16")],
        })
    );
    assert_eq!(
        overlay.remote_routes,
        vec![RemoteRoute {
            prefix: pfx("198.18.3.0/24"),
            provider_address: ip("198.19.0.20"),
            mac: None,
        }]
    );
    assert_eq!(
        p.uplink.ips,
        vec!["198.19.0.10".parse::<std::net::IpAddr>().unwrap()]
    );
    let names: Vec<&str> = p.ports.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["web", "db", "client", "api"]);
    assert_eq!(layer_names(&p, "web"), ["acl", "nat"]);
    assert_eq!(layer_names(&p, "api"), ["acl", "nat"]);
    assert!(p.load_balancers.is_empty());
    let web = p.port("web").unwrap();
    assert_eq!(web.port_mappings.len(), 1);
    assert_eq!(
        (
            web.port_mappings[0].internal_port,
            web.port_mappings[0].external_port
        ),
        (80, 8080)
    );
    let db = acl_layer(&p, "db");
    let ids: Vec<&str> = db.groups[1].rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["allow-web-pg", "block-pg"]);
    let client = acl_layer(&p, "client");
    assert_eq!(client.groups[0].rules[0].id, "block-telnet-out");
    assert_eq!(
        client.groups[0].rules[0].conditions.dst_port,
        vec![PortRange::single(23)]
    );
}

#[test]
fn process_profile() {
    let p = ok(&endpoint("web", "nat", 10, "198.18.1.10"));
    let acl = acl_layer(&p, "web");
    assert_eq!(p.port("web").unwrap().isolation, Isolation::Process);
    assert_eq!(acl.defaults.outbound, DefaultPolicy::allow_all());
    assert_eq!(
        entry_names(&acl.defaults.inbound),
        ["tcp", "udp", "icmp", "icmpv6", "igmp"]
    );
    let protos: Vec<Vec<u8>> = acl
        .defaults
        .inbound
        .entries
        .iter()
        .map(|e| e.conditions.protocol.clone())
        .collect();
    assert_eq!(protos, [vec![6], vec![17], vec![1], vec![58], vec![2]]);
    assert!(
        acl.defaults
            .inbound
            .entries
            .iter()
            .all(|e| e.action == Action::Allow)
    );
    assert_eq!(acl.defaults.inbound.otherwise, Action::Block);
    // Both ACL groups exist, even empty, so the layer's shape never depends on the file.
    let groups: Vec<(&str, GroupDirection)> = acl
        .groups
        .iter()
        .map(|g| (g.name.as_str(), g.direction))
        .collect();
    assert_eq!(
        groups,
        [
            ("acl-out", GroupDirection::Out),
            ("acl-in", GroupDirection::In)
        ]
    );
}

#[test]
fn process_legacy_profile_with_port_mapping() {
    let extra = endpoint("web", "nat", 10, "198.18.1.10")
        + "isolation = \"process-legacy\"\n\
           [[endpoint.port_mapping]]\nprotocol = \"tcp\"\ninternal_port = 80\nexternal_port = 8080\n\
           [[endpoint.port_mapping]]\nprotocol = \"udp\"\ninternal_port = 5000\nexternal_port = 5000\n";
    let p = ok(&extra);
    let inbound = &acl_layer(&p, "web").defaults.inbound;
    assert_eq!(
        entry_names(inbound),
        [
            "icmp",
            "icmpv6",
            "dhcp",
            "dhcpv6",
            "dns-udp",
            "dns-tcp",
            "port-mapping:tcp/80",
            "port-mapping:udp/5000"
        ]
    );
    let by_name = |n: &str| {
        &inbound
            .entries
            .iter()
            .find(|e| e.name == n)
            .unwrap()
            .conditions
    };
    let cond = |p: u8, lo: u16, hi: u16| Conditions {
        protocol: vec![p],
        dst_port: vec![PortRange { lo, hi }],
        ..Conditions::default()
    };
    assert_eq!(*by_name("dhcp"), cond(proto::UDP, 67, 68));
    assert_eq!(*by_name("dhcpv6"), cond(proto::UDP, 546, 547));
    assert_eq!(*by_name("dns-udp"), cond(proto::UDP, 53, 53));
    assert_eq!(*by_name("dns-tcp"), cond(proto::TCP, 53, 53));
    assert_eq!(*by_name("port-mapping:tcp/80"), cond(proto::TCP, 80, 80));
    assert_eq!(by_name("icmp").protocol, vec![proto::ICMP]);
    assert_eq!(inbound.otherwise, Action::Block);
}

#[test]
fn hyperv_profile_allows_all() {
    let p = ok(&(endpoint("vm", "l2", 10, "10.0.0.10") + "isolation = \"hyperv\"\n"));
    let acl = acl_layer(&p, "vm");
    assert_eq!(acl.defaults.inbound, DefaultPolicy::allow_all());
    assert_eq!(acl.defaults.outbound, DefaultPolicy::allow_all());
}

#[test]
fn overlay_allows_all_inbound_whatever_the_isolation() {
    for iso in ["process", "process-legacy"] {
        let extra = "\n[[endpoint]]\nname = \"o\"\nnetwork = \"ov\"\nmac = \"00-15-5D-01-01-0A\"\n\
                     ipv4 = \"10.1.0.10\"\nipv6 = \"2001:db8:1::10\"\nisolation = \"ISO\"\n"
            .replace("ISO", iso);
        let p = ok(&extra);
        assert_eq!(
            acl_layer(&p, "o").defaults.inbound,
            DefaultPolicy::allow_all(),
            "{iso}"
        );
        assert_eq!(p.port("o").unwrap().ips.len(), 2);
    }
}

#[test]
fn acl_local_remote_translation() {
    let extra = endpoint("web", "nat", 10, "198.18.1.10")
        + "[[endpoint.acl]]\nid = \"o\"\naction = \"allow\"\ndirection = \"out\"\nprotocols = [\"tcp\", 17]\n\
           local_addresses = [\"198.18.1.10\"]\nremote_addresses = \"198.19.0.0/24,10.0.0.0/8\"\n\
           local_ports = [\"1024-65535\"]\nremote_ports = [443]\npriority = 50\n\
           [[endpoint.acl]]\naction = \"block\"\ndirection = \"in\"\nprotocols = \"6\"\n\
           local_addresses = [\"198.18.1.10/32\"]\nremote_addresses = [\"198.19.0.0/24\"]\n\
           local_ports = [\"80\", 8000]\nremote_ports = [\"1-1023\"]\n";
    let p = ok(&extra);
    let acl = acl_layer(&p, "web");
    let pf = |s: &str| s.parse::<IpPrefix>().unwrap();
    let out = &acl.groups[0].rules[0];
    assert_eq!(out.id, "o");
    assert_eq!(out.priority, 50);
    assert!(out.stateful && !out.terminating);
    assert_eq!(out.action, Action::Allow);
    assert_eq!(out.conditions.protocol, vec![6, 17]);
    assert_eq!(out.conditions.src_ip, vec![pf("198.18.1.10/32")]);
    assert_eq!(
        out.conditions.dst_ip,
        vec![pf("198.19.0.0/24"), pf("10.0.0.0/8")]
    );
    assert_eq!(
        out.conditions.src_port,
        vec![PortRange {
            lo: 1024,
            hi: 65535
        }]
    );
    assert_eq!(out.conditions.dst_port, vec![PortRange::single(443)]);
    let inb = &acl.groups[1].rules[0];
    assert_eq!(inb.id, "acl2");
    assert_eq!(inb.priority, policy::DEFAULT_PRIORITY);
    assert!(!inb.stateful && !inb.terminating);
    assert_eq!(inb.action, Action::Block);
    assert_eq!(inb.conditions.dst_ip, vec![pf("198.18.1.10/32")]);
    assert_eq!(inb.conditions.src_ip, vec![pf("198.19.0.0/24")]);
    assert_eq!(
        inb.conditions.dst_port,
        vec![PortRange::single(80), PortRange::single(8000)]
    );
    assert_eq!(inb.conditions.src_port, vec![PortRange { lo: 1, hi: 1023 }]);
}

#[test]
fn custom_layers_compile_in_file_order() {
    let extra = endpoint("web", "nat", 10, "198.18.1.10")
        + "[[endpoint.layer]]\nname = \"custom\"\ndefault_in = \"block\"\n\
           [[endpoint.layer.group]]\nname = \"g1\"\ndirection = \"in\"\ncondition = { protocols = [\"udp\"] }\n\
           [[endpoint.layer.group.rule]]\nid = \"r1\"\npriority = 10\naction = \"allow\"\nterminating = true\nstateful = true\n\
           dst_ports = [53]\nsrc_addresses = [\"2001:db8::/32\"]\nicmp_types = []\nsrc_macs = [\"00-15-5D-00-00-01\"]\nvlans = [100]\nvnis = [4096]\n\
           [[endpoint.layer.group]]\nname = \"g2\"\n\
           [[endpoint.layer.group.rule]]\naction = \"block\"\n\
           [[endpoint.layer]]\nname = \"second\"\n";
    let p = ok(&extra);
    let port = p.port("web").unwrap();
    let names: Vec<&str> = port.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["acl", "custom", "second", "nat"]);
    let custom = &port.layers[1];
    assert_eq!(custom.defaults.inbound, DefaultPolicy::block_all());
    assert_eq!(custom.defaults.outbound, DefaultPolicy::allow_all());
    let g1 = &custom.groups[0];
    assert_eq!(g1.direction, GroupDirection::In);
    assert_eq!(g1.condition.as_ref().unwrap().protocol, vec![proto::UDP]);
    let r1 = &g1.rules[0];
    assert_eq!(
        (r1.id.as_str(), r1.priority, r1.terminating, r1.stateful),
        ("r1", 10, true, true)
    );
    assert_eq!(r1.conditions.dst_port, vec![PortRange::single(53)]);
    assert_eq!(r1.conditions.vlan, vec![100]);
    assert_eq!(r1.conditions.vni, vec![4096]);
    assert!(r1.conditions.icmp_type.is_empty());
    let g2 = &custom.groups[1];
    assert_eq!(g2.direction, GroupDirection::Both);
    assert!(g2.condition.is_none());
    assert_eq!(g2.rules[0].id, "rule1");
    assert!(g2.rules[0].conditions.is_any());
    assert_eq!(port.layers[2].defaults, strata_rules::Defaults::allow_all());
}

mod no_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Arbitrary edits to a valid policy give a policy or errors, never a panic, and
        /// every error points inside the file.
        #[test]
        fn mutated_example(pos in 0usize..4000, junk in "[\\[\\]=\"a-z0-9.:/,{} \n#-]{0,12}", cut in 0usize..40) {
            let mut text = EXAMPLE.to_owned();
            let mut at = pos.min(text.len());
            while !text.is_char_boundary(at) { at -= 1; }
            let end = (at + cut).min(text.len());
            let end = (end..=text.len()).find(|&e| text.is_char_boundary(e)).unwrap_or(text.len());
            text.replace_range(at..end, &junk);
            if let Err(errors) = policy::load(&text, "m.toml") {
                let lines = text.lines().count() + 1;
                for e in errors.iter() {
                    prop_assert!(e.line >= 1 && e.line <= lines, "{}", e);
                }
            }
        }

        #[test]
        fn arbitrary_text(text in "\\PC{0,200}") {
            let _ = policy::load(&text, "a.toml");
        }
    }
}

#[test]
fn documented_example_compiles() {
    let doc = include_str!("../../docs/policy.md");
    let start = doc
        .find("```toml\n")
        .expect("a toml block in docs/policy.md")
        + 8;
    let len = doc[start..].find("```").expect("end of the toml block");
    let p = policy::load(&doc[start..start + len], "docs/policy.md").unwrap();
    assert_eq!((p.networks.len(), p.ports.len()), (2, 2));
    assert_eq!(
        acl_layer(&p, "pod").defaults.inbound,
        DefaultPolicy::allow_all()
    );
    assert_eq!(
        p.port("pod").unwrap().layers[1].groups[0].rules[0].id,
        "no-netbios"
    );
}

// ---- HNS JSON import ----

#[test]
fn hns_json_example_equals_the_toml_example() {
    let json = include_str!("../../examples/policy.hns.json");
    let from_json = policy::load_hns_json(json, "examples/policy.hns.json").unwrap();
    let from_toml = policy::load(EXAMPLE, "examples/policy.toml").unwrap();
    assert_eq!(from_json, from_toml);
}

#[test]
fn hns_json_errors_point_at_json_lines() {
    let json = r#"{
  "Networks": [{"Name": "nat", "Type": "NAT", "Subnets": ["198.18.1.0/24"]}],
  "Endpoints": [
    {"Name": "web", "VirtualNetworkName": "nat", "MacAddress": "00-15-5D-01-01-0A",
     "IPAddress": "198.18.1.10",
     "Policies": [
       {"Type": "ACL", "Settings": {"Action": "Allow", "Direction": "In",
        "Protocols": "1", "LocalPorts": "80"}},
       {"Type": "ACL", "Settings": {"Action": "Allow", "Direction": "Sideways", "Prio": 1}},
       {"Type": "OutBoundNAT", "Settings": {}}
     ]}
  ]
}"#;
    let errors = policy::load_hns_json(json, "h.json")
        .unwrap_err()
        .to_string();
    assert!(
        errors.contains("h.json:8:41: endpoint \"web\" acl #1: local_ports needs protocols"),
        "{errors}"
    );
    assert!(
        errors.contains("h.json:9:69: endpoint \"web\" acl #2: unknown Direction `Sideways`"),
        "{errors}"
    );
    assert!(
        errors.contains("h.json:9:81: endpoint \"web\" acl #2: unknown field `Prio`"),
        "{errors}"
    );
    assert!(
        errors.contains(
            "h.json:10:8: endpoint \"web\" outbound_nat #1: OutBoundNAT is for overlay, l2bridge and l2tunnel networks; this endpoint's is nat"
        ),
        "{errors}"
    );

    let syntax = policy::load_hns_json("{\n  \"Networks\": [,]\n}", "s.json")
        .unwrap_err()
        .to_string();
    assert!(syntax == "s.json:2:16: JSON: expected value", "{syntax}");
    assert!(policy::load_hns_json("[1, 2]", "a.json").is_err());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
    #[test]
    fn hns_json_never_panics(pos in 0usize..2000, junk in "[\\[\\]{}\":,a-zA-Z0-9. \\\\-]{0,8}", cut in 0usize..20) {
        let mut text = include_str!("../../examples/policy.hns.json").to_owned();
        let at = pos.min(text.len());
        let end = (at + cut).min(text.len());
        text.replace_range(at..end, &junk);
        let _ = policy::load_hns_json(&text, "m.json");
    }
}

// ---- header transpositions: load balancers, NAT, OutboundNAT, overlay ----

fn ip(s: &str) -> std::net::IpAddr {
    s.parse().unwrap()
}

fn pfx(s: &str) -> IpPrefix {
    s.parse().unwrap()
}

fn layer_names<'a>(p: &'a Policy, port: &str) -> Vec<&'a str> {
    p.port(port)
        .unwrap()
        .layers
        .iter()
        .map(|l| l.name.as_str())
        .collect()
}

fn layer<'a>(p: &'a Policy, port: &str, name: &str) -> &'a Layer {
    let port = p.port(port).unwrap();
    port.layers
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no layer {name:?} on {}", port.name))
}

fn nat_rule(id: &str, priority: u32, conditions: Conditions, action: Action) -> Rule {
    Rule {
        id: id.into(),
        priority,
        conditions,
        action,
        terminating: false,
        stateful: true,
    }
}

const NAT_PORTS: PortRange = PortRange {
    lo: 1024,
    hi: 65535,
};

/// An overlay network with OutboundNAT and a remote route, appended to BASE.
const OVERLAY_NAT: &str = r#"
[[network]]
name = "ov2"
driver = "overlay"
subnets = ["10.2.0.0/24"]
vni = 5000
vxlan_port = 8472
[network.outbound_nat]
vip = "198.19.0.10"
exceptions = ["10.0.0.0/8", "192.168.0.0/16"]
[[network.remote_subnet_route]]
prefix = "10.3.0.0/24"
provider_address = "2001:db8:ff::20"
mac = "00:15:5d:03:03:01"
"#;

const LB: &str = r#"
[[load_balancer]]
name = "svc"
protocol = "tcp"
vip = "198.18.100.1"
port = 80
backends = ["198.18.1.10:8080", "198.18.1.11"]
[[load_balancer]]
name = "dns6"
protocol = "udp"
vip = "2001:db8:100::1"
port = 53
backends = ["[2001:db8:1::5]:5353"]
distribution = "source-ip"
"#;

#[test]
fn nat_layer_with_two_port_mappings() {
    let extra = endpoint("web", "nat", 10, "198.18.1.10")
        + "[[endpoint.port_mapping]]\ninternal_port = 80\nexternal_port = 8080\n\
           [[endpoint.port_mapping]]\nprotocol = \"udp\"\ninternal_port = 53\nexternal_port = 5353\n";
    let p = ok(&extra);
    assert_eq!(layer_names(&p, "web"), ["acl", "nat"]);
    let dnat = |p: u8, ext: u16, int: u16, id: &str| {
        nat_rule(
            id,
            100,
            Conditions {
                protocol: vec![p],
                dst_ip: vec![pfx("198.19.0.10/32")],
                dst_port: vec![PortRange::single(ext)],
                ..Conditions::default()
            },
            Action::Dnat {
                ip: ip("198.18.1.10"),
                port: Some(int),
            },
        )
    };
    let want = Layer {
        name: "nat".into(),
        groups: vec![
            Group {
                name: "snat".into(),
                direction: GroupDirection::Out,
                condition: None,
                rules: vec![
                    nat_rule(
                        "bridge",
                        1,
                        Conditions {
                            dst_ip: vec![pfx("198.18.1.0/24")],
                            ..Conditions::default()
                        },
                        Action::Allow,
                    ),
                    nat_rule(
                        "snat",
                        2,
                        Conditions {
                            src_ip: vec![pfx("0.0.0.0/0")],
                            ..Conditions::default()
                        },
                        Action::Snat {
                            ip: ip("198.19.0.10"),
                            ports: NAT_PORTS,
                        },
                    ),
                ],
            },
            Group {
                name: "port-mappings".into(),
                direction: GroupDirection::In,
                condition: None,
                rules: vec![
                    dnat(proto::TCP, 8080, 80, "port-mapping:tcp/8080"),
                    dnat(proto::UDP, 5353, 53, "port-mapping:udp/5353"),
                ],
            },
        ],
        defaults: strata_rules::Defaults::allow_all(),
    };
    assert_eq!(layer(&p, "web", "nat"), &want);
}

#[test]
fn nat_uses_the_first_host_ipv4_and_matches_every_one() {
    let text = BASE.replace(
        "addresses = [\"198.19.0.10\"]",
        "addresses = [\"2001:db8::10\", \"198.19.0.10\", \"198.19.0.11\"]",
    ) + &endpoint("web", "nat", 10, "198.18.1.10")
        + "[[endpoint.port_mapping]]\ninternal_port = 80\nexternal_port = 8080\n";
    let p = policy::load(&text, "test.toml").unwrap();
    let nat = layer(&p, "web", "nat");
    assert_eq!(
        nat.groups[0].rules[1].action,
        Action::Snat {
            ip: ip("198.19.0.10"),
            ports: NAT_PORTS
        }
    );
    assert_eq!(
        nat.groups[1].rules[0].conditions.dst_ip,
        vec![pfx("198.19.0.10/32"), pfx("198.19.0.11/32")]
    );
}

#[test]
fn overlay_endpoint_with_outbound_nat() {
    let extra = OVERLAY_NAT.to_owned() + &endpoint("o", "ov2", 20, "10.2.0.10");
    let p = ok(&extra);
    let net = p.network("ov2").unwrap();
    assert_eq!(net.vxlan_port, 8472);
    assert_eq!(
        net.remote_routes,
        vec![RemoteRoute {
            prefix: pfx("10.3.0.0/24"),
            provider_address: ip("2001:db8:ff::20"),
            mac: Some("00:15:5d:03:03:01".parse().unwrap()),
        }]
    );
    assert_eq!(p.network("ov").unwrap().vxlan_port, 4789);
    assert_eq!(p.network("ov").unwrap().outbound_nat, None);
    assert_eq!(layer_names(&p, "o"), ["acl", "nat"]);
    let want = Layer {
        name: "nat".into(),
        groups: vec![Group {
            name: "outbound-nat".into(),
            direction: GroupDirection::Out,
            condition: None,
            rules: vec![
                nat_rule(
                    "exceptions",
                    1,
                    Conditions {
                        dst_ip: vec![pfx("10.0.0.0/8"), pfx("192.168.0.0/16"), pfx("10.2.0.0/24")],
                        ..Conditions::default()
                    },
                    Action::Allow,
                ),
                nat_rule(
                    "outbound-nat",
                    2,
                    Conditions {
                        src_ip: vec![pfx("0.0.0.0/0")],
                        ..Conditions::default()
                    },
                    Action::Snat {
                        ip: ip("198.19.0.10"),
                        ports: NAT_PORTS,
                    },
                ),
            ],
        }],
        defaults: strata_rules::Defaults::allow_all(),
    };
    assert_eq!(layer(&p, "o", "nat"), &want);
}

#[test]
fn outbound_nat_with_an_ipv6_vip_matches_ipv6_sources() {
    let extra =
        "\n[[network]]\nname = \"b6\"\ndriver = \"l2bridge\"\nsubnets = [\"2001:db8:5::/64\"]\n\
                 outbound_nat = { vip = \"2001:db8::10\" }\n"
            .to_owned()
            + "\n[[endpoint]]\nname = \"v6\"\nnetwork = \"b6\"\nmac = \"00:15:5d:01:01:30\"\nipv6 = \"2001:db8:5::10\"\n";
    let p = ok(&extra);
    let rules = &layer(&p, "v6", "nat").groups[0].rules;
    assert_eq!(rules[0].conditions.dst_ip, vec![pfx("2001:db8:5::/64")]);
    assert_eq!(rules[1].conditions.src_ip, vec![pfx("::/0")]);
}

#[test]
fn endpoints_without_nat_get_no_nat_layer() {
    let extra = endpoint("a", "l2", 10, "10.0.0.10") + &endpoint("b", "ov", 11, "10.1.0.10");
    let p = ok(&extra);
    assert_eq!(layer_names(&p, "a"), ["acl"]);
    assert_eq!(layer_names(&p, "b"), ["acl"]);
}

#[test]
fn load_balancer_layer_and_policy() {
    let extra = LB.to_owned()
        + &endpoint("web", "nat", 10, "198.18.1.10")
        + "[[endpoint.layer]]\nname = \"custom\"\n\
           [[endpoint.layer.group]]\nname = \"g\"\n\
           [[endpoint.layer.group.rule]]\nid = \"to-svc\"\naction = \"load-balance\"\nload_balancer = \"svc\"\n"
        + &endpoint("l", "l2", 11, "10.0.0.10");
    let p = ok(&extra);
    let svc = LoadBalancer {
        name: "svc".into(),
        backends: vec![
            Backend {
                ip: ip("198.18.1.10"),
                port: 8080,
            },
            Backend {
                ip: ip("198.18.1.11"),
                port: 0,
            },
        ],
        distribution: Distribution::FiveTuple,
    };
    let dns6 = LoadBalancer {
        name: "dns6".into(),
        backends: vec![Backend {
            ip: ip("2001:db8:1::5"),
            port: 5353,
        }],
        distribution: Distribution::SourceIp,
    };
    assert_eq!(p.load_balancers.len(), 2);
    assert_eq!(
        (
            p.load_balancers[0].protocol,
            p.load_balancers[0].vip,
            p.load_balancers[0].port,
            &p.load_balancers[0].lb
        ),
        (proto::TCP, ip("198.18.100.1"), 80, &svc)
    );
    assert_eq!(
        (
            p.load_balancers[1].protocol,
            p.load_balancers[1].vip,
            p.load_balancers[1].port,
            &p.load_balancers[1].lb
        ),
        (proto::UDP, ip("2001:db8:100::1"), 53, &dns6)
    );
    assert_eq!(layer_names(&p, "web"), ["acl", "custom", "lb", "nat"]);
    assert_eq!(layer_names(&p, "l"), ["acl", "lb"]);
    let lb_rule = |lb: &LoadBalancer, p: u8, vip: &str, port: u16| Rule {
        id: lb.name.clone(),
        priority: 100,
        conditions: Conditions {
            protocol: vec![p],
            dst_ip: vec![IpPrefix::host(ip(vip))],
            dst_port: vec![PortRange::single(port)],
            ..Conditions::default()
        },
        action: Action::LoadBalance(lb.clone()),
        terminating: false,
        stateful: true,
    };
    let want = Layer {
        name: "lb".into(),
        groups: vec![Group {
            name: "lb".into(),
            direction: GroupDirection::Out,
            condition: None,
            rules: vec![
                lb_rule(&svc, proto::TCP, "198.18.100.1", 80),
                lb_rule(&dns6, proto::UDP, "2001:db8:100::1", 53),
            ],
        }],
        defaults: strata_rules::Defaults::allow_all(),
    };
    assert_eq!(layer(&p, "web", "lb"), &want);
    assert_eq!(layer(&p, "l", "lb"), &want);
    let custom = &layer(&p, "web", "custom").groups[0].rules[0];
    assert_eq!(custom.action, Action::LoadBalance(svc));
    assert!(custom.stateful);
}

#[test]
fn transposition_actions_in_custom_rules() {
    let extra = endpoint("web", "l2", 10, "10.0.0.10")
        + "[[endpoint.layer]]\nname = \"t\"\n\
           [[endpoint.layer.group]]\nname = \"g\"\n\
           [[endpoint.layer.group.rule]]\nid = \"s\"\naction = \"snat\"\nsnat = { ip = \"198.19.0.10\", ports = \"2000-3000\" }\n\
           [[endpoint.layer.group.rule]]\nid = \"s2\"\naction = \"snat\"\nsnat = { ip = \"198.19.0.11\" }\n\
           [[endpoint.layer.group.rule]]\nid = \"d\"\naction = \"dnat\"\ndnat = { ip = \"10.0.0.20\", port = 80 }\n\
           [[endpoint.layer.group.rule]]\nid = \"d2\"\naction = \"dnat\"\ndnat = { ip = \"10.0.0.21\" }\n\
           [[endpoint.layer.group.rule]]\nid = \"m\"\naction = \"set-mac\"\nset_mac = { dst = \"00:15:5d:00:00:02\" }\n";
    let p = ok(&extra);
    let rules = &layer(&p, "web", "t").groups[0].rules;
    let actions: Vec<&Action> = rules.iter().map(|r| &r.action).collect();
    assert_eq!(
        actions,
        [
            &Action::Snat {
                ip: ip("198.19.0.10"),
                ports: PortRange { lo: 2000, hi: 3000 }
            },
            &Action::Snat {
                ip: ip("198.19.0.11"),
                ports: NAT_PORTS
            },
            &Action::Dnat {
                ip: ip("10.0.0.20"),
                port: Some(80)
            },
            &Action::Dnat {
                ip: ip("10.0.0.21"),
                port: None
            },
            &Action::SetMac {
                src: None,
                dst: Some("00:15:5d:00:00:02".parse().unwrap())
            },
        ]
    );
    assert!(rules.iter().all(|r| r.stateful));
}

#[test]
fn load_balancer_errors() {
    let extra = r#"
[[load_balancer]]
name = "svc"
vip = "198.18.100.1"
port = 80
backends = ["198.18.1.10:80", "[2001:db8::5]:8080", "bogus:1"]
[[load_balancer]]
name = "svc"
protocol = "udp"
vip = "198.18.100.300"
port = 70000
backends = []
distribution = "round-robin"
"#;
    fails(
        extra,
        "\"[2001:db8::5]:8080\"",
        "load_balancer \"svc\"",
        "is IPv6 but the vip is IPv4",
    );
    fails(
        extra,
        "\"bogus:1\"",
        "load_balancer \"svc\"",
        "is not a backend",
    );
    // The second one fails to deserialize (bad distribution), so its other checks wait.
    fails(
        extra,
        "\"round-robin\"",
        "load_balancer \"svc\"",
        "unknown variant",
    );
    let extra = r#"
[[load_balancer]]
name = "svc"
vip = "198.18.100.1"
port = 80
backends = ["198.18.1.10:80"]
[[load_balancer]]
name = "svc"
protocol = "udp"
vip = "198.18.100.300"
port = 70000
backends = []
"#;
    let second = "name = \"svc\"\nprotocol";
    fails(
        extra,
        second,
        "load_balancer \"svc\"",
        "duplicate load balancer name",
    );
    fails(
        extra,
        second,
        "load_balancer \"svc\"",
        "needs at least one backend",
    );
    fails(extra, "\"198.18.100.300\"", "load_balancer \"svc\"", "vip:");
    fails(
        extra,
        "70000",
        "load_balancer \"svc\"",
        "port 70000 is out of range",
    );
    let extra = r#"
[[load_balancer]]
name = "a"
vip = "198.18.100.1"
port = 80
backends = ["198.18.1.10"]
[[load_balancer]]
name = "b"
vip = "198.18.100.1"
port = 80 # again
backends = ["198.18.1.11"]
"#;
    fails(
        extra,
        "80 # again",
        "load_balancer \"b\"",
        "already balanced by load_balancer \"a\"",
    );
}

#[test]
fn rule_action_parameter_errors() {
    let extra = endpoint("web", "l2", 10, "10.0.0.10")
        + "[[endpoint.layer]]\nname = \"t\"\n\
           [[endpoint.layer.group]]\nname = \"g\"\n\
           [[endpoint.layer.group.rule]]\nid = \"missing\"\naction = \"snat\"\n\
           [[endpoint.layer.group.rule]]\nid = \"extra\"\naction = \"allow\"\ndnat = { ip = \"10.0.0.20\" }\n\
           [[endpoint.layer.group.rule]]\nid = \"ports\"\naction = \"snat\"\nsnat = { ip = \"198.19.0.10\", ports = \"3000-2000\" }\n\
           [[endpoint.layer.group.rule]]\nid = \"zero\"\naction = \"snat\"\nsnat = { ip = \"198.19.0.10\", ports = \"0-100\" }\n\
           [[endpoint.layer.group.rule]]\nid = \"badip\"\naction = \"dnat\"\ndnat = { ip = \"10.0.0\", port = 0 }\n\
           [[endpoint.layer.group.rule]]\nid = \"nolb\"\naction = \"load-balance\"\nload_balancer = \"nope\"\n\
           [[endpoint.layer.group.rule]]\nid = \"nomac\"\naction = \"set-mac\"\nset_mac = {}\n\
           [[endpoint.layer.group.rule]]\nid = \"stateless\"\naction = \"dnat\"\ndnat = { ip = \"10.0.0.20\" }\nstateful = false\n\
           [[endpoint.layer]]\nname = \"nat\"\ndefault_in = \"allow\"\n";
    let rule = |id: &str| format!("endpoint \"web\" layer \"t\" group \"g\" rule \"{id}\"");
    fails(
        &extra,
        "action = \"snat\"\n",
        &rule("missing"),
        "action = \"snat\" needs `snat = {",
    );
    fails(
        &extra,
        "dnat = { ip = \"10.0.0.20\" }\n",
        &rule("extra"),
        "dnat is only for action = \"dnat\"",
    );
    fails(
        &extra,
        "\"3000-2000\"",
        &rule("ports"),
        "low end above its high end",
    );
    fails(
        &extra,
        "\"0-100\"",
        &rule("zero"),
        "port 0 cannot be allocated",
    );
    fails(&extra, "\"10.0.0\"", &rule("badip"), "dnat.ip:");
    fails(
        &extra,
        "port = 0",
        &rule("badip"),
        "dnat.port 0 is out of range",
    );
    fails(
        &extra,
        "\"nope\"",
        &rule("nolb"),
        "unknown load balancer `nope` (no [[load_balancer]] is defined)",
    );
    fails(
        &extra,
        "set_mac = {}",
        &rule("nomac"),
        "set_mac needs src, dst or both",
    );
    fails(
        &extra,
        "stateful = false",
        &rule("stateless"),
        "always stateful",
    );
    fails(
        &extra,
        "name = \"nat\"\ndefault_in",
        "layer \"nat\"",
        "duplicate layer name: the NAT layer (reserved)",
    );
}

#[test]
fn overlay_option_errors() {
    let extra = r#"
[[network]]
name = "t"
driver = "transparent"
subnets = ["10.5.0.0/24"]
vxlan_port = 4789
outbound_nat = { vip = "198.19.0.10" }
[[network.remote_subnet_route]]
prefix = "10.6.0.0/24"
provider_address = "198.19.0.20"

[[network]]
name = "o"
driver = "overlay"
subnets = ["10.7.0.0/24"]
vni = 7000
vxlan_port = 0
[network.outbound_nat]
vip = "not-an-ip"
exceptions = ["10.0.0.1/8"]
[[network.remote_subnet_route]]
prefix = "2001:db8:7::/64"
provider_address = "198.19.0.20"
[[network.remote_subnet_route]]
prefix = "10.7.0.128/25"
provider_address = "198.19.0.21"
[[network.remote_subnet_route]]
prefix = "10.8.0.0/24"
provider_address = "nope"
mac = "ff:ff:ff:ff:ff:ff"
[[network.remote_subnet_route]]
prefix = "10.8.0.0/16"
provider_address = "198.19.0.22"
"#;
    fails(
        extra,
        "vxlan_port = 4789",
        "network \"t\"",
        "vxlan_port is only for overlay networks; this one is transparent",
    );
    fails(
        extra,
        "outbound_nat = {",
        "network \"t\" outbound_nat",
        "outbound_nat is only for overlay, l2bridge and l2tunnel networks",
    );
    fails(
        extra,
        "[[network.remote_subnet_route]]\nprefix = \"10.6.0.0/24\"",
        "network \"t\" remote_subnet_route #1",
        "only for overlay networks",
    );
    fails(
        extra,
        "vxlan_port = 0",
        "network \"o\"",
        "vxlan_port 0 is out of range 1..=65535",
    );
    fails(extra, "\"not-an-ip\"", "network \"o\" outbound_nat", "vip:");
    fails(
        extra,
        "\"10.0.0.1/8\"",
        "network \"o\" outbound_nat",
        "host bits set",
    );
    fails(
        extra,
        "\"2001:db8:7::/64\"",
        "network \"o\" remote_subnet_route #1",
        "is IPv6 but the network has no IPv6 subnet",
    );
    fails(
        extra,
        "\"10.7.0.128/25\"",
        "network \"o\" remote_subnet_route #2",
        "overlaps the network's own subnet 10.7.0.0/24",
    );
    fails(
        extra,
        "\"nope\"",
        "network \"o\" remote_subnet_route #3",
        "provider_address:",
    );
    fails(
        extra,
        "\"ff:ff:ff:ff:ff:ff\"",
        "network \"o\" remote_subnet_route #3",
        "mac:",
    );
    fails(
        extra,
        "\"10.8.0.0/16\"",
        "network \"o\" remote_subnet_route #4",
        "overlaps the remote route 10.8.0.0/24",
    );
}

#[test]
fn nat_network_needs_a_host_ipv4_address() {
    let text = BASE.replace(
        "addresses = [\"198.19.0.10\"]",
        "addresses = [\"2001:db8::10\"]",
    ) + &endpoint("web", "nat", 10, "198.18.1.10");
    let errors = policy::load(&text, "test.toml").unwrap_err();
    let line = text[..text.find("driver = \"nat\"").unwrap()]
        .matches('\n')
        .count()
        + 1;
    assert_eq!(
        errors.to_string(),
        format!(
            "test.toml:{line}:10: network \"nat\": a NAT network needs an IPv4 host address in [host] addresses (WinNAT translates to it)"
        )
    );
}

#[test]
fn lb_example_compiles() {
    let text = include_str!("../../examples/lb.toml");
    let p = policy::load(text, "examples/lb.toml").unwrap();
    assert_eq!(p.load_balancers.len(), 1);
    assert_eq!(p.load_balancers[0].lb.backends.len(), 2);
    for port in ["web-1", "web-2", "client"] {
        assert_eq!(layer_names(&p, port), ["acl", "lb"]);
    }
}

#[test]
fn hns_json_network_policy_errors() {
    let json = r#"{
  "Networks": [{"Name": "o", "Type": "Overlay", "Subnets": ["10.1.0.0/24"],
    "Policies": [{"Type": "VSID", "VSID": 4096},
                 {"Type": "OutBoundNAT", "Settings": {"VirtualIP": "198.19.0.10", "Exeptions": []}},
                 {"Type": "RemoteSubnetRoute", "Settings": {"ProviderAddress": "198.19.0.20"}},
                 {"Type": "ELB"}]}],
  "Endpoints": []
}"#;
    let errors = policy::load_hns_json(json, "h.json")
        .unwrap_err()
        .to_string();
    assert!(
        errors.contains("h.json:4:") && errors.contains("outbound_nat: unknown field `Exeptions`"),
        "{errors}"
    );
    assert!(
        errors.contains("h.json:5:")
            && errors.contains("remote_subnet_route #1: missing field `DestinationPrefix`"),
        "{errors}"
    );
    assert!(
        errors.contains("h.json:6:")
            && errors
                .contains("ELB policy is not supported on a network: give it as a policy list"),
        "{errors}"
    );
}

#[test]
fn port_mappings_need_the_endpoints_ipv4() {
    let extra = "\n[[endpoint]]\nname = \"six\"\nnetwork = \"nat\"\nmac = \"00:15:5d:01:01:40\"\nipv6 = \"2001:db8::40\"\n\
                 [[endpoint.port_mapping]]\ninternal_port = 80\nexternal_port = 8080\n";
    let text = BASE.replace(
        "subnets = [\"198.18.1.0/24\"]",
        "subnets = [\"198.18.1.0/24\", \"2001:db8::/64\"]",
    ) + extra;
    let errors = policy::load(&text, "test.toml").unwrap_err().to_string();
    assert!(
        errors.contains("endpoint \"six\": port mappings need an ipv4 address"),
        "{errors}"
    );
}

#[test]
fn hns_json_endpoint_elb_and_outbound_nat_on_nat_say_why() {
    let json = r#"{
  "Host": {"IPAddresses": ["198.19.0.10"]},
  "Networks": [{"Name": "nat", "Type": "NAT", "Subnets": ["198.18.1.0/24"]}],
  "Endpoints": [{"Name": "web", "VirtualNetworkName": "nat", "MacAddress": "00-15-5D-01-01-0A",
     "IPAddress": "198.18.1.10",
     "Policies": [{"Type": "ELB", "Settings": {}},
                  {"Type": "OutBoundNAT", "Settings": {"VirtualIP": "198.19.0.10"}}]}]
}"#;
    let errors = policy::load_hns_json(json, "h.json")
        .unwrap_err()
        .to_string();
    assert!(
        errors.contains("h.json:6:") && errors.contains("give it as a policy list"),
        "{errors}"
    );
    // WinNAT already translates on a NAT network.
    assert!(
        errors.contains("h.json:7:") && errors.contains("OutBoundNAT is for overlay, l2bridge"),
        "{errors}"
    );
}

#[test]
fn documented_load_balancer_compiles() {
    let doc = include_str!("../../docs/policy.md");
    let start = doc
        .find("```toml\n[[load_balancer]]")
        .expect("the load balancer example in docs/policy.md")
        + 8;
    let len = doc[start..].find("```").expect("end of the toml block");
    let p = policy::load(&doc[start..start + len], "docs/policy.md").unwrap();
    assert_eq!(p.load_balancers.len(), 1);
    assert_eq!(p.load_balancers[0].lb.name, "svc");
}
