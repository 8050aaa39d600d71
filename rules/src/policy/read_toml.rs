//! The TOML policy file → [`raw::File`]: syntax errors, unknown sections and unknown
//! fields, each reported at its line; the values themselves are checked by `compile`.
//!
//! Every `[[endpoint]]` (and each of its ACLs, port mappings, layers, OutboundNATs and
//! routes) is deserialized on its own, so that one mistake hides nothing else.

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::diag::Diagnostics;
use super::raw;

/// Deserializes one table of the file, keeping its span.
fn parse_item<'i, T: Deserialize<'i>>(
    value: Spanned<DeValue<'i>>,
) -> Result<Spanned<T>, toml::de::Error> {
    Spanned::<T>::deserialize(ValueDeserializer::from(value))
}

/// The endpoint's lists that are read one item at a time.
const NESTED: [&str; 5] = ["acl", "port_mapping", "layer", "outbound_nat", "route"];

/// Adds one item of a nested list to the endpoint, numbering it.
fn push_nested(
    key: &str,
    sub: &Spanned<DeValue<'_>>,
    position: usize,
    ep: Option<&mut raw::Endpoint>,
) -> Result<(), toml::de::Error> {
    // Parsed even when the endpoint itself is broken, so that its errors show too.
    match key {
        "acl" => {
            let mut a = parse_item::<raw::Acl>(sub.clone())?;
            a.get_mut().position = position;
            if let Some(ep) = ep {
                ep.acl.push(a);
            }
        }
        "port_mapping" => {
            let mut m = parse_item::<raw::PortMapping>(sub.clone())?;
            m.get_mut().position = position;
            if let Some(ep) = ep {
                ep.port_mapping.push(m);
            }
        }
        "outbound_nat" => {
            let mut o = parse_item::<raw::EndpointOutboundNat>(sub.clone())?;
            o.get_mut().position = position;
            if let Some(ep) = ep {
                ep.outbound_nat.push(o);
            }
        }
        "route" => {
            let mut r = parse_item::<raw::Route>(sub.clone())?;
            r.get_mut().position = position;
            if let Some(ep) = ep {
                ep.route.push(r);
            }
        }
        _ => {
            let l = parse_item::<raw::Layer>(sub.clone())?;
            if let Some(ep) = ep {
                ep.layer.push(l);
            }
        }
    }
    Ok(())
}

/// Deserializes one `[[endpoint]]`, and each item of its nested lists on its own.
fn parse_endpoint(
    diag: &mut Diagnostics,
    index: usize,
    item: &Spanned<DeValue<'_>>,
) -> Option<Spanned<raw::Endpoint>> {
    let report = |diag: &mut Diagnostics, e: toml::de::Error, at: Range<usize>| {
        let span = e.span().unwrap_or(at);
        let object = describe("endpoint", index, item.get_ref(), &span);
        diag.error(span, &object, e.message());
    };
    let DeValue::Table(mut table) = item.get_ref().clone() else {
        diag.error(
            item.span(),
            "endpoint",
            "`endpoint` must be an array of tables: write `[[endpoint]]`",
        );
        return None;
    };
    let nested: Vec<(&str, Option<Spanned<DeValue<'_>>>)> =
        NESTED.into_iter().map(|k| (k, table.remove(k))).collect();
    let mut endpoint =
        match parse_item::<raw::Endpoint>(Spanned::new(item.span(), DeValue::Table(table))) {
            Ok(ep) => Some(ep),
            Err(e) => {
                report(diag, e, item.span());
                None
            }
        };
    for (key, value) in nested {
        let Some(value) = value else { continue };
        let Some(items) = value.get_ref().as_array() else {
            let object = describe("endpoint", index, item.get_ref(), &value.span());
            diag.error(
                value.span(),
                &object,
                format!("`{key}` must be an array of tables: write `[[endpoint.{key}]]`"),
            );
            continue;
        };
        for (position, sub) in (1..).zip(items.iter()) {
            let ep = endpoint.as_mut().map(|ep| ep.get_mut());
            if let Err(e) = push_nested(key, sub, position, ep) {
                report(diag, e, sub.span());
            }
        }
    }
    endpoint
}

/// A table's own span is only its `[[header]]`: its extent ends where its last key or
/// value does.
fn extent_end(v: &Spanned<DeValue<'_>>) -> usize {
    let children = match v.get_ref() {
        DeValue::Table(t) => t.iter().map(|(k, x)| k.span().end.max(extent_end(x))).max(),
        DeValue::Array(a) => a.iter().map(extent_end).max(),
        _ => None,
    };
    children.unwrap_or(0).max(v.span().end)
}

fn str_field(v: &DeValue<'_>, key: &str) -> Option<String> {
    v.get(key)
        .and_then(|n| n.get_ref().as_str())
        .map(str::to_owned)
}

fn array<'a, 'i>(v: &'a DeValue<'i>, key: &str) -> &'a [Spanned<DeValue<'i>>] {
    v.get(key)
        .and_then(|a| a.get_ref().as_array())
        .map_or(&[], |a| &a[..])
}

/// ` layer "x" group "y" rule "z"` for a span inside an endpoint's layers.
fn describe_layers(item: &DeValue<'_>, inside: &dyn Fn(&Spanned<DeValue<'_>>) -> bool) -> String {
    let named = |v: &DeValue<'_>, what: &str, key: &str, i: usize| match str_field(v, key) {
        Some(n) => format!(" {what} {n:?}"),
        None => format!(" {what} #{}", i + 1),
    };
    let mut object = String::new();
    for (li, layer) in array(item, "layer").iter().enumerate() {
        if !inside(layer) {
            continue;
        }
        object += &named(layer.get_ref(), "layer", "name", li);
        for (gi, group) in array(layer.get_ref(), "group").iter().enumerate() {
            if !inside(group) {
                continue;
            }
            object += &named(group.get_ref(), "group", "name", gi);
            for (ri, rule) in array(group.get_ref(), "rule").iter().enumerate() {
                if inside(rule) {
                    object += &named(rule.get_ref(), "rule", "id", ri);
                }
            }
        }
    }
    object
}

/// Names the innermost object of a raw `[[network]]` or `[[endpoint]]` item that holds
/// `span`, for errors found while deserializing it (before names are known to be valid).
fn describe(section: &str, index: usize, item: &DeValue<'_>, span: &Range<usize>) -> String {
    let inside =
        |v: &Spanned<DeValue<'_>>| v.span().start <= span.start && span.end <= extent_end(v);
    let object = match str_field(item, "name") {
        Some(name) => format!("{section} {name:?}"),
        None => format!("{section} #{}", index + 1),
    };
    for (i, acl) in array(item, "acl").iter().enumerate() {
        if inside(acl) {
            return match str_field(acl.get_ref(), "id") {
                Some(id) => format!("{object} acl #{} {id:?}", i + 1),
                None => format!("{object} acl #{}", i + 1),
            };
        }
    }
    for key in ["port_mapping", "outbound_nat", "route"] {
        if let Some(i) = array(item, key).iter().position(inside) {
            return format!("{object} {key} #{}", i + 1);
        }
    }
    object + &describe_layers(item, &inside)
}

/// Reads `[[section]]` items one by one with `parse`.
fn each_item<T>(
    diag: &mut Diagnostics,
    section: &str,
    value: &Spanned<DeValue<'_>>,
    mut parse: impl FnMut(&mut Diagnostics, usize, &Spanned<DeValue<'_>>) -> Option<T>,
) -> Vec<T> {
    let Some(items) = value.get_ref().as_array() else {
        diag.error(
            value.span(),
            section,
            format!("`{section}` must be an array of tables: write `[[{section}]]`"),
        );
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| parse(diag, i, item))
        .collect()
}

/// Deserializes a whole `[[section]]` item, reporting its error at the object at fault.
fn plain<T: for<'i> Deserialize<'i>>(
    section: &'static str,
) -> impl FnMut(&mut Diagnostics, usize, &Spanned<DeValue<'_>>) -> Option<Spanned<T>> {
    move |diag, i, item| match parse_item::<T>(item.clone()) {
        Ok(v) => Some(v),
        Err(e) => {
            let span = e.span().unwrap_or(item.span());
            let object = describe(section, i, item.get_ref(), &span);
            diag.error(span, &object, e.message());
            None
        }
    }
}

/// Reads a TOML policy file placed at `base` in the diagnostics' offset space.
///
/// TOML spans are offsets into the text parsed; a file placed after others is parsed
/// behind `base` spaces (whitespace TOML ignores), so its spans land at their place.
pub(crate) fn read(diag: &mut Diagnostics, base: usize, text: &str) -> raw::File {
    let padded;
    let text = if base == 0 {
        text
    } else {
        padded = " ".repeat(base) + text;
        padded.as_str()
    };
    let mut file = raw::File::default();
    let (root, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        for e in syntax {
            diag.error(e.span().unwrap_or(base..base), "TOML", e.message());
        }
        return file;
    }
    for (key, value) in root.into_inner() {
        match key.get_ref().as_ref() {
            "host" => match parse_item::<raw::Host>(value.clone()) {
                Ok(h) => file.host = Some(h),
                Err(e) => diag.error(e.span().unwrap_or(value.span()), "host", e.message()),
            },
            "template" => match parse_item::<raw::Template>(value.clone()) {
                Ok(t) => file.template = Some(t),
                Err(e) => diag.error(e.span().unwrap_or(value.span()), "template", e.message()),
            },
            "load_balancer" => {
                file.load_balancers =
                    each_item(diag, "load_balancer", &value, plain("load_balancer"))
            }
            "network" => file.networks = each_item(diag, "network", &value, plain("network")),
            "remote_endpoint" => {
                file.remote_endpoints =
                    each_item(diag, "remote_endpoint", &value, plain("remote_endpoint"))
            }
            "endpoint" => file.endpoints = each_item(diag, "endpoint", &value, parse_endpoint),
            other => diag.error(
                key.span(),
                "file",
                format!(
                    "unknown section `{other}`, expected `host`, `network`, `endpoint`, \
                     `remote_endpoint`, `load_balancer` or `template`"
                ),
            ),
        }
    }
    file
}
