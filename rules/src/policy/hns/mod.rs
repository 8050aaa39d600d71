//! HNS as HNS writes it: the JSON that Windows' Host Networking Service and its clients
//! (Docker/moby, the Windows CNI plugins, flannel, Azure CNI, Calico, kube-proxy) write,
//! read into the same raw types as the TOML file and compiled by the same code.
//!
//! What is read (each file may hold one object, an array of objects, or Strata's host
//! document with `Host`, `Networks`, `Endpoints`, `LoadBalancers` and `PolicyLists`):
//! - v1 objects: HNSNetwork, HNSEndpoint (local or remote), policy lists (ELB, ROUTE);
//! - v2 objects: HostComputeNetwork, HostComputeEndpoint, HostComputeLoadBalancer;
//! - Windows CNI configurations (`.conf`, `.conflist`, flannel's `delegate`): a network
//!   and the endpoint template its plugin gives every endpoint it creates;
//! - Calico's static rules: ACLs every endpoint of the host gets.
//!
//! Objects link as HNS links them (an endpoint to its network by GUID or name, a policy
//! list or load balancer to endpoints by GUID), across all files given; see [`link`].
//! Modules: `json` (positions), `policies` (endpoint and network policies), `network`,
//! `endpoint`, `cni`, `balancer` (policy lists, load balancers, Calico), `link`.

mod balancer;
mod cni;
mod endpoint;
mod json;
mod link;
mod network;
mod policies;

use std::ops::Range;

use toml::Spanned;

use super::diag::Diagnostics;
use super::raw;
use json::{J, Json, Reader, Scanner};

pub(crate) use link::link;

/// How an endpoint names its network.
#[derive(Debug)]
pub(crate) enum NetRef {
    /// v1 `VirtualNetwork`, v2 `HostComputeNetwork`: the network's GUID.
    Id(Spanned<String>),
    /// `VirtualNetworkName`, or a host document's name.
    Name(Spanned<String>),
}

/// A network read from HNS JSON, with its GUID if it has one.
#[derive(Debug)]
pub(crate) struct NetDoc {
    pub id: Option<String>,
    pub network: Spanned<raw::Network>,
}

/// An endpoint read from HNS JSON, before its network and defaults are resolved.
#[derive(Debug, Default)]
pub(crate) struct EpDoc {
    pub span: Range<usize>,
    pub id: Option<String>,
    pub name: Option<Spanned<String>>,
    pub network: Option<NetRef>,
    pub mac: Option<Spanned<String>>,
    pub ipv4: Option<Spanned<String>>,
    pub ipv6: Option<Spanned<String>>,
    pub remote: bool,
    pub isolation: Option<Spanned<raw::Isolation>>,
    pub interface: Option<String>,
    pub policies: policies::EndpointPolicies,
}

/// A CNI configuration: the network its plugin attaches to (or creates) and the
/// template of every endpoint it creates.
#[derive(Debug)]
pub(crate) struct CniDoc {
    /// The network as the configuration describes it, its template included.
    pub network: Spanned<raw::Network>,
    /// `type` (the plugin), for messages.
    pub plugin: String,
    /// Whether `ipam` gave subnets (else they are assigned at run time).
    pub has_subnets: bool,
    /// The VNI was assumed (an overlay plugin's network is created by someone else).
    pub assumed_vni: bool,
}

/// A load balancer (an ELB policy or a HostComputeLoadBalancer), before its endpoints
/// and VIPs are resolved.
#[derive(Debug)]
pub(crate) struct LbDoc {
    pub span: Range<usize>,
    pub object: String,
    /// `ID`, else `lb<N>`: names the load balancers made of it.
    pub base_name: String,
    pub protocol: Option<raw::LbProtocol>,
    /// Empty: the host's addresses (a NodePort).
    pub vips: Vec<Spanned<String>>,
    pub frontend_port: Spanned<i64>,
    pub backend_port: Option<Spanned<i64>>,
    pub distribution: Option<raw::Distribution>,
}

/// A v1 policy list: policies applied to endpoints named by GUID.
#[derive(Debug)]
pub(crate) struct PolicyListDoc {
    pub object: String,
    /// `/endpoints/<GUID>` or `<GUID>`, with their spans.
    pub references: Vec<Spanned<String>>,
    pub balancers: Vec<LbDoc>,
    pub routes: Vec<Spanned<raw::Route>>,
}

/// Everything the JSON files hold, before linking.
#[derive(Debug, Default)]
pub(crate) struct Import {
    pub host: Option<Spanned<raw::Host>>,
    /// Calico's static rules.
    pub host_template: Option<Spanned<raw::Template>>,
    pub networks: Vec<NetDoc>,
    pub endpoints: Vec<EpDoc>,
    pub cni: Vec<CniDoc>,
    pub policy_lists: Vec<PolicyListDoc>,
    /// HostComputeLoadBalancers: their endpoints' GUIDs, and what they balance.
    pub load_balancers: Vec<(Vec<Spanned<String>>, Vec<LbDoc>)>,
}

/// The kinds of JSON object understood, told apart by their fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    HostDocument,
    CniList,
    Cni,
    CalicoRules,
    PolicyList,
    LoadBalancerV2,
    EndpointV2,
    NetworkV2,
    EndpointV1,
    NetworkV1,
}

fn kind_of(o: &Json) -> Option<Kind> {
    let has = |k: &str| o.has(k);
    let name_value_policies = o
        .get("policies")
        .and_then(Json::as_array)
        .is_some_and(|a| a.iter().any(|p| p.has("value")));
    Some(
        if [
            "Networks",
            "Endpoints",
            "Host",
            "LoadBalancers",
            "PolicyLists",
        ]
        .iter()
        .any(|k| has(k))
        {
            Kind::HostDocument
        } else if has("plugins") {
            Kind::CniList
        } else if has("cniVersion")
            || has("delegate")
            || has("ipam")
            || has("AdditionalArgs")
            || has("HcnPolicyArgs")
            || name_value_policies
            || o.get_exact("type")
                .and_then(Json::as_str)
                .is_some_and(cni::is_plugin)
        {
            Kind::Cni
        } else if has("Rules") {
            Kind::CalicoRules
        } else if has("References") {
            Kind::PolicyList
        } else if has("FrontendVIPs") || has("PortMappings") || has("HostComputeEndpoints") {
            Kind::LoadBalancerV2
        } else if has("HostComputeNetwork") || has("IpConfigurations") {
            Kind::EndpointV2
        } else if has("Ipams") || (has("SchemaVersion") && has("Type")) {
            Kind::NetworkV2
        } else if [
            "VirtualNetwork",
            "VirtualNetworkName",
            "IPAddress",
            "IPv6Address",
            "IsRemoteEndpoint",
            "MacAddress",
        ]
        .iter()
        .any(|k| has(k))
        {
            Kind::EndpointV1
        } else if has("Type") && (has("Subnets") || has("Name")) {
            Kind::NetworkV1
        } else {
            return None;
        },
    )
}

/// Reads one object of a file into `import`.
fn read_object(r: &mut Reader, o: &Json, import: &mut Import) {
    let Some(kind) = kind_of(o) else {
        let keys: Vec<&str> = o
            .fields()
            .iter()
            .map(|(k, _, _)| k.as_str())
            .take(8)
            .collect();
        let policy_alone = o.has("Type") && !o.has("Name");
        let hint = if policy_alone {
            "; a policy alone has no endpoint to apply to: put it in an endpoint's Policies, a \
             policy list (References) or a CNI configuration"
        } else {
            ""
        };
        let msg = format!(
            "not an HNS or CNI object Strata knows (fields: {}): expected a network, an \
             endpoint, a policy list, a load balancer, a CNI configuration, Calico static \
             rules, or a host document (Networks, Endpoints){hint}",
            keys.join(", ")
        );
        r.d.error(o.span.clone(), "JSON", msg);
        return;
    };
    match kind {
        Kind::HostDocument => read_host_document(r, o, import),
        Kind::CniList | Kind::Cni => cni::read(r, o, kind == Kind::CniList, import),
        Kind::CalicoRules => balancer::read_calico(r, o, import),
        Kind::PolicyList => {
            let n = import.policy_lists.len() + 1;
            import
                .policy_lists
                .push(balancer::read_policy_list(r, o, n));
        }
        Kind::LoadBalancerV2 => {
            let n = import.load_balancers.len() + import.policy_lists.len() + 1;
            import
                .load_balancers
                .push(balancer::read_load_balancer(r, o, n));
        }
        Kind::EndpointV1 | Kind::EndpointV2 => {
            let n = import.endpoints.len();
            import.endpoints.push(endpoint::read(r, o, n));
        }
        Kind::NetworkV1 | Kind::NetworkV2 => {
            let n = import.networks.len();
            import.networks.extend(network::read(r, o, n));
        }
    }
}

/// Strata's host document: `Host`, and arrays of networks, endpoints, policy lists and
/// load balancers (each element read as the object it is).
fn read_host_document(r: &mut Reader, o: &Json, import: &mut Import) {
    if let Some(h) = o.get("Host") {
        let host = Spanned::new(h.span.clone(), network::host(r, h));
        if import.host.is_some() {
            r.d.error(
                h.span.clone(),
                "host",
                "a second Host: the host is described once",
            );
        }
        import.host = Some(host);
    }
    for key in ["Networks", "Endpoints", "PolicyLists", "LoadBalancers"] {
        for item in r.array(o, "file", key) {
            if item.is_object() {
                read_object(r, item, import);
            } else {
                r.d.error(
                    item.span.clone(),
                    "file",
                    format!("{key}: expected objects, not {}", item.kind()),
                );
            }
        }
    }
    let known = [
        "Host",
        "Networks",
        "Endpoints",
        "PolicyLists",
        "LoadBalancers",
    ];
    r.rest(o, "file", &known, &[]);
}

/// Every `{{NAME}}` placeholder of a template that was not filled in, once each.
fn placeholders(root: &Json, d: &mut Diagnostics) -> bool {
    let mut strings = Vec::new();
    root.strings(&mut strings);
    let mut seen: Vec<&str> = Vec::new();
    for (s, span) in strings {
        let Some(start) = s.find("{{") else { continue };
        let Some(len) = s[start..].find("}}") else {
            continue;
        };
        let name = &s[start..start + len + 2];
        if !seen.contains(&name) {
            seen.push(name);
            let msg = format!(
                "template placeholder `{name}` is not filled in: this file is a template \
                 (fill in its {{{{...}}}} placeholders, as the script that ships it does)"
            );
            d.error(span, "template", msg);
        }
    }
    !seen.is_empty()
}

/// Reads one JSON file placed at `base` into `import`. A file in which nothing is
/// recognised is an error, never an empty policy.
pub(crate) fn read(d: &mut Diagnostics, base: usize, text: &str, import: &mut Import) {
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
        // serde_json counts lines and columns from 1; rebuild the offset.
        let offset: usize = text
            .split_inclusive('\n')
            .take(e.line().saturating_sub(1))
            .map(str::len)
            .sum::<usize>()
            + e.column().saturating_sub(1);
        let message = e.to_string();
        let position = format!(" at line {} column {}", e.line(), e.column());
        let message = message.strip_suffix(&position).unwrap_or(&message);
        d.error(base + offset..base + offset, "JSON", message);
        return;
    }
    let Some(root) = Scanner::new(text, base).value(0) else {
        d.error(
            base..base,
            "JSON",
            "the document is nested too deeply or not understood",
        );
        return;
    };
    if placeholders(&root, d) {
        return;
    }
    let mut r = Reader { d };
    let items: Vec<&Json> = match &root.value {
        J::Array(items) => items.iter().collect(),
        _ => vec![&root],
    };
    if items.is_empty() {
        let msg = "expected an HNS object or an array of them, not an empty array";
        r.d.error(root.span.clone(), "JSON", msg);
    }
    for item in items {
        if item.is_object() {
            read_object(&mut r, item, import);
        } else {
            let msg = format!("expected an HNS object, not {}", item.kind());
            r.d.error(item.span.clone(), "JSON", msg);
        }
    }
}
