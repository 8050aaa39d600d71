//! The running policy and its changes, validated away from the packet path.
//!
//! A policy is a **base document** (the policy file, or the last `apply`) plus an ordered
//! list of **edits**: endpoints added (CNI, `strata ctl endpoint add`) or removed, and
//! ACLs added or rules removed (a group replaced as a whole, VFP's unit of update). Every
//! change yields a whole new [`PolicyState`] or is refused with `strata check`'s
//! line-numbered errors; the running state is never touched by a refusal.
//!
//! Fragments (an endpoint, some ACLs) are compiled by the same loader as a whole policy,
//! in the **context** of the base: its host, networks and load balancers (its endpoints
//! left out), so an added endpoint gets exactly the layers it would get in the file. The
//! fragment's text is placed after the context unchanged, on lines of its own, so errors
//! point at the fragment's own lines. A fragment is read in the base's format (TOML with
//! a TOML base, HNS JSON with an HNS base).
//!
//! When a new base is applied, edits that concern endpoints added by edits are kept and
//! replayed on it (a file edit must not detach running containers); edits of the base's
//! own endpoints are dropped (the new file restates them). A kept edit that no longer
//! fits refuses the whole apply.

use std::collections::HashSet;

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

/// The base document without its endpoints: what fragments are compiled against.
#[derive(Clone, Debug)]
enum Context {
    /// TOML text of the host, networks and load balancers.
    Toml(String),
    /// The HNS document's other members, as JSON object members (no braces).
    Hns(String),
}

impl Context {
    fn of(doc: &Document) -> Context {
        match doc.format() {
            Format::Toml => {
                let mut table = doc.text.parse::<toml::Table>().unwrap_or_default();
                table.remove("endpoint");
                Context::Toml(toml::to_string(&table).unwrap_or_default())
            }
            Format::HnsJson => {
                let mut members = match serde_json::from_str::<serde_json::Value>(&doc.text) {
                    Ok(serde_json::Value::Object(m)) => m,
                    _ => serde_json::Map::new(),
                };
                members.retain(|k, _| !k.eq_ignore_ascii_case("Endpoints"));
                let text = serde_json::to_string(&members).unwrap_or_else(|_| "{}".into());
                let inner = text
                    .strip_prefix('{')
                    .and_then(|t| t.strip_suffix('}'))
                    .unwrap_or_default();
                Context::Hns(inner.to_string())
            }
        }
    }

    fn format(&self) -> Format {
        match self {
            Context::Toml(_) => Format::Toml,
            Context::Hns(_) => Format::HnsJson,
        }
    }
}

/// The running policy: its base, the edits since, and the policy they make.
#[derive(Clone, Debug)]
pub struct PolicyState {
    /// The base's documents (one, or several files linked together).
    base: Vec<Document>,
    /// What fragments are compiled against; `None` for a base of several files.
    context: Option<Context>,
    base_policy: Policy,
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
            context: match &base[..] {
                [one] => Some(Context::of(one)),
                _ => None,
            },
            current: base_policy.clone(),
            base_policy,
            base,
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
        let mut policy = self.current.clone();
        let mut edits = self.edits.clone();
        match &edit {
            Edit::EndpointAdd(doc) => {
                let ports = self.compile_endpoints(doc)?;
                check_newcomers(&policy, &ports, doc)?;
                policy.ports.extend(ports);
                edits.push(edit);
            }
            Edit::EndpointAttach(spec) => {
                let doc = self.render_endpoint(spec);
                let ports = self.compile_endpoints(&doc)?;
                check_newcomers(&policy, &ports, &doc)?;
                policy.ports.extend(ports);
                edits.push(edit);
            }
            Edit::EndpointRemove(name) => {
                let before = policy.ports.len();
                policy.ports.retain(|p| p.name != *name);
                if policy.ports.len() == before {
                    return Err(Refusal::Request(format!("no endpoint named {name:?}")));
                }
                forget_endpoint(&mut edits, name);
            }
            Edit::RuleAdd { port, document } => {
                let Some(target) = policy.ports.iter_mut().find(|p| p.name == *port) else {
                    return Err(Refusal::Request(format!("no endpoint named {port:?}")));
                };
                let fragment = self.compile_acls(target, document)?;
                add_acls(target, &fragment, document)?;
                edits.push(edit);
            }
            Edit::RuleRemove {
                port,
                rule,
                layer,
                group,
            } => {
                let Some(target) = policy.ports.iter_mut().find(|p| p.name == *port) else {
                    return Err(Refusal::Request(format!("no endpoint named {port:?}")));
                };
                remove_rule(target, rule, layer.as_deref(), group.as_deref())?;
                edits.push(edit);
            }
        }
        Ok(PolicyState {
            base: self.base.clone(),
            context: self.context.clone(),
            base_policy: self.base_policy.clone(),
            edits,
            current: policy,
        })
    }

    /// An endpoint's fields as a document in the base's format.
    pub fn render_endpoint(&self, spec: &EndpointSpec) -> Document {
        let name = format!("endpoint {}", spec.name);
        match self.context.as_ref().map_or(Format::Toml, Context::format) {
            Format::Toml => {
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
                    name,
                    text,
                    format: Some(Format::Toml),
                }
            }
            Format::HnsJson => {
                let mut ep = serde_json::json!({
                    "Name": spec.name,
                    "VirtualNetworkName": spec.network,
                    "MacAddress": spec.mac,
                });
                for (key, v) in [
                    ("IPAddress", &spec.ipv4),
                    ("IPv6Address", &spec.ipv6),
                    ("Interface", &spec.interface),
                ] {
                    if let Some(v) = v {
                        ep[key] = v.clone().into();
                    }
                }
                Document {
                    name,
                    text: serde_json::to_string_pretty(&ep).unwrap_or_default(),
                    format: Some(Format::HnsJson),
                }
            }
        }
    }

    /// The endpoints of an `endpoint add` document, compiled in the base's context.
    fn compile_endpoints(&self, doc: &Document) -> Result<Vec<Port>, Refusal> {
        self.same_format(doc)?;
        match self.context()? {
            Context::Toml(ctx) => {
                toml_fragment(doc, &["endpoint"])?;
                compile_toml(ctx, "", doc)
            }
            Context::Hns(ctx) => {
                let value = json_fragment(doc)?;
                let ok = match &value {
                    serde_json::Value::Object(_) => true,
                    serde_json::Value::Array(a) => a.iter().all(|v| v.is_object()),
                    _ => false,
                };
                if !ok {
                    return Err(invalid_at(
                        doc,
                        "JSON",
                        "expected an HNS endpoint object or an array of them",
                    ));
                }
                let open = if value.is_array() { "" } else { "[" };
                let close = if value.is_array() { "" } else { "]" };
                let sep = if ctx.is_empty() { "" } else { "," };
                let prefix = format!("{{{ctx}{sep}\"Endpoints\":{open}");
                compile_hns(&prefix, doc, &format!("{close}}}"))
            }
        }
    }

    /// A one-endpoint policy holding only `port`'s identity and the document's ACLs,
    /// compiled in the base's context (so isolation and network rules apply).
    fn compile_acls(&self, port: &Port, doc: &Document) -> Result<Port, Refusal> {
        self.same_format(doc)?;
        let v4 = port.ips.iter().find(|ip| ip.is_ipv4());
        let v6 = port.ips.iter().find(|ip| ip.is_ipv6());
        let ports = match self.context()? {
            Context::Toml(ctx) => {
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
                compile_toml(ctx, &head, &renamed)?
            }
            Context::Hns(ctx) => {
                let value = json_fragment(doc)?;
                let ok = match &value {
                    serde_json::Value::Object(_) => true,
                    serde_json::Value::Array(a) => a.iter().all(|v| v.is_object()),
                    _ => false,
                };
                if !ok {
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
                let sep = if ctx.is_empty() { "" } else { "," };
                let prefix = format!("{{{ctx}{sep}\"Endpoints\":[{ep},\"Policies\":{open}");
                compile_hns(&prefix, doc, &format!("{close}}}]}}"))?
            }
        };
        ports
            .into_iter()
            .next()
            .ok_or_else(|| invalid_at(doc, "file", "no ACL compiled"))
    }

    /// The context fragments are compiled in: a one-file base's.
    fn context(&self) -> Result<&Context, Refusal> {
        self.context.as_ref().ok_or_else(|| {
            Refusal::Request(format!(
                "the running policy is made of several files ({}): endpoint and rule edits \
                 need a policy of one file for now; apply a whole policy instead",
                self.base_names()
            ))
        })
    }

    fn base_names(&self) -> String {
        self.base
            .iter()
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>()
            .join(" + ")
    }

    fn same_format(&self, doc: &Document) -> Result<(), Refusal> {
        let (want, got) = (self.context()?.format(), doc.format());
        if want == got {
            return Ok(());
        }
        let (base, other) = match want {
            Format::Toml => ("TOML", "HNS JSON"),
            Format::HnsJson => ("HNS JSON", "TOML"),
        };
        Err(invalid_at(
            doc,
            "file",
            &format!(
                "the running policy is {base} ({}): changes to it are written in {base}, not {other}",
                self.base_names()
            ),
        ))
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

/// Loads `context` + `head` + the fragment as one TOML policy; errors at lines of the
/// fragment are given the fragment's own line numbers.
fn compile_toml(context: &str, head: &str, doc: &Document) -> Result<Vec<Port>, Refusal> {
    let mut text = String::with_capacity(context.len() + head.len() + doc.text.len() + 2);
    text.push_str(context);
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(head);
    let offset = text.matches('\n').count();
    text.push_str(&doc.text);
    text.push('\n');
    policy::load(&text, &doc.name)
        .map(|p| p.ports)
        .map_err(|e| Refusal::Invalid(relocate(e, offset, doc)))
}

/// Loads `prefix` (one line) + the fragment + `suffix` as one HNS JSON document.
fn compile_hns(prefix: &str, doc: &Document, suffix: &str) -> Result<Vec<Port>, Refusal> {
    let text = format!("{prefix}\n{}\n{suffix}", doc.text);
    policy::load_hns_json(&text, &doc.name)
        .map(|p| p.ports)
        .map_err(|e| Refusal::Invalid(relocate(e, 1, doc)))
}

/// Errors on the fragment's lines keep their place in it; errors in the context (which
/// validated on its own: a conflict it is party to) name the running policy.
fn relocate(errors: PolicyErrors, offset: usize, doc: &Document) -> PolicyErrors {
    let fragment_lines = doc.text.lines().count().max(1);
    PolicyErrors(
        errors
            .0
            .into_iter()
            .map(|mut e| {
                if e.line > offset && e.line <= offset + fragment_lines {
                    e.line -= offset;
                } else {
                    e.file = format!("{} (the running policy around it)", doc.name);
                    e.line = 1;
                    e.col = 1;
                }
                e
            })
            .collect(),
    )
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
