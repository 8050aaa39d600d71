//! HNS JSON import: the networks and endpoints of Windows' Host Networking Service, as
//! `hnsdiag` or `Get-HnsEndpoint | ConvertTo-Json` show them, read into the same raw
//! types as the TOML file and compiled by the same code, so both formats mean the same.
//!
//! serde_json keeps no positions, so a small scanner indexes the (already validated)
//! JSON text with the byte span of every value; errors then point at lines of the JSON.
//! Informational fields of HNS dumps (`ID`, `State`, `DNSServerList`, ...) are ignored at
//! the network and endpoint level; inside a policy every field must be known.

use std::ops::Range;

use toml::Spanned;

use super::values::{Items, Scalar};
use super::{Diagnostics, PolicyErrors, compile, raw};
use crate::model::Policy;

/// A JSON value with the byte span it occupies.
#[derive(Debug)]
struct Json {
    span: Range<usize>,
    value: J,
}

#[derive(Debug)]
enum J {
    Null,
    Bool,
    Int(i128),
    Float,
    Str(String),
    Array(Vec<Json>),
    /// Keys in file order, each with its span.
    Object(Vec<(String, Range<usize>, Json)>),
}

impl Json {
    fn kind(&self) -> &'static str {
        match self.value {
            J::Null => "null",
            J::Bool => "a boolean",
            J::Int(_) => "an integer",
            J::Float => "a number",
            J::Str(_) => "a string",
            J::Array(_) => "an array",
            J::Object(_) => "an object",
        }
    }

    /// A field of an object; HNS keys are matched without regard to case.
    fn get(&self, key: &str) -> Option<&Json> {
        match &self.value {
            J::Object(fields) => fields
                .iter()
                .find(|(k, _, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, _, v)| v),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match &self.value {
            J::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Indexes JSON text that serde_json has already accepted. Returns `None` rather than
/// panicking if the text is not what it expects.
struct Scanner<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn skip_ws(&mut self) {
        let rest = &self.text[self.pos..];
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        self.skip_ws();
        (self.peek()? == b).then(|| self.pos += 1)
    }

    fn string(&mut self) -> Option<String> {
        let start = self.pos;
        let bytes = self.text.as_bytes();
        let mut i = start + 1;
        while *bytes.get(i)? != b'"' {
            i += if bytes[i] == b'\\' { 2 } else { 1 };
        }
        self.pos = i + 1;
        serde_json::from_str(self.text.get(start..self.pos)?).ok()
    }

    fn value(&mut self, depth: usize) -> Option<Json> {
        if depth > 64 {
            return None;
        }
        self.skip_ws();
        let start = self.pos;
        let value = match self.peek()? {
            b'{' => {
                self.pos += 1;
                let mut fields = Vec::new();
                self.skip_ws();
                if self.peek()? == b'}' {
                    self.pos += 1;
                } else {
                    loop {
                        self.skip_ws();
                        let key_start = self.pos;
                        let key = self.string()?;
                        let key_span = key_start..self.pos;
                        self.eat(b':')?;
                        fields.push((key, key_span, self.value(depth + 1)?));
                        self.skip_ws();
                        match self.peek()? {
                            b',' => self.pos += 1,
                            b'}' => {
                                self.pos += 1;
                                break;
                            }
                            _ => return None,
                        }
                    }
                }
                J::Object(fields)
            }
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                self.skip_ws();
                if self.peek()? == b']' {
                    self.pos += 1;
                } else {
                    loop {
                        items.push(self.value(depth + 1)?);
                        self.skip_ws();
                        match self.peek()? {
                            b',' => self.pos += 1,
                            b']' => {
                                self.pos += 1;
                                break;
                            }
                            _ => return None,
                        }
                    }
                }
                J::Array(items)
            }
            b'"' => J::Str(self.string()?),
            _ => {
                let rest = &self.text[self.pos..];
                let len = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || "+-.".contains(c)))
                    .unwrap_or(rest.len());
                let word = &rest[..len];
                self.pos += len;
                match word {
                    "null" => J::Null,
                    "true" | "false" => J::Bool,
                    _ => match word.parse::<i128>() {
                        Ok(n) => J::Int(n),
                        Err(_) => J::Float,
                    },
                }
            }
        };
        Some(Json {
            span: start..self.pos,
            value,
        })
    }
}

/// Reads the fields of one JSON object into raw values, reporting what is wrong.
struct Reader<'d, 'a> {
    d: &'d mut Diagnostics<'a>,
}

impl Reader<'_, '_> {
    fn string(&mut self, obj: &Json, object: &str, key: &str) -> Option<Spanned<String>> {
        let v = obj.get(key)?;
        match &v.value {
            J::Str(s) => Some(Spanned::new(v.span.clone(), s.clone())),
            J::Null => None,
            _ => {
                self.d.error(
                    v.span.clone(),
                    object,
                    format!("{key} must be a string, not {}", v.kind()),
                );
                None
            }
        }
    }

    fn required(&mut self, obj: &Json, object: &str, key: &str) -> Option<Spanned<String>> {
        let s = self.string(obj, object, key);
        if s.is_none() && obj.get(key).is_none() {
            self.d
                .error(obj.span.clone(), object, format!("missing field `{key}`"));
        }
        s
    }

    fn int(&mut self, obj: &Json, object: &str, key: &str) -> Option<Spanned<i64>> {
        let v = obj.get(key)?;
        let n = match &v.value {
            J::Int(n) => Some(*n),
            J::Str(s) => s.trim().parse::<i128>().ok(),
            J::Null => return None,
            _ => None,
        };
        match n.and_then(|n| i64::try_from(n).ok()) {
            Some(n) => Some(Spanned::new(v.span.clone(), n)),
            None => {
                self.d
                    .error(v.span.clone(), object, format!("{key} must be an integer"));
                None
            }
        }
    }

    fn items(&mut self, obj: &Json, object: &str, key: &str) -> Option<Spanned<Items>> {
        let v = obj.get(key)?;
        let scalar = |j: &Json| match &j.value {
            J::Str(s) => Some(Scalar::Str(s.clone())),
            J::Int(n) => Some(Scalar::Int(*n)),
            _ => None,
        };
        let list: Vec<&Json> = match &v.value {
            J::Array(items) => items.iter().collect(),
            J::Null => return None,
            _ => vec![v],
        };
        let mut out = Vec::new();
        for item in list {
            match scalar(item) {
                Some(s) => out.push(Spanned::new(item.span.clone(), s)),
                None => self.d.error(
                    item.span.clone(),
                    object,
                    format!("{key}: expected strings or integers, not {}", item.kind()),
                ),
            }
        }
        Some(Spanned::new(v.span.clone(), Items::from_spanned(out)))
    }

    /// A name from `choices`, matched without regard to case.
    fn choice<T: Copy>(
        &mut self,
        obj: &Json,
        object: &str,
        key: &str,
        choices: &[(&str, T)],
    ) -> Option<Spanned<T>> {
        let s = self.string(obj, object, key)?;
        match choices
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(s.get_ref()))
        {
            Some(&(_, t)) => Some(Spanned::new(s.span(), t)),
            None => {
                let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
                self.d.error(
                    s.span(),
                    object,
                    format!(
                        "unknown {key} `{}`, expected one of {}",
                        s.get_ref(),
                        names.join(", ")
                    ),
                );
                None
            }
        }
    }

    /// Refuses keys outside `known`: inside a policy a typo must not pass silently.
    fn only(&mut self, obj: &Json, object: &str, known: &[&str]) {
        if let J::Object(fields) = &obj.value {
            for (k, span, _) in fields {
                if !known.iter().any(|n| n.eq_ignore_ascii_case(k)) {
                    self.d.error(
                        span.clone(),
                        object,
                        format!("unknown field `{k}`, expected one of {}", known.join(", ")),
                    );
                }
            }
        }
    }

    fn array<'j>(&mut self, obj: &'j Json, object: &str, key: &str) -> &'j [Json] {
        match obj.get(key) {
            Some(Json {
                value: J::Array(items),
                ..
            }) => items,
            Some(Json { value: J::Null, .. }) | None => &[],
            Some(v) => {
                self.d
                    .error(v.span.clone(), object, format!("{key} must be an array"));
                &[]
            }
        }
    }
}

const ACTIONS: [(&str, raw::Action); 2] =
    [("Allow", raw::Action::Allow), ("Block", raw::Action::Block)];

fn host(r: &mut Reader, h: &Json) -> raw::Host {
    let o = "host";
    let addresses = r.items(h, o, "IPAddresses").map(|items| {
        let span = items.span();
        items
            .get_ref()
            .iter_with(&span)
            .into_iter()
            .map(|(s, sp)| {
                Spanned::new(
                    sp,
                    match s {
                        Scalar::Str(s) => s,
                        Scalar::Int(n) => n.to_string(),
                    },
                )
            })
            .collect()
    });
    raw::Host {
        name: r.string(h, o, "Name"),
        mac: r.string(h, o, "MacAddress"),
        addresses: addresses.unwrap_or_default(),
        mtu: r.int(h, o, "MTU"),
        interface: r.string(h, o, "Interface").map(Spanned::into_inner),
    }
}

fn network(r: &mut Reader, n: &Json, index: usize) -> Option<raw::Network> {
    let object = match n.get("Name").and_then(Json::as_str) {
        Some(name) => format!("network {name:?}"),
        None => format!("network #{}", index + 1),
    };
    let name = r.required(n, &object, "Name")?;
    let drivers = [
        ("NAT", raw::Driver::Nat),
        ("Transparent", raw::Driver::Transparent),
        ("L2Bridge", raw::Driver::L2bridge),
        ("L2Tunnel", raw::Driver::L2tunnel),
        ("Overlay", raw::Driver::Overlay),
    ];
    let driver = r.choice(n, &object, "Type", &drivers);
    let mut subnets = Vec::new();
    let mut gateway = None;
    let mut vlan = None;
    let mut vni = None;
    let mut vxlan_port = None;
    let mut outbound_nat = None;
    let mut routes = Vec::new();
    let mut policies: Vec<&Json> = r.array(n, &object, "Policies").iter().collect();
    for s in r.array(n, &object, "Subnets") {
        match &s.value {
            J::Str(p) => subnets.push(Spanned::new(s.span.clone(), p.clone())),
            J::Object(_) => {
                if let Some(p) = r.required(s, &object, "AddressPrefix") {
                    subnets.push(p);
                }
                if gateway.is_none() {
                    gateway = r.string(s, &object, "GatewayAddress");
                }
                policies.extend(r.array(s, &object, "Policies"));
            }
            _ => r.d.error(
                s.span.clone(),
                &object,
                "Subnets: expected prefixes or subnet objects",
            ),
        }
    }
    for p in policies {
        match p
            .get("Type")
            .and_then(Json::as_str)
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            Some("VLAN") => vlan = r.int(p, &object, "VLAN"),
            Some("VSID") => vni = r.int(p, &object, "VSID"),
            Some("VXLANPORT") => {
                let s = p.get("Settings").unwrap_or(p);
                r.only(s, &object, &["Port", "Type", "Settings"]);
                vxlan_port = r.int(s, &object, "Port");
            }
            Some("OUTBOUNDNAT") => {
                let s = p.get("Settings").unwrap_or(p);
                let oobj = format!("{object} outbound_nat");
                r.only(
                    s,
                    &oobj,
                    &[
                        "VirtualIP",
                        "VIP",
                        "Exceptions",
                        "ExceptionList",
                        "Type",
                        "Settings",
                    ],
                );
                let vip = match r.string(s, &oobj, "VirtualIP") {
                    Some(v) => Some(v),
                    None => r.required(s, &oobj, "VIP"),
                };
                let exceptions = match r.items(s, &oobj, "Exceptions") {
                    Some(e) => Some(e),
                    None => r.items(s, &oobj, "ExceptionList"),
                };
                if let Some(vip) = vip {
                    outbound_nat = Some(Spanned::new(
                        p.span.clone(),
                        raw::OutboundNat { vip, exceptions },
                    ));
                }
            }
            Some("REMOTESUBNETROUTE") => {
                let s = p.get("Settings").unwrap_or(p);
                let robj = format!("{object} remote_subnet_route #{}", routes.len() + 1);
                r.only(
                    s,
                    &robj,
                    &[
                        "DestinationPrefix",
                        "ProviderAddress",
                        "DistributedRouterMacAddress",
                        "IsolationId",
                        "Type",
                        "Settings",
                    ],
                );
                let prefix = r.required(s, &robj, "DestinationPrefix");
                let provider_address = r.required(s, &robj, "ProviderAddress");
                let mac = r.string(s, &robj, "DistributedRouterMacAddress");
                // IsolationId repeats the network's VSID; read only to be type-checked.
                r.int(s, &robj, "IsolationId");
                if let (Some(prefix), Some(provider_address)) = (prefix, provider_address) {
                    routes.push(Spanned::new(
                        p.span.clone(),
                        raw::RemoteSubnetRoute {
                            prefix,
                            provider_address,
                            mac,
                        },
                    ));
                }
            }
            _ => r.d.error(
                p.span.clone(),
                &object,
                "network policies supported: VLAN, VSID, VxlanPort, OutBoundNAT, RemoteSubnetRoute",
            ),
        }
    }
    Some(raw::Network {
        name,
        driver,
        subnets,
        subnet: None,
        gateway,
        vlan,
        vni,
        vxlan_port,
        outbound_nat,
        remote_subnet_route: routes,
    })
}

fn acl(r: &mut Reader, p: &Json, s: &Json, object: &str) -> Option<raw::Acl> {
    let fields = [
        "Id",
        "Action",
        "Direction",
        "Protocols",
        "LocalAddresses",
        "RemoteAddresses",
        "LocalPorts",
        "RemotePorts",
        "Priority",
        "RuleType",
        "Type",
        "Settings",
    ];
    r.only(s, object, &fields);
    let action = r.choice(s, object, "Action", &ACTIONS);
    let directions = [
        ("In", raw::AclDirection::In),
        ("Out", raw::AclDirection::Out),
    ];
    let direction = r.choice(s, object, "Direction", &directions);
    for key in ["Action", "Direction"] {
        if s.get(key).is_none() {
            r.d.error(p.span.clone(), object, format!("missing field `{key}`"));
        }
    }
    // HNS's RuleType (Host or Switch) says where Windows enforces the ACL; Strata
    // enforces every ACL in the switch, so it is read only to be checked.
    r.choice(s, object, "RuleType", &[("Switch", ()), ("Host", ())]);
    Some(raw::Acl {
        position: 0,
        id: r.string(s, object, "Id"),
        action: *action?.get_ref(),
        direction: *direction?.get_ref(),
        protocols: r.items(s, object, "Protocols"),
        local_addresses: r.items(s, object, "LocalAddresses"),
        remote_addresses: r.items(s, object, "RemoteAddresses"),
        local_ports: r.items(s, object, "LocalPorts"),
        remote_ports: r.items(s, object, "RemotePorts"),
        priority: r.int(s, object, "Priority"),
    })
}

fn port_mapping(r: &mut Reader, p: &Json, s: &Json, object: &str) -> Option<raw::PortMapping> {
    r.only(
        s,
        object,
        &[
            "Protocol",
            "InternalPort",
            "ExternalPort",
            "Type",
            "Settings",
            "Flags",
        ],
    );
    let protocol = match s.get("Protocol").map(|v| &v.value) {
        None => None,
        Some(J::Int(6)) => Some(raw::MappingProtocol::Tcp),
        Some(J::Int(17)) => Some(raw::MappingProtocol::Udp),
        Some(_) => r
            .choice(
                s,
                object,
                "Protocol",
                &[
                    ("TCP", raw::MappingProtocol::Tcp),
                    ("UDP", raw::MappingProtocol::Udp),
                    ("6", raw::MappingProtocol::Tcp),
                    ("17", raw::MappingProtocol::Udp),
                ],
            )
            .map(Spanned::into_inner),
    };
    let mut port = |key: &str| {
        let v = r.int(s, object, key);
        if v.is_none() && s.get(key).is_none() {
            r.d.error(p.span.clone(), object, format!("missing field `{key}`"));
        }
        v
    };
    let internal_port = port("InternalPort");
    let external_port = port("ExternalPort");
    Some(raw::PortMapping {
        position: 0,
        protocol,
        internal_port: internal_port?,
        external_port: external_port?,
    })
}

fn endpoint(r: &mut Reader, e: &Json, index: usize) -> Option<raw::Endpoint> {
    let object = match e.get("Name").and_then(Json::as_str) {
        Some(name) => format!("endpoint {name:?}"),
        None => format!("endpoint #{}", index + 1),
    };
    let isolations = [
        ("Process", raw::Isolation::Process),
        ("ProcessLegacy", raw::Isolation::ProcessLegacy),
        ("process-legacy", raw::Isolation::ProcessLegacy),
        ("HyperV", raw::Isolation::Hyperv),
    ];
    let mut acls = Vec::new();
    let mut mappings = Vec::new();
    for p in r.array(e, &object, "Policies") {
        // HCN (v2) nests a policy's fields under `Settings`; HNS v1 writes them flat.
        let settings = p.get("Settings").unwrap_or(p);
        let kind = p.get("Type").and_then(Json::as_str).unwrap_or_default();
        if kind.eq_ignore_ascii_case("ACL") {
            let n = acls.len() + 1;
            let aobj = match settings.get("Id").and_then(Json::as_str) {
                Some(id) => format!("{object} acl #{n} {id:?}"),
                None => format!("{object} acl #{n}"),
            };
            if let Some(mut a) = acl(r, p, settings, &aobj) {
                a.position = n;
                acls.push(Spanned::new(p.span.clone(), a));
            }
        } else if kind.eq_ignore_ascii_case("PortMapping") || kind.eq_ignore_ascii_case("NAT") {
            let pobj = format!("{object} port_mapping #{}", mappings.len() + 1);
            if let Some(m) = port_mapping(r, p, settings, &pobj) {
                mappings.push(Spanned::new(p.span.clone(), m));
            }
        } else {
            let hint = if kind.eq_ignore_ascii_case("OutBoundNAT") {
                "; Strata applies OutBoundNAT per network: put it in the network's Policies"
            } else if kind.eq_ignore_ascii_case("ELB") || kind.eq_ignore_ascii_case("LoadBalancer")
            {
                "; load balancers are not imported from HNS JSON: write a [[load_balancer]] in a TOML policy file"
            } else {
                ""
            };
            r.d.error(
                p.span.clone(),
                &object,
                format!(
                    "policy type `{kind}` is not supported (supported: ACL, PortMapping, NAT){hint}"
                ),
            );
        }
    }
    let name = r.required(e, &object, "Name");
    let network = match r.string(e, &object, "VirtualNetworkName") {
        Some(n) => Some(n),
        None => r.required(e, &object, "VirtualNetworkName"),
    };
    let mac = r.required(e, &object, "MacAddress");
    Some(raw::Endpoint {
        name: name?,
        network: network?,
        mac: mac?,
        ipv4: r.string(e, &object, "IPAddress"),
        ipv6: r.string(e, &object, "IPv6Address"),
        isolation: r.choice(e, &object, "Isolation", &isolations),
        interface: r.string(e, &object, "Interface").map(Spanned::into_inner),
        acl: acls,
        port_mapping: mappings,
        layer: Vec::new(),
    })
}

/// Imports an HNS-style JSON document and compiles it like a TOML policy file.
///
/// The document is an object with `Networks` and `Endpoints` arrays (as HNS lists them)
/// and an optional `Host` (a Strata addition: `Name`, `MacAddress`, `IPAddresses`, `MTU`,
/// `Interface`). See `docs/policy.md` for the fields read.
///
/// ```
/// let json = r#"{
///   "Host": {"IPAddresses": ["198.19.0.10"]},
///   "Networks": [{"Name": "nat", "Type": "NAT",
///                 "Subnets": [{"AddressPrefix": "198.18.1.0/24", "GatewayAddress": "198.18.1.1"}]}],
///   "Endpoints": [{"Name": "web", "VirtualNetworkName": "nat", "MacAddress": "00-15-5D-01-01-0A",
///                  "IPAddress": "198.18.1.10",
///                  "Policies": [{"Type": "ACL", "Settings": {"Action": "Allow", "Direction": "In",
///                                "Protocols": "6", "LocalPorts": "80", "Priority": 100}}]}]
/// }"#;
/// let policy = strata_rules::policy::load_hns_json(json, "hns.json").unwrap();
/// assert_eq!(policy.ports[0].layers[0].groups[1].rules[0].id, "acl1");
/// ```
pub fn load_hns_json(text: &str, file: &str) -> Result<Policy, PolicyErrors> {
    let mut d = Diagnostics::new(text, file);
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
        // serde_json counts lines and columns from 1; rebuild the offset for Diagnostics.
        let offset: usize = text
            .split_inclusive('\n')
            .take(e.line().saturating_sub(1))
            .map(str::len)
            .sum::<usize>()
            + e.column().saturating_sub(1);
        let message = e.to_string();
        let position = format!(" at line {} column {}", e.line(), e.column());
        let message = message.strip_suffix(&position).unwrap_or(&message);
        d.error(offset..offset, "JSON", message);
        return Err(d.finish());
    }
    let mut scanner = Scanner { text, pos: 0 };
    let Some(root) = scanner.value(0) else {
        d.error(
            0..0,
            "JSON",
            "the document is nested too deeply or not understood",
        );
        return Err(d.finish());
    };
    if !matches!(root.value, J::Object(_)) {
        d.error(
            root.span.clone(),
            "JSON",
            "expected an object with `Networks` and `Endpoints`",
        );
        return Err(d.finish());
    }
    let mut r = Reader { d: &mut d };
    let host = root
        .get("Host")
        .map(|h| Spanned::new(h.span.clone(), host(&mut r, h)));
    let networks: Vec<_> = r
        .array(&root, "file", "Networks")
        .iter()
        .enumerate()
        .filter_map(|(i, n)| network(&mut r, n, i).map(|v| Spanned::new(n.span.clone(), v)))
        .collect();
    let endpoints: Vec<_> = r
        .array(&root, "file", "Endpoints")
        .iter()
        .enumerate()
        .filter_map(|(i, e)| endpoint(&mut r, e, i).map(|v| Spanned::new(e.span.clone(), v)))
        .collect();
    let policy = compile::compile(&mut d, host, networks, endpoints, Vec::new());
    if d.has_errors() {
        Err(d.finish())
    } else {
        Ok(policy)
    }
}
