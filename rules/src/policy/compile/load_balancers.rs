//! Load balancers (`[[load_balancer]]`, HNS ELB policy lists and HostComputeLoadBalancers):
//! their frontends and backends, and the `lb` layer every endpoint gets when there are
//! any: connections from an endpoint to a VIP go to one backend (Maglev hashing).

use std::collections::HashMap;
use std::net::IpAddr;

use toml::Spanned;

use super::super::diag::Diagnostics;
use super::super::raw;
use super::super::values;
use super::common::{Owners, claim, family, good_name, port_field};
use crate::model::{
    Action, Backend, Conditions, Defaults, Distribution, Group, GroupDirection, IpPrefix, Layer,
    LoadBalancer, LoadBalancerPolicy, PortRange, Rule, proto,
};

/// Name of the load-balancing layer, present on every port when the policy has
/// `[[load_balancer]]`s; its one group is [`LB_GROUP`].
pub const LB_LAYER: &str = "lb";
/// The outbound group of the `lb` layer: one rule per load balancer, id = its name.
pub const LB_GROUP: &str = "lb";

/// A backend: `ip:port`, `[ipv6]:port` or a bare address (port 0 = keep).
fn backend(s: &str) -> Result<Backend, String> {
    let t = s.trim();
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok(Backend { ip, port: 0 });
    }
    t.parse::<std::net::SocketAddr>()
        .map(|a| Backend {
            ip: a.ip(),
            port: a.port(),
        })
        .map_err(|_| {
            format!(
                "`{s}` is not a backend: write `198.18.1.10:80`, `[2001:db8::5]:8080` or a bare address"
            )
        })
}

fn backends(
    d: &mut Diagnostics,
    object: &str,
    lb: &raw::LoadBalancer,
    vip: Option<IpAddr>,
) -> Vec<Backend> {
    let mut out: Vec<Backend> = Vec::new();
    for b in &lb.backends {
        match backend(b.get_ref()) {
            Ok(be) if vip.is_some_and(|v| v.is_ipv4() != be.ip.is_ipv4()) => d.error(
                b.span(),
                object,
                format!(
                    "backend {} is {} but the vip is {}",
                    b.get_ref(),
                    family(be.ip.is_ipv4()),
                    family(!be.ip.is_ipv4())
                ),
            ),
            Ok(be) if out.contains(&be) => d.error(
                b.span(),
                object,
                format!("backend {} is listed twice", b.get_ref()),
            ),
            Ok(be) => out.push(be),
            Err(m) => d.error(b.span(), object, format!("backends: {m}")),
        }
    }
    if lb.backends.is_empty() {
        d.error(
            lb.name.span(),
            object,
            "a load balancer needs at least one backend",
        );
    }
    out
}

/// Host-wide claims of the load balancers: names and frontends.
#[derive(Default)]
struct LbClaims {
    names: Owners<String>,
    frontends: Owners<(u8, IpAddr, u16)>,
}

fn compile_one(
    d: &mut Diagnostics,
    lb: raw::LoadBalancer,
    claims: &mut LbClaims,
) -> Option<LoadBalancerPolicy> {
    let name = lb.name.get_ref().clone();
    let object = format!("load_balancer {name:?}");
    if good_name(d, lb.name.span(), &object, "name", &name) {
        let here = format!("the load balancer at {}", d.at(lb.name.span().start));
        if let Some(first) = claim(&mut claims.names, name.clone(), here) {
            d.error(
                lb.name.span(),
                &object,
                format!("duplicate load balancer name: {first} has it"),
            );
        }
    }
    let (protocol, pname) = match lb.protocol.as_ref().map(|p| *p.get_ref()) {
        Some(raw::LbProtocol::Udp) => (proto::UDP, "udp"),
        Some(raw::LbProtocol::Tcp) | None => (proto::TCP, "tcp"),
    };
    let vip = values::address(lb.vip.get_ref())
        .map_err(|m| d.error(lb.vip.span(), &object, format!("vip: {m}")))
        .ok();
    let port = port_field(d, &object, "port", &lb.port);
    let backends = backends(d, &object, &lb, vip);
    let (vip, port) = (vip?, port?);
    let owner = format!("load_balancer {name:?}");
    if let Some(first) = claim(&mut claims.frontends, (protocol, vip, port), owner) {
        d.error(
            lb.port.span(),
            &object,
            format!("frontend {pname} {vip} port {port} is already balanced by {first}"),
        );
    }
    let distribution = match lb.distribution {
        Some(raw::Distribution::SourceIpProtocol) => Distribution::SourceIpProtocol,
        Some(raw::Distribution::SourceIp) => Distribution::SourceIp,
        Some(raw::Distribution::FiveTuple) | None => Distribution::FiveTuple,
    };
    Some(LoadBalancerPolicy {
        protocol,
        vip,
        port,
        lb: LoadBalancer {
            name,
            backends,
            distribution,
        },
    })
}

/// The load balancers, in file order, and by name for `load-balance` rules.
pub(crate) fn compile_load_balancers(
    d: &mut Diagnostics,
    raws: Vec<Spanned<raw::LoadBalancer>>,
) -> (Vec<LoadBalancerPolicy>, HashMap<String, LoadBalancer>) {
    let mut claims = LbClaims::default();
    let mut policies = Vec::new();
    let mut by_name = HashMap::new();
    for lb in raws {
        if let Some(p) = compile_one(d, lb.into_inner(), &mut claims) {
            by_name
                .entry(p.lb.name.clone())
                .or_insert_with(|| p.lb.clone());
            policies.push(p);
        }
    }
    (policies, by_name)
}

/// The `lb` layer: every load balancer's frontend, outbound (DESIGN §2).
pub(crate) fn lb_layer(policies: &[LoadBalancerPolicy]) -> Layer {
    let rules = policies
        .iter()
        .map(|lb| Rule {
            id: lb.lb.name.clone(),
            priority: 100,
            conditions: Conditions {
                protocol: vec![lb.protocol],
                dst_ip: vec![IpPrefix::host(lb.vip)],
                dst_port: vec![PortRange::single(lb.port)],
                ..Conditions::default()
            },
            action: Action::LoadBalance(lb.lb.clone()),
            terminating: false,
            stateful: true,
        })
        .collect();
    Layer {
        name: LB_LAYER.into(),
        groups: vec![Group {
            name: LB_GROUP.into(),
            direction: GroupDirection::Out,
            condition: None,
            rules,
        }],
        defaults: Defaults::allow_all(),
    }
}
