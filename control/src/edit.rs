//! The running policy and its changes, validated away from the packet path.
//!
//! A policy is a **base document** (the policy file, or the last `apply`) plus an ordered
//! list of **edits**: endpoints added (CNI, `strata ctl endpoint add`) or removed, and
//! ACLs added or rules removed (a group replaced as a whole, VFP's unit of update). Every
//! change yields a whole new [`PolicyState`] or is refused with `strata check`'s
//! line-numbered errors; the running state is never touched by a refusal.
//!
//! Fragments (an endpoint, some ACLs) are compiled by the same loader as a whole policy
//! (`load_sources`, which links TOML and HNS JSON files as `strata check FILE...` does),
//! as one more file beside the **context** of the base: its files with their endpoints
//! left out (host, networks, load balancers), so an added endpoint gets exactly the
//! layers it would get in the file, and errors name the fragment's own lines. Either
//! format works with either.
//!
//! When a new base is applied, edits that concern endpoints added by edits are kept and
//! replayed on it (a file edit must not detach running containers); edits of the base's
//! own endpoints are dropped (the new file restates them). A kept edit that no longer
//! fits refuses the whole apply.

use std::collections::HashSet;
use std::sync::Arc;

use strata_rules::model::{Isolation, Policy, Port};
use strata_rules::policy::{
    self, ACL_IN_GROUP, ACL_LAYER, ACL_OUT_GROUP, PolicyError, PolicyErrors,
};

use crate::protocol::{Document, EndpointSpec, Format};

/// One change to the running policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    /// Adds the endpoints a document describes.
    EndpointAdd(Document),
    /// Adds an endpoint described by its fields (CNI), written in the base's format.
    EndpointAttach(EndpointSpec),
    EndpointRemove(String),
    /// Adds the ACLs of a document to an endpoint's `acl` layer.
    RuleAdd {
        port: String,
        document: Document,
    },
    /// Removes a rule by id from a port (narrowed to a layer and group when given).
    RuleRemove {
        port: String,
        rule: String,
        layer: Option<String>,
        group: Option<String>,
    },
}

/// Why a change was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The policy or fragment does not validate.
    Invalid(PolicyErrors),
    /// The change names something that is not there (or is ambiguous).
    Request(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Invalid(e) => e.fmt(f),
            Refusal::Request(m) => f.write_str(m),
        }
    }
}

/// Loads a whole policy document as `strata check` does.
pub fn load(doc: &Document) -> Result<Policy, PolicyErrors> {
    load_all(std::slice::from_ref(doc))
}

/// Loads a policy made of several documents (a TOML host file with HNS JSON, say),
/// linked as `strata check FILE...` links them.
pub fn load_all(docs: &[Document]) -> Result<Policy, PolicyErrors> {
    let sources: Vec<policy::Source<'_>> = docs
        .iter()
        .map(|d| policy::Source {
            name: &d.name,
            text: &d.text,
            format: match d.format() {
                Format::Toml => policy::Format::Toml,
                Format::HnsJson => policy::Format::HnsJson,
            },
        })
        .collect();
    policy::load_sources(&sources)
        .map(|l| l.policy)
        .map_err(|r| r.errors)
}

/// A base file without its endpoints: what fragments are compiled beside. TOML loses
/// its `[[endpoint]]` tables; HNS JSON its `Endpoints` and the endpoint objects it holds
/// (those with a `VirtualNetworkName` or `VirtualNetwork`); what cannot be read is kept
/// as it is (it validated with the base). `None` when nothing else is left.
fn without_endpoints(doc: &Document) -> Option<Document> {
    let format = doc.format();
    let text = match format {
        Format::Toml => match doc.text.parse::<toml::Table>() {
            Ok(mut table) => {
                table.remove("endpoint");
                toml::to_string(&table).unwrap_or_else(|_| doc.text.clone())
            }
            Err(_) => doc.text.clone(),
        },
        Format::HnsJson => {
            let is_endpoint = |v: &serde_json::Value| {
                v.as_object().is_some_and(|o| {
                    o.keys().any(|k| {
                        k.eq_ignore_ascii_case("VirtualNetworkName")
                            || k.eq_ignore_ascii_case("VirtualNetwork")
                    })
                })
            };
            match serde_json::from_str::<serde_json::Value>(&doc.text) {
                Ok(serde_json::Value::Object(mut m)) => {
                    m.retain(|k, _| !k.eq_ignore_ascii_case("Endpoints"));
                    let v = serde_json::Value::Object(m);
                    if is_endpoint(&v) {
                        return None;
                    }
                    serde_json::to_string_pretty(&v).unwrap_or_else(|_| doc.text.clone())
                }
                Ok(serde_json::Value::Array(items)) => {
                    let kept: Vec<serde_json::Value> =
                        items.into_iter().filter(|v| !is_endpoint(v)).collect();
                    if kept.is_empty() {
                        return None;
                    }
                    serde_json::to_string_pretty(&kept).unwrap_or_else(|_| doc.text.clone())
                }
                _ => doc.text.clone(),
            }
        }
    };
    Some(Document {
        name: doc.name.clone(),
        text,
        format: Some(format),
    })
}

/// How to take an edit back.
#[derive(Debug)]
pub struct Undo {
    edits: Vec<Edit>,
    action: UndoAction,
}

#[derive(Debug)]
enum UndoAction {
    Truncate(usize),
    Insert(usize, Port),
    Replace(usize, Port),
}

/// The running policy: its base, the edits since, and the policy they make.
#[derive(Clone, Debug)]
pub struct PolicyState {
    /// The base's documents (one, or several files linked together).
    base: Arc<[Document]>,
    /// The base's files without their endpoints: what fragments are compiled beside.
    context: Arc<[Document]>,
    edits: Vec<Edit>,
    current: Policy,
}

impl PolicyState {
    /// The state of a first policy.
    pub fn new(base: Document) -> Result<PolicyState, Refusal> {
        PolicyState::of_files(vec![base])
    }

    /// The state of a first policy made of several files.
    pub fn of_files(base: Vec<Document>) -> Result<PolicyState, Refusal> {
        let base_policy = load_all(&base).map_err(Refusal::Invalid)?;
        Ok(PolicyState {
            context: base
                .iter()
                .filter_map(without_endpoints)
                .collect::<Vec<_>>()
                .into(),
            current: base_policy,
            base: base.into(),
            edits: Vec::new(),
        })
    }

    /// The policy as it runs.
    pub fn current(&self) -> &Policy {
        &self.current
    }

    pub fn base(&self) -> &[Document] {
        &self.base
    }

    pub fn edits(&self) -> &[Edit] {
        &self.edits
    }

    /// A new base, with the edits of added endpoints replayed on it.
    pub fn apply(&self, base: Document) -> Result<PolicyState, Refusal> {
        self.apply_files(vec![base])
    }

    /// A new base of several files, with the edits of added endpoints replayed on it.
    pub fn apply_files(&self, base: Vec<Document>) -> Result<PolicyState, Refusal> {
        let mut next = PolicyState::of_files(base)?;
        for edit in kept_edits(&self.edits) {
            next = next.edit(edit.clone())?;
        }
        Ok(next)
    }

    /// The state after one edit.
    pub fn edit(&self, edit: Edit) -> Result<PolicyState, Refusal> {
        let mut next = self.clone();
        next.edit_in_place(edit)?;
        Ok(next)
    }

    /// Makes one edit to this state, returning how to take it back (the controller
    /// does, when publishing fails). Only the ports the edit touches are copied: a
    /// one-rule change does not copy a large policy. Refused, it changes nothing.
    pub fn edit_in_place(&mut self, edit: Edit) -> Result<Undo, Refusal> {
        let before = self.edits.clone();
        let action = match &edit {
            Edit::EndpointAdd(_) | Edit::EndpointAttach(_) => {
                let doc = match &edit {
                    Edit::EndpointAttach(spec) => self.render_endpoint(spec),
                    Edit::EndpointAdd(doc) => doc.clone(),
                    _ => return Err(Refusal::Request("not an endpoint edit".into())),
                };
                let ports = self.compile_endpoints(&doc)?;
                check_newcomers(&self.current, &ports, &doc)?;
                let len = self.current.ports.len();
                self.current.ports.extend(ports);
                self.edits.push(edit);
                UndoAction::Truncate(len)
            }
            Edit::EndpointRemove(name) => {
                let Some(i) = self.current.ports.iter().position(|p| p.name == *name) else {
                    return Err(Refusal::Request(format!("no endpoint named {name:?}")));
                };
                let gone = self.current.ports.remove(i);
                forget_endpoint(&mut self.edits, name);
                UndoAction::Insert(i, gone)
            }
            Edit::RuleAdd { port, document } => {
                let Some(i) = self.current.ports.iter().position(|p| p.name == *port) else {
                    return Err(Refusal::Request(format!("no endpoint named {port:?}")));
                };
                let Some(target) = self.current.ports.get(i) else {
                    return Err(Refusal::Request(format!("no endpoint named {port:?}")));
                };
                let fragment = self.compile_acls(target, document)?;
                let mut changed = target.clone();
                add_acls(&mut changed, &fragment, document)?;
                self.edits.push(edit);
                UndoAction::Replace(i, self.replace_port(i, changed))
            }
            Edit::RuleRemove {
                port,
                rule,
                layer,
                group,
            } => {
                let Some(i) = self.current.ports.iter().position(|p| p.name == *port) else {
                    return Err(Refusal::Request(format!("no endpoint named {port:?}")));
                };
                let Some(mut changed) = self.current.ports.get(i).cloned() else {
                    return Err(Refusal::Request(format!("no endpoint named {port:?}")));
                };
                remove_rule(&mut changed, rule, layer.as_deref(), group.as_deref())?;
                self.edits.push(edit);
                UndoAction::Replace(i, self.replace_port(i, changed))
            }
        };
        Ok(Undo {
            edits: before,
            action,
        })
    }

    /// Puts `port` in place `i`; returns the one it replaced.
    fn replace_port(&mut self, i: usize, port: Port) -> Port {
        match self.current.ports.get_mut(i) {
            Some(slot) => std::mem::replace(slot, port),
            None => port,
        }
    }

    /// Takes back an edit made by [`edit_in_place`](Self::edit_in_place).
    pub fn undo(&mut self, u: Undo) {
        self.edits = u.edits;
        match u.action {
            UndoAction::Truncate(len) => self.current.ports.truncate(len),
            UndoAction::Insert(i, port) => {
                let i = i.min(self.current.ports.len());
                self.current.ports.insert(i, port);
            }
            UndoAction::Replace(i, port) => {
                self.replace_port(i, port);
            }
        }
    }

    /// An endpoint's fields as a TOML `[[endpoint]]` (it links with a base of either
    /// format).
    pub fn render_endpoint(&self, spec: &EndpointSpec) -> Document {
        let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
        let mut text = format!(
            "[[endpoint]]\nname = {}\nnetwork = {}\nmac = {}\n",
            quote(&spec.name),
            quote(&spec.network),
            quote(&spec.mac)
        );
        for (key, v) in [
            ("ipv4", &spec.ipv4),
            ("ipv6", &spec.ipv6),
            ("interface", &spec.interface),
        ] {
            if let Some(v) = v {
                text += &format!("{key} = {}\n", quote(v));
            }
        }
        Document {
            name: format!("endpoint {}", spec.name),
            text,
            format: Some(Format::Toml),
        }
    }

    /// The endpoints of an `endpoint add` document, compiled beside the base's context.
    fn compile_endpoints(&self, doc: &Document) -> Result<Vec<Port>, Refusal> {
        match doc.format() {
            Format::Toml => toml_fragment(doc, &["endpoint"])?,
            Format::HnsJson => {
                let value = json_fragment(doc)?;
                if !json_objects(&value) || has_any(&value, &["Networks", "Host"]) {
                    return Err(invalid_at(
                        doc,
                        "JSON",
                        "expected an HNS endpoint object or an array of them",
                    ));
                }
            }
        }
        let names = endpoint_names(doc);
        let ports = self.compile_beside(doc, 0)?;
        let ports: Vec<Port> = ports
            .into_iter()
            .filter(|p| names.contains(&p.name))
            .collect();
        if ports.is_empty() {
            return Err(invalid_at(doc, "file", "the document holds no endpoint"));
        }
        Ok(ports)
    }

    /// Loads the base's context and `doc` together; `doc`'s errors keep its own lines
    /// (`offset` lines of it were added in front by us).
    fn compile_beside(&self, doc: &Document, offset: usize) -> Result<Vec<Port>, Refusal> {
        let mut files = self.context.to_vec();
        files.push(doc.clone());
        load_all(&files).map(|p| p.ports).map_err(|errors| {
            Refusal::Invalid(PolicyErrors(
                errors
                    .0
                    .into_iter()
                    .map(|mut e| {
                        if e.file == doc.name {
                            e.line = e.line.saturating_sub(offset).max(1);
                        }
                        e
                    })
                    .collect(),
            ))
        })
    }

    /// A one-endpoint document holding only `port`'s identity and the document's ACLs,
    /// compiled beside the base's context (so isolation and network rules apply).
    fn compile_acls(&self, port: &Port, doc: &Document) -> Result<Port, Refusal> {
        let v4 = port.ips.iter().find(|ip| ip.is_ipv4());
        let v6 = port.ips.iter().find(|ip| ip.is_ipv6());
        let ports = match doc.format() {
            Format::Toml => {
                let text = rename_acl_headers(&doc.text);
                let renamed = Document {
                    text,
                    ..doc.clone()
                };
                toml_fragment(&renamed, &["endpoint"])?;
                let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
                let mut head = format!(
                    "[[endpoint]]\nname = {}\nnetwork = {}\nmac = {}\nisolation = {}\n",
                    quote(&port.name),
                    quote(&port.network),
                    quote(&port.mac.to_string()),
                    quote(match port.isolation {
                        Isolation::Process => "process",
                        Isolation::ProcessLegacy => "process-legacy",
                        Isolation::HyperV => "hyperv",
                    }),
                );
                if let Some(ip) = v4 {
                    head += &format!("ipv4 = {}\n", quote(&ip.to_string()));
                }
                if let Some(ip) = v6 {
                    head += &format!("ipv6 = {}\n", quote(&ip.to_string()));
                }
                let offset = head.matches('\n').count();
                let whole = Document {
                    text: head + &renamed.text,
                    ..renamed
                };
                self.compile_beside(&whole, offset)?
            }
            Format::HnsJson => {
                let value = json_fragment(doc)?;
                if !json_objects(&value) {
                    return Err(invalid_at(
                        doc,
                        "JSON",
                        "expected an HNS ACL policy object or an array of them",
                    ));
                }
                let mut ep = serde_json::json!({
                    "Name": port.name,
                    "VirtualNetworkName": port.network,
                    "MacAddress": port.mac.to_string(),
                    "Isolation": match port.isolation {
                        Isolation::Process => "Process",
                        Isolation::ProcessLegacy => "ProcessLegacy",
                        Isolation::HyperV => "HyperV",
                    },
                });
                if let Some(ip) = v4 {
                    ep["IPAddress"] = ip.to_string().into();
                }
                if let Some(ip) = v6 {
                    ep["IPv6Address"] = ip.to_string().into();
                }
                let ep = serde_json::to_string(&ep).unwrap_or_default();
                let ep = ep.strip_suffix('}').unwrap_or(&ep);
                let (open, close) = if value.is_array() {
                    ("", "")
                } else {
                    ("[", "]")
                };
                let whole = Document {
                    text: format!("{ep},\"Policies\":{open}\n{}\n{close}}}", doc.text),
                    format: Some(Format::HnsJson),
                    name: doc.name.clone(),
                };
                self.compile_beside(&whole, 1)?
            }
        };
        ports
            .into_iter()
            .find(|p| p.name == port.name)
            .ok_or_else(|| invalid_at(doc, "file", "no ACL compiled"))
    }
}

/// An object, or an array of objects.
fn json_objects(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Object(_) => true,
        serde_json::Value::Array(a) => a.iter().all(|v| v.is_object()),
        _ => false,
    }
}

/// Whether an object (or one of an array's) has one of `keys` (any case).
fn has_any(v: &serde_json::Value, keys: &[&str]) -> bool {
    let one = |o: &serde_json::Value| {
        o.as_object().is_some_and(|o| {
            o.keys()
                .any(|k| keys.iter().any(|want| k.eq_ignore_ascii_case(want)))
        })
    };
    match v {
        serde_json::Value::Array(a) => a.iter().any(one),
        other => one(other),
    }
}

/// Edits that survive a new base: endpoints added by edits, and the edits of those.
fn kept_edits(edits: &[Edit]) -> Vec<&Edit> {
    let mut added: HashSet<String> = HashSet::new();
    let mut kept = Vec::new();
    for e in edits {
        match e {
            Edit::EndpointAdd(doc) => {
                added.extend(endpoint_names(doc));
                kept.push(e);
            }
            Edit::EndpointAttach(spec) => {
                added.insert(spec.name.clone());
                kept.push(e);
            }
            Edit::EndpointRemove(name) | Edit::RuleAdd { port: name, .. } => {
                if added.contains(name) {
                    kept.push(e);
                }
            }
            Edit::RuleRemove { port, .. } => {
                if added.contains(port) {
                    kept.push(e);
                }
            }
        }
    }
    kept
}

/// Drops the edits that only concerned an endpoint now removed: its own `endpoint add`
/// (when it added nothing else) and its rule edits. Otherwise the removal is recorded.
fn forget_endpoint(edits: &mut Vec<Edit>, name: &str) {
    let alone = edits.iter().position(|e| match e {
        Edit::EndpointAdd(doc) => endpoint_names(doc) == [name],
        Edit::EndpointAttach(spec) => spec.name == name,
        _ => false,
    });
    match alone {
        Some(i) => {
            edits.remove(i);
            edits.retain(|e| match e {
                Edit::RuleAdd { port, .. } | Edit::RuleRemove { port, .. } => port != name,
                _ => true,
            });
        }
        None => edits.push(Edit::EndpointRemove(name.to_string())),
    }
}

/// The endpoint names a (valid) `endpoint add` document declares.
fn endpoint_names(doc: &Document) -> Vec<String> {
    let names_of = |v: Option<Vec<String>>| v.unwrap_or_default();
    match doc.format() {
        Format::Toml => names_of(doc.text.parse::<toml::Table>().ok().and_then(|t| {
            let eps = t.get("endpoint")?.as_array()?.clone();
            Some(
                eps.iter()
                    .filter_map(|e| e.get("name")?.as_str().map(str::to_string))
                    .collect(),
            )
        })),
        Format::HnsJson => {
            let v: serde_json::Value = serde_json::from_str(&doc.text).unwrap_or_default();
            let items = match v {
                serde_json::Value::Array(a) => a,
                other => vec![other],
            };
            items
                .iter()
                .filter_map(|e| {
                    let o = e.as_object()?;
                    o.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("Name"))?
                        .1
                        .as_str()
                        .map(str::to_string)
                })
                .collect()
        }
    }
}

/// An error at the first line of a document.
fn invalid_at(doc: &Document, object: &str, message: &str) -> Refusal {
    invalid_line(doc, 1, 1, object, message)
}

fn invalid_line(doc: &Document, line: usize, col: usize, object: &str, message: &str) -> Refusal {
    Refusal::Invalid(PolicyErrors(vec![PolicyError {
        file: doc.name.clone(),
        line,
        col,
        object: object.to_string(),
        message: message.to_string(),
    }]))
}

/// Where `needle` first appears in the document (1-based line and column), else 1:1.
fn locate(doc: &Document, needle: &str) -> (usize, usize) {
    for (i, line) in doc.text.lines().enumerate() {
        if let Some(at) = line.find(needle) {
            return (i + 1, line[..at].chars().count() + 1);
        }
    }
    (1, 1)
}

/// Checks a TOML fragment on its own: its syntax (errors at its own lines), that it holds
/// only the `allowed` top-level tables, and that it starts with a table header (keys
/// before one would otherwise land in the context's last table).
fn toml_fragment(doc: &Document, allowed: &[&str]) -> Result<(), Refusal> {
    if let Err(errors) = policy::load(&doc.text, &doc.name) {
        let syntax: Vec<PolicyError> = errors
            .0
            .into_iter()
            .filter(|e| e.object == "TOML")
            .collect();
        if !syntax.is_empty() {
            return Err(Refusal::Invalid(PolicyErrors(syntax)));
        }
    }
    let table = doc.text.parse::<toml::Table>().unwrap_or_default();
    for key in table.keys() {
        if !allowed.contains(&key.as_str()) {
            let (line, col) = locate(doc, key);
            let allowed: Vec<String> = allowed.iter().map(|a| format!("[[{a}]]")).collect();
            return Err(invalid_line(
                doc,
                line,
                col,
                "file",
                &format!("`{key}` is not allowed here: only {}", allowed.join(", ")),
            ));
        }
    }
    let first = doc.text.lines().enumerate().find(|(_, l)| {
        let t = l.trim_start();
        !t.is_empty() && !t.starts_with('#')
    });
    match first {
        None => Err(invalid_at(doc, "file", "the document is empty")),
        Some((_, l)) if l.trim_start().starts_with('[') => Ok(()),
        Some((i, _)) => Err(invalid_line(
            doc,
            i + 1,
            1,
            "file",
            "a fragment starts with a table header such as [[endpoint]]",
        )),
    }
}

/// Checks a JSON fragment on its own (syntax errors at its own lines) and returns it.
fn json_fragment(doc: &Document) -> Result<serde_json::Value, Refusal> {
    match serde_json::from_str::<serde_json::Value>(&doc.text) {
        Ok(v) => Ok(v),
        Err(e) => Err(invalid_line(
            doc,
            e.line().max(1),
            e.column().max(1),
            "JSON",
            &e.to_string(),
        )),
    }
}

/// `[[acl]]` headers become `[[endpoint.acl]]` (the form of the policy file), so that an
/// ACL can be written either way.
fn rename_acl_headers(text: &str) -> String {
    text.lines()
        .map(|l| {
            let t = l.trim();
            let compact: String = t.chars().filter(|c| !c.is_whitespace()).collect();
            if compact == "[[acl]]" || compact.starts_with("[[acl]]#") {
                l.replacen("acl", "endpoint.acl", 1)
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Newcomers must not clash with the running endpoints: names, MACs, addresses and
/// mapped host ports are unique on a host.
fn check_newcomers(policy: &Policy, new: &[Port], doc: &Document) -> Result<(), Refusal> {
    let mut errors = Vec::new();
    let mut clash = |needle: String, object: &str, message: String| {
        let (line, col) = locate(doc, &needle);
        errors.push(PolicyError {
            file: doc.name.clone(),
            line,
            col,
            object: object.to_string(),
            message,
        });
    };
    for p in new {
        let object = format!("endpoint {:?}", p.name);
        for q in &policy.ports {
            if q.name == p.name {
                clash(
                    p.name.clone(),
                    &object,
                    format!("an endpoint named {:?} is already attached", p.name),
                );
            }
            if q.mac == p.mac {
                clash(
                    p.mac.to_string(),
                    &object,
                    format!("MAC {} is already used by endpoint {:?}", p.mac, q.name),
                );
            }
            for ip in &p.ips {
                if q.ips.contains(ip) {
                    clash(
                        ip.to_string(),
                        &object,
                        format!("address {ip} is already used by endpoint {:?}", q.name),
                    );
                }
            }
            for m in &p.port_mappings {
                if q.port_mappings
                    .iter()
                    .any(|o| o.protocol == m.protocol && o.external_port == m.external_port)
                {
                    clash(
                        m.external_port.to_string(),
                        &object,
                        format!(
                            "host port {} is already mapped to endpoint {:?}",
                            m.external_port, q.name
                        ),
                    );
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        errors.sort_by_key(|e| (e.line, e.col));
        Err(Refusal::Invalid(PolicyErrors(errors)))
    }
}

/// Appends the ACL rules compiled into `fragment` to `target`'s ACL groups, each group
/// replaced as a whole.
fn add_acls(target: &mut Port, fragment: &Port, doc: &Document) -> Result<(), Refusal> {
    let Some(new_layer) = fragment.layers.iter().find(|l| l.name == ACL_LAYER) else {
        return Err(invalid_at(doc, "file", "no ACL compiled"));
    };
    let port_name = target.name.clone();
    let Some(layer) = target.layers.iter_mut().find(|l| l.name == ACL_LAYER) else {
        return Err(Refusal::Request(format!(
            "endpoint {port_name:?} has no `{ACL_LAYER}` layer"
        )));
    };
    let mut added = 0;
    for new_group in &new_layer.groups {
        if ![ACL_IN_GROUP, ACL_OUT_GROUP].contains(&new_group.name.as_str()) {
            continue;
        }
        let Some(group) = layer.groups.iter_mut().find(|g| g.name == new_group.name) else {
            continue;
        };
        let mut rules = group.rules.clone();
        for r in &new_group.rules {
            if rules.iter().any(|o| o.id == r.id) {
                let (line, col) = locate(doc, &r.id);
                return Err(invalid_line(
                    doc,
                    line,
                    col,
                    &format!("endpoint {port_name:?} acl {:?}", r.id),
                    &format!(
                        "group {:?} already has a rule {:?}: give the ACL another id, or remove that rule first",
                        group.name, r.id
                    ),
                ));
            }
            rules.push(r.clone());
            added += 1;
        }
        group.rules = rules;
    }
    if added == 0 {
        return Err(invalid_at(doc, "file", "the document holds no ACL"));
    }
    Ok(())
}

fn remove_rule(
    target: &mut Port,
    rule: &str,
    layer: Option<&str>,
    group: Option<&str>,
) -> Result<(), Refusal> {
    let mut found = Vec::new();
    for (li, l) in target.layers.iter().enumerate() {
        if layer.is_some_and(|n| n != l.name) {
            continue;
        }
        for (gi, g) in l.groups.iter().enumerate() {
            if group.is_some_and(|n| n != g.name) {
                continue;
            }
            for (ri, r) in g.rules.iter().enumerate() {
                if r.id == rule {
                    found.push((li, gi, ri));
                }
            }
        }
    }
    match found[..] {
        [] => Err(Refusal::Request(format!(
            "endpoint {:?} has no rule {rule:?}{}{}",
            target.name,
            layer
                .map(|l| format!(" in layer {l:?}"))
                .unwrap_or_default(),
            group
                .map(|g| format!(" in group {g:?}"))
                .unwrap_or_default(),
        ))),
        [(li, gi, ri)] => {
            let g = &mut target.layers[li].groups[gi];
            let mut rules = g.rules.clone();
            rules.remove(ri);
            g.rules = rules;
            Ok(())
        }
        _ => {
            let places: Vec<String> = found
                .iter()
                .map(|&(li, gi, _)| {
                    let l = &target.layers[li];
                    format!("{}/{}", l.name, l.groups[gi].name)
                })
                .collect();
            Err(Refusal::Request(format!(
                "rule {rule:?} of endpoint {:?} is in several groups ({}): name the layer and group",
                target.name,
                places.join(", ")
            )))
        }
    }
}

#[cfg(test)]
mod tests;
