//! Validation and compilation: from the raw types of [`super::raw`] (read from TOML or
//! HNS JSON) to the object model. Both happen in one walk so that every check sees the
//! parsed values it needs, and every error is recorded (with its span) instead of
//! stopping at the first.
//!
//! The order: the uplink (host facts), networks (with their templates), load balancers,
//! endpoints (each against its network and the templates that apply), remote endpoints.
//! One file per concern: `uplink`, `networks`, `templates`, `endpoints`, `acls`, `nat`,
//! `routes`, `load_balancers`, `layers` (custom) with `actions`, `remote`, and `common`
//! checks.

mod acls;
mod actions;
mod common;
mod endpoints;
mod layers;
mod load_balancers;
mod nat;
mod networks;
mod remote;
mod routes;
mod templates;
mod uplink;

use std::collections::HashMap;
use std::net::IpAddr;

use super::diag::Diagnostics;
use super::raw;
use crate::model::Policy;

pub use acls::{ACL_IN_GROUP, ACL_LAYER, ACL_OUT_GROUP, acl_profile};
pub use common::DEFAULT_PRIORITY;
pub use load_balancers::{LB_GROUP, LB_LAYER};
pub use nat::{NAT_LAYER, NAT_PORTS};
pub use routes::ROUTE_LAYER;

/// An endpoint template of the policy (a CNI configuration's policies, or Calico's
/// static rules), as `strata check` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateSummary {
    /// `network "cbr0"`, or `host` for the template every endpoint gets.
    pub scope: String,
    pub acls: usize,
    pub outbound_nats: usize,
    pub routes: usize,
    /// How many endpoints of the policy get it.
    pub endpoints: usize,
}

fn summary(scope: String, t: &raw::Template, endpoints: usize) -> TemplateSummary {
    TemplateSummary {
        scope,
        acls: t.acl.len(),
        outbound_nats: t.outbound_nat.len(),
        routes: t.route.len(),
        endpoints,
    }
}

fn summaries(file: &raw::File, counts: &HashMap<String, usize>) -> Vec<TemplateSummary> {
    let mut out: Vec<TemplateSummary> = file
        .template
        .iter()
        .map(|t| summary("host".into(), t.get_ref(), file.endpoints.len()))
        .collect();
    for n in &file.networks {
        let n = n.get_ref();
        if let Some(t) = &n.template {
            let used = counts.get(n.name.get_ref()).copied().unwrap_or(0);
            out.push(summary(
                format!("network {:?}", n.name.get_ref()),
                t.get_ref(),
                used,
            ));
        }
    }
    out
}

/// A compiled policy, and what `strata check` says about its templates.
pub(crate) struct Compiled {
    pub policy: Policy,
    pub templates: Vec<TemplateSummary>,
}

/// Validates and compiles everything read; errors and warnings go to `d`.
pub(crate) fn compile(d: &mut Diagnostics, file: raw::File) -> Compiled {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for ep in &file.endpoints {
        *counts
            .entry(ep.get_ref().network.get_ref().clone())
            .or_default() += 1;
    }
    let templates = summaries(&file, &counts);
    let uplink = uplink::compile_uplink(d, file.host);
    let host_ips: Vec<IpAddr> = uplink.ips.clone();
    let host_template = file.template.map(|t| {
        let used = !file.endpoints.is_empty();
        templates::compile_template(d, "host", t, "host-acl", &host_ips, used)
    });
    let ctx = networks::NetworkContext {
        host_ips: &host_ips,
        endpoints: &counts,
    };
    let (mut networks, infos) = networks::compile_networks(d, file.networks, &ctx);
    let (load_balancers, lbs) = load_balancers::compile_load_balancers(d, file.load_balancers);
    let ctx = endpoints::Context {
        networks: &infos,
        lbs: &lbs,
        lb_layer: (!load_balancers.is_empty()).then(|| load_balancers::lb_layer(&load_balancers)),
        host_ips: host_ips.clone(),
        host_mac: uplink.mac,
        host_template,
    };
    let mut claims = endpoints::Claims::default();
    claims
        .names
        .insert(uplink.name.clone(), "the host uplink".into());
    claims.macs.insert(uplink.mac, "the host uplink".into());
    for ip in &uplink.ips {
        claims.ips.insert(*ip, "the host uplink".into());
    }
    let ports = file
        .endpoints
        .into_iter()
        .map(|ep| endpoints::compile_endpoint(d, ep, &ctx, &mut claims))
        .collect();
    remote::compile_remote_endpoints(d, file.remote_endpoints, &mut networks, &infos, &mut claims);
    Compiled {
        policy: Policy {
            networks,
            ports,
            uplink,
            load_balancers,
        },
        templates,
    }
}
