//! Windows CNI configurations (`.conf`, `.conflist`, flannel's `delegate`): the network
//! the plugin attaches to (or creates: name, driver from the plugin type, subnets and
//! gateway from `ipam`) and the template of every endpoint it creates (its
//! `EndpointPolicy` entries, from `policies`, `AdditionalArgs` or `HcnPolicyArgs`).
//!
//! Plugins and drivers: win-bridge, sdnbridge, l2bridge and Azure's azure-vnet make
//! L2Bridge networks; win-overlay and sdnoverlay Overlay; nat NAT; l2tunnel L2Tunnel;
//! flannel delegates to one of these; wincni.exe attaches to the HNS network named by
//! `name`.

use toml::Spanned;

use super::super::raw;
use super::json::{J, Json, Reader};
use super::network::{DRIVERS, empty_network, gateway};
use super::policies::{
    EndpointPolicies, Target, endpoint_policy, network_policy, type_and_settings,
};
use super::{CniDoc, Import};

const PLUGINS: [(&str, Option<raw::Driver>); 10] = [
    ("win-bridge", Some(raw::Driver::L2bridge)),
    ("sdnbridge", Some(raw::Driver::L2bridge)),
    ("l2bridge", Some(raw::Driver::L2bridge)),
    ("azure-vnet", Some(raw::Driver::L2bridge)),
    ("win-overlay", Some(raw::Driver::Overlay)),
    ("sdnoverlay", Some(raw::Driver::Overlay)),
    ("nat", Some(raw::Driver::Nat)),
    ("l2tunnel", Some(raw::Driver::L2tunnel)),
    ("flannel", None),
    ("wincni.exe", None),
];

/// Whether `t` is a Windows CNI plugin type Strata knows.
pub(crate) fn is_plugin(t: &str) -> bool {
    PLUGINS.iter().any(|(n, _)| n.eq_ignore_ascii_case(t))
}

/// VNI of flannel's VXLAN networks on Windows when its configuration gives none.
const FLANNEL_VNI: i64 = 4096;

const HANDLED: [&str; 14] = [
    "cniVersion",
    "name",
    "type",
    "delegate",
    "capabilities",
    "ipam",
    "policies",
    "AdditionalArgs",
    "HcnPolicyArgs",
    "apiVersion",
    "optionalFlags",
    "additionalRoutes",
    "ipMasqNetwork",
    "loopbackDSR",
];

const UNUSED: [(&str, &str); 10] = [
    (
        "dns",
        "DNS settings are the containers' resolver configuration; Strata forwards DNS like any traffic",
    ),
    (
        "master",
        "the host adapter the network is bound to; the uplink's interface is [host] interface",
    ),
    (
        "adapterName",
        "the host adapter the network is bound to; the uplink's interface is [host] interface",
    ),
    (
        "multiTenancy",
        "Azure CNI's per-pod VLANs come from its CNS service at run time",
    ),
    (
        "enableSnatOnHost",
        "Azure CNI's extra host NAT endpoint is not created; outbound translation is what OutBoundNAT says",
    ),
    (
        "enableExactMatchForPodName",
        "Azure CNI's pod name matching",
    ),
    ("windowsSettings", "the plugin's own settings (timeouts)"),
    (
        "runtimeConfig",
        "what the runtime passes at ADD (port mappings, DNS) applies to one endpoint, not the template",
    ),
    (
        "subnetFile",
        "flannel's lease of the node's subnet, assigned at run time",
    ),
    ("dataDir", "flannel's state directory"),
];

/// The network's name and what the plugin type says of its driver.
fn plugin(
    r: &mut Reader,
    conf: &Json,
    object: &str,
    name: &Spanned<String>,
    cni: &mut CniDoc,
) -> Option<()> {
    let t = r.required(conf, object, "type")?;
    cni.plugin = t.get_ref().clone();
    let found = PLUGINS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(t.get_ref()));
    match found {
        Some((_, Some(drv))) => cni.network.get_mut().driver = Some(Spanned::new(t.span(), *drv)),
        Some(_) => {
            // wincni.exe attaches to an existing network named `name`; the SDN scripts
            // name their networks after their type.
            let by_name = DRIVERS
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name.get_ref()));
            cni.network.get_mut().driver = by_name.map(|(_, d)| Spanned::new(name.span(), *d));
        }
        None => {
            let known: Vec<&str> = PLUGINS.iter().map(|(n, _)| *n).collect();
            let msg = format!(
                "unknown CNI plugin `{}` (known: {})",
                t.get_ref(),
                known.join(", ")
            );
            r.d.error(t.span(), object, msg);
            return None;
        }
    }
    Some(())
}

fn route_gateway(r: &mut Reader, route: &Json, object: &str) -> Option<Spanned<String>> {
    let dst = route
        .get_any(&["dst", "Dst"])
        .and_then(Json::as_str)
        .unwrap_or("0.0.0.0/0");
    if !matches!(dst, "0.0.0.0/0" | "::/0") {
        let msg = format!(
            "route to {dst} is not used: it is the containers' routing table; Strata switches what they send"
        );
        r.d.warning(route.span.clone(), object, msg);
        return None;
    }
    r.string_any(route, object, &["gw", "gateway"])
}

/// `ipam`: `subnet`, `routes` (the default route's gateway), host-local's `ranges`.
fn ipam(r: &mut Reader, conf: &Json, object: &str, cni: &mut CniDoc) {
    let Some(ipam) = conf.get("ipam").filter(|i| i.is_object()) else {
        return;
    };
    let net = cni.network.get_mut();
    let mut subnets = Vec::new();
    if let Some(s) = r.string(ipam, object, "subnet") {
        subnets.push(s);
    }
    for range_set in r.array(ipam, object, "ranges") {
        for range in range_set.as_array().unwrap_or_default() {
            r.only(
                range,
                object,
                &["subnet", "rangeStart", "rangeEnd", "gateway"],
            );
            subnets.extend(r.string(range, object, "subnet"));
            let gw = r.string(range, object, "gateway");
            gateway(r, object, net, gw);
        }
    }
    for route in r.array(ipam, object, "routes") {
        let gw = route_gateway(r, route, object);
        gateway(r, object, net, gw);
    }
    cni.has_subnets = !subnets.is_empty();
    net.subnets.get_or_insert_default().extend(subnets);
    let ipam_own = [
        "type",
        "subnet",
        "ranges",
        "routes",
        "environment",
        "addressSpace",
        "ipAddress",
        "queryInterval",
        "dataDir",
        "rangeStart",
        "rangeEnd",
        "gateway",
    ];
    r.rest(ipam, object, &ipam_own, &[]);
}

/// `policies` / `AdditionalArgs` (`{"name": "EndpointPolicy", "value": {...}}`) and
/// `HcnPolicyArgs` (v2 policies, for endpoints).
fn policies(
    r: &mut Reader,
    conf: &Json,
    object: &str,
    cni: &mut CniDoc,
    template: &mut EndpointPolicies,
) {
    let tobj = format!(
        "network {:?} template",
        cni.network.get_ref().name.get_ref()
    );
    let nobj = format!("network {:?}", cni.network.get_ref().name.get_ref());
    let mut net_template = raw::Template::default();
    for key in ["policies", "AdditionalArgs"] {
        for kv in r.array(conf, object, key) {
            let name = kv.get("name").and_then(Json::as_str).unwrap_or_default();
            let Some(value) = kv.get("value").filter(|v| v.is_object()) else {
                r.d.error(
                    kv.span.clone(),
                    object,
                    format!("{key}: expected {{\"name\": ..., \"value\": {{policy}}}}"),
                );
                continue;
            };
            match name.to_ascii_lowercase().as_str() {
                "endpointpolicy" => endpoint_policy(r, value, &tobj, Target::Template, template),
                "networkpolicy" => network_policy(r, value, &nobj, cni.network.get_mut(), &mut net_template),
                _ => r.d.warning(kv.span.clone(), object, format!("{key} entry `{name}` is not used (Strata reads EndpointPolicy and NetworkPolicy entries)")),
            }
        }
    }
    for p in r.array(conf, object, "HcnPolicyArgs") {
        let (kind, _) = type_and_settings(p);
        if kind.is_empty() {
            r.d.error(
                p.span.clone(),
                object,
                "HcnPolicyArgs: expected policies with a Type",
            );
            continue;
        }
        endpoint_policy(r, p, &tobj, Target::Template, template);
    }
    template.acl.append(&mut net_template.acl);
    template.outbound_nat.append(&mut net_template.outbound_nat);
}

/// `optionalFlags`, `additionalRoutes`, `loopbackDSR`, `ipMasqNetwork`.
fn options(
    r: &mut Reader,
    conf: &Json,
    object: &str,
    cni: &mut CniDoc,
    template: &mut EndpointPolicies,
) {
    let flags = conf.get("optionalFlags");
    let flag = |k: &str| {
        flags
            .and_then(|f| f.get(k))
            .is_some_and(|v| matches!(v.value, J::Bool(true)))
    };
    for route in r.array(conf, object, "additionalRoutes") {
        if flag("gatewayFromAdditionalRoutes") {
            let gw = route_gateway(r, route, object);
            gateway(r, object, cni.network.get_mut(), gw);
        } else {
            r.d.warning(
                route.span.clone(),
                object,
                "additionalRoutes are the containers' routing table: not used",
            );
        }
    }
    if let Some(f) = flags {
        let used = ["enableDualStack", "gatewayFromAdditionalRoutes"];
        let unused = [
            (
                "localRoutedPortMapping",
                "mapped ports are reached from any host address",
            ),
            (
                "allowAclPortMapping",
                "the ACLs it adds go with port mappings given at run time",
            ),
            ("forceBridgeGateway", "the gateway is the network's"),
            (
                "loopbackDSR",
                "Strata's load balancer always translates replies back (no DSR)",
            ),
        ];
        r.rest(f, object, &used, &unused);
    }
    if let Some(dsr) = conf.get("loopbackDSR").filter(|v| v.is_set()) {
        r.d.warning(dsr.span.clone(), object, "`loopbackDSR` is not used: Strata's load balancer always translates replies back (no DSR)");
    }
    // win-bridge: "set up NAT" to everything outside ipMasqNetwork.
    if let Some(masq) = r.items(conf, object, "ipMasqNetwork") {
        let on = raw::EndpointOutboundNat {
            position: template.outbound_nat.len() + 1,
            exceptions: Some(masq.clone()),
            ..raw::EndpointOutboundNat::default()
        };
        template.outbound_nat.push(Spanned::new(masq.span(), on));
    }
}

/// Reads one configuration (a plugin of a list, or flannel's delegate merged in).
fn read_conf(
    r: &mut Reader,
    conf: &Json,
    list_name: Option<&Spanned<String>>,
    import: &mut Import,
) {
    let delegate = conf.get("delegate").filter(|d| d.is_object());
    let name = r
        .string(conf, "CNI configuration", "name")
        .or_else(|| list_name.cloned());
    let Some(name) = name else {
        r.d.error(
            conf.span.clone(),
            "CNI configuration",
            "missing field `name` (the network's name)",
        );
        return;
    };
    let object = format!("CNI configuration {:?}", name.get_ref());
    let body = delegate.unwrap_or(conf);
    let mut cni = CniDoc {
        network: Spanned::new(conf.span.clone(), empty_network(name.clone())),
        plugin: String::new(),
        has_subnets: false,
        assumed_vni: false,
    };
    if plugin(r, body, &object, &name, &mut cni).is_none() {
        return;
    }
    let mut template = EndpointPolicies::default();
    for part in [Some(conf), delegate].into_iter().flatten() {
        ipam(r, part, &object, &mut cni);
        policies(r, part, &object, &mut cni, &mut template);
        options(r, part, &object, &mut cni, &mut template);
        r.rest(part, &object, &HANDLED, &UNUSED);
    }
    let net = cni.network.get_mut();
    net.subnets.get_or_insert_default();
    if net
        .driver
        .as_ref()
        .is_some_and(|d| *d.get_ref() == raw::Driver::Overlay)
        && net.vni.is_none()
    {
        let at = net.driver.as_ref().map_or(conf.span.clone(), |d| d.span());
        net.vni = Some(Spanned::new(at, FLANNEL_VNI));
        cni.assumed_vni = true;
    }
    let template = template.into_template();
    if !template.acl.is_empty() || !template.outbound_nat.is_empty() || !template.route.is_empty() {
        cni.network.get_mut().template = Some(Spanned::new(conf.span.clone(), template));
    }
    import.cni.push(cni);
}

/// Reads a configuration or a configuration list (its first network plugin; the others,
/// such as portmap, are not used).
pub(crate) fn read(r: &mut Reader, o: &Json, is_list: bool, import: &mut Import) {
    if !is_list {
        read_conf(r, o, None, import);
        return;
    }
    let list_name = r.string(o, "CNI configuration list", "name");
    let mut found = false;
    for p in r.array(o, "CNI configuration list", "plugins") {
        let t = p.get("type").and_then(Json::as_str).unwrap_or_default();
        if !found && is_plugin(t) {
            found = true;
            read_conf(r, p, list_name.as_ref(), import);
        } else {
            r.d.warning(
                p.span.clone(),
                "CNI configuration list",
                format!("plugin `{t}` is not used (Strata reads the list's network plugin)"),
            );
        }
    }
    if !found {
        r.d.error(
            o.span.clone(),
            "CNI configuration list",
            "no Windows network plugin in `plugins`",
        );
    }
    r.rest(
        o,
        "CNI configuration list",
        &["cniVersion", "name", "plugins", "disableCheck"],
        &[],
    );
}
