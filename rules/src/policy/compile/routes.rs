//! Routes to the host (HNS ROUTE / SDNRoute with NeedEncap): the `route` layer, last on
//! the endpoint's port. HNS sends packets for such a prefix (the cluster's service range,
//! the host's own address) to the host instead of bridging them out; Strata does it by
//! giving them the host's MAC as destination, so they leave through the uplink addressed
//! to the host.
//!
//! Routes are matched longest prefix first, and the network's own subnets take part as
//! "stay bridged" entries, so a wide route never pulls traffic between neighbours of the
//! subnet up to the host, while a host route inside the subnet still wins.

use toml::Spanned;

use super::super::diag::Diagnostics;
use super::super::raw;
use super::super::values::{self, Scalar};
use crate::model::{
    Action, Conditions, Defaults, Group, GroupDirection, IpPrefix, Layer, Mac, Rule,
};

/// Name of the layer holding an endpoint's routes to the host.
pub const ROUTE_LAYER: &str = "route";

/// The prefixes of a list of routes, in order; bad ones are reported and skipped.
pub(crate) fn compile_routes(
    d: &mut Diagnostics,
    object: &str,
    routes: &[Spanned<raw::Route>],
) -> Vec<IpPrefix> {
    let mut out = Vec::new();
    for (i, r) in routes.iter().enumerate() {
        let r = r.get_ref();
        let n = r.position.checked_sub(1).unwrap_or(i) + 1;
        match values::prefix(&Scalar::Str(r.prefix.get_ref().clone())) {
            Ok(p) => out.push(p),
            Err(m) => d.error(
                r.prefix.span(),
                &format!("{object} route #{n}"),
                format!("prefix: {m}"),
            ),
        }
    }
    out
}

/// Longest prefix first: a priority that falls as the prefix lengthens.
fn lpm_priority(p: &IpPrefix) -> u32 {
    let max = if p.is_ipv4() { 32 } else { 128 };
    u32::from(max - p.len())
}

fn rule(id: String, prefix: IpPrefix, action: Action) -> Rule {
    let stateful = action.is_transposition();
    Rule {
        id,
        priority: lpm_priority(&prefix),
        conditions: Conditions {
            dst_ip: vec![prefix],
            ..Conditions::default()
        },
        action,
        terminating: false,
        stateful,
    }
}

/// The `route` layer: group `routes` (out) with rule `route<N>` per route (destination
/// MAC becomes the host's) and `subnet<N>` per subnet of the network (left alone),
/// priorities by prefix length; routes first, so an equal subnet loses to a route.
pub(crate) fn route_layer(routes: &[IpPrefix], subnets: &[IpPrefix], host_mac: Mac) -> Layer {
    let to_host = Action::SetMac {
        src: None,
        dst: Some(host_mac),
    };
    let mut rules: Vec<Rule> = (1..)
        .zip(routes)
        .map(|(n, p)| rule(format!("route{n}"), *p, to_host.clone()))
        .collect();
    rules.extend(
        (1..)
            .zip(subnets)
            .map(|(n, p)| rule(format!("subnet{n}"), *p, Action::Allow)),
    );
    Layer {
        name: ROUTE_LAYER.into(),
        groups: vec![Group {
            name: "routes".into(),
            direction: GroupDirection::Out,
            condition: None,
            rules,
        }],
        defaults: Defaults::allow_all(),
    }
}
