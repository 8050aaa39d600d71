//! Endpoints → ports: identity (name, MAC, addresses, network), port mappings, and the
//! layers top to bottom: `acl` (templates' ACLs, then its own, over its isolation
//! profile), custom layers, `lb`, `nat` (WinNAT or OutboundNATs), `route`.

use std::collections::HashMap;
use std::net::IpAddr;

use toml::Spanned;

use super::super::diag::Diagnostics;
use super::super::raw;
use super::super::values;
use super::acls::{AclRule, acl_layer, acl_profile, compile_acls};
use super::common::{Owners, claim, good_name, port_field, port_mac};
use super::layers::compile_layers;
use super::nat::{Onat, compile_onat, outbound_nat_layer, winnat_layer};
use super::networks::{NetworkInfo, outbound_nat_allowed};
use super::routes::{compile_routes, route_layer};
use super::templates::{CompiledTemplate, one_per_family};
use crate::model::{
    Driver, IpPrefix, Isolation, Layer, LoadBalancer, Mac, Port, PortMapping, proto,
};

/// What every endpoint is compiled against.
pub(crate) struct Context<'a> {
    pub networks: &'a HashMap<String, NetworkInfo>,
    pub lbs: &'a HashMap<String, LoadBalancer>,
    /// The `lb` layer, when the policy has load balancers.
    pub lb_layer: Option<Layer>,
    /// The host's addresses, in file order (NAT translates to the first of a family).
    pub host_ips: Vec<IpAddr>,
    pub host_mac: Mac,
    /// `[template]`: what every endpoint gets.
    pub host_template: Option<CompiledTemplate>,
}

impl Context<'_> {
    fn host_v4(&self) -> Vec<IpAddr> {
        self.host_ips
            .iter()
            .copied()
            .filter(IpAddr::is_ipv4)
            .collect()
    }
}

/// Host-wide claims that endpoints must not share.
#[derive(Default)]
pub(crate) struct Claims {
    pub names: Owners<String>,
    pub ips: Owners<IpAddr>,
    pub macs: Owners<Mac>,
    /// (protocol, external port) of port mappings.
    pub external_ports: Owners<(u8, u16)>,
}

fn isolation(i: raw::Isolation) -> Isolation {
    match i {
        raw::Isolation::Process => Isolation::Process,
        raw::Isolation::ProcessLegacy => Isolation::ProcessLegacy,
        raw::Isolation::Hyperv => Isolation::HyperV,
    }
}

/// The network an endpoint names, or an error listing the known ones.
pub(crate) fn find_network<'a>(
    d: &mut Diagnostics,
    object: &str,
    networks: &'a HashMap<String, NetworkInfo>,
    name: &Spanned<String>,
) -> Option<&'a NetworkInfo> {
    let found = networks.get(name.get_ref());
    if found.is_none() {
        let mut known: Vec<&str> = networks.keys().map(String::as_str).collect();
        known.sort_unstable();
        let hint = if known.is_empty() {
            "no [[network]] is defined".to_owned()
        } else {
            format!("known: {}", known.join(", "))
        };
        d.error(
            name.span(),
            object,
            format!("unknown network `{}` ({hint})", name.get_ref()),
        );
    }
    found
}

/// An endpoint's addresses (`ipv4`, `ipv6`): parsed, unique on the host, in a subnet of
/// its network and not its gateway.
pub(crate) fn addresses(
    d: &mut Diagnostics,
    object: &str,
    here: &str,
    fields: [Option<&Spanned<String>>; 2],
    net: Option<(&str, &NetworkInfo)>,
    claims: &mut Owners<IpAddr>,
) -> Vec<IpAddr> {
    let mut ips = Vec::new();
    for ((field, v4), value) in [("ipv4", true), ("ipv6", false)].into_iter().zip(fields) {
        let Some(value) = value else { continue };
        let ip = match values::address(value.get_ref()) {
            Ok(ip) if ip.is_ipv4() == v4 => ip,
            Ok(ip) => {
                let family = if v4 { "IPv4" } else { "IPv6" };
                d.error(
                    value.span(),
                    object,
                    format!("{field}: {ip} is not an {family} address"),
                );
                continue;
            }
            Err(m) => {
                d.error(value.span(), object, format!("{field}: {m}"));
                continue;
            }
        };
        if let Some(first) = claim(claims, ip, here.to_owned()) {
            d.error(
                value.span(),
                object,
                format!("duplicate IP {ip}: {first} has it"),
            );
        }
        if let Some((net_name, net)) = net {
            if !net.subnets.is_empty() && !net.subnets.iter().any(|p| p.contains(ip)) {
                let subnets: Vec<String> = net.subnets.iter().map(|p| p.to_string()).collect();
                d.error(
                    value.span(),
                    object,
                    format!(
                        "{field} {ip} is outside the subnets of network {net_name:?} ({})",
                        subnets.join(", ")
                    ),
                );
            } else if net.gateway == Some(ip) {
                d.error(
                    value.span(),
                    object,
                    format!("{field} {ip} is the gateway of network {net_name:?}"),
                );
            }
        }
        ips.push(ip);
    }
    ips
}

fn port_mappings(
    d: &mut Diagnostics,
    object: &str,
    here: &str,
    raws: Vec<Spanned<raw::PortMapping>>,
    net: Option<(&str, Driver)>,
    claims: &mut Owners<(u8, u16)>,
) -> Vec<PortMapping> {
    let mut out = Vec::new();
    for (i, pm) in raws.into_iter().enumerate() {
        let span = pm.span();
        let pm = pm.into_inner();
        let pobj = format!(
            "{object} port_mapping #{}",
            pm.position.checked_sub(1).unwrap_or(i) + 1
        );
        if let Some((net_name, dr)) = net
            && dr != Driver::Nat
        {
            let why = format!(
                "port mappings need a nat network; network {net_name:?} is {}",
                dr.as_str()
            );
            d.error(span, &pobj, why);
        }
        let (protocol, pname) = match pm.protocol {
            Some(raw::MappingProtocol::Udp) => (proto::UDP, "udp"),
            Some(raw::MappingProtocol::Tcp) | None => (proto::TCP, "tcp"),
        };
        let internal = port_field(d, &pobj, "internal_port", &pm.internal_port);
        let external = port_field(d, &pobj, "external_port", &pm.external_port);
        let (Some(internal_port), Some(external_port)) = (internal, external) else {
            continue;
        };
        if let Some(first) = claim(claims, (protocol, external_port), here.to_owned()) {
            d.error(
                pm.external_port.span(),
                &pobj,
                format!("duplicate port mapping: external port {pname}/{external_port} is already mapped by {first}"),
            );
        }
        out.push(PortMapping {
            protocol,
            internal_port,
            external_port,
        });
    }
    out
}

/// The templates an endpoint gets: the host's, then its network's.
fn templates<'a>(ctx: &'a Context, net: Option<&'a NetworkInfo>) -> Vec<&'a CompiledTemplate> {
    ctx.host_template
        .iter()
        .chain(net.and_then(|n| n.template.as_ref()))
        .collect()
}

/// The endpoint's ACLs after its templates', with ids unique across all of them. DESIGN
/// §1: for Hyper-V isolation on NAT and Transparent networks nobody may reconfigure the
/// default ACLs, so a user ACL there has no honest meaning.
fn acls(
    d: &mut Diagnostics,
    object: &str,
    name: &Spanned<String>,
    own: Vec<AclRule>,
    templates: &[&CompiledTemplate],
    locked: Option<String>,
) -> Vec<AclRule> {
    // Ids taken by the templates (duplicates within one list are reported with it).
    let mut taken: Owners<String> = Owners::new();
    let mut all = Vec::new();
    for t in templates {
        if let (Some(why), false) = (&locked, t.acls.is_empty()) {
            d.error(name.span(), object, format!("{} has ACLs: {why}", t.origin));
        }
        for a in &t.acls {
            if let Some(first) = taken.get(&a.rule.id).filter(|f| **f != t.origin) {
                let msg = format!("duplicate ACL id `{}` ({first} has it)", a.rule.id);
                d.error(a.id_span.clone(), &a.object, msg);
            }
            taken.insert(a.rule.id.clone(), t.origin.clone());
            all.push(a.clone());
        }
    }
    for a in own {
        if let Some(why) = &locked {
            d.error(a.span.clone(), &a.object, why.clone());
        }
        if let Some(first) = taken.get(&a.rule.id) {
            let msg = format!("duplicate ACL id `{}` ({first} has it)", a.rule.id);
            d.error(a.id_span.clone(), &a.object, msg);
        }
        all.push(a);
    }
    all
}

fn lock_reason(drv: Option<Driver>, iso: Isolation) -> Option<String> {
    match drv {
        Some(dr @ (Driver::Nat | Driver::Transparent)) if iso == Isolation::HyperV => {
            Some(format!(
                "ACLs cannot be set on a Hyper-V-isolated endpoint of a {} network: nobody may \
             reconfigure the default ACLs for Hyper-V isolation on NAT and Transparent \
             networks (it allows all traffic); use process isolation, or an l2bridge, \
             l2tunnel or overlay network",
                dr.as_str()
            ))
        }
        _ => None,
    }
}

/// The endpoint's OutboundNATs: its network's, its templates', its own; one per family.
fn outbound_nats(
    d: &mut Diagnostics,
    object: &str,
    ep: &raw::Endpoint,
    net: Option<&NetworkInfo>,
    templates: &[&CompiledTemplate],
    ctx: &Context,
) -> Vec<Onat> {
    let mut all: Vec<(Onat, String)> = Vec::new();
    if let Some(on) = net.and_then(|n| n.outbound_nat.clone()) {
        all.push((on, "the network's outbound_nat".into()));
    }
    // WinNAT already translates on `nat`; `transparent` keeps the addresses.
    let refused = net
        .map(|n| n.driver)
        .filter(|dr| !outbound_nat_allowed(*dr));
    let why = |dr: Driver| {
        format!(
            "OutBoundNAT is for overlay, l2bridge and l2tunnel networks; this endpoint's is {}",
            dr.as_str()
        )
    };
    for t in templates.iter().filter(|t| !t.nats.is_empty()) {
        match refused {
            Some(dr) => d.error(
                ep.name.span(),
                object,
                format!("{} has an OutBoundNAT: {}", t.origin, why(dr)),
            ),
            None => all.extend(t.nats.iter().map(|on| (on.clone(), t.origin.clone()))),
        }
    }
    for (i, on) in ep.outbound_nat.iter().enumerate() {
        let n = on.get_ref().position.checked_sub(1).unwrap_or(i) + 1;
        let oobj = format!("{object} outbound_nat #{n}");
        if let Some(dr) = refused {
            d.error(on.span(), &oobj, why(dr));
            continue;
        }
        if let Some(on) = compile_onat(d, &oobj, on, &ctx.host_ips, true) {
            all.push((on, format!("outbound_nat #{n}")));
        }
    }
    one_per_family(d, object, all)
}

/// Name, MAC and addresses of an endpoint, claimed host-wide.
struct Identity {
    name: String,
    mac: Mac,
    ips: Vec<IpAddr>,
}

fn identity(
    d: &mut Diagnostics,
    object: &str,
    here: &str,
    ep: &raw::Endpoint,
    net: Option<&NetworkInfo>,
    claims: &mut Claims,
) -> Identity {
    let name = ep.name.get_ref().clone();
    if good_name(d, ep.name.span(), object, "name", &name)
        && let Some(first) = claim(&mut claims.names, name.clone(), here.to_owned())
    {
        d.error(
            ep.name.span(),
            object,
            format!("duplicate endpoint name: {first} has it"),
        );
    }
    let mut mac = Mac::ZERO;
    match port_mac(ep.mac.get_ref()) {
        Ok(m) => {
            mac = m;
            if let Some(first) = claim(&mut claims.macs, m, here.to_owned()) {
                d.error(
                    ep.mac.span(),
                    object,
                    format!("duplicate MAC {m}: {first} has it"),
                );
            }
        }
        Err(m) => d.error(ep.mac.span(), object, format!("mac: {m}")),
    }
    let net = net.map(|n| (ep.network.get_ref().as_str(), n));
    let fields = [ep.ipv4.as_ref(), ep.ipv6.as_ref()];
    let ips = addresses(d, object, here, fields, net, &mut claims.ips);
    if ep.ipv4.is_none() && ep.ipv6.is_none() {
        d.error(
            ep.name.span(),
            object,
            "an endpoint needs an address: ipv4, ipv6 or both",
        );
    }
    Identity { name, mac, ips }
}

/// One endpoint being compiled, with what applies to it.
struct Scope<'a> {
    object: &'a str,
    ep: &'a raw::Endpoint,
    net: Option<&'a NetworkInfo>,
    templates: &'a [&'a CompiledTemplate],
    ctx: &'a Context<'a>,
}

/// The layers below the custom ones: `lb`, `nat`, `route`.
fn lower_layers(
    d: &mut Diagnostics,
    s: &Scope,
    ips: &[IpAddr],
    mappings: &[PortMapping],
) -> Vec<Layer> {
    let Scope {
        object,
        ep,
        net,
        templates,
        ctx,
    } = *s;
    let mut layers: Vec<Layer> = ctx.lb_layer.iter().cloned().collect();
    let subnets: &[IpPrefix] = net.map_or(&[], |n| &n.subnets);
    let endpoint_v4 = ips.iter().copied().find(IpAddr::is_ipv4);
    let nats = outbound_nats(d, object, ep, net, templates, ctx);
    if net.is_some_and(|n| n.driver == Driver::Nat) {
        if endpoint_v4.is_none() && !mappings.is_empty() {
            d.error(
                ep.name.span(),
                object,
                "port mappings need an ipv4 address on the endpoint (WinNAT is IPv4 only)",
            );
        }
        layers.push(winnat_layer(subnets, &ctx.host_v4(), endpoint_v4, mappings));
    } else if !nats.is_empty() {
        layers.push(outbound_nat_layer(subnets, &nats));
    }
    let mut routes: Vec<IpPrefix> = templates
        .iter()
        .flat_map(|t| t.routes.iter().copied())
        .collect();
    routes.extend(compile_routes(d, object, &ep.route));
    if !routes.is_empty() {
        layers.push(route_layer(&routes, subnets, ctx.host_mac));
    }
    layers
}

pub(crate) fn compile_endpoint(
    d: &mut Diagnostics,
    ep: Spanned<raw::Endpoint>,
    ctx: &Context,
    claims: &mut Claims,
) -> Port {
    let span = ep.span();
    let mut ep = ep.into_inner();
    let object = format!("endpoint {:?}", ep.name.get_ref());
    let here = format!("endpoint {:?} at {}", ep.name.get_ref(), d.at(span.start));
    let net = find_network(d, &object, ctx.networks, &ep.network);
    let id = identity(d, &object, &here, &ep, net, claims);
    if let Some(i) = &ep.interface {
        good_name(d, span.clone(), &object, "interface", i);
    }
    let iso = ep
        .isolation
        .as_ref()
        .map_or(Isolation::Process, |i| isolation(*i.get_ref()));
    let drv = net.map(|n| n.driver);
    let templates = templates(ctx, net);
    let own = compile_acls(d, &object, std::mem::take(&mut ep.acl), "acl");
    let acl_rules = acls(d, &object, &ep.name, own, &templates, lock_reason(drv, iso));
    let net_arg = drv.map(|dr| (ep.network.get_ref().as_str(), dr));
    let raws = std::mem::take(&mut ep.port_mapping);
    let mappings = port_mappings(d, &object, &here, raws, net_arg, &mut claims.external_ports);
    let mut acl = acl_layer(acl_rules.iter());
    acl.defaults = acl_profile(iso, drv, &mappings);
    let mut layers = vec![acl];
    layers.extend(compile_layers(
        d,
        &object,
        std::mem::take(&mut ep.layer),
        ctx.lbs,
    ));
    let scope = Scope {
        object: &object,
        ep: &ep,
        net,
        templates: &templates,
        ctx,
    };
    layers.extend(lower_layers(d, &scope, &id.ips, &mappings));
    Port {
        name: id.name,
        network: ep.network.into_inner(),
        mac: id.mac,
        ips: id.ips,
        isolation: iso,
        interface: ep.interface,
        port_mappings: mappings,
        layers,
    }
}
