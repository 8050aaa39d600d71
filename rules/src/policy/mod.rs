//! The policy file: TOML text in, a validated, compiled [`Policy`] out.
//!
//! The file describes what an operator knows (the host uplink, networks with their
//! OutboundNAT and overlay routes, endpoints with their HNS-style ACLs and port mappings,
//! load balancers, and optional custom VFP layers whose rules may transpose headers);
//! [`load`]
//! checks all of it and compiles it into the object model of DESIGN §2. The format is
//! documented field by field in [`raw`] and, with a complete example, in
//! `docs/policy.md`.
//!
//! Errors name the file, line, column and the object at fault, and as many as possible are
//! reported at once, so that one `strata check` run shows everything to fix:
//!
//! ```
//! let text = "[host]\naddresses = [\"198.19.0.10\"]\n\
//!             [[network]]\nname = \"nat\"\nsubnets = [\"198.18.1.0/24\"]\n\
//!             [[endpoint]]\nname = \"web\"\nnetwork = \"nat\"\nmac = \"00:15:5d:01:01:0a\"\n\
//!             ipv4 = \"198.18.2.10\"\n";
//! let errors = strata_rules::policy::load(text, "p.toml").unwrap_err();
//! assert_eq!(
//!     errors.to_string(),
//!     "p.toml:10:8: endpoint \"web\": ipv4 198.18.2.10 is outside the subnets of network \"nat\" (198.18.1.0/24)"
//! );
//! ```
//!
//! `rules` does no I/O: the caller reads the file and passes its text and name.

mod compile;
mod hns;
pub use compile::{
    ACL_IN_GROUP, ACL_LAYER, ACL_OUT_GROUP, DEFAULT_PRIORITY, LB_GROUP, LB_LAYER, NAT_LAYER,
    NAT_PORTS, acl_profile,
};
pub use hns::load_hns_json;
pub mod raw;
pub mod values;

use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use crate::model::Policy;

/// One problem in a policy file. Displays as `FILE:LINE:COL: OBJECT: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// The object at fault, e.g. `endpoint "web" acl #2`, or `TOML` for syntax errors.
    pub object: String,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.col, self.object, self.message
        )
    }
}

/// Every problem found in a policy file, in file order. Displays one per line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl PolicyErrors {
    pub fn iter(&self) -> std::slice::Iter<'_, PolicyError> {
        self.0.iter()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}

/// Collects errors against the text they point into.
pub(crate) struct Diagnostics<'a> {
    text: &'a str,
    file: &'a str,
    errors: Vec<PolicyError>,
}

impl<'a> Diagnostics<'a> {
    pub(crate) fn new(text: &'a str, file: &'a str) -> Self {
        Diagnostics {
            text,
            file,
            errors: Vec::new(),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }

    pub(crate) fn error(&mut self, span: Range<usize>, object: &str, message: impl Into<String>) {
        let (line, col) = self.line_col(span.start);
        self.errors.push(PolicyError {
            file: self.file.to_owned(),
            line,
            col,
            object: object.to_owned(),
            message: message.into(),
        });
    }

    pub(crate) fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// 1-based line of a byte offset, for messages like "first defined at line 3".
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        self.line_col(offset).0
    }

    fn finish(mut self) -> PolicyErrors {
        // Stable sort: errors at one place keep the order they were found in.
        self.errors.sort_by_key(|e| (e.line, e.col));
        PolicyErrors(self.errors)
    }
}

/// Deserializes one table of the file, keeping its span.
fn parse_item<'i, T: Deserialize<'i>>(
    value: Spanned<DeValue<'i>>,
) -> Result<Spanned<T>, toml::de::Error> {
    Spanned::<T>::deserialize(ValueDeserializer::from(value))
}

/// Deserializes one `[[endpoint]]`, and each of its ACLs, port mappings and layers on
/// its own, so that a mistake in one of them hides neither the others nor the endpoint's
/// own checks.
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
    let nested: Vec<(&str, Option<Spanned<DeValue<'_>>>)> = ["acl", "port_mapping", "layer"]
        .into_iter()
        .map(|k| (k, table.remove(k)))
        .collect();
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
            let at = sub.span();
            let ep = endpoint.as_mut().map(|ep| ep.get_mut());
            let result = match key {
                "acl" => parse_item::<raw::Acl>(sub.clone()).map(|mut a| {
                    a.get_mut().position = position;
                    ep.map(|ep| ep.acl.push(a))
                }),
                "port_mapping" => parse_item::<raw::PortMapping>(sub.clone()).map(|mut m| {
                    m.get_mut().position = position;
                    ep.map(|ep| ep.port_mapping.push(m))
                }),
                _ => parse_item::<raw::Layer>(sub.clone()).map(|l| ep.map(|ep| ep.layer.push(l))),
            };
            if let Err(e) = result {
                report(diag, e, at);
            }
        }
    }
    endpoint
}

/// Names the innermost object of a raw `[[network]]` or `[[endpoint]]` item that holds
/// `span`, for errors found while deserializing it (before names are known to be valid).
fn describe(section: &str, index: usize, item: &DeValue<'_>, span: &Range<usize>) -> String {
    // A table's own span is only its `[[header]]`: its extent ends where its last key or
    // value does.
    fn extent_end(v: &Spanned<DeValue<'_>>) -> usize {
        let children = match v.get_ref() {
            DeValue::Table(t) => t.iter().map(|(k, x)| k.span().end.max(extent_end(x))).max(),
            DeValue::Array(a) => a.iter().map(extent_end).max(),
            _ => None,
        };
        children.unwrap_or(0).max(v.span().end)
    }
    let inside =
        |v: &Spanned<DeValue<'_>>| v.span().start <= span.start && span.end <= extent_end(v);
    let name_of = |v: &DeValue<'_>| {
        v.get("name")
            .and_then(|n| n.get_ref().as_str())
            .map(str::to_owned)
    };
    let id_of = |v: &DeValue<'_>| {
        v.get("id")
            .and_then(|n| n.get_ref().as_str())
            .map(str::to_owned)
    };
    let mut object = match name_of(item) {
        Some(name) => format!("{section} {name:?}"),
        None => format!("{section} #{}", index + 1),
    };
    fn array<'a, 'i>(v: &'a DeValue<'i>, key: &str) -> &'a [Spanned<DeValue<'i>>] {
        v.get(key)
            .and_then(|a| a.get_ref().as_array())
            .map_or(&[], |a| &a[..])
    }
    for (i, acl) in array(item, "acl").iter().enumerate() {
        if inside(acl) {
            object += &format!(" acl #{}", i + 1);
            if let Some(id) = id_of(acl.get_ref()) {
                object += &format!(" {id:?}");
            }
            return object;
        }
    }
    for (i, pm) in array(item, "port_mapping").iter().enumerate() {
        if inside(pm) {
            return object + &format!(" port_mapping #{}", i + 1);
        }
    }
    for (li, layer) in array(item, "layer").iter().enumerate() {
        if !inside(layer) {
            continue;
        }
        object += &match name_of(layer.get_ref()) {
            Some(n) => format!(" layer {n:?}"),
            None => format!(" layer #{}", li + 1),
        };
        for (gi, group) in array(layer.get_ref(), "group").iter().enumerate() {
            if !inside(group) {
                continue;
            }
            object += &match name_of(group.get_ref()) {
                Some(n) => format!(" group {n:?}"),
                None => format!(" group #{}", gi + 1),
            };
            for (ri, rule) in array(group.get_ref(), "rule").iter().enumerate() {
                if inside(rule) {
                    object += &match id_of(rule.get_ref()) {
                        Some(n) => format!(" rule {n:?}"),
                        None => format!(" rule #{}", ri + 1),
                    };
                }
            }
        }
    }
    object
}

/// Parses, validates and compiles a policy file. `file` only names the file in errors.
///
/// All errors found are returned together, sorted by position; see [`PolicyError`].
pub fn load(text: &str, file: &str) -> Result<Policy, PolicyErrors> {
    let mut diag = Diagnostics::new(text, file);
    let (root, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        for e in syntax {
            diag.error(e.span().unwrap_or(0..0), "TOML", e.message());
        }
        return Err(diag.finish());
    }

    let mut host = None;
    let mut networks = Vec::new();
    let mut endpoints = Vec::new();
    let mut load_balancers = Vec::new();
    for (key, value) in root.into_inner() {
        match key.get_ref().as_ref() {
            "host" => match parse_item::<raw::Host>(value.clone()) {
                Ok(h) => host = Some(h),
                Err(e) => diag.error(e.span().unwrap_or(value.span()), "host", e.message()),
            },
            "load_balancer" => {
                let Some(items) = value.get_ref().as_array() else {
                    diag.error(
                        value.span(),
                        "load_balancer",
                        "`load_balancer` must be an array of tables: write `[[load_balancer]]`",
                    );
                    continue;
                };
                for (i, item) in items.iter().enumerate() {
                    match parse_item::<raw::LoadBalancer>(item.clone()) {
                        Ok(lb) => load_balancers.push(lb),
                        Err(e) => {
                            let span = e.span().unwrap_or(item.span());
                            let object = describe("load_balancer", i, item.get_ref(), &span);
                            diag.error(span, &object, e.message());
                        }
                    }
                }
            }
            section @ ("network" | "endpoint") => {
                let Some(items) = value.get_ref().as_array() else {
                    diag.error(
                        value.span(),
                        section,
                        format!("`{section}` must be an array of tables: write `[[{section}]]`"),
                    );
                    continue;
                };
                for (i, item) in items.iter().enumerate() {
                    if section == "endpoint" {
                        endpoints.extend(parse_endpoint(&mut diag, i, item));
                        continue;
                    }
                    match parse_item::<raw::Network>(item.clone()) {
                        Ok(n) => networks.push(n),
                        Err(e) => {
                            let span = e.span().unwrap_or(item.span());
                            let object = describe(section, i, item.get_ref(), &span);
                            diag.error(span, &object, e.message());
                        }
                    }
                }
            }
            other => diag.error(
                key.span(),
                "file",
                format!(
                    "unknown section `{other}`, expected `host`, `network`, `endpoint` or `load_balancer`"
                ),
            ),
        }
    }
    let policy = compile::compile(&mut diag, host, networks, endpoints, load_balancers);
    if diag.has_errors() {
        Err(diag.finish())
    } else {
        Ok(policy)
    }
}
