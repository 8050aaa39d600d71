//! Remote endpoints (HNS `IsRemoteEndpoint`, v2 `Flags` 1): addresses of a network that
//! live on another host. They become no port — traffic for them must leave the host —
//! and on an overlay network each address becomes a host route of the network's remote
//! routes, VXLAN-encapsulated to the remote host's provider address with the endpoint's
//! MAC inside. Host routes come before the network's subnet routes, so the most specific
//! route wins, as in VFP.

use std::collections::HashMap;

use toml::Spanned;

use super::super::diag::Diagnostics;
use super::super::raw;
use super::super::values;
use super::common::{claim, good_name, port_mac};
use super::endpoints::{Claims, addresses, find_network};
use super::networks::NetworkInfo;
use crate::model::{Driver, IpPrefix, Mac, Network, RemoteRoute};

fn mac(
    d: &mut Diagnostics,
    object: &str,
    here: &str,
    m: &Spanned<String>,
    claims: &mut Claims,
) -> Option<Mac> {
    match port_mac(m.get_ref()) {
        Ok(mac) => {
            if let Some(first) = claim(&mut claims.macs, mac, here.to_owned()) {
                d.error(
                    m.span(),
                    object,
                    format!("duplicate MAC {mac}: {first} has it"),
                );
            }
            Some(mac)
        }
        Err(e) => {
            d.error(m.span(), object, format!("mac: {e}"));
            None
        }
    }
}

/// The host routes of one remote endpoint, for its network's remote routes.
fn compile_one(
    d: &mut Diagnostics,
    i: usize,
    re: Spanned<raw::RemoteEndpoint>,
    infos: &HashMap<String, NetworkInfo>,
    claims: &mut Claims,
) -> Option<(usize, Vec<RemoteRoute>)> {
    let span = re.span();
    let re = re.into_inner();
    let object = match &re.name {
        Some(n) => format!("remote_endpoint {:?}", n.get_ref()),
        None => format!("remote_endpoint #{}", i + 1),
    };
    if let Some(n) = &re.name {
        good_name(d, n.span(), &object, "name", n.get_ref());
    }
    let here = format!("{object} at {}", d.at(span.start));
    let net = find_network(d, &object, infos, &re.network);
    let mac = re
        .mac
        .as_ref()
        .and_then(|m| mac(d, &object, &here, m, claims));
    // Not checked against the local subnets: a remote pod's address is often in another
    // host's range.
    let fields = [re.ipv4.as_ref(), re.ipv6.as_ref()];
    let ips = addresses(d, &object, &here, fields, None, &mut claims.ips);
    if re.ipv4.is_none() && re.ipv6.is_none() {
        d.error(
            span.clone(),
            &object,
            "a remote endpoint needs an address: ipv4, ipv6 or both",
        );
    }
    let net = net?;
    let provider = match (&re.provider_address, net.driver) {
        (Some(pa), Driver::Overlay) => values::address(pa.get_ref())
            .map_err(|m| d.error(pa.span(), &object, format!("provider_address: {m}")))
            .ok()?,
        (None, Driver::Overlay) => {
            let why = "a remote endpoint of an overlay network needs its host's provider address \
                       (HNS policy PA / ProviderAddress): packets to it are encapsulated there";
            d.error(span, &object, why);
            return None;
        }
        (Some(pa), other) => {
            let why = format!(
                "provider_address is not used on a {} network: packets to a remote endpoint \
                 leave through the uplink unencapsulated",
                other.as_str()
            );
            d.warning(pa.span(), &object, why);
            return None;
        }
        (None, _) => return None,
    };
    let routes = ips
        .into_iter()
        .map(|ip| RemoteRoute {
            prefix: IpPrefix::host(ip),
            provider_address: provider,
            mac,
        })
        .collect();
    Some((net.index, routes))
}

/// Adds the host routes of the remote endpoints to their networks' remote routes, before
/// the network's own.
pub(crate) fn compile_remote_endpoints(
    d: &mut Diagnostics,
    raws: Vec<Spanned<raw::RemoteEndpoint>>,
    networks: &mut [Network],
    infos: &HashMap<String, NetworkInfo>,
    claims: &mut Claims,
) {
    let mut host_routes: HashMap<usize, Vec<RemoteRoute>> = HashMap::new();
    for (i, re) in raws.into_iter().enumerate() {
        if let Some((index, routes)) = compile_one(d, i, re, infos, claims) {
            host_routes.entry(index).or_default().extend(routes);
        }
    }
    for (index, mut routes) in host_routes {
        if let Some(n) = networks.get_mut(index) {
            routes.append(&mut n.remote_routes);
            n.remote_routes = routes;
        }
    }
}
