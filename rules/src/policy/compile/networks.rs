//! Networks: driver, subnets, gateway, VLAN, VXLAN (VNI, port, remote subnet routes),
//! the network-wide OutboundNAT and the endpoint template. Endpoints are compiled
//! against what is kept here ([`NetworkInfo`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::Range;

use toml::Spanned;

use super::super::diag::Diagnostics;
use super::super::raw;
use super::super::values::{self, Scalar};
use super::common::{Owners, claim, family, good_name, int_field, list, overlaps, port_mac};
use super::nat::Onat;
use super::templates::{CompiledTemplate, compile_template};
use crate::model::{Driver, IpPrefix, Network, OutboundNat, RemoteRoute, VXLAN_PORT};

/// What endpoints are compiled against.
pub(crate) struct NetworkInfo {
    /// Position in the policy's networks (remote endpoints add routes to it).
    pub index: usize,
    pub driver: Driver,
    pub subnets: Vec<IpPrefix>,
    pub gateway: Option<IpAddr>,
    /// `[network.outbound_nat]`.
    pub outbound_nat: Option<Onat>,
    pub template: Option<CompiledTemplate>,
}

/// What networks are compiled against: the host's addresses, and how many endpoints use
/// each network (a template, or a NAT network's need for a host address, only matters
/// when some endpoint uses it).
pub(crate) struct NetworkContext<'a> {
    pub host_ips: &'a [IpAddr],
    pub endpoints: &'a HashMap<String, usize>,
}

pub(crate) fn driver(d: raw::Driver) -> Driver {
    match d {
        raw::Driver::Nat => Driver::Nat,
        raw::Driver::Transparent => Driver::Transparent,
        raw::Driver::L2bridge => Driver::L2Bridge,
        raw::Driver::L2tunnel => Driver::L2Tunnel,
        raw::Driver::Overlay => Driver::Overlay,
    }
}

fn not_for(what: &str, drivers: &str, drv: Driver) -> String {
    format!(
        "{what} is only for {drivers} networks; this one is {}",
        drv.as_str()
    )
}

/// The subnets (`subnet` and `subnets`); `subnets = []` alone means "assigned at run time".
fn subnets(d: &mut Diagnostics, object: &str, n: &raw::Network) -> Vec<IpPrefix> {
    let mut out = Vec::new();
    for s in n.subnet.iter().chain(n.subnets.iter().flatten()) {
        match values::prefix(&Scalar::Str(s.get_ref().clone())) {
            Ok(p) if out.contains(&p) => {
                d.error(s.span(), object, format!("subnet {p} is listed twice"))
            }
            Ok(p) => out.push(p),
            Err(m) => d.error(s.span(), object, format!("subnet: {m}")),
        }
    }
    if n.subnet.is_none() && n.subnets.is_none() {
        d.error(
            n.name.span(),
            object,
            "a network needs at least one subnet (`subnets = [\"198.18.1.0/24\"]`; \
             `subnets = []` if IPAM assigns it at run time)",
        );
    }
    out
}

fn gateway(
    d: &mut Diagnostics,
    object: &str,
    n: &raw::Network,
    subnets: &[IpPrefix],
) -> Option<IpAddr> {
    let g = n.gateway.as_ref()?;
    match values::address(g.get_ref()) {
        Ok(ip) if !subnets.is_empty() && !subnets.iter().any(|p| p.contains(ip)) => {
            d.error(
                g.span(),
                object,
                format!("gateway {ip} is outside the network's subnets"),
            );
            None
        }
        Ok(ip) => Some(ip),
        Err(m) => {
            d.error(g.span(), object, format!("gateway: {m}"));
            None
        }
    }
}

/// VLAN, VNI and VXLAN port, with the drivers they are for.
fn isolation(
    d: &mut Diagnostics,
    object: &str,
    n: &raw::Network,
    drv: Driver,
) -> (Option<u16>, Option<u32>, u16) {
    let vlan = n
        .vlan
        .as_ref()
        .and_then(|v| int_field(d, object, "vlan", v, 1, 4094))
        .and_then(|v| u16::try_from(v).ok());
    let vni = n
        .vni
        .as_ref()
        .and_then(|v| int_field(d, object, "vni", v, 1, 16_777_215))
        .and_then(|v| u32::try_from(v).ok());
    match (&n.vni, drv) {
        (None, Driver::Overlay) => d.error(
            n.name.span(),
            object,
            "an overlay network needs a vni (its VXLAN network identifier)",
        ),
        (Some(v), other) if other != Driver::Overlay => d.error(
            v.span(),
            object,
            format!(
                "vni is only for overlay networks; this one is {}",
                other.as_str()
            ),
        ),
        _ => {}
    }
    let vxlan_port = n
        .vxlan_port
        .as_ref()
        .and_then(|v| int_field(d, object, "vxlan_port", v, 1, 65535))
        .and_then(|v| u16::try_from(v).ok())
        .unwrap_or(VXLAN_PORT);
    if let Some(v) = &n.vxlan_port
        && drv != Driver::Overlay
    {
        d.error(v.span(), object, not_for("vxlan_port", "overlay", drv));
    }
    (vlan, vni, vxlan_port)
}

/// OutboundNAT is for networks whose endpoints reach the outside with their own
/// addresses otherwise; WinNAT already translates on `nat`, and `transparent` keeps them.
pub(crate) fn outbound_nat_allowed(drv: Driver) -> bool {
    matches!(drv, Driver::Overlay | Driver::L2Bridge | Driver::L2Tunnel)
}

fn network_outbound_nat(
    d: &mut Diagnostics,
    object: &str,
    on: &Spanned<raw::OutboundNat>,
    drv: Driver,
) -> Option<OutboundNat> {
    let oobj = format!("{object} outbound_nat");
    if !outbound_nat_allowed(drv) {
        d.error(
            on.span(),
            &oobj,
            not_for("outbound_nat", "overlay, l2bridge and l2tunnel", drv),
        );
    }
    let on = on.get_ref();
    let exceptions = list(
        d,
        &oobj,
        "exceptions",
        on.exceptions.as_ref(),
        values::prefix,
    );
    match values::address(on.vip.get_ref()) {
        Ok(vip) => Some(OutboundNat { vip, exceptions }),
        Err(m) => {
            d.error(on.vip.span(), &oobj, format!("vip: {m}"));
            None
        }
    }
}

fn remote_prefix(
    d: &mut Diagnostics,
    robj: &str,
    at: Range<usize>,
    text: &str,
    subnets: &[IpPrefix],
    seen: &mut Vec<IpPrefix>,
) -> Option<IpPrefix> {
    let p = values::prefix(&Scalar::Str(text.to_owned()))
        .map_err(|m| d.error(at.clone(), robj, format!("prefix: {m}")))
        .ok()?;
    let why = if !subnets.is_empty() && subnets.iter().all(|s| s.is_ipv4() != p.is_ipv4()) {
        let f = family(p.is_ipv4());
        format!("prefix {p} is {f} but the network has no {f} subnet")
    } else if let Some(s) = subnets.iter().find(|s| overlaps(s, &p)) {
        format!(
            "prefix {p} overlaps the network's own subnet {s}: remote routes are for \
             addresses on other hosts"
        )
    } else if let Some(r) = seen.iter().find(|r| overlaps(r, &p)) {
        format!("prefix {p} overlaps the remote route {r}")
    } else {
        seen.push(p);
        return Some(p);
    };
    d.error(at, robj, why);
    None
}

fn remote_routes(
    d: &mut Diagnostics,
    object: &str,
    n: &raw::Network,
    drv: Driver,
    subnets: &[IpPrefix],
) -> Vec<RemoteRoute> {
    let mut routes = Vec::new();
    let mut seen = Vec::new();
    for (i, route) in n.remote_subnet_route.iter().enumerate() {
        let robj = format!("{object} remote_subnet_route #{}", i + 1);
        if drv != Driver::Overlay {
            d.error(
                route.span(),
                &robj,
                not_for("remote_subnet_route", "overlay", drv),
            );
        }
        let route = route.get_ref();
        let prefix = remote_prefix(
            d,
            &robj,
            route.prefix.span(),
            route.prefix.get_ref(),
            subnets,
            &mut seen,
        );
        let provider = values::address(route.provider_address.get_ref())
            .map_err(|m| {
                d.error(
                    route.provider_address.span(),
                    &robj,
                    format!("provider_address: {m}"),
                )
            })
            .ok();
        let mac = match &route.mac {
            None => Some(None),
            Some(m) => port_mac(m.get_ref())
                .map(Some)
                .map_err(|e| d.error(m.span(), &robj, format!("mac: {e}")))
                .ok(),
        };
        if let (Some(prefix), Some(provider_address), Some(mac)) = (prefix, provider, mac) {
            routes.push(RemoteRoute {
                prefix,
                provider_address,
                mac,
            });
        }
    }
    routes
}

/// Host-wide claims of the networks.
#[derive(Default)]
struct NetClaims {
    names: Owners<String>,
    nat: Option<String>,
    vnis: Owners<u32>,
}

fn driver_checks(
    d: &mut Diagnostics,
    object: &str,
    n: &raw::Network,
    drv: Driver,
    here: &str,
    claims: &mut NetClaims,
    ctx: &NetworkContext,
) {
    if drv != Driver::Nat {
        return;
    }
    let at = n.driver.as_ref().map_or(n.name.span(), |d| d.span());
    match &claims.nat {
        Some(first) => d.error(
            at.clone(),
            object,
            format!("only one NAT network per host ({first} is one already)"),
        ),
        None => claims.nat = Some(here.to_owned()),
    }
    // WinNAT translates to the host's IPv4 address: needed once endpoints use it.
    let used = ctx.endpoints.get(n.name.get_ref()).is_some_and(|&c| c > 0);
    if used && !ctx.host_ips.iter().any(IpAddr::is_ipv4) {
        d.error(
            at,
            object,
            "a NAT network needs an IPv4 host address in [host] addresses (WinNAT translates to it)",
        );
    }
}

fn compile_network(
    d: &mut Diagnostics,
    n: Spanned<raw::Network>,
    index: usize,
    claims: &mut NetClaims,
    ctx: &NetworkContext,
) -> (Network, Option<NetworkInfo>) {
    let span = n.span();
    let n = n.into_inner();
    let name = n.name.get_ref().clone();
    let object = format!("network {name:?}");
    let here = format!("network {name:?} at {}", d.at(span.start));
    let mut usable = good_name(d, n.name.span(), &object, "name", &name);
    if usable && let Some(first) = claim(&mut claims.names, name.clone(), here.clone()) {
        d.error(
            n.name.span(),
            &object,
            format!("duplicate network name: {first} has it already"),
        );
        usable = false;
    }
    let drv = n
        .driver
        .as_ref()
        .map_or(Driver::Nat, |d| driver(*d.get_ref()));
    driver_checks(d, &object, &n, drv, &here, claims, ctx);
    let subnets = subnets(d, &object, &n);
    let gateway = gateway(d, &object, &n, &subnets);
    let (vlan, vni, vxlan_port) = isolation(d, &object, &n, drv);
    if let (Some(v), Some(at)) = (vni, n.vni.as_ref().map(|v| v.span()))
        && let Some(first) = claim(&mut claims.vnis, v, here.clone())
    {
        d.error(at, &object, format!("vni {v} is already used by {first}"));
    }
    let outbound_nat = n
        .outbound_nat
        .as_ref()
        .and_then(|on| network_outbound_nat(d, &object, on, drv));
    let remote_routes = remote_routes(d, &object, &n, drv, &subnets);
    let instantiated = ctx.endpoints.get(&name).is_some_and(|&c| c > 0);
    let template = n
        .template
        .map(|t| compile_template(d, &object, t, "template-acl", ctx.host_ips, instantiated));
    let info = usable.then(|| NetworkInfo {
        index,
        driver: drv,
        subnets: subnets.clone(),
        gateway,
        outbound_nat: outbound_nat
            .as_ref()
            .zip(n.outbound_nat.as_ref())
            .map(|(o, s)| Onat::of_network(o, s.span())),
        template,
    });
    let network = Network {
        name,
        driver: drv,
        subnets,
        gateway,
        vlan,
        vni,
        vxlan_port,
        outbound_nat,
        remote_routes,
    };
    (network, info)
}

/// The networks in file order, and what endpoints need of them by name.
pub(crate) fn compile_networks(
    d: &mut Diagnostics,
    raws: Vec<Spanned<raw::Network>>,
    ctx: &NetworkContext,
) -> (Vec<Network>, HashMap<String, NetworkInfo>) {
    let mut networks = Vec::new();
    let mut infos = HashMap::new();
    let mut claims = NetClaims::default();
    for (index, n) in raws.into_iter().enumerate() {
        let (network, info) = compile_network(d, n, index, &mut claims, ctx);
        if let Some(info) = info {
            infos.insert(network.name.clone(), info);
        }
        networks.push(network);
    }
    (networks, infos)
}
