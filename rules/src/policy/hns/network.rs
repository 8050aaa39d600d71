//! Networks: v1 HNSNetwork (`Subnets` with `AddressPrefix`, `GatewayAddress`, policies)
//! and v2 HostComputeNetwork (`Ipams` with `Subnets`, their `Routes` — the default
//! route's `NextHop` is the gateway — and policies with `Settings`), and the host
//! document's `Host`.

use toml::Spanned;

use super::super::raw;
use super::super::values::Scalar;
use super::NetDoc;
use super::json::{J, Json, Reader};
use super::policies::network_policy;

/// Fields of networks that describe HNS's own state, not policy: read silently.
const INFORMATIONAL: [&str; 16] = [
    "ID",
    "SchemaVersion",
    "State",
    "Health",
    "Version",
    "Resources",
    "ActivityId",
    "CurrentEndpointCount",
    "TotalEndpoints",
    "Extensions",
    "LayeredOn",
    "IsolateSwitch",
    "Name",
    "Type",
    "Policies",
    "Subnets",
];

const UNUSED: [(&str, &str); 11] = [
    (
        "NetworkAdapterName",
        "the uplink's interface is [host] interface",
    ),
    ("SourceMac", "the uplink's MAC is [host] mac"),
    (
        "MacPools",
        "Strata derives the MAC of an endpoint without one from its address",
    ),
    (
        "MacPool",
        "Strata derives the MAC of an endpoint without one from its address",
    ),
    (
        "DNSSuffix",
        "DNS settings are the containers' resolver configuration; Strata forwards DNS like any traffic",
    ),
    (
        "DNSServerList",
        "DNS settings are the containers' resolver configuration; Strata forwards DNS like any traffic",
    ),
    (
        "DNSServerCompartment",
        "DNS settings are the containers' resolver configuration",
    ),
    (
        "Dns",
        "DNS settings are the containers' resolver configuration; Strata forwards DNS like any traffic",
    ),
    (
        "AutomaticDNS",
        "DNS settings are the containers' resolver configuration",
    ),
    ("ManagementIP", "the host's addresses are [host] addresses"),
    ("Flags", "network flags configure HNS itself"),
];

/// The host document's `Host` (a Strata addition: `Name`, `MacAddress`, `IPAddresses`,
/// `MTU`, `Interface`).
pub(crate) fn host(r: &mut Reader, h: &Json) -> raw::Host {
    let o = "host";
    r.only(
        h,
        o,
        &["Name", "MacAddress", "IPAddresses", "MTU", "Interface"],
    );
    let addresses = r.items(h, o, "IPAddresses").map(|items| {
        let span = items.span();
        items
            .get_ref()
            .iter_with(&span)
            .into_iter()
            .map(|(s, sp)| match s {
                Scalar::Str(s) => Spanned::new(sp, s),
                Scalar::Int(n) => Spanned::new(sp, n.to_string()),
            })
            .collect()
    });
    raw::Host {
        name: r.string(h, o, "Name"),
        mac: r.string(h, o, "MacAddress"),
        addresses: addresses.unwrap_or_default(),
        mtu: r.int(h, o, "MTU"),
        interface: r.string(h, o, "Interface").map(Spanned::into_inner),
    }
}

/// HNS network types and Strata's drivers.
pub(crate) const DRIVERS: [(&str, raw::Driver); 5] = [
    ("NAT", raw::Driver::Nat),
    ("Transparent", raw::Driver::Transparent),
    ("L2Bridge", raw::Driver::L2bridge),
    ("L2Tunnel", raw::Driver::L2tunnel),
    ("Overlay", raw::Driver::Overlay),
];

fn driver(r: &mut Reader, n: &Json, object: &str) -> Option<Spanned<raw::Driver>> {
    let t = n.get("Type")?;
    if let Some(kind) = t.as_str().filter(|k| {
        ["ICS", "Private", "Internal"]
            .iter()
            .any(|x| x.eq_ignore_ascii_case(k))
    }) {
        let msg = format!(
            "network type `{kind}` is not supported (supported: NAT, Transparent, L2Bridge, L2Tunnel, Overlay)"
        );
        r.d.error(t.span.clone(), object, msg);
        return None;
    }
    r.choice(n, object, "Type", &DRIVERS)
}

/// v1 `Subnets`: prefixes, or objects with `AddressPrefix`, `GatewayAddress`, `Policies`.
fn v1_subnets<'j>(
    r: &mut Reader,
    n: &'j Json,
    object: &str,
    net: &mut raw::Network,
    policies: &mut Vec<&'j Json>,
) {
    for s in r.array(n, object, "Subnets") {
        match &s.value {
            J::Str(p) => net
                .subnets
                .get_or_insert_default()
                .push(Spanned::new(s.span.clone(), p.clone())),
            J::Object(_) => {
                r.only(
                    s,
                    object,
                    &[
                        "AddressPrefix",
                        "GatewayAddress",
                        "Policies",
                        "ID",
                        "ObjectType",
                    ],
                );
                if let Some(p) = r.required(s, object, "AddressPrefix") {
                    net.subnets.get_or_insert_default().push(p);
                }
                let gw = r.string(s, object, "GatewayAddress");
                gateway(r, object, net, gw);
                policies.extend(r.array(s, object, "Policies"));
            }
            _ => r.d.error(
                s.span.clone(),
                object,
                "Subnets: expected prefixes or subnet objects",
            ),
        }
    }
}

/// The first gateway given is the network's; Strata keeps one per network.
pub(crate) fn gateway(
    r: &mut Reader,
    object: &str,
    net: &mut raw::Network,
    gw: Option<Spanned<String>>,
) {
    let Some(gw) = gw.filter(|g| !g.get_ref().trim().is_empty()) else {
        return;
    };
    match &net.gateway {
        None => net.gateway = Some(gw),
        Some(first) if first.get_ref() == gw.get_ref() => {}
        Some(first) => {
            let msg = format!(
                "gateway {} is not used: Strata keeps one gateway per network ({})",
                gw.get_ref(),
                first.get_ref()
            );
            r.d.warning(gw.span(), object, msg);
        }
    }
}

/// v2 `Ipams[].Subnets[]`: `IpAddressPrefix`, `Routes` (the default route's `NextHop`
/// is the gateway), `Policies`.
fn v2_ipams<'j>(
    r: &mut Reader,
    n: &'j Json,
    object: &str,
    net: &mut raw::Network,
    policies: &mut Vec<&'j Json>,
) {
    for ipam in r.array(n, object, "Ipams") {
        r.only(ipam, object, &["Type", "Subnets"]);
        for s in r.array(ipam, object, "Subnets") {
            r.only(s, object, &["IpAddressPrefix", "Policies", "Routes"]);
            if let Some(p) = r.required(s, object, "IpAddressPrefix") {
                net.subnets.get_or_insert_default().push(p);
            }
            for route in r.array(s, object, "Routes") {
                r.only(route, object, &["NextHop", "DestinationPrefix", "Metric"]);
                let dst = route
                    .get("DestinationPrefix")
                    .and_then(Json::as_str)
                    .unwrap_or("0.0.0.0/0");
                if matches!(dst, "0.0.0.0/0" | "::/0") {
                    let nh = r.string(route, object, "NextHop");
                    gateway(r, object, net, nh);
                } else {
                    let msg = format!(
                        "route to {dst} is not used: it is the containers' routing table; Strata switches what they send"
                    );
                    r.d.warning(route.span.clone(), object, msg);
                }
            }
            policies.extend(r.array(s, object, "Policies"));
        }
    }
}

/// An empty network named `name`, to be filled in by a reader.
pub(crate) fn empty_network(name: Spanned<String>) -> raw::Network {
    raw::Network {
        name,
        driver: None,
        subnets: None,
        subnet: None,
        gateway: None,
        vlan: None,
        vni: None,
        vxlan_port: None,
        outbound_nat: None,
        remote_subnet_route: Vec::new(),
        template: None,
    }
}

/// Reads one v1 or v2 network.
pub(crate) fn read(r: &mut Reader, n: &Json, index: usize) -> Option<NetDoc> {
    let object = match n.get("Name").and_then(Json::as_str) {
        Some(name) => format!("network {name:?}"),
        None => format!("network #{}", index + 1),
    };
    let name = r.required(n, &object, "Name")?;
    let mut net = empty_network(name);
    net.driver = driver(r, n, &object);
    let mut policies: Vec<&Json> = r.array(n, &object, "Policies").iter().collect();
    v1_subnets(r, n, &object, &mut net, &mut policies);
    v2_ipams(r, n, &object, &mut net, &mut policies);
    // A network without subnets gets them at run time (DHCP, IPAM).
    net.subnets.get_or_insert_default();
    let mut template = raw::Template::default();
    for p in policies {
        network_policy(r, p, &object, &mut net, &mut template);
    }
    if !template.acl.is_empty() || !template.outbound_nat.is_empty() {
        net.template = Some(Spanned::new(n.span.clone(), template));
    }
    let mut known = INFORMATIONAL.to_vec();
    known.push("Ipams");
    r.rest(n, &object, &known, &UNUSED);
    Some(NetDoc {
        id: n.get("ID").and_then(Json::as_str).map(normalize_id),
        network: Spanned::new(n.span.clone(), net),
    })
}

/// GUIDs compare without braces and case: `{5E1B...}` is `5e1b...`.
pub(crate) fn normalize_id(id: &str) -> String {
    id.trim()
        .trim_start_matches("/endpoints/")
        .trim_matches(|c| c == '{' || c == '}')
        .to_ascii_lowercase()
}
