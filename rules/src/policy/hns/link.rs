//! Linking: the TOML files and the JSON objects of one policy become one
//! [`raw::File`], linked as HNS links them.
//!
//! - An endpoint names its network by GUID (`VirtualNetwork`, `HostComputeNetwork`) or
//!   by name; a GUID must belong to a network among the files given.
//! - A CNI configuration's network is the network of that name if another file defines
//!   it (the plugin attaches to an existing network as it is: its subnets win over
//!   `ipam`, and its template is the configuration's); otherwise the configuration
//!   defines it.
//! - Policy lists and load balancers name endpoints by GUID (or, in Strata's host
//!   document, by name); their backends are those endpoints' addresses.
//! - An endpoint without a name is named by its GUID; one without a MAC gets
//!   `02:11:` + its IPv4 address (kube-proxy's convention), as HNS would assign one.

use std::collections::HashMap;
use std::net::IpAddr;

use toml::Spanned;

use super::super::diag::Diagnostics;
use super::super::raw;
use super::network::normalize_id;
use super::{CniDoc, EpDoc, Import, LbDoc, NetDoc, NetRef, PolicyListDoc};

/// Several TOML files in one: lists are appended; the host is described once.
fn merge_toml(d: &mut Diagnostics, tomls: Vec<raw::File>) -> raw::File {
    let mut file = raw::File::default();
    for t in tomls {
        merge_host(d, &mut file, t.host);
        merge_template(&mut file, t.template);
        file.networks.extend(t.networks);
        file.endpoints.extend(t.endpoints);
        file.remote_endpoints.extend(t.remote_endpoints);
        file.load_balancers.extend(t.load_balancers);
    }
    file
}

fn merge_host(d: &mut Diagnostics, file: &mut raw::File, host: Option<Spanned<raw::Host>>) {
    let Some(host) = host else { return };
    if let Some(first) = &file.host {
        let msg = format!(
            "the host is described twice (first at {})",
            d.at(first.span().start)
        );
        d.error(host.span(), "host", msg);
    } else {
        file.host = Some(host);
    }
}

fn merge_template(file: &mut raw::File, t: Option<Spanned<raw::Template>>) {
    let Some(t) = t else { return };
    match &mut file.template {
        None => file.template = Some(t),
        Some(mine) => {
            let mut t = t.into_inner();
            let mine = mine.get_mut();
            mine.acl.append(&mut t.acl);
            mine.outbound_nat.append(&mut t.outbound_nat);
            mine.route.append(&mut t.route);
        }
    }
}

/// Adds the JSON networks; returns their names by GUID.
fn add_networks(file: &mut raw::File, nets: Vec<NetDoc>) -> HashMap<String, String> {
    let mut ids = HashMap::new();
    for n in nets {
        if let Some(id) = n.id {
            ids.insert(id, n.network.get_ref().name.get_ref().clone());
        }
        file.networks.push(n.network);
    }
    ids
}

/// Attaches a CNI configuration to the existing network of its name.
fn attach_cni(d: &mut Diagnostics, existing: &mut raw::Network, cni: CniDoc) {
    let object = format!("CNI configuration {:?}", existing.name.get_ref());
    let conf = cni.network.into_inner();
    if let (Some(want), Some(have)) = (&conf.driver, &existing.driver)
        && want.get_ref() != have.get_ref()
    {
        let msg = format!(
            "plugin {} makes {} networks, but network {:?} is {} (at {})",
            cni.plugin,
            want.get_ref().as_str(),
            existing.name.get_ref(),
            have.get_ref().as_str(),
            d.at(have.span().start)
        );
        d.error(want.span(), &object, msg);
    }
    if cni.has_subnets {
        let at = conf
            .subnets
            .iter()
            .flatten()
            .next()
            .map_or(conf.name.span(), |s| s.span());
        let theirs: Vec<&str> = existing
            .subnets
            .iter()
            .flatten()
            .map(|s| s.get_ref().as_str())
            .collect();
        let mine: Vec<&str> = conf
            .subnets
            .iter()
            .flatten()
            .map(|s| s.get_ref().as_str())
            .collect();
        if mine != theirs {
            let msg = format!(
                "ipam subnets {} are not used: the plugin attaches to network {:?} as it is \
                 (subnets {})",
                mine.join(", "),
                existing.name.get_ref(),
                theirs.join(", ")
            );
            d.warning(at, &object, msg);
        }
    }
    if let Some(t) = conf.template {
        if let Some(first) = &existing.template {
            let msg = format!(
                "network {:?} has a template already (at {})",
                existing.name.get_ref(),
                d.at(first.span().start)
            );
            d.error(t.span(), &object, msg);
        } else {
            existing.template = Some(t);
        }
    }
}

/// The CNI networks: attached to a network of the same name, or defining it.
fn add_cni(d: &mut Diagnostics, file: &mut raw::File, cnis: Vec<CniDoc>) {
    for cni in cnis {
        let name = cni.network.get_ref().name.get_ref().clone();
        let object = format!("CNI configuration {name:?}");
        if let Some(existing) = file
            .networks
            .iter_mut()
            .find(|n| *n.get_ref().name.get_ref() == name)
        {
            attach_cni(d, existing.get_mut(), cni);
            continue;
        }
        let net = cni.network.get_ref();
        match (&net.driver, cni.plugin.eq_ignore_ascii_case("wincni.exe")) {
            (None, _) => {
                let msg = format!(
                    "{} attaches to an existing HNS network named {name:?}, which no file given \
                     defines: give it too (an HNSNetwork, or a [[network]] in a host document)",
                    cni.plugin
                );
                d.error(net.name.span(), &object, msg);
                continue;
            }
            (Some(drv), true) => {
                let msg = format!(
                    "driver {} is taken from the network's name: wincni.exe attaches to an \
                     existing HNS network named {name:?}, which the SDN scripts name after its \
                     type (give the network to be sure)",
                    drv.get_ref().as_str()
                );
                d.warning(drv.span(), &object, msg);
            }
            _ => {}
        }
        if cni.assumed_vni {
            let at = net.vni.as_ref().map_or(net.name.span(), |v| v.span());
            let msg = "the overlay network's VNI is not in a CNI configuration (the plugin \
                       attaches to a network that flannel or OVN's hybrid overlay creates): Strata \
                       assumes 4096, flannel's default on Windows; give the network (an \
                       HNSNetwork, or a [[network]] in a host document) to set it";
            d.warning(at, &object, msg);
        }
        file.networks.push(cni.network);
    }
}

/// The MAC HNS would have assigned: `02:11:` and the IPv4 address (the last four bytes of
/// an IPv6 one), as kube-proxy conjures them for remote endpoints.
fn assigned_mac(ep: &EpDoc) -> Option<String> {
    let ip = |s: &Option<Spanned<String>>| {
        s.as_ref()
            .and_then(|a| a.get_ref().trim().parse::<IpAddr>().ok())
    };
    let bytes: [u8; 4] = match (ip(&ep.ipv4), ip(&ep.ipv6)) {
        (Some(IpAddr::V4(a)), _) => a.octets(),
        (_, Some(IpAddr::V6(a))) => {
            let o = a.octets();
            [o[12], o[13], o[14], o[15]]
        }
        _ => return None,
    };
    Some(format!(
        "02:11:{:02x}:{:02x}:{:02x}:{:02x}",
        bytes[0], bytes[1], bytes[2], bytes[3]
    ))
}

/// The network an endpoint names (by GUID, or name), by name.
fn network_name(
    d: &mut Diagnostics,
    object: &str,
    ep: &EpDoc,
    ids: &HashMap<String, String>,
) -> Option<Spanned<String>> {
    match &ep.network {
        Some(NetRef::Name(n)) => Some(n.clone()),
        Some(NetRef::Id(id)) => match ids.get(&normalize_id(id.get_ref())) {
            Some(name) => Some(Spanned::new(id.span(), name.clone())),
            None => {
                let msg = format!(
                    "network {} is not among the files given: HNS links an endpoint to its \
                     network by GUID; give the network too",
                    id.get_ref()
                );
                d.error(id.span(), object, msg);
                None
            }
        },
        None => {
            let msg = "an endpoint needs its network: VirtualNetwork, VirtualNetworkName or HostComputeNetwork";
            d.error(ep.span.clone(), object, msg);
            None
        }
    }
}

fn remote_endpoint(
    d: &mut Diagnostics,
    object: &str,
    ep: EpDoc,
    name: Spanned<String>,
    network: Spanned<String>,
) -> raw::RemoteEndpoint {
    let p = &ep.policies;
    let acls = p.acl.iter().map(|a| a.span());
    let mappings = p.port_mapping.iter().map(|m| m.span());
    let nats = p.outbound_nat.iter().map(|o| o.span());
    let routes = p.route.iter().map(|r| r.span());
    for at in acls.chain(mappings).chain(nats).chain(routes) {
        let why = "this policy is not used: a remote endpoint has no port on this host";
        d.warning(at, object, why);
    }
    raw::RemoteEndpoint {
        name: Some(name),
        network,
        mac: ep.mac,
        ipv4: ep.ipv4,
        ipv6: ep.ipv6,
        provider_address: ep.policies.provider_address,
    }
}

/// The JSON endpoints; returns endpoint names by GUID.
fn add_endpoints(
    d: &mut Diagnostics,
    file: &mut raw::File,
    eps: Vec<EpDoc>,
    net_ids: &HashMap<String, String>,
) -> HashMap<String, String> {
    let mut ids = HashMap::new();
    for (i, mut ep) in eps.into_iter().enumerate() {
        let fallback = ep
            .id
            .clone()
            .unwrap_or_else(|| format!("endpoint{}", i + 1));
        let name = ep
            .name
            .take()
            .unwrap_or_else(|| Spanned::new(ep.span.clone(), fallback));
        let object = format!("endpoint {:?}", name.get_ref());
        if let Some(id) = &ep.id {
            ids.insert(id.clone(), name.get_ref().clone());
        }
        let Some(network) = network_name(d, &object, &ep, net_ids) else {
            continue;
        };
        let span = ep.span.clone();
        if ep.remote {
            let re = remote_endpoint(d, &object, ep, name, network);
            file.remote_endpoints.push(Spanned::new(span, re));
            continue;
        }
        let mac = match ep.mac.take() {
            Some(m) => m,
            None => Spanned::new(span.clone(), assigned_mac(&ep).unwrap_or_default()),
        };
        let policies = ep.policies;
        file.endpoints.push(Spanned::new(
            span,
            raw::Endpoint {
                name,
                network,
                mac,
                ipv4: ep.ipv4,
                ipv6: ep.ipv6,
                isolation: ep.isolation,
                interface: ep.interface,
                acl: policies.acl,
                port_mapping: policies.port_mapping,
                layer: Vec::new(),
                outbound_nat: policies.outbound_nat,
                route: policies.route,
            },
        ));
    }
    ids
}

/// Endpoint addresses by name, local and remote, for backends.
fn addresses_by_name(file: &raw::File) -> HashMap<String, [Option<String>; 2]> {
    let text = |s: &Option<Spanned<String>>| s.as_ref().map(|s| s.get_ref().clone());
    let mut out = HashMap::new();
    for ep in &file.endpoints {
        let ep = ep.get_ref();
        out.insert(ep.name.get_ref().clone(), [text(&ep.ipv4), text(&ep.ipv6)]);
    }
    for re in &file.remote_endpoints {
        let re = re.get_ref();
        if let Some(n) = &re.name {
            out.insert(n.get_ref().clone(), [text(&re.ipv4), text(&re.ipv6)]);
        }
    }
    out
}

/// The endpoint a reference names (`/endpoints/<GUID>`, a GUID, or a name).
fn resolve(
    d: &mut Diagnostics,
    object: &str,
    r: &Spanned<String>,
    ids: &HashMap<String, String>,
    names: &HashMap<String, [Option<String>; 2]>,
) -> Option<String> {
    if let Some(name) = ids.get(&normalize_id(r.get_ref())) {
        return Some(name.clone());
    }
    let plain = r.get_ref().trim().trim_start_matches("/endpoints/");
    if names.contains_key(plain) {
        return Some(plain.to_owned());
    }
    let msg = format!(
        "endpoint {} is not among the files given: HNS links policies to endpoints by GUID; \
         give the endpoint too",
        r.get_ref()
    );
    d.error(r.span(), object, msg);
    None
}

/// The load balancers of one LbDoc: one per VIP (the host's addresses when it has none),
/// backends the endpoints' addresses of the VIP's family.
fn balancers(
    d: &mut Diagnostics,
    lb: LbDoc,
    backends: &[[Option<String>; 2]],
    host: &[Spanned<String>],
) -> Vec<raw::LoadBalancer> {
    let vips = if lb.vips.is_empty() {
        if host.is_empty() {
            let msg = "an ELB without VIPs balances the host's addresses (a NodePort), and no \
                       host document gives them: give the host's addresses (a [host] section in \
                       another file)";
            d.error(lb.span.clone(), &lb.object, msg);
        }
        host.to_vec()
    } else {
        lb.vips.clone()
    };
    let port = lb.backend_port.as_ref().map_or(0, |p| *p.get_ref());
    let many = vips.len() > 1;
    (1..)
        .zip(vips)
        .map(|(j, vip)| {
            let v4 = !vip.get_ref().contains(':');
            let backend = |ip: &String| match (v4, port) {
                (_, 0) => ip.clone(),
                (true, p) => format!("{ip}:{p}"),
                (false, p) => format!("[{ip}]:{p}"),
            };
            let addrs = backends.iter().filter_map(|b| b[usize::from(!v4)].as_ref());
            let list = addrs
                .map(|ip| Spanned::new(lb.span.clone(), backend(ip)))
                .collect();
            let name = if many {
                format!("{}-{j}", lb.base_name)
            } else {
                lb.base_name.clone()
            };
            raw::LoadBalancer {
                name: Spanned::new(lb.span.clone(), name),
                protocol: lb.protocol.map(|p| Spanned::new(lb.span.clone(), p)),
                vip,
                port: lb.frontend_port.clone(),
                backends: list,
                distribution: lb.distribution,
            }
        })
        .collect()
}

/// What policy lists and load balancers are linked against: endpoints by GUID, their
/// addresses and positions by name, and the host's addresses (for NodePorts).
struct Members {
    ids: HashMap<String, String>,
    names: HashMap<String, [Option<String>; 2]>,
    positions: HashMap<String, usize>,
    host: Vec<Spanned<String>>,
}

impl Members {
    fn of(file: &raw::File, ids: HashMap<String, String>) -> Members {
        let positions = (0..)
            .zip(&file.endpoints)
            .map(|(i, e)| (e.get_ref().name.get_ref().clone(), i))
            .collect();
        let host = file
            .host
            .as_ref()
            .map_or_else(Vec::new, |h| h.get_ref().addresses.clone());
        Members {
            names: addresses_by_name(file),
            ids,
            positions,
            host,
        }
    }
}

fn add_balancers(
    d: &mut Diagnostics,
    file: &mut raw::File,
    refs: &[Spanned<String>],
    docs: Vec<LbDoc>,
    object: &str,
    m: &Members,
) {
    let backends: Vec<[Option<String>; 2]> = refs
        .iter()
        .filter_map(|r| resolve(d, object, r, &m.ids, &m.names))
        .filter_map(|n| m.names.get(&n).cloned())
        .collect();
    for lb in docs {
        let made = balancers(d, lb, &backends, &m.host);
        file.load_balancers
            .extend(made.into_iter().map(|b| Spanned::new(b.name.span(), b)));
    }
}

/// A policy list's routes go to every endpoint it references; its ELBs balance them.
fn add_policy_list(d: &mut Diagnostics, file: &mut raw::File, list: PolicyListDoc, m: &Members) {
    if !list.routes.is_empty() {
        for r in &list.references {
            let Some(name) = resolve(d, &list.object, r, &m.ids, &m.names) else {
                continue;
            };
            let Some(ep) = m
                .positions
                .get(&name)
                .and_then(|&i| file.endpoints.get_mut(i))
            else {
                continue;
            };
            let ep = ep.get_mut();
            for route in &list.routes {
                let route = raw::Route {
                    position: ep.route.len() + 1,
                    prefix: route.get_ref().prefix.clone(),
                };
                ep.route.push(Spanned::new(r.span(), route));
            }
        }
    }
    if !list.balancers.is_empty() {
        add_balancers(d, file, &list.references, list.balancers, &list.object, m);
    }
}

/// One policy from TOML files and HNS JSON objects.
pub(crate) fn link(d: &mut Diagnostics, tomls: Vec<raw::File>, import: Import) -> raw::File {
    let mut file = merge_toml(d, tomls);
    merge_host(d, &mut file, import.host);
    merge_template(&mut file, import.host_template);
    let mut net_ids = add_networks(&mut file, import.networks);
    add_cni(d, &mut file, import.cni);
    // `VirtualNetwork` holds a GUID, but a name finds its network too.
    for n in &file.networks {
        let name = n.get_ref().name.get_ref();
        net_ids
            .entry(normalize_id(name))
            .or_insert_with(|| name.clone());
    }
    let ep_ids = add_endpoints(d, &mut file, import.endpoints, &net_ids);
    let members = Members::of(&file, ep_ids);
    for list in import.policy_lists {
        add_policy_list(d, &mut file, list, &members);
    }
    for (refs, docs) in import.load_balancers {
        add_balancers(d, &mut file, &refs, docs, "load balancer", &members);
    }
    file
}
