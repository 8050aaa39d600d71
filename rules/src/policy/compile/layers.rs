//! Custom VFP layers of an endpoint (`[[endpoint.layer]]`): groups, rules and defaults,
//! placed below `acl` in file order.

use std::collections::HashMap;

use toml::Spanned;

use super::super::diag::Diagnostics;
use super::super::raw;
use super::acls::ACL_LAYER;
use super::actions::rule_action;
use super::common::{Owners, claim, conditions, good_name, priority};
use super::load_balancers::LB_LAYER;
use super::nat::NAT_LAYER;
use super::routes::ROUTE_LAYER;
use crate::model::{
    Action, DefaultPolicy, Defaults, Group, GroupDirection, Layer, LoadBalancer, Rule,
};

fn default_policy(a: Option<raw::Action>) -> DefaultPolicy {
    match a {
        Some(raw::Action::Block) => DefaultPolicy::block_all(),
        Some(raw::Action::Allow) | None => DefaultPolicy::allow_all(),
    }
}

/// Reports a name that is empty, malformed or taken in its scope.
fn unique_name(
    d: &mut Diagnostics,
    names: &mut Owners<String>,
    name: &Spanned<String>,
    object: &str,
    what: &str,
) {
    let n = name.get_ref();
    if good_name(d, name.span(), object, what, n) {
        let kind = what.trim_end_matches(" name");
        let here = format!("the {kind} at {}", d.at(name.span().start));
        if let Some(first) = claim(names, n.clone(), here) {
            d.error(
                name.span(),
                object,
                format!("duplicate {what}: {first} has it"),
            );
        }
    }
}

fn compile_rule(
    d: &mut Diagnostics,
    gobj: &str,
    i: usize,
    rule: Spanned<raw::Rule>,
    ids: &mut Owners<String>,
    lbs: &HashMap<String, LoadBalancer>,
) -> Rule {
    let span = rule.span();
    let rule = rule.into_inner();
    let id = rule
        .id
        .as_ref()
        .map_or_else(|| format!("rule{}", i + 1), |id| id.get_ref().clone());
    let robj = format!("{gobj} rule {id:?}");
    let id_span = rule.id.as_ref().map_or(span, |s| s.span());
    if good_name(d, id_span.clone(), &robj, "id", &id)
        && let Some(first) = claim(ids, id.clone(), format!("rule #{}", i + 1))
    {
        d.error(
            id_span,
            &robj,
            format!("duplicate rule id in the group ({first} has it)"),
        );
    }
    let conditions = conditions(d, &robj, &rule.conditions());
    let action = rule_action(d, &robj, &rule, lbs).unwrap_or(Action::Allow);
    let transposition = action.is_transposition();
    if let Some(st) = &rule.stateful
        && transposition
        && !*st.get_ref()
    {
        d.error(
            st.span(),
            &robj,
            format!(
                "a {} rule is always stateful (its replies must be translated back); \
                 remove `stateful = false`",
                rule.action.get_ref().as_str()
            ),
        );
    }
    Rule {
        priority: priority(d, &robj, rule.priority.as_ref()),
        id,
        conditions,
        action,
        terminating: rule.terminating,
        stateful: transposition || rule.stateful.as_ref().is_some_and(|s| *s.get_ref()),
    }
}

fn compile_group(
    d: &mut Diagnostics,
    lobj: &str,
    group: raw::Group,
    names: &mut Owners<String>,
    lbs: &HashMap<String, LoadBalancer>,
) -> Group {
    let gname = group.name.get_ref().clone();
    let gobj = format!("{lobj} group {gname:?}");
    unique_name(d, names, &group.name, &gobj, "group name");
    let condition = group
        .condition
        .as_ref()
        .map(|c| conditions(d, &gobj, c.get_ref()));
    let mut ids: Owners<String> = Owners::new();
    let rules = (0..)
        .zip(group.rule)
        .map(|(i, rule)| compile_rule(d, &gobj, i, rule, &mut ids, lbs))
        .collect();
    Group {
        name: gname,
        direction: match group.direction {
            Some(raw::GroupDirection::In) => GroupDirection::In,
            Some(raw::GroupDirection::Out) => GroupDirection::Out,
            Some(raw::GroupDirection::Both) | None => GroupDirection::Both,
        },
        condition,
        rules,
    }
}

/// An endpoint's custom layers, in file order.
pub(crate) fn compile_layers(
    d: &mut Diagnostics,
    object: &str,
    raws: Vec<Spanned<raw::Layer>>,
    lbs: &HashMap<String, LoadBalancer>,
) -> Vec<Layer> {
    let mut names: Owners<String> = Owners::new();
    names.insert(ACL_LAYER.into(), "the endpoint's ACL layer".into());
    names.insert(
        LB_LAYER.into(),
        "the load-balancing layer (reserved)".into(),
    );
    names.insert(NAT_LAYER.into(), "the NAT layer (reserved)".into());
    names.insert(ROUTE_LAYER.into(), "the route layer (reserved)".into());
    let mut layers = Vec::new();
    for layer in raws {
        let layer = layer.into_inner();
        let lobj = format!("{object} layer {:?}", layer.name.get_ref());
        unique_name(d, &mut names, &layer.name, &lobj, "layer name");
        let mut group_names: Owners<String> = Owners::new();
        let groups = layer
            .group
            .into_iter()
            .map(|g| compile_group(d, &lobj, g.into_inner(), &mut group_names, lbs))
            .collect();
        layers.push(Layer {
            name: layer.name.into_inner(),
            groups,
            defaults: Defaults {
                outbound: default_policy(layer.default_out),
                inbound: default_policy(layer.default_in),
            },
        });
    }
    layers
}
