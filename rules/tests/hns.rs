//! HNS as HNS writes it: every document of `../shared/hns-wild/orig` (read there) is
//! understood — with the meaning asserted here — or refused for a reason the
//! compatibility table of the README lists; `import-hns` output compiles to the same
//! policy as its input; v1 and v2 objects link by GUID and name across files; and every
//! warning and error names its file, line and object.

use std::net::IpAddr;

use strata_rules::model::{Action, Distribution, Driver, IpPrefix, Mac, Policy, RemoteRoute};
use strata_rules::policy::{self, Loaded, Refused, Source};

const WILD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/hns-wild/orig/");

fn wild(name: &str) -> String {
    std::fs::read_to_string(format!("{WILD}{name}"))
        .unwrap_or_else(|e| panic!("{name} in ../shared/hns-wild/orig: {e}"))
}

fn load(files: &[(&str, &str)]) -> Result<Loaded, Refused> {
    let sources: Vec<Source> = files.iter().map(|(n, t)| Source::new(n, t)).collect();
    policy::load_sources(&sources)
}

#[track_caller]
fn ok(files: &[(&str, &str)]) -> Loaded {
    match load(files) {
        Ok(l) => l,
        Err(e) => panic!("expected a valid policy, got:\n{e}"),
    }
}

#[track_caller]
fn refused(files: &[(&str, &str)]) -> String {
    match load(files) {
        Ok(l) => panic!("expected errors, got {:?}", l.policy),
        Err(e) => e.to_string(),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn pfx(s: &str) -> IpPrefix {
    s.parse().unwrap()
}

fn warnings(l: &Loaded) -> String {
    let w: Vec<String> = l.warnings.iter().map(|w| w.as_warning()).collect();
    w.join("\n")
}

/// The template counts (acls, outbound NATs, routes) `strata check` reports.
fn template(l: &Loaded, scope: &str) -> (usize, usize, usize) {
    let t = l
        .templates
        .iter()
        .find(|t| t.scope == scope)
        .unwrap_or_else(|| panic!("no template of {scope}: {:?}", l.templates));
    (t.acls, t.outbound_nats, t.routes)
}

fn layer<'a>(p: &'a Policy, port: &str, name: &str) -> &'a strata_rules::Layer {
    let port = p.port(port).unwrap_or_else(|| panic!("no port {port}"));
    port.layers
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no layer {name} on {}: {:?}", port.name, port.layers))
}

fn layer_names(p: &Policy, port: &str) -> Vec<String> {
    p.port(port)
        .unwrap()
        .layers
        .iter()
        .map(|l| l.name.clone())
        .collect()
}

/// A host document giving the host's facts and one endpoint on `network`.
fn host(network: &str, driver: &str) -> String {
    format!(
        r#"[host]
mac = "02:00:00:00:00:01"
addresses = ["198.19.0.10", "2001:db8:ff::10"]

[[network]]
name = "{network}"
driver = "{driver}"
subnets = ["198.18.1.0/24", "2001:db8:1::/64"]
gateway = "198.18.1.1"
{vni}
[[endpoint]]
name = "pod"
network = "{network}"
mac = "00:15:5d:01:01:0a"
ipv4 = "198.18.1.10"
ipv6 = "2001:db8:1::10"
"#,
        vni = if driver == "overlay" {
            "vni = 4096\n"
        } else {
            ""
        }
    )
}

// ---- the shared documents, one by one ----

#[test]
fn cni_configurations_alone_are_a_network_and_a_template() {
    // (file, network, driver, subnets, (ACLs, OutBoundNATs, routes))
    type Case<'a> = (&'a str, &'a str, Driver, &'a [&'a str], usize, usize, usize);
    let cases: [Case; 12] = [
        (
            "acn_azure_windows.json",
            "azure",
            Driver::L2Bridge,
            &[],
            0,
            1,
            1,
        ),
        (
            "acn_azure_windows_multitenancy.json",
            "azure",
            Driver::L2Bridge,
            &[],
            3,
            1,
            1,
        ),
        (
            "cnip_win_bridge_v1.json",
            "cbr0",
            Driver::L2Bridge,
            &[],
            0,
            1,
            2,
        ),
        (
            "cnip_win_overlay_v2.json",
            "OVNKubernetesHybridOverlayNetwork",
            Driver::Overlay,
            &["10.132.0.0/24"],
            0,
            1,
            1,
        ),
        (
            "sdn_flannel_l2bridge_cni.json",
            "cbr0",
            Driver::L2Bridge,
            &[],
            0,
            1,
            2,
        ),
        (
            "sdn_flannel_overlay_cni.json",
            "vxlan0",
            Driver::Overlay,
            &[],
            0,
            1,
            1,
        ),
        (
            "sdn_wincni_l2tunnel.json",
            "l2tunnel",
            Driver::L2Tunnel,
            &["10.240.0.0/12"],
            0,
            1,
            1,
        ),
        (
            "wcn_flannel_l2bridge.json",
            "cbr0",
            Driver::L2Bridge,
            &[],
            0,
            1,
            2,
        ),
        (
            "wcn_flannel_overlay.json",
            "vxlan0",
            Driver::Overlay,
            &[],
            0,
            1,
            1,
        ),
        (
            "wcn_l2bridge.json",
            "l2bridgeNetwork",
            Driver::L2Bridge,
            &["192.168.1.0/24"],
            0,
            1,
            2,
        ),
        (
            "wcn_l2bridge_dualstack_hostlocal.json",
            "winl2bridge",
            Driver::L2Bridge,
            &["192.168.1.0/24", "fd00::100/120"],
            0,
            2,
            2,
        ),
        (
            "wcn_l2tunnel.json",
            "l2tunnelNetwork",
            Driver::L2Tunnel,
            &["10.240.0.0/12"],
            0,
            1,
            1,
        ),
    ];
    for (file, name, driver, subnets, acls, nats, routes) in cases {
        let text = wild(file);
        let l = ok(&[(file, &text)]);
        let net = l
            .policy
            .network(name)
            .unwrap_or_else(|| panic!("{file}: no network {name}"));
        assert_eq!(net.driver, driver, "{file}");
        let want: Vec<IpPrefix> = subnets.iter().map(|s| pfx(s)).collect();
        assert_eq!(net.subnets, want, "{file}");
        assert!(
            l.policy.ports.is_empty(),
            "{file}: a template makes no endpoint"
        );
        assert_eq!(
            template(&l, &format!("network {name:?}")),
            (acls, nats, routes),
            "{file}"
        );
    }
}

#[test]
fn cni_configurations_without_policies_and_hns_networks() {
    let (file, text) = ("wcn_nat.json", wild("wcn_nat.json"));
    let l = ok(&[(file, &text)]);
    let n = l.policy.network("natNetwork").unwrap();
    assert_eq!(
        (n.driver, n.subnets.clone()),
        (Driver::Nat, vec![pfx("192.168.100.0/24")])
    );
    assert_eq!(n.gateway, Some(ip("192.168.100.1")));

    let (file, text) = ("sdn_wincni_trans.json", wild("sdn_wincni_trans.json"));
    let l = ok(&[(file, &text)]);
    let n = l.policy.network("transparent").unwrap();
    assert_eq!(
        (n.driver, n.gateway),
        (Driver::Transparent, Some(ip("192.168.100.1")))
    );
    // wincni.exe attaches to an existing network; its driver came from the name.
    assert!(warnings(&l).contains("sdn_wincni_trans.json:3:10: CNI configuration \"transparent\": warning: driver transparent is taken from the network's name"), "{}", warnings(&l));

    let (file, text) = (
        "sdn_helper_overlay_external_network.json",
        wild("sdn_helper_overlay_external_network.json"),
    );
    let l = ok(&[(file, &text)]);
    let n = l.policy.network("External").unwrap();
    assert_eq!((n.driver, n.vni), (Driver::Overlay, Some(9999)));
    assert_eq!(
        (n.subnets.clone(), n.gateway),
        (vec![pfx("192.168.255.0/30")], Some(ip("192.168.255.1")))
    );
    assert!(l.warnings.is_empty());
}

#[test]
fn calico_static_rules_are_acls_every_endpoint_gets() {
    let text = wild("calico_felix_static_rules.json");
    let alone = ok(&[("calico.json", &text)]);
    assert_eq!(template(&alone, "host"), (2, 0, 0));
    let l = ok(&[
        ("host.toml", &host("cbr0", "l2bridge")),
        ("calico.json", &text),
    ]);
    let acl = layer(&l.policy, "pod", "acl");
    // Numeric Protocol (6, 17), ids as Calico writes them (`ID`, `Id`).
    let out = &acl.groups[0].rules[0];
    assert_eq!(
        (out.id.as_str(), out.action.clone()),
        ("block-server", Action::Block)
    );
    assert_eq!(out.conditions.protocol, vec![6]);
    assert_eq!(out.conditions.dst_ip, vec![pfx("10.0.0.1/32")]);
    let inb = &acl.groups[1].rules[0];
    assert_eq!(
        (inb.id.as_str(), inb.conditions.protocol.clone()),
        ("block-client", vec![17])
    );
    assert_eq!(inb.priority, 300);
}

#[test]
fn the_dual_stack_template_is_refused_until_filled_in_then_understood() {
    let text = wild("wcn_l2bridge_dualstack_template.json");
    let errors = refused(&[("t.json", &text)]);
    for p in [
        "{{NAME}}",
        "{{TYPE}}",
        "{{DNSSERVER}}",
        "{{LOCAL_ENDPOINT}}",
        "{{INFRA_PREFIX_IPV6}}",
    ] {
        assert!(
            errors.contains(&format!(
                "template: template placeholder `{p}` is not filled in"
            )),
            "{errors}"
        );
    }
    assert!(errors.starts_with("t.json:3:13: template:"), "{errors}");
    let filled = fill_template(&text);
    let l = ok(&[
        ("host.toml", &host("dual", "l2bridge")),
        ("t.json", &filled),
    ]);
    assert_eq!(template(&l, "network \"dual\""), (8, 2, 0));
    let nat = layer(&l.policy, "pod", "nat");
    let ids: Vec<&str> = nat.groups[0].rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "exceptions-ipv4",
            "outbound-nat-ipv4",
            "exceptions-ipv6",
            "outbound-nat-ipv6"
        ]
    );
    // No VirtualIP: the host's address of each family.
    assert_eq!(
        nat.groups[0].rules[1].action,
        Action::Snat {
            ip: ip("198.19.0.10"),
            ports: policy::NAT_PORTS
        }
    );
    assert_eq!(
        nat.groups[0].rules[3].action,
        Action::Snat {
            ip: ip("2001:db8:ff::10"),
            ports: policy::NAT_PORTS
        }
    );
}

/// What the script that ships the template fills in, with test addresses.
pub fn fill_template(text: &str) -> String {
    text.replace("{{NAME}}", "dual")
        .replace("{{TYPE}}", "sdnbridge")
        .replace("{{DNSSERVER}}", "198.19.0.53")
        .replace("{{LOCAL_ENDPOINT_IPV6}}", "2001:db8:ff::10")
        .replace("{{LOCAL_ENDPOINT}}", "198.19.0.10")
        .replace("{{INFRA_PREFIX_IPV6}}", "2001:db8:ee::/48")
        .replace("{{INFRA_PREFIX}}", "198.19.200.0/24")
}

#[test]
fn the_elb_policy_list_needs_the_endpoint_it_references() {
    let text = wild("sdn_hns_psm1_elb_policylist.json");
    let errors = refused(&[("elb.json", &text)]);
    assert!(
        errors.contains("elb.json:3:9: policy list #1: endpoint /endpoints/5e1b9f0a-3c1d-4f55-9a2e-0c7b1d2e3f40 is not among the files given"),
        "{errors}"
    );
    let backend = backend_endpoint(&text);
    let l = ok(&[
        ("host.toml", &host("l2", "l2bridge")),
        ("ep.json", &backend),
        ("elb.json", &text),
    ]);
    let lb = &l.policy.load_balancers[0];
    assert_eq!((lb.vip, lb.port, lb.protocol), (ip("10.96.0.20"), 8080, 6));
    assert_eq!(
        lb.lb.backends,
        vec![strata_rules::model::Backend {
            ip: ip("198.18.1.20"),
            port: 80
        }]
    );
    assert_eq!(layer_names(&l.policy, "pod"), ["acl", "lb"]);
    let w = warnings(&l);
    assert!(w.contains("elb.json:6:9: policy list #1 ELB #1: warning: connections that local endpoints open to the VIP are balanced; connections arriving from outside the host are not"), "{w}");
}

/// A v1 HNSEndpoint with the GUID the shared policy list references (read from it).
pub fn backend_endpoint(policy_list: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(policy_list).unwrap();
    let guid = v["References"][0]
        .as_str()
        .unwrap()
        .trim_start_matches("/endpoints/");
    format!(
        r#"{{"ID": "{guid}", "Name": "web", "VirtualNetworkName": "l2",
            "IPAddress": "198.18.1.20", "MacAddress": "00-15-5D-01-01-14"}}"#
    )
}

#[test]
fn cni_templates_instantiate_on_the_endpoints_of_their_network() {
    let text = wild("wcn_l2bridge_dualstack_hostlocal.json");
    let l = ok(&[
        ("host.toml", &host("winl2bridge", "l2bridge")),
        ("cni.json", &text),
    ]);
    let w = warnings(&l);
    // The network exists: the plugin attaches to it as it is.
    assert!(w.contains("cni.json:20:31: CNI configuration \"winl2bridge\": warning: ipam subnets 192.168.1.0/24, fd00::100/120 are not used"), "{w}");
    assert_eq!(layer_names(&l.policy, "pod"), ["acl", "nat", "route"]);
    let rules = &layer(&l.policy, "pod", "nat").groups[0].rules;
    // IPv4: no VirtualIP, so the host's address; IPv6: its VirtualIP, to its Destinations.
    assert_eq!(
        rules[1].action,
        Action::Snat {
            ip: ip("198.19.0.10"),
            ports: policy::NAT_PORTS
        }
    );
    assert_eq!(
        rules[0].conditions.dst_ip,
        [
            pfx("192.168.0.0/16"),
            pfx("11.0.0.0/8"),
            pfx("10.124.24.0/23"),
            pfx("198.18.1.0/24")
        ]
    );
    assert_eq!(
        rules[3].action,
        Action::Snat {
            ip: ip("fc00::123"),
            ports: policy::NAT_PORTS
        }
    );
    assert_eq!(
        rules[3].conditions.dst_ip,
        [pfx("fd01::192/128"), pfx("fd01::193/128")]
    );
    assert_eq!(rules[3].conditions.src_ip, [pfx("::/0")]);
    let routes = &layer(&l.policy, "pod", "route").groups[0].rules;
    assert_eq!(routes[0].conditions.dst_ip, [pfx("11.0.0.0/8")]);
    let host_mac: Mac = "02:00:00:00:00:01".parse().unwrap();
    assert_eq!(
        routes[0].action,
        Action::SetMac {
            src: None,
            dst: Some(host_mac)
        }
    );
    // The network's own subnets stay bridged, longest prefix first.
    assert_eq!(routes[2].id, "subnet1");
    assert!(routes[2].priority < routes[0].priority);
}

#[test]
fn templates_need_the_host_address_once_endpoints_use_them() {
    let text = wild("sdn_flannel_l2bridge_cni.json");
    let host_doc =
        host("cbr0", "l2bridge").replace("addresses = [\"198.19.0.10\", \"2001:db8:ff::10\"]", "");
    let errors = refused(&[("host.toml", &host_doc), ("cni.json", &text)]);
    assert!(
        errors.contains("cni.json:18:53: network \"cbr0\" template outbound_nat #1: an OutBoundNAT without a vip translates to the host's IPv4 address, and no host document gives one"),
        "{errors}"
    );
    // Alone, the template is only waiting for endpoints: a warning says what they need.
    let l = ok(&[("cni.json", &text)]);
    assert!(warnings(&l).contains("cni.json:18:53: network \"cbr0\" template outbound_nat #1: warning: endpoints will be translated to the host's IPv4 address"), "{}", warnings(&l));
}

#[test]
fn a_plugin_of_another_driver_than_its_network_is_refused() {
    let text = wild("sdn_flannel_overlay_cni.json");
    let errors = refused(&[
        ("host.toml", &host("vxlan0", "l2bridge")),
        ("cni.json", &text),
    ]);
    assert!(errors.contains("cni.json:6:31: CNI configuration \"vxlan0\": plugin win-overlay makes overlay networks, but network \"vxlan0\" is l2bridge"), "{errors}");
}

// ---- v1 and v2 objects, linked across files ----

const V2_NETWORK: &str = r#"{
  "ID": "3F0A4C2E-1B2D-4E5F-8A9B-0C1D2E3F4A5B",
  "Name": "ov2",
  "Type": "Overlay",
  "SchemaVersion": {"Major": 2, "Minor": 0},
  "Ipams": [{"Type": "Static", "Subnets": [{
      "IpAddressPrefix": "198.18.4.0/24",
      "Routes": [{"NextHop": "198.18.4.1", "DestinationPrefix": "0.0.0.0/0"}],
      "Policies": [{"Type": "VSID", "Settings": {"IsolationId": 5001}}]}]}],
  "Policies": [{"Type": "NetAdapterName", "Settings": {"NetworkAdapterName": "Ethernet"}}],
  "Dns": {"ServerList": ["198.19.0.53"]}
}"#;

const V2_ENDPOINTS: &str = r#"[
  {"ID": "aa000000-0000-0000-0000-000000000001", "HostComputeNetwork": "3f0a4c2e-1b2d-4e5f-8a9b-0c1d2e3f4a5b",
   "SchemaVersion": {"Major": 2, "Minor": 0},
   "IpConfigurations": [{"IpAddress": "198.18.4.10", "PrefixLength": 24}],
   "Policies": [{"Type": "ACL", "Settings": {"Action": "Block", "Direction": "Out", "Protocols": "256",
                 "RemoteAddresses": "198.19.7.0/24", "Priority": 100}},
                {"Type": "QOS", "Settings": {"MaximumOutgoingBandwidthInBytes": 1000000}}]},
  {"ID": "aa000000-0000-0000-0000-000000000002", "HostComputeNetwork": "3F0A4C2E-1B2D-4E5F-8A9B-0C1D2E3F4A5B",
   "Flags": 1, "MacAddress": "02-11-C6-12-05-0B",
   "IpConfigurations": [{"IpAddress": "198.18.5.11"}],
   "Policies": [{"Type": "ProviderAddress", "Settings": {"ProviderAddress": "198.19.0.20"}}]}
]"#;

#[test]
fn v2_network_and_endpoints_link_by_guid() {
    let l = ok(&[
        ("host.toml", "[host]\naddresses = [\"198.19.0.10\"]\n"),
        ("net.json", V2_NETWORK),
        ("eps.json", V2_ENDPOINTS),
    ]);
    let n = l.policy.network("ov2").unwrap();
    assert_eq!(
        (n.driver, n.vni, n.gateway),
        (Driver::Overlay, Some(5001), Some(ip("198.18.4.1")))
    );
    // No name: the GUID names the port; no MAC: 02:11 and the IPv4 address.
    let id = "aa000000-0000-0000-0000-000000000001";
    let port = l.policy.port(id).expect("the endpoint named by its GUID");
    assert_eq!(port.mac, "02:11:c6:12:04:0a".parse().unwrap());
    // Protocols 256 is HNS's "any".
    let rule = &layer(&l.policy, id, "acl").groups[0].rules[0];
    assert!(rule.conditions.protocol.is_empty());
    // The remote endpoint is no port: its address is encapsulated to its host.
    assert_eq!(l.policy.ports.len(), 1);
    assert_eq!(
        n.remote_routes,
        [RemoteRoute {
            prefix: pfx("198.18.5.11/32"),
            provider_address: ip("198.19.0.20"),
            mac: Some("02:11:c6:12:05:0b".parse().unwrap())
        }]
    );
    let w = warnings(&l);
    for expected in [
        "net.json:10:16: network \"ov2\": warning: NetAdapterName policy is not used",
        "net.json:11:3: network \"ov2\": warning: `Dns` is not used",
        "eps.json:7:17: endpoint aa000000-0000-0000-0000-000000000001: warning: QOS policy is not applied: Strata does not cap bandwidth (1000000 bytes/s)",
    ] {
        assert!(w.contains(expected), "missing {expected:?} in\n{w}");
    }
}

#[test]
fn v1_endpoints_link_by_virtual_network_guid_and_remote_ones_stay_remote() {
    let net = r#"{"ID": "11111111-2222-3333-4444-555555555555", "Name": "vxlan", "Type": "Overlay",
       "NetworkAdapterName": "Ethernet", "DNSServerList": "198.19.0.53",
       "Subnets": [{"AddressPrefix": "198.18.6.0/24", "GatewayAddress": "198.18.6.1",
                    "Policies": [{"Type": "VSID", "VSID": 4097}]}]}"#;
    let eps = r#"[
      {"Name": "local", "VirtualNetwork": "{11111111-2222-3333-4444-555555555555}",
       "IPAddress": "198.18.6.10", "MacAddress": "00-15-5D-06-06-0A", "DNSServerList": "198.19.0.53"},
      {"Name": "far", "VirtualNetwork": "11111111-2222-3333-4444-555555555555", "IsRemoteEndpoint": true,
       "IPAddress": "198.18.6.20", "MacAddress": "00-15-5D-06-06-14",
       "Policies": [{"Type": "PA", "PA": "198.19.0.30"}]}
    ]"#;
    let l = ok(&[
        ("h.toml", "[host]\naddresses = [\"198.19.0.10\"]\n"),
        ("n.json", net),
        ("e.json", eps),
    ]);
    assert_eq!(
        l.policy
            .ports
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["local"]
    );
    let routes = &l.policy.network("vxlan").unwrap().remote_routes;
    assert_eq!(routes[0].prefix, pfx("198.18.6.20/32"));
    assert_eq!(routes[0].provider_address, ip("198.19.0.30"));
    let w = warnings(&l);
    assert!(w.contains("n.json:2:8: network \"vxlan\": warning: `NetworkAdapterName` is not used: the uplink's interface is [host] interface"), "{w}");
    assert!(
        w.contains("n.json:2:42: network \"vxlan\": warning: `DNSServerList` is not used"),
        "{w}"
    );
    assert!(
        w.contains("e.json:3:71: endpoint \"local\": warning: `DNSServerList` is not used"),
        "{w}"
    );
    // A GUID that no file defines is an error naming the endpoint.
    let errors = refused(&[("e.json", eps)]);
    assert!(errors.contains("e.json:2:43: endpoint \"local\": network {11111111-2222-3333-4444-555555555555} is not among the files given"), "{errors}");
    // An overlay remote endpoint without its provider address cannot be reached.
    let no_pa = eps.replace(
        r#""Policies": [{"Type": "PA", "PA": "198.19.0.30"}]"#,
        r#""Policies": []"#,
    );
    let errors = refused(&[("n.json", net), ("e.json", &no_pa)]);
    assert!(errors.contains("remote_endpoint \"far\": a remote endpoint of an overlay network needs its host's provider address"), "{errors}");
}

#[test]
fn v2_load_balancer_flags_and_distribution() {
    let eps = r#"[{"ID": "b1", "Name": "b1", "HostComputeNetwork": "n1", "IpConfigurations": [{"IpAddress": "198.18.7.11"}]},
                  {"ID": "b2", "Name": "b2", "HostComputeNetwork": "n1", "IpConfigurations": [{"IpAddress": "198.18.7.12"}]}]"#;
    let net = r#"{"ID": "n1", "Name": "l2", "Type": "L2Bridge", "Ipams": [{"Subnets": [{"IpAddressPrefix": "198.18.7.0/24"}]}]}"#;
    let lb = r#"{"ID": "svc", "HostComputeEndpoints": ["b1", "B2"], "FrontendVIPs": ["198.18.100.7"], "SourceVIP": "198.18.7.2",
                 "PortMappings": [{"Protocol": 17, "InternalPort": 5353, "ExternalPort": 53, "DistributionType": 2, "Flags": 1}],
                 "SchemaVersion": {"Major": 2, "Minor": 0}}"#;
    let l = ok(&[("net.json", net), ("eps.json", eps), ("lb.json", lb)]);
    let p = &l.policy.load_balancers[0];
    assert_eq!((p.lb.name.as_str(), p.protocol, p.port), ("svc", 17, 53));
    assert_eq!(p.lb.distribution, Distribution::SourceIp);
    assert_eq!(p.lb.backends.len(), 2);
    // ILB (Flags 1): no warning about outside traffic; SourceVIP is named.
    let w = warnings(&l);
    assert!(!w.contains("arriving from outside"), "{w}");
    assert!(
        w.contains("lb.json:1:100: load balancer svc: warning: `SourceVIP` is not used"),
        "{w}"
    );
    let dsr = lb.replace("\"SchemaVersion\"", "\"Flags\": 1, \"SchemaVersion\"");
    let errors = refused(&[("net.json", net), ("eps.json", eps), ("lb.json", &dsr)]);
    assert!(
        errors.contains("load balancer svc: Flags 1 (EnableDirectServerReturn)"),
        "{errors}"
    );
}

#[test]
fn policies_strata_refuses_say_why() {
    let ep = |policy: &str| {
        format!(
            r#"{{"Host": {{"IPAddresses": ["198.19.0.10"]}},
  "Networks": [{{"Name": "l2", "Type": "L2Bridge", "Subnets": ["198.18.1.0/24"]}}],
  "Endpoints": [{{"Name": "web", "VirtualNetworkName": "l2", "IPAddress": "198.18.1.10",
    "Policies": [{policy}]}}]}}"#
        )
    };
    let cases = [
        (
            r#"{"Type": "TierAcl", "Settings": {}}"#,
            "TierAcl policy is not supported: Strata has one ACL layer per endpoint",
        ),
        (
            r#"{"Type": "L4WFPPROXY", "Settings": {"Port": "15001"}}"#,
            "L4WFPPROXY policy is not supported",
        ),
        (
            r#"{"Type": "SDNRoute", "Settings": {"DestinationPrefix": "198.19.5.0/24", "NextHop": "198.18.1.1"}}"#,
            "a route without NeedEncap is a route inside the container",
        ),
        (
            r#"{"Type": "ACL", "Settings": {"Action": "Allow", "Direction": "In", "ServiceName": "dns"}}"#,
            "ServiceName: a Windows Firewall rule for one Windows service",
        ),
        (
            r#"{"Type": "OutBoundNAT", "Settings": {"Exceptions": ["198.19.0.0/16", "2001:db8::/32"]}}"#,
            "these prefixes mix IPv4 and IPv6",
        ),
        (
            r#"{"Type": "Bogus"}"#,
            "policy type `Bogus` is not supported (supported: ACL",
        ),
    ];
    for (policy, message) in cases {
        let errors = refused(&[("e.json", &ep(policy))]);
        let at = errors
            .lines()
            .find(|l| l.contains(message))
            .unwrap_or_else(|| panic!("{policy}: {errors}"));
        assert!(
            at.starts_with("e.json:4:") && at.contains(": endpoint \"web\""),
            "{policy}: {at}"
        );
    }
    // Two OutBoundNATs of one family: the second would silently replace the first.
    let two = r#"{"Type": "OutBoundNAT", "Settings": {"Exceptions": ["198.19.0.0/16"]}},
                 {"Type": "OutBoundNAT", "Settings": {"VirtualIP": "198.19.0.11"}}"#;
    let errors = refused(&[("e.json", &ep(two))]);
    assert!(errors.contains("e.json:5:18: endpoint \"web\": a second IPv4 OutBoundNAT (the first is outbound_nat #1, at line 4)"), "{errors}");
}

#[test]
fn nothing_recognised_is_an_error_never_an_empty_policy() {
    let errors = refused(&[("x.json", r#"{"Foo": 1, "Bar": [2]}"#)]);
    assert!(
        errors.starts_with(
            "x.json:1:1: JSON: not an HNS or CNI object Strata knows (fields: Foo, Bar)"
        ),
        "{errors}"
    );
    let errors = refused(&[(
        "p.json",
        r#"{"Type": "ACL", "Action": "Block", "Direction": "Out"}"#,
    )]);
    assert!(
        errors.contains("a policy alone has no endpoint to apply to"),
        "{errors}"
    );
    assert!(refused(&[("e.json", "[]")]).contains("not an empty array"));
}

#[test]
fn network_level_acls_apply_to_every_endpoint_of_the_network() {
    let doc = r#"[
  {"Name": "l2", "Type": "L2Bridge", "Subnets": [{"AddressPrefix": "198.18.1.0/24"}],
   "Policies": [{"Type": "ACL", "Settings": {"Id": "no-telnet", "Action": "Block", "Direction": "Out",
                 "Protocols": "6", "RemotePorts": "23", "Priority": 10}}]},
  {"Name": "a", "VirtualNetworkName": "l2", "IPAddress": "198.18.1.10"},
  {"Name": "b", "VirtualNetworkName": "l2", "IPAddress": "198.18.1.11",
   "Policies": [{"Type": "ACL", "Settings": {"Id": "no-telnet", "Action": "Allow", "Direction": "In"}}]}
]"#;
    let errors = refused(&[("n.json", doc)]);
    // Ids are unique across an endpoint's template and its own ACLs.
    assert!(errors.contains("n.json:7:52: endpoint \"b\" acl #1 \"no-telnet\": duplicate ACL id `no-telnet` (the template of network \"l2\" has it)"), "{errors}");
    let fixed = doc.replace(
        "\"Id\": \"no-telnet\", \"Action\": \"Allow\"",
        "\"Action\": \"Allow\"",
    );
    let l = ok(&[("n.json", &fixed)]);
    for port in ["a", "b"] {
        assert_eq!(
            layer(&l.policy, port, "acl").groups[0].rules[0].id,
            "no-telnet"
        );
    }
}

// ---- round trip: import-hns output compiles to the same policy ----

fn round_trip(files: &[(&str, &str)]) {
    let sources: Vec<Source> = files.iter().map(|(n, t)| Source::new(n, t)).collect();
    let direct = policy::load_sources(&sources).unwrap_or_else(|e| panic!("{e}"));
    let (toml, _) = policy::import_hns(&sources).unwrap_or_else(|e| panic!("{e}"));
    let again = policy::load(&toml, "imported.toml").unwrap_or_else(|e| panic!("{e}\n{toml}"));
    assert_eq!(again, direct.policy, "{toml}");
}

#[test]
fn import_hns_round_trips_every_understood_document() {
    let mut visited = 0;
    for entry in std::fs::read_dir(WILD).expect("../shared/hns-wild/orig") {
        let name = entry.unwrap().file_name().into_string().unwrap();
        visited += 1;
        let text = wild(&name);
        if name == "wcn_l2bridge_dualstack_template.json" {
            round_trip(&[
                ("host.toml", &host("dual", "l2bridge")),
                (&name, &fill_template(&text)),
            ]);
        } else if name == "sdn_hns_psm1_elb_policylist.json" {
            let ep = backend_endpoint(&text);
            round_trip(&[
                ("host.toml", &host("l2", "l2bridge")),
                ("ep.json", &ep),
                (&name, &text),
            ]);
        } else {
            round_trip(&[(&name, &text)]);
            let l = ok(&[(&name, &text)]);
            // A CNI configuration attaches to the host document's network of its name.
            if let Some(n) = l
                .policy
                .networks
                .first()
                .filter(|_| !name.starts_with("sdn_helper"))
            {
                let drv = n.driver.as_str();
                round_trip(&[("host.toml", &host(&n.name, drv)), (&name, &text)]);
            }
        }
    }
    // An empty or missing corpus would check nothing above.
    assert_eq!(visited, 18, "the 18 documents of ../shared/hns-wild/orig");
    round_trip(&[
        ("host.toml", "[host]\naddresses = [\"198.19.0.10\"]\n"),
        ("net.json", V2_NETWORK),
        ("eps.json", V2_ENDPOINTS),
    ]);
    round_trip(&[(
        "examples/policy.hns.json",
        include_str!("../../examples/policy.hns.json"),
    )]);
    round_trip(&[(
        "examples/policy.toml",
        include_str!("../../examples/policy.toml"),
    )]);
    round_trip(&[("examples/lb.toml", include_str!("../../examples/lb.toml"))]);
}

#[test]
fn import_hns_writes_where_each_object_came_from() {
    let text = wild("sdn_flannel_l2bridge_cni.json");
    let (toml, warnings) = policy::import_hns(&[Source::new("cni.json", &text)]).unwrap();
    assert!(toml.contains("# from cni.json:18\n[[network.template.outbound_nat]]\nexceptions = [\"10.244.0.0/16\", \"10.96.0.0/12\", \"10.127.130.0/24\"]\n"), "{toml}");
    assert!(
        toml.contains("[[network]]\nname = \"cbr0\"\ndriver = \"l2bridge\"\nsubnets = []\n"),
        "{toml}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.message.contains("`dns` is not used"))
    );
}

// ---- issue 8: what a policy may not hold ----

#[test]
fn control_characters_in_names_are_refused() {
    let toml = "[[network]]\nname = \"l2\\u001b[31m\"\ndriver = \"l2bridge\"\nsubnets = [\"198.18.1.0/24\"]\n";
    let errors = refused(&[("c.toml", toml)]);
    assert!(
        errors.contains(
            "c.toml:2:8: network \"l2\\u{1b}[31m\": name contains the control character U+001B"
        ),
        "{errors}"
    );
    let json = r#"{"Name": "web\r", "VirtualNetworkName": "l2", "IPAddress": "198.18.1.10"}"#;
    let l2 = "[[network]]\nname = \"l2\"\ndriver = \"l2bridge\"\nsubnets = [\"198.18.1.0/24\"]\n";
    let errors = refused(&[("n.toml", l2), ("e.json", json)]);
    assert!(
        errors.contains(
            "e.json:1:10: endpoint \"web\\r\": name contains the control character U+000D"
        ),
        "{errors}"
    );
}

#[test]
fn ipv4_mapped_prefixes_in_acls_are_refused() {
    let toml = "[host]\naddresses = [\"198.19.0.10\"]\n[[network]]\nname = \"l2\"\ndriver = \"l2bridge\"\nsubnets = [\"198.18.1.0/24\"]\n\
                [[endpoint]]\nname = \"web\"\nnetwork = \"l2\"\nmac = \"00:15:5d:01:01:0a\"\nipv4 = \"198.18.1.10\"\n\
                [[endpoint.acl]]\naction = \"block\"\ndirection = \"out\"\nremote_addresses = [\"::ffff:198.19.5.0/120\"]\n";
    let errors = refused(&[("m.toml", toml)]);
    assert_eq!(
        errors,
        "m.toml:15:21: endpoint \"web\" acl #1: remote_addresses: `::ffff:198.19.5.0/120` is an IPv4-mapped IPv6 prefix, which never matches: IPv4 packets carry IPv4 addresses; write 198.19.5.0/24"
    );
}

#[test]
fn invalid_utf8_is_reported_at_its_line_and_column() {
    let bytes = b"[host]\naddresses = [\"198.19.0.10\"]\nname = \"up\xfflink\"\n";
    let e = policy::decode(bytes, "u.toml").unwrap_err().to_string();
    assert_eq!(
        e,
        "u.toml:3:11: file: invalid UTF-8 (byte 0xff): a policy file is UTF-8 text"
    );
    assert!(policy::decode("[host]\n# é\n".as_bytes(), "ok.toml").is_ok());
}

#[test]
fn oversized_policies_are_refused_unread() {
    let big = " ".repeat(policy::MAX_POLICY_BYTES + 1);
    let errors = refused(&[("big.toml", &big)]);
    assert_eq!(
        errors,
        "big.toml:1:1: file: the policy is larger than 16 MiB: refused unread"
    );
    // The budget is for all files together.
    let half = " ".repeat(policy::MAX_POLICY_BYTES / 2 + 1);
    assert!(refused(&[("a.toml", &half), ("b.toml", &half)]).contains("larger than 16 MiB"));
}

#[test]
fn endpoints_compile_in_linear_time_structures() {
    // Not a timing test: 20k endpoints must compile, each error still at its own line.
    let mut toml = String::from(
        "[[network]]\nname = \"l2\"\ndriver = \"l2bridge\"\nsubnets = [\"198.18.0.0/15\"]\n",
    );
    for i in 1..=20_000u32 {
        toml += &format!(
            "[[endpoint]]\nname = \"e{i}\"\nnetwork = \"l2\"\nmac = \"02:00:00:01:{:02x}:{:02x}\"\nipv4 = \"198.18.{}.{}\"\n",
            i >> 8,
            i & 255,
            i >> 8,
            i & 255
        );
    }
    toml += "[[endpoint]]\nname = \"e1\"\nnetwork = \"l2\"\nmac = \"02:00:00:02:00:01\"\nipv4 = \"198.19.0.1\"\n";
    let errors = refused(&[("big.toml", &toml)]);
    assert_eq!(
        errors,
        "big.toml:100006:8: endpoint \"e1\": duplicate endpoint name: endpoint \"e1\" at line 5 has it"
    );
}

// ---- the TOML forms of the HNS features ----

#[test]
fn toml_forms_of_templates_remote_endpoints_outbound_nats_and_routes() {
    let text = r#"
[host]
addresses = ["198.19.0.10", "2001:db8:ff::10"]

[template]
[[template.acl]]
action = "block"
direction = "out"
remote_addresses = ["198.19.255.254"]

[[network]]
name = "ov"
driver = "overlay"
subnets = ["198.18.4.0/24"]
vni = 4096
[network.template]
[[network.template.route]]
prefix = "198.18.96.0/20"

[[endpoint]]
name = "a"
network = "ov"
mac = "00:15:5d:04:04:0a"
ipv4 = "198.18.4.10"
[[endpoint.outbound_nat]]
exceptions = ["198.18.0.0/15"]
[[endpoint.outbound_nat]]
vip = "2001:db8:ff::10"
[[endpoint.route]]
prefix = "198.19.0.10/32"

[[remote_endpoint]]
name = "far"
network = "ov"
ipv4 = "198.18.5.20"
provider_address = "198.19.0.20"
"#;
    let l = ok(&[("p.toml", text)]);
    let p = &l.policy;
    assert_eq!(layer_names(p, "a"), ["acl", "nat", "route"]);
    assert_eq!(layer(p, "a", "acl").groups[0].rules[0].id, "host-acl1");
    let routes: Vec<&str> = layer(p, "a", "route").groups[0]
        .rules
        .iter()
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(routes, ["route1", "route2", "subnet1"]);
    assert_eq!(
        p.network("ov").unwrap().remote_routes[0].prefix,
        pfx("198.18.5.20/32")
    );

    let bad = text
        .replace(
            "prefix = \"198.19.0.10/32\"",
            "prefix = \"198.19.0.10/32\"\nvia = 1",
        )
        .replace("ipv4 = \"198.18.5.20\"", "ipv4 = \"198.18.4.10\"")
        .replace("vip = \"2001:db8:ff::10\"", "vip = \"198.19.0.11\"");
    let errors = refused(&[("p.toml", &bad)]);
    for expected in [
        "p.toml:27:1: endpoint \"a\": a second IPv4 OutBoundNAT (the first is outbound_nat #1, at line 25)",
        "p.toml:31:1: endpoint \"a\" route #1: unknown field `via`",
        "p.toml:36:8: remote_endpoint \"far\": duplicate IP 198.18.4.10: endpoint \"a\" at line 20 has it",
    ] {
        assert!(
            errors.contains(expected),
            "missing {expected:?} in\n{errors}"
        );
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]
    /// No document a user hands over, however broken, makes the reader panic.
    #[test]
    fn broken_hns_documents_never_panic(doc in 0usize..18, pos in 0usize..5000,
                                        junk in "[\\[\\]{}\":,a-zA-Z0-9./ \\\\-]{0,8}", cut in 0usize..20) {
        let mut names: Vec<String> = std::fs::read_dir(WILD).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        let name = &names[doc % names.len()];
        let mut text = wild(name);
        let at = pos.min(text.len());
        let end = (at + cut).min(text.len());
        if text.is_char_boundary(at) && text.is_char_boundary(end) {
            text.replace_range(at..end, &junk);
        }
        let _ = load(&[("host.toml", &host("cbr0", "l2bridge")), (name, &text)]);
        let _ = policy::import_hns(&[Source::new(name, &text)]);
    }
}

#[test]
fn an_outbound_nat_template_on_a_nat_network_is_refused() {
    // WinNAT translates already: the template's OutBoundNAT would silently do nothing.
    let conf = r#"{"cniVersion": "0.2.0", "name": "natNetwork", "type": "nat",
      "ipam": {"subnet": "198.18.1.0/24"},
      "AdditionalArgs": [{"Name": "EndpointPolicy", "Value": {"Type": "OutBoundNAT", "Settings": {"Exceptions": ["198.18.0.0/15"]}}}]}"#;
    let errors = refused(&[
        ("host.toml", &host("natNetwork", "nat")),
        ("nat.conf", conf),
    ]);
    assert!(
        errors.contains("endpoint \"pod\": the template of network \"natNetwork\" has an OutBoundNAT: OutBoundNAT is for overlay, l2bridge and l2tunnel networks; this endpoint's is nat"),
        "{errors}"
    );
}
