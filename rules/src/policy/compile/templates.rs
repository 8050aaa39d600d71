//! Endpoint templates: the policies a CNI configuration gives every endpoint it creates
//! (`[network.template]`), or Calico's static rules give every endpoint of the host
//! (`[template]`). A template is checked once, where it is written, and then copied into
//! each endpoint it applies to, before the endpoint's own policies.

use std::net::IpAddr;

use toml::Spanned;

use super::super::diag::Diagnostics;
use super::super::raw;
use super::acls::{AclRule, compile_acls};
use super::common::family;
use super::nat::{Onat, compile_onat};
use super::routes::compile_routes;
use crate::model::IpPrefix;

/// A template, compiled.
#[derive(Clone, Debug, Default)]
pub(crate) struct CompiledTemplate {
    pub acls: Vec<AclRule>,
    pub nats: Vec<Onat>,
    pub routes: Vec<IpPrefix>,
    /// How messages about endpoints name it, e.g. `the template of network "cbr0"`.
    pub origin: String,
}

/// Reports a second OutboundNAT of one family among `nats` (HNS applies one per family:
/// a second one would silently replace the first). Returns the ones kept.
pub(crate) fn one_per_family(
    d: &mut Diagnostics,
    object: &str,
    nats: impl IntoIterator<Item = (Onat, String)>,
) -> Vec<Onat> {
    let mut kept: Vec<(Onat, String)> = Vec::new();
    for (on, origin) in nats {
        if let Some((first, first_origin)) = kept.iter().find(|(k, _)| k.v4 == on.v4) {
            d.error(
                on.span.clone(),
                object,
                format!(
                    "a second {} OutBoundNAT (the first is {first_origin}, at {}): an endpoint \
                     has at most one per address family",
                    family(on.v4),
                    d.at(first.span.start)
                ),
            );
        } else {
            kept.push((on, origin));
        }
    }
    kept.into_iter().map(|(on, _)| on).collect()
}

/// Compiles a template. `instantiated` says whether any endpoint gets it: only then does
/// an OutboundNAT without VIP need the host's address now.
pub(crate) fn compile_template(
    d: &mut Diagnostics,
    object: &str,
    template: Spanned<raw::Template>,
    acl_prefix: &str,
    host_ips: &[IpAddr],
    instantiated: bool,
) -> CompiledTemplate {
    let t = template.into_inner();
    let tobj = format!("{object} template");
    let acls = compile_acls(d, &tobj, t.acl, acl_prefix);
    let mut nats = Vec::new();
    for (i, on) in t.outbound_nat.iter().enumerate() {
        let n = on.get_ref().position.checked_sub(1).unwrap_or(i) + 1;
        let oobj = format!("{tobj} outbound_nat #{n}");
        if let Some(on) = compile_onat(d, &oobj, on, host_ips, instantiated) {
            nats.push((on, format!("outbound_nat #{n}")));
        }
    }
    let nats = one_per_family(d, &tobj, nats);
    let routes = compile_routes(d, &tobj, &t.route);
    CompiledTemplate {
        acls,
        nats,
        routes,
        origin: format!("the template of {object}"),
    }
}
