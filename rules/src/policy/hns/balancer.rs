//! Policies applied to endpoints named by GUID, and host-wide rules: v1 policy lists
//! (`References` + ELB and ROUTE policies, as kube-proxy and hns.psm1 write them), v2
//! HostComputeLoadBalancers (`HostComputeEndpoints`, `FrontendVIPs`, `PortMappings`,
//! `Flags`), and Calico's static rules (ACLs every endpoint gets).
//!
//! Strata balances connections that local endpoints open to a VIP (its `lb` layer is
//! on every endpoint port), which is what an ILB is; connections arriving from outside
//! the host for the VIP are not balanced, and a warning says so for an ELB.

use toml::Spanned;

use super::super::raw;
use super::json::{J, Json, Reader};
use super::policies::{EndpointPolicies, Target, endpoint_policy, type_and_settings};
use super::{Import, LbDoc, PolicyListDoc};

fn protocol(r: &mut Reader, s: &Json, object: &str) -> Option<raw::LbProtocol> {
    let p = r.int(s, object, "Protocol")?;
    match *p.get_ref() {
        6 => Some(raw::LbProtocol::Tcp),
        17 => Some(raw::LbProtocol::Udp),
        n => {
            let msg = format!("Protocol {n}: load balancers balance TCP (6) or UDP (17)");
            r.d.error(p.span(), object, msg);
            None
        }
    }
}

fn external_warning(r: &mut Reader, span: std::ops::Range<usize>, object: &str) {
    let msg = "connections that local endpoints open to the VIP are balanced; connections \
               arriving from outside the host are not (Strata's load balancer is on the \
               endpoints' ports: set ILB if that is all you need)";
    r.d.warning(span, object, msg);
}

/// An ELB policy of a policy list.
fn elb(r: &mut Reader, p: &Json, s: &Json, object: &str, base_name: String) -> Option<LbDoc> {
    let fields = [
        "Type",
        "Settings",
        "Protocol",
        "InternalPort",
        "ExternalPort",
        "VIPs",
        "SourceVIP",
        "ILB",
    ];
    r.only(s, object, &fields);
    if let Some(v) = s.get("SourceVIP").filter(|v| v.is_set()) {
        let why = "`SourceVIP` is not used: Strata's load balancer translates the destination only";
        r.d.warning(v.span.clone(), object, why);
    }
    let ilb = r.bool(s, object, "ILB").is_some_and(|b| *b.get_ref());
    if !ilb {
        external_warning(r, p.span.clone(), object);
    }
    if s.get("Protocol").is_none() {
        r.d.warning(
            p.span.clone(),
            object,
            "no Protocol: Strata balances TCP (6)",
        );
    }
    let vips = r.items(s, object, "VIPs").map_or_else(Vec::new, |items| {
        let span = items.span();
        let all = items.get_ref().iter_with(&span);
        all.into_iter()
            .filter_map(|(v, sp)| match v {
                super::super::values::Scalar::Str(v) => Some(Spanned::new(sp, v)),
                super::super::values::Scalar::Int(_) => None,
            })
            .collect()
    });
    let frontend_port = r.int(s, object, "ExternalPort");
    if frontend_port.is_none() {
        r.d.error(p.span.clone(), object, "missing field `ExternalPort`");
    }
    Some(LbDoc {
        span: p.span.clone(),
        object: object.to_owned(),
        base_name,
        protocol: protocol(r, s, object),
        vips,
        frontend_port: frontend_port?,
        backend_port: r.int(s, object, "InternalPort"),
        distribution: None,
    })
}

/// A v1 policy list: ELB and ROUTE policies for the endpoints it references.
pub(crate) fn read_policy_list(r: &mut Reader, o: &Json, n: usize) -> PolicyListDoc {
    let id = o.get("ID").and_then(Json::as_str).map(str::to_owned);
    let object = match &id {
        Some(id) => format!("policy list {id}"),
        None => format!("policy list #{n}"),
    };
    let references = r
        .array(o, &object, "References")
        .iter()
        .filter_map(|v| match &v.value {
            J::Str(s) => Some(Spanned::new(v.span.clone(), s.clone())),
            _ => None,
        })
        .collect();
    let mut list = PolicyListDoc {
        object: object.clone(),
        references,
        balancers: Vec::new(),
        routes: Vec::new(),
    };
    let base = id.unwrap_or_else(|| format!("lb{n}"));
    for p in r.array(o, &object, "Policies") {
        let (kind, s) = type_and_settings(p);
        if kind == "ELB" {
            let k = list.balancers.len() + 1;
            let name = if k == 1 {
                base.clone()
            } else {
                format!("{base}-{k}")
            };
            list.balancers
                .extend(elb(r, p, s, &format!("{object} ELB #{k}"), name));
        } else if kind == "ROUTE" || kind == "SDNROUTE" {
            let mut sink = EndpointPolicies::default();
            endpoint_policy(r, p, &object, Target::Template, &mut sink);
            list.routes.append(&mut sink.route);
        } else {
            r.d.error(
                p.span.clone(),
                &object,
                "policy lists support ELB and ROUTE policies",
            );
        }
    }
    r.rest(
        o,
        &object,
        &["ID", "References", "Policies", "State", "Health", "Version"],
        &[],
    );
    list
}

fn port_mapping(
    r: &mut Reader,
    pm: &Json,
    object: &str,
    base: &str,
    k: usize,
    vips: &[Spanned<String>],
) -> Option<LbDoc> {
    r.only(
        pm,
        object,
        &[
            "Protocol",
            "InternalPort",
            "ExternalPort",
            "DistributionType",
            "Flags",
        ],
    );
    let flags = r.int(pm, object, "Flags").map_or(0, |f| *f.get_ref());
    // LoadBalancerPortMappingFlags: 1 ILB, 2 LocalRoutedVIP, 4 UseMux, 8 PreserveDIP.
    if flags & 8 != 0 {
        let why = "Flags 8 (PreserveDIP): the backend would keep the VIP as destination, which Strata's load balancer does not do";
        r.d.error(pm.span.clone(), object, why);
    }
    if flags & 6 != 0 {
        r.d.warning(
            pm.span.clone(),
            object,
            "Flags 2 (LocalRoutedVIP) and 4 (UseMux) are not used",
        );
    }
    if flags & 1 == 0 {
        external_warning(r, pm.span.clone(), object);
    }
    let distribution = match r
        .int(pm, object, "DistributionType")
        .map(|d| (*d.get_ref(), d.span()))
    {
        None | Some((0, _)) => None,
        Some((1, _)) => Some(raw::Distribution::SourceIpProtocol),
        Some((2, _)) => Some(raw::Distribution::SourceIp),
        Some((n, at)) => {
            r.d.error(at, object, format!("DistributionType {n}: expected 0 (5-tuple), 1 (source IP and protocol) or 2 (source IP)"));
            None
        }
    };
    let frontend_port = r.int(pm, object, "ExternalPort");
    if frontend_port.is_none() {
        r.d.error(pm.span.clone(), object, "missing field `ExternalPort`");
    }
    Some(LbDoc {
        span: pm.span.clone(),
        object: object.to_owned(),
        base_name: if k == 1 {
            base.to_owned()
        } else {
            format!("{base}-{k}")
        },
        protocol: protocol(r, pm, object),
        vips: vips.to_vec(),
        frontend_port: frontend_port?,
        backend_port: r.int(pm, object, "InternalPort"),
        distribution,
    })
}

/// A v2 HostComputeLoadBalancer: its endpoints' GUIDs, and one LbDoc per port mapping.
pub(crate) fn read_load_balancer(
    r: &mut Reader,
    o: &Json,
    n: usize,
) -> (Vec<Spanned<String>>, Vec<LbDoc>) {
    let id = o.get("ID").and_then(Json::as_str).map(str::to_owned);
    let object = match &id {
        Some(id) => format!("load balancer {id}"),
        None => format!("load balancer #{n}"),
    };
    let endpoints = r
        .array(o, &object, "HostComputeEndpoints")
        .iter()
        .filter_map(|v| {
            v.as_str()
                .map(|s| Spanned::new(v.span.clone(), s.to_owned()))
        })
        .collect();
    let vips: Vec<Spanned<String>> = r
        .array(o, &object, "FrontendVIPs")
        .iter()
        .filter_map(|v| {
            v.as_str()
                .map(|s| Spanned::new(v.span.clone(), s.to_owned()))
        })
        .collect();
    if let Some(f) = r.int(o, &object, "Flags").filter(|f| f.get_ref() & 1 != 0) {
        let why = "Flags 1 (EnableDirectServerReturn): with DSR the backend answers the client directly; Strata's load balancer always translates replies back";
        r.d.error(f.span(), &object, why);
    }
    if let Some(v) = o.get("SourceVIP").filter(|v| v.is_set()) {
        let why = "`SourceVIP` is not used: Strata's load balancer translates the destination only";
        r.d.warning(v.span.clone(), &object, why);
    }
    let base = id.unwrap_or_else(|| format!("lb{n}"));
    let mut docs = Vec::new();
    for (k, pm) in (1..).zip(r.array(o, &object, "PortMappings")) {
        docs.extend(port_mapping(r, pm, &object, &base, k, &vips));
    }
    let known = [
        "ID",
        "HostComputeEndpoints",
        "FrontendVIPs",
        "PortMappings",
        "Flags",
        "SourceVIP",
        "SchemaVersion",
        "State",
        "Health",
    ];
    r.rest(o, &object, &known, &[]);
    (endpoints, docs)
}

/// Calico's static rules: `{"Provider", "Rules": [{"Name": "EndpointPolicy", "Rule":
/// {ACL}}], "version"}`. Felix puts them before every endpoint's own rules.
pub(crate) fn read_calico(r: &mut Reader, o: &Json, import: &mut Import) {
    let object = "host template";
    let mut sink = EndpointPolicies::default();
    for rule in r.array(o, "Calico static rules", "Rules") {
        let name = rule.get("Name").and_then(Json::as_str).unwrap_or_default();
        match rule.get("Rule").filter(|v| v.is_object()) {
            Some(body) if name.eq_ignore_ascii_case("EndpointPolicy") => {
                endpoint_policy(r, body, object, Target::Template, &mut sink);
            }
            _ => r.d.error(
                rule.span.clone(),
                "Calico static rules",
                "expected {\"Name\": \"EndpointPolicy\", \"Rule\": {policy}}",
            ),
        }
    }
    if let Some(p) = o.get("Provider").filter(|v| v.is_set()) {
        let why = "`Provider` is not used: Strata applies the rules on every endpoint, whatever the platform";
        r.d.warning(p.span.clone(), "Calico static rules", why);
    }
    r.rest(
        o,
        "Calico static rules",
        &["Rules", "Provider", "version"],
        &[],
    );
    let mut template = import
        .host_template
        .take()
        .map_or_else(raw::Template::default, Spanned::into_inner);
    template.acl.append(&mut sink.acl);
    template.outbound_nat.append(&mut sink.outbound_nat);
    template.route.append(&mut sink.route);
    import.host_template = Some(Spanned::new(o.span.clone(), template));
}
