//! HNS policies, v1 (fields flat in the policy) and v2 (under `Settings`): endpoint
//! policies (ACL, PortMapping/NAT, OutBoundNAT, ROUTE/SDNRoute, PA/ProviderAddress, ...)
//! and network policies (VLAN, VSID, VxlanPort, OutBoundNAT, RemoteSubnetRoute, ACL,
//! ...). Each is given its VFP meaning, refused with the reason, or — when Strata has no
//! use for it and ignoring it changes no packet's fate — named in a warning.

use toml::Spanned;

use super::super::raw;
use super::super::values::{self, Items, Scalar};
use super::json::{J, Json, Reader};

/// Endpoint policies as read, for an endpoint or a template.
#[derive(Debug, Default)]
pub(crate) struct EndpointPolicies {
    pub acl: Vec<Spanned<raw::Acl>>,
    pub port_mapping: Vec<Spanned<raw::PortMapping>>,
    pub outbound_nat: Vec<Spanned<raw::EndpointOutboundNat>>,
    pub route: Vec<Spanned<raw::Route>>,
    /// PA / ProviderAddress: where a remote endpoint lives.
    pub provider_address: Option<Spanned<String>>,
}

impl EndpointPolicies {
    pub fn into_template(self) -> raw::Template {
        raw::Template {
            acl: self.acl,
            outbound_nat: self.outbound_nat,
            route: self.route,
        }
    }
}

/// What the policies are read for: port mappings and provider addresses mean different
/// things on a local endpoint, a remote one, and a template of many endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Endpoint,
    RemoteEndpoint,
    Template,
}

/// A policy's type, and where its fields are: under `Settings` (v2) or in it (v1).
pub(crate) fn type_and_settings(p: &Json) -> (String, &Json) {
    let kind = p.get("Type").and_then(Json::as_str).unwrap_or_default();
    (kind.to_ascii_uppercase(), p.get("Settings").unwrap_or(p))
}

const ACL_FIELDS: [&str; 16] = [
    "Id",
    "Action",
    "Direction",
    "Protocol",
    "Protocols",
    "LocalAddresses",
    "RemoteAddresses",
    "LocalPorts",
    "LocalPort",
    "RemotePorts",
    "RemotePort",
    "Priority",
    "RuleType",
    "ServiceName",
    "Type",
    "Settings",
];

/// `Protocol` (one number, as Calico and HNS v1 write it) or `Protocols` (a list); 256 is
/// HNS's "any protocol".
fn acl_protocols(r: &mut Reader, s: &Json, object: &str) -> Option<Spanned<Items>> {
    if s.has("Protocol") && s.has("Protocols") {
        let at = s.get("Protocol").map_or(s.span.clone(), |v| v.span.clone());
        r.d.error(at, object, "give Protocol or Protocols, not both");
    }
    let items = r.items_any(s, object, &["Protocols", "Protocol"])?;
    let any = items
        .get_ref()
        .iter_with(&items.span())
        .iter()
        .any(|(v, _)| values::int_in(v, "", 256, 256).is_ok());
    (!any).then_some(items)
}

/// A port list, from `LocalPorts` (a list) or `LocalPort` (one number).
fn acl_ports(
    r: &mut Reader,
    s: &Json,
    object: &str,
    list: &str,
    one: &str,
) -> Option<Spanned<Items>> {
    if s.has(list) && s.has(one) {
        let at = s.get(one).map_or(s.span.clone(), |v| v.span.clone());
        r.d.error(at, object, format!("give {list} or {one}, not both"));
    }
    r.items_any(s, object, &[list, one]).filter(|i| {
        // v1 writes 0 for "no port".
        !matches!(
            i.get_ref().iter_with(&i.span()).as_slice(),
            [(Scalar::Int(0), _)]
        )
    })
}

/// An ACL (v1, v2, or Calico's rule).
pub(crate) fn acl(r: &mut Reader, p: &Json, s: &Json, object: &str) -> Option<raw::Acl> {
    r.only(s, object, &ACL_FIELDS);
    let action = r.choice(
        s,
        object,
        "Action",
        &[("Allow", raw::Action::Allow), ("Block", raw::Action::Block)],
    );
    let directions = [
        ("In", raw::AclDirection::In),
        ("Out", raw::AclDirection::Out),
    ];
    let direction = r.choice(s, object, "Direction", &directions);
    for key in ["Action", "Direction"] {
        if s.get(key).is_none() {
            r.d.error(p.span.clone(), object, format!("missing field `{key}`"));
        }
    }
    // HNS's RuleType (Host: WFP, Switch: VFP) says where Windows enforces the ACL;
    // Strata enforces every ACL in the switch, on the same packets.
    r.choice(s, object, "RuleType", &[("Switch", ()), ("Host", ())]);
    if let Some(svc) = s.get("ServiceName").filter(|v| v.is_set()) {
        let why = "ServiceName: a Windows Firewall rule for one Windows service; Strata filters \
                   in the switch and cannot tell services apart, so it would apply to all traffic";
        r.d.error(svc.span.clone(), object, why);
    }
    Some(raw::Acl {
        position: 0,
        id: r.string_any(s, object, &["Id", "ID"]),
        action: *action?.get_ref(),
        direction: *direction?.get_ref(),
        protocols: acl_protocols(r, s, object),
        local_addresses: r.items(s, object, "LocalAddresses"),
        remote_addresses: r.items(s, object, "RemoteAddresses"),
        local_ports: acl_ports(r, s, object, "LocalPorts", "LocalPort"),
        remote_ports: acl_ports(r, s, object, "RemotePorts", "RemotePort"),
        priority: r.int(s, object, "Priority"),
    })
}

fn port_mapping(r: &mut Reader, p: &Json, s: &Json, object: &str) -> Option<raw::PortMapping> {
    let fields = [
        "Protocol",
        "InternalPort",
        "ExternalPort",
        "VIP",
        "Flags",
        "Type",
        "Settings",
    ];
    r.only(s, object, &fields);
    let protocols = [
        ("TCP", raw::MappingProtocol::Tcp),
        ("UDP", raw::MappingProtocol::Udp),
        ("6", raw::MappingProtocol::Tcp),
        ("17", raw::MappingProtocol::Udp),
    ];
    let protocol = match s.get("Protocol").map(|v| &v.value) {
        None => None,
        Some(J::Int(6)) => Some(raw::MappingProtocol::Tcp),
        Some(J::Int(17)) => Some(raw::MappingProtocol::Udp),
        Some(_) => r
            .choice(s, object, "Protocol", &protocols)
            .map(Spanned::into_inner),
    };
    if let Some(vip) = s.get("VIP").filter(|v| v.is_set()) {
        let why =
            "`VIP` is not used: Strata publishes a mapped port on every IPv4 address of the host";
        r.d.warning(vip.span.clone(), object, why);
    }
    if let Some(flags) = r.int(s, object, "Flags").filter(|f| *f.get_ref() != 0) {
        // hcn NatFlags: 1 LocalRoutedVip, 2 IPv6.
        if flags.get_ref() & 2 != 0 {
            let why = "Flags 2 (IPv6): an IPv6 port mapping; WinNAT, and Strata's nat network, map IPv4 only";
            r.d.error(flags.span(), object, why);
        } else {
            r.d.warning(flags.span(), object, "`Flags` (LocalRoutedVip) is not used: mapped ports are reached from any host address");
        }
    }
    let mut port = |key: &str| {
        let v = r.int(s, object, key);
        if v.is_none() && s.get(key).is_none() {
            r.d.error(p.span.clone(), object, format!("missing field `{key}`"));
        }
        v
    };
    let internal_port = port("InternalPort");
    let external_port = port("ExternalPort");
    Some(raw::PortMapping {
        position: 0,
        protocol,
        internal_port: internal_port?,
        external_port: external_port?,
    })
}

/// An OutBoundNAT: v1 `VIP`, `ExceptionList`; v2 `VirtualIP`, `Exceptions`; both may
/// give `Destinations`.
pub(crate) fn outbound_nat(r: &mut Reader, s: &Json, object: &str) -> raw::EndpointOutboundNat {
    let fields = [
        "VirtualIP",
        "VIP",
        "Exceptions",
        "ExceptionList",
        "Destinations",
        "Flags",
        "Type",
        "Settings",
    ];
    r.only(s, object, &fields);
    if let Some(f) = s.get("Flags").filter(|v| v.is_set()) {
        r.d.warning(f.span.clone(), object, "`Flags` is not used");
    }
    raw::EndpointOutboundNat {
        position: 0,
        vip: r
            .string_any(s, object, &["VirtualIP", "VIP"])
            .filter(|v| !v.get_ref().trim().is_empty()),
        exceptions: r.items_any(s, object, &["Exceptions", "ExceptionList"]),
        destinations: r.items(s, object, "Destinations"),
        family: None,
    }
}

/// ROUTE (v1) / SDNRoute (v2) with NeedEncap: a route to the host.
fn route(r: &mut Reader, p: &Json, s: &Json, object: &str) -> Option<raw::Route> {
    r.only(
        s,
        object,
        &[
            "DestinationPrefix",
            "NeedEncap",
            "NextHop",
            "Type",
            "Settings",
        ],
    );
    let prefix = r.required(s, object, "DestinationPrefix");
    let encap = r.bool(s, object, "NeedEncap");
    if !encap.as_ref().is_some_and(|e| *e.get_ref()) {
        let at = encap.map_or(p.span.clone(), |e| e.span());
        let why = "a route without NeedEncap is a route inside the container (to NextHop), \
                   which Strata does not model: only NeedEncap routes (to the host) are supported";
        r.d.error(at, object, why);
        return None;
    }
    if let Some(nh) = s.get("NextHop").filter(|v| v.is_set()) {
        r.d.warning(
            nh.span.clone(),
            object,
            "`NextHop` is not used: a NeedEncap route goes to the host",
        );
    }
    Some(raw::Route {
        position: 0,
        prefix: prefix?,
    })
}

/// ProviderAddress (v2) / PA (v1).
fn provider_address(
    r: &mut Reader,
    s: &Json,
    object: &str,
    target: Target,
    out: &mut EndpointPolicies,
) {
    r.only(s, object, &["ProviderAddress", "PA", "Type", "Settings"]);
    let Some(pa) = r.string_any(s, object, &["ProviderAddress", "PA"]) else {
        r.d.error(s.span.clone(), object, "missing field `ProviderAddress`");
        return;
    };
    if target == Target::RemoteEndpoint {
        out.provider_address = Some(pa);
        return;
    }
    // A local endpoint's provider address is its host's underlay address: Strata's
    // VXLAN always leaves from the host's own address ([host] addresses).
    let bad = pa.get_ref().parse::<std::net::IpAddr>().is_err();
    let what = if bad {
        " (and it is not an IP address)"
    } else {
        ""
    };
    let msg = format!(
        "`ProviderAddress` {:?} of a local endpoint is not used{what}: VXLAN leaves from the \
         host's first address of the family ([host] addresses)",
        pa.get_ref()
    );
    r.d.warning(pa.span(), object, msg);
}

fn numbered(list_len: usize, object: &str, what: &str) -> String {
    format!("{object} {what} #{}", list_len + 1)
}

/// Reads one endpoint policy into `out`; `object` names the endpoint or template.
pub(crate) fn endpoint_policy(
    r: &mut Reader,
    p: &Json,
    object: &str,
    target: Target,
    out: &mut EndpointPolicies,
) {
    let (kind, s) = type_and_settings(p);
    match kind.as_str() {
        "ACL" => {
            let n = out.acl.len() + 1;
            let aobj = match s.get("Id").and_then(Json::as_str) {
                Some(id) => format!("{object} acl #{n} {id:?}"),
                None => format!("{object} acl #{n}"),
            };
            if let Some(mut a) = acl(r, p, s, &aobj) {
                a.position = n;
                out.acl.push(Spanned::new(p.span.clone(), a));
            }
        }
        "PORTMAPPING" | "NAT" => {
            let pobj = numbered(out.port_mapping.len(), object, "port_mapping");
            if target == Target::Template {
                let why =
                    "a port mapping in a template would give every endpoint the same host port";
                r.d.error(p.span.clone(), &pobj, why);
            } else if let Some(mut m) = port_mapping(r, p, s, &pobj) {
                m.position = out.port_mapping.len() + 1;
                out.port_mapping.push(Spanned::new(p.span.clone(), m));
            }
        }
        "OUTBOUNDNAT" => {
            let oobj = numbered(out.outbound_nat.len(), object, "outbound_nat");
            let mut on = outbound_nat(r, s, &oobj);
            on.position = out.outbound_nat.len() + 1;
            out.outbound_nat.push(Spanned::new(p.span.clone(), on));
        }
        "ROUTE" | "SDNROUTE" => {
            let robj = numbered(out.route.len(), object, "route");
            if let Some(mut route) = route(r, p, s, &robj) {
                route.position = out.route.len() + 1;
                out.route.push(Spanned::new(p.span.clone(), route));
            }
        }
        "PA" | "PROVIDERADDRESS" => provider_address(r, s, object, target, out),
        _ => other_endpoint_policy(r, p, s, &kind, object),
    }
}

/// The endpoint policies Strata warns about or refuses.
fn other_endpoint_policy(r: &mut Reader, p: &Json, s: &Json, kind: &str, object: &str) {
    let span = p.span.clone();
    let name = p.get("Type").and_then(Json::as_str).unwrap_or_default();
    match kind {
        "QOS" => {
            let cap = s.get("MaximumOutgoingBandwidthInBytes").and_then(|v| match v.value { J::Int(n) => Some(n), _ => None });
            let what = cap.map_or(String::new(), |n| format!(" ({n} bytes/s)"));
            r.d.warning(span, object, format!("QOS policy is not applied: Strata does not cap bandwidth{what}"));
        }
        "ENCAPOVERHEAD" => {
            let n = s.get("Overhead").and_then(|v| match v.value { J::Int(n) => Some(n), _ => None });
            if n != Some(50) {
                r.d.warning(span, object, "EncapOverhead is not used: Strata accounts 50 bytes (70 over IPv6)");
            }
        }
        "PORTNAME" | "L2DRIVER" | "INTERFACECONSTRAINT" => {
            let msg = format!("{name} policy is not used: it configures the Hyper-V port, not its traffic");
            r.d.warning(span, object, msg);
        }
        "L4PROXY" | "L4WFPPROXY" | "PROXY" => {
            let msg = format!("{name} policy is not supported: redirecting connections to a local proxy (WFP) is not something Strata's switch does");
            r.d.error(span, object, msg);
        }
        "TIERACL" => r.d.error(span, object, "TierAcl policy is not supported: Strata has one ACL layer per endpoint; write the rules as ACL policies (priorities order them)"),
        "ELB" | "LOADBALANCER" => r.d.error(span, object, format!("{name} policy is not supported on an endpoint: give it as a policy list (References to the endpoints, Policies with the ELB) or a HostComputeLoadBalancer")),
        "VLAN" | "VSID" | "ISOLATION" => r.d.error(span, object, format!("{name} policy on an endpoint is not supported: Strata isolates per network; put it in the network's (or subnet's) Policies")),
        _ => r.d.error(span, object, format!(
            "policy type `{name}` is not supported (supported: ACL, PortMapping/NAT, OutBoundNAT, ROUTE/SDNRoute, PA/ProviderAddress; QOS, EncapOverhead, PortName, L2Driver and InterfaceConstraint are read and not used)"
        )),
    }
}

/// A VLAN or VSID: v1 `VLAN`/`VSID`, v2 `Settings.IsolationId`.
fn isolation_id(r: &mut Reader, s: &Json, object: &str, v1: &str) -> Option<Spanned<i64>> {
    r.only(s, object, &[v1, "IsolationId", "Type", "Settings"]);
    match r.int(s, object, v1) {
        Some(v) => Some(v),
        None => r.int(s, object, "IsolationId"),
    }
}

fn remote_subnet_route(r: &mut Reader, s: &Json, object: &str) -> Option<raw::RemoteSubnetRoute> {
    let fields = [
        "DestinationPrefix",
        "ProviderAddress",
        "DistributedRouterMacAddress",
        "IsolationId",
        "Type",
        "Settings",
    ];
    r.only(s, object, &fields);
    let prefix = r.required(s, object, "DestinationPrefix");
    let provider_address = r.required(s, object, "ProviderAddress");
    let mac = r.string(s, object, "DistributedRouterMacAddress");
    // IsolationId repeats the network's VSID; read only to be type-checked.
    r.int(s, object, "IsolationId");
    Some(raw::RemoteSubnetRoute {
        prefix: prefix?,
        provider_address: provider_address?,
        mac,
    })
}

/// A network's OutBoundNAT: with a VIP and no destinations it is the network's
/// `outbound_nat`; otherwise every endpoint gets it (the network's template).
fn network_outbound_nat(
    r: &mut Reader,
    p: &Json,
    s: &Json,
    object: &str,
    net: &mut raw::Network,
    template: &mut raw::Template,
) {
    let on = outbound_nat(r, s, &format!("{object} outbound_nat"));
    match (&on.vip, &on.destinations) {
        (Some(vip), None) if net.outbound_nat.is_none() => {
            let vip = vip.clone();
            let exceptions = on.exceptions;
            net.outbound_nat = Some(Spanned::new(
                p.span.clone(),
                raw::OutboundNat { vip, exceptions },
            ));
        }
        _ => {
            let mut on = on;
            on.position = template.outbound_nat.len() + 1;
            template.outbound_nat.push(Spanned::new(p.span.clone(), on));
        }
    }
}

/// Reads one network (or subnet) policy into the network and its template.
pub(crate) fn network_policy(
    r: &mut Reader,
    p: &Json,
    object: &str,
    net: &mut raw::Network,
    template: &mut raw::Template,
) {
    let (kind, s) = type_and_settings(p);
    let name = p.get("Type").and_then(Json::as_str).unwrap_or_default();
    match kind.as_str() {
        "VLAN" => net.vlan = isolation_id(r, s, object, "VLAN"),
        "VSID" => net.vni = isolation_id(r, s, object, "VSID"),
        "VXLANPORT" => {
            r.only(s, object, &["Port", "Type", "Settings"]);
            net.vxlan_port = r.int(s, object, "Port");
        }
        "OUTBOUNDNAT" => network_outbound_nat(r, p, s, object, net, template),
        "REMOTESUBNETROUTE" => {
            let robj = format!("{object} remote_subnet_route #{}", net.remote_subnet_route.len() + 1);
            if let Some(route) = remote_subnet_route(r, s, &robj) {
                net.remote_subnet_route.push(Spanned::new(p.span.clone(), route));
            }
        }
        "ACL" => {
            let n = template.acl.len() + 1;
            let aobj = format!("{object} template acl #{n}");
            if let Some(mut a) = acl(r, p, s, &aobj) {
                a.position = n;
                template.acl.push(Spanned::new(p.span.clone(), a));
            }
        }
        "PROVIDERADDRESS" => r.d.warning(p.span.clone(), object, "ProviderAddress policy is not used: VXLAN leaves from the host's first address of the family ([host] addresses)"),
        "NETADAPTERNAME" | "INTERFACECONSTRAINT" => r.d.warning(p.span.clone(), object, format!("{name} policy is not used: the uplink's interface is [host] interface")),
        "DRMACADDRESS" | "SOURCEMACADDRESS" | "AUTOMATICDNS" | "VSWITCHEXTENSION" => {
            r.d.warning(p.span.clone(), object, format!("{name} policy is not used"))
        }
        "HOSTROUTE" => r.d.warning(p.span.clone(), object, "HostRoute policy is not used: Strata is the switch; how the host's own stack reaches the pods is outside it"),
        "ELB" | "LOADBALANCER" => r.d.error(p.span.clone(), object, format!("{name} policy is not supported on a network: give it as a policy list or a HostComputeLoadBalancer")),
        _ => r.d.error(
            p.span.clone(),
            object,
            "network policies supported: VLAN, VSID, VxlanPort, OutBoundNAT, RemoteSubnetRoute, ACL (for every endpoint)",
        ),
    }
}
