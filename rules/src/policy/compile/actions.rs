//! The action of a custom rule and its parameters: `allow`, `block`, and the header
//! transpositions `snat`, `dnat`, `set-mac`, `load-balance`.

use std::collections::HashMap;
use std::net::IpAddr;

use toml::Spanned;

use super::super::diag::Diagnostics;
use super::super::raw::{self, RuleAction as A};
use super::super::values;
use super::common::{int_field, port_mac};
use super::nat::NAT_PORTS;
use crate::model::{Action, LoadBalancer, Mac};

/// Reports parameter fields given for another action, and the one this action needs.
/// Returns whether the action has its parameters.
fn parameters_match(d: &mut Diagnostics, object: &str, rule: &raw::Rule) -> bool {
    let kind = *rule.action.get_ref();
    let params = [
        (
            "snat",
            rule.snat.as_ref().map(|p| p.span()),
            A::Snat,
            r#"snat = { ip = "198.19.0.10", ports = "1024-65535" }"#,
        ),
        (
            "dnat",
            rule.dnat.as_ref().map(|p| p.span()),
            A::Dnat,
            r#"dnat = { ip = "198.18.1.10", port = 80 }"#,
        ),
        (
            "set_mac",
            rule.set_mac.as_ref().map(|p| p.span()),
            A::SetMac,
            r#"set_mac = { src = "00:15:5d:00:00:01", dst = "00:15:5d:00:00:02" }"#,
        ),
        (
            "load_balancer",
            rule.load_balancer.as_ref().map(|p| p.span()),
            A::LoadBalance,
            r#"load_balancer = "NAME""#,
        ),
    ];
    let mut complete = true;
    for (field, present, wanted, example) in params {
        match (present, kind == wanted) {
            (Some(at), false) => d.error(
                at,
                object,
                format!(
                    "{field} is only for action = \"{}\"; this rule's action is \"{}\"",
                    wanted.as_str(),
                    kind.as_str()
                ),
            ),
            (None, true) => {
                complete = false;
                d.error(
                    rule.action.span(),
                    object,
                    format!("action = \"{}\" needs `{example}`", kind.as_str()),
                );
            }
            _ => {}
        }
    }
    complete
}

fn addr(d: &mut Diagnostics, object: &str, field: &str, v: &Spanned<String>) -> Option<IpAddr> {
    match values::address(v.get_ref()) {
        Ok(ip) => Some(ip),
        Err(m) => {
            d.error(v.span(), object, format!("{field}: {m}"));
            None
        }
    }
}

fn snat(d: &mut Diagnostics, object: &str, p: &raw::SnatParams) -> Option<Action> {
    let ip = addr(d, object, "snat.ip", &p.ip);
    let ports = match &p.ports {
        None => Some(NAT_PORTS),
        Some(s) => match values::port_range(s.get_ref()) {
            Ok(r) if r.lo == 0 => {
                d.error(
                    s.span(),
                    object,
                    "snat.ports: port 0 cannot be allocated; use 1..=65535",
                );
                None
            }
            Ok(r) => Some(r),
            Err(m) => {
                d.error(s.span(), object, format!("snat.ports: {m}"));
                None
            }
        },
    };
    Some(Action::Snat {
        ip: ip?,
        ports: ports?,
    })
}

fn dnat(d: &mut Diagnostics, object: &str, p: &raw::DnatParams) -> Option<Action> {
    let ip = addr(d, object, "dnat.ip", &p.ip);
    let port = match &p.port {
        None => Some(None),
        Some(v) => int_field(d, object, "dnat.port", v, 1, 65535)
            .and_then(|v| u16::try_from(v).ok())
            .map(Some),
    };
    Some(Action::Dnat {
        ip: ip?,
        port: port?,
    })
}

fn set_mac(d: &mut Diagnostics, object: &str, p: &Spanned<raw::SetMacParams>) -> Option<Action> {
    let mut ok = true;
    let mut mac =
        |field: &str, v: &Option<Spanned<String>>, parse: fn(&str) -> Result<Mac, String>| {
            v.as_ref().and_then(|m| match parse(m.get_ref()) {
                Ok(m) => Some(m),
                Err(e) => {
                    ok = false;
                    d.error(m.span(), object, format!("set_mac.{field}: {e}"));
                    None
                }
            })
        };
    let src = mac("src", &p.get_ref().src, port_mac);
    let dst = mac("dst", &p.get_ref().dst, |s| s.parse::<Mac>());
    if p.get_ref().src.is_none() && p.get_ref().dst.is_none() {
        d.error(p.span(), object, "set_mac needs src, dst or both");
        return None;
    }
    ok.then_some(Action::SetMac { src, dst })
}

fn load_balance(
    d: &mut Diagnostics,
    object: &str,
    name: &Spanned<String>,
    lbs: &HashMap<String, LoadBalancer>,
) -> Option<Action> {
    if let Some(lb) = lbs.get(name.get_ref()) {
        return Some(Action::LoadBalance(lb.clone()));
    }
    let mut known: Vec<&str> = lbs.keys().map(String::as_str).collect();
    known.sort_unstable();
    let hint = if known.is_empty() {
        "no [[load_balancer]] is defined".to_owned()
    } else {
        format!("known: {}", known.join(", "))
    };
    d.error(
        name.span(),
        object,
        format!("unknown load balancer `{}` ({hint})", name.get_ref()),
    );
    None
}

/// A custom rule's action with its parameters; `None` after reporting what is wrong.
pub(crate) fn rule_action(
    d: &mut Diagnostics,
    object: &str,
    rule: &raw::Rule,
    lbs: &HashMap<String, LoadBalancer>,
) -> Option<Action> {
    if !parameters_match(d, object, rule) {
        return None;
    }
    match *rule.action.get_ref() {
        A::Allow => Some(Action::Allow),
        A::Block => Some(Action::Block),
        A::Snat => snat(d, object, rule.snat.as_ref()?.get_ref()),
        A::Dnat => dnat(d, object, rule.dnat.as_ref()?.get_ref()),
        A::SetMac => set_mac(d, object, rule.set_mac.as_ref()?),
        A::LoadBalance => load_balance(d, object, rule.load_balancer.as_ref()?, lbs),
    }
}
