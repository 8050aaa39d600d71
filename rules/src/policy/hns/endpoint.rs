//! Endpoints: v1 HNSEndpoint (`VirtualNetwork` GUID or `VirtualNetworkName`,
//! `IPAddress`, `IPv6Address`, `IsRemoteEndpoint`) and v2 HostComputeEndpoint
//! (`HostComputeNetwork` GUID, `IpConfigurations`, `Flags` 1 = remote). Name and MAC may
//! be absent: HNS assigns them; `link` does too.

use toml::Spanned;

use super::super::raw;
use super::json::{J, Json, Reader};
use super::policies::{EndpointPolicies, Target, endpoint_policy};
use super::{EpDoc, NetRef};

/// Fields that describe HNS's own state or the container's namespace: read silently.
const INFORMATIONAL: [&str; 13] = [
    "State",
    "SharedContainers",
    "Resources",
    "Version",
    "Health",
    "CreateProcessingStartTime",
    "StartTime",
    "Namespace",
    "HostComputeNamespace",
    "SchemaVersion",
    "PrefixLength",
    "IPv6PrefixLength",
    "Type",
];

const UNUSED: [(&str, &str); 11] = [
    (
        "DNSSuffix",
        "DNS settings are the container's resolver configuration; Strata forwards DNS like any traffic",
    ),
    (
        "DNSServerList",
        "DNS settings are the container's resolver configuration; Strata forwards DNS like any traffic",
    ),
    (
        "DNSDomain",
        "DNS settings are the container's resolver configuration",
    ),
    (
        "Dns",
        "DNS settings are the container's resolver configuration; Strata forwards DNS like any traffic",
    ),
    (
        "EnableInternalDNS",
        "DNS settings are the container's resolver configuration",
    ),
    (
        "GatewayAddress",
        "the container's default gateway is its network's (`gateway`)",
    ),
    (
        "GatewayAddressV6",
        "the container's default gateway is its network's (`gateway`)",
    ),
    (
        "Routes",
        "routes are the container's routing table; Strata switches what it sends",
    ),
    (
        "EnableLowMetric",
        "route metrics are the container's routing table",
    ),
    (
        "EncapOverhead",
        "Strata accounts 50 bytes of encapsulation (70 over IPv6)",
    ),
    ("AdditionalParams", "HNS-specific parameters"),
];

const READ: [&str; 16] = [
    "ID",
    "Name",
    "VirtualNetwork",
    "VirtualNetworkName",
    "HostComputeNetwork",
    "Policies",
    "MacAddress",
    "IPAddress",
    "IPv6Address",
    "IpConfigurations",
    "IsRemoteEndpoint",
    "Flags",
    "Isolation",
    "Interface",
    "DisableICC",
    "Network",
];

/// v2 `IpConfigurations`: one address per family.
fn ip_configurations(r: &mut Reader, e: &Json, object: &str, ep: &mut EpDoc) {
    for c in r.array(e, object, "IpConfigurations") {
        r.only(c, object, &["IpAddress", "PrefixLength"]);
        let Some(ip) = r.required(c, object, "IpAddress") else {
            continue;
        };
        let v4 = !ip.get_ref().contains(':');
        let slot = if v4 { &mut ep.ipv4 } else { &mut ep.ipv6 };
        if slot.is_some() {
            let f = if v4 { "IPv4" } else { "IPv6" };
            r.d.error(
                ip.span(),
                object,
                format!("a second {f} address: Strata gives an endpoint one per family"),
            );
        } else {
            *slot = Some(ip);
        }
    }
}

/// `IsRemoteEndpoint` (v1) or `Flags` bit 1 (v2).
fn remote(r: &mut Reader, e: &Json, object: &str) -> bool {
    let v1 = r
        .bool(e, object, "IsRemoteEndpoint")
        .is_some_and(|b| *b.get_ref());
    let flags = r.int(e, object, "Flags");
    if let Some(f) = &flags
        && f.get_ref() & !1 != 0
    {
        r.d.warning(
            f.span(),
            object,
            "`Flags` other than 1 (remote endpoint) are not used",
        );
    }
    v1 || flags.is_some_and(|f| f.get_ref() & 1 == 1)
}

fn network_ref(r: &mut Reader, e: &Json, object: &str) -> Option<NetRef> {
    if let Some(id) = r.string_any(e, object, &["VirtualNetwork", "HostComputeNetwork"]) {
        return Some(NetRef::Id(id));
    }
    r.string_any(e, object, &["VirtualNetworkName", "Network"])
        .map(NetRef::Name)
}

/// Reads one v1 or v2 endpoint (local or remote).
pub(crate) fn read(r: &mut Reader, e: &Json, index: usize) -> EpDoc {
    let object = match e.get("Name").and_then(Json::as_str) {
        Some(name) => format!("endpoint {name:?}"),
        None => match e.get("ID").and_then(Json::as_str) {
            Some(id) => format!("endpoint {id}"),
            None => format!("endpoint #{}", index + 1),
        },
    };
    let mut ep = EpDoc {
        span: e.span.clone(),
        id: e
            .get("ID")
            .and_then(Json::as_str)
            .map(super::network::normalize_id),
        name: r.string(e, &object, "Name"),
        network: network_ref(r, e, &object),
        mac: r
            .string(e, &object, "MacAddress")
            .filter(|m| !m.get_ref().trim().is_empty()),
        ipv4: r
            .string(e, &object, "IPAddress")
            .filter(|a| !a.get_ref().trim().is_empty()),
        ipv6: r
            .string(e, &object, "IPv6Address")
            .filter(|a| !a.get_ref().trim().is_empty()),
        remote: remote(r, e, &object),
        ..EpDoc::default()
    };
    ip_configurations(r, e, &object, &mut ep);
    if let Some(icc) = e
        .get("DisableICC")
        .filter(|v| matches!(v.value, J::Bool(true)))
    {
        let why = "DisableICC (no traffic between containers of the network) is not supported: write ACLs that block it";
        r.d.error(icc.span.clone(), &object, why);
    }
    let isolations = [
        ("Process", raw::Isolation::Process),
        ("ProcessLegacy", raw::Isolation::ProcessLegacy),
        ("process-legacy", raw::Isolation::ProcessLegacy),
        ("HyperV", raw::Isolation::Hyperv),
    ];
    ep.isolation = r.choice(e, &object, "Isolation", &isolations);
    ep.interface = r.string(e, &object, "Interface").map(Spanned::into_inner);
    let target = if ep.remote {
        Target::RemoteEndpoint
    } else {
        Target::Endpoint
    };
    let mut policies = EndpointPolicies::default();
    for p in r.array(e, &object, "Policies") {
        endpoint_policy(r, p, &object, target, &mut policies);
    }
    ep.policies = policies;
    let known: Vec<&str> = READ.iter().chain(&INFORMATIONAL).copied().collect();
    r.rest(e, &object, &known, &UNUSED);
    ep
}
