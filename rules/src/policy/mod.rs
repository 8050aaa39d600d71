//! The policy: TOML files and HNS JSON documents in, a validated, compiled [`Policy`] out.
//!
//! The TOML file describes what an operator knows (the host uplink, networks with their
//! OutboundNAT and overlay routes, endpoints with their HNS-style ACLs and port mappings,
//! load balancers, and optional custom VFP layers whose rules may transpose headers);
//! HNS JSON is what Windows tooling writes (networks, endpoints, policy lists, load
//! balancers, CNI configurations), read by [`hns`] into the same raw types. [`load`]
//! checks all of it and compiles it into the object model of DESIGN §2. The format is
//! documented field by field in [`raw`] and, with a complete example, in
//! `docs/policy.md`; the HNS side in `docs/hns.md`.
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
//! Modules: `diag` (positions), `read_toml`, `hns` (JSON), `compile`, `emit` (TOML out).
//! `rules` does no I/O: the caller reads the files and passes their text and names.

mod compile;
mod diag;
mod emit;
mod hns;
pub mod raw;
mod read_toml;
pub mod values;

pub use compile::{
    ACL_IN_GROUP, ACL_LAYER, ACL_OUT_GROUP, DEFAULT_PRIORITY, LB_GROUP, LB_LAYER, NAT_LAYER,
    NAT_PORTS, ROUTE_LAYER, TemplateSummary, acl_profile,
};
pub use diag::{PolicyError, PolicyErrors};

use std::fmt;

use crate::model::Policy;
use diag::Diagnostics;

/// The most policy text read at once (all files together): a bigger input is refused
/// before it is parsed, so `strata check /dev/zero` ends with a message, not out of
/// memory.
pub const MAX_POLICY_BYTES: usize = 16 << 20;

/// How a file is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The TOML policy file.
    Toml,
    /// HNS JSON: HNS objects, CNI configurations, or Strata's host document.
    HnsJson,
}

impl Format {
    /// By the file's extension (`.toml`; `.json`, `.conf`, `.conflist`), else by its
    /// first character: JSON starts with `{`, or `[` followed by `{`, `[` or `]`.
    pub fn of(name: &str, text: &str) -> Format {
        let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
        match ext.as_deref() {
            Some("toml") => return Format::Toml,
            Some("json" | "conf" | "conflist") => return Format::HnsJson,
            _ => {}
        }
        let t = text.trim_start();
        let json = t.starts_with('{')
            || (t.starts_with('[')
                && matches!(t[1..].trim_start().chars().next(), Some('{' | ']' | '"')));
        if json { Format::HnsJson } else { Format::Toml }
    }
}

/// One file of a policy.
#[derive(Clone, Copy, Debug)]
pub struct Source<'a> {
    /// Names the file in messages.
    pub name: &'a str,
    pub text: &'a str,
    pub format: Format,
}

impl<'a> Source<'a> {
    /// A file whose format is told by [`Format::of`].
    pub fn new(name: &'a str, text: &'a str) -> Source<'a> {
        Source {
            name,
            text,
            format: Format::of(name, text),
        }
    }
}

/// A policy that compiled, with what the reader noticed on the way.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub policy: Policy,
    /// Fields read and not used, values assumed: shown as warnings, sorted like errors.
    pub warnings: Vec<PolicyError>,
    /// The endpoint templates (CNI configurations, Calico static rules).
    pub templates: Vec<TemplateSummary>,
}

/// A policy that did not compile: its errors, and the warnings found on the way.
#[derive(Clone, Debug)]
pub struct Refused {
    pub errors: PolicyErrors,
    pub warnings: Vec<PolicyError>,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.errors.fmt(f)
    }
}

impl std::error::Error for Refused {}

/// Reads every source (in the order given) and links them into one raw policy.
fn read_all<'a>(sources: &[Source<'a>], d: &mut Diagnostics<'a>) -> raw::File {
    let mut tomls = Vec::new();
    let mut import = hns::Import::default();
    let total: usize = sources.iter().map(|s| s.text.len()).sum();
    for s in sources {
        let placed = d.add(s.name, s.text);
        if total > MAX_POLICY_BYTES {
            let msg = format!(
                "the policy is larger than {} MiB: refused unread",
                MAX_POLICY_BYTES >> 20
            );
            d.error(placed.base..placed.base, "file", msg);
            continue;
        }
        match s.format {
            Format::Toml => tomls.push(read_toml::read(d, placed.base, s.text)),
            Format::HnsJson => hns::read(d, placed.base, s.text, &mut import),
        }
    }
    hns::link(d, tomls, import)
}

/// Parses, validates and compiles a policy made of one file or several (a TOML host
/// document with HNS JSON documents, say), linked as HNS links its objects.
///
/// All errors found are returned together, sorted by file and position, with the
/// warnings; see [`PolicyError`].
pub fn load_sources(sources: &[Source]) -> Result<Loaded, Refused> {
    let mut d = Diagnostics::empty();
    let file = read_all(sources, &mut d);
    let compiled = compile::compile(&mut d, file);
    let failed = d.has_errors();
    let (errors, warnings) = d.finish();
    if failed {
        return Err(Refused { errors, warnings });
    }
    Ok(Loaded {
        policy: compiled.policy,
        warnings,
        templates: compiled.templates,
    })
}

/// The TOML policy file equivalent to `sources` (what `strata import-hns` prints), once
/// they compile; the warnings go along.
pub fn import_hns(sources: &[Source]) -> Result<(String, Vec<PolicyError>), Refused> {
    let mut d = Diagnostics::empty();
    let file = read_all(sources, &mut d);
    let names: Vec<&str> = sources.iter().map(|s| s.name).collect();
    let header = format!(
        "# Strata policy imported by `strata import-hns` from {}.\n\
         # Each object says where it came from; docs/policy.md documents every field.\n",
        names.join(", ")
    );
    let text = emit::emit(&d, &file, &header);
    compile::compile(&mut d, file);
    let failed = d.has_errors();
    let (errors, warnings) = d.finish();
    if failed {
        Err(Refused { errors, warnings })
    } else {
        Ok((text, warnings))
    }
}

/// Parses, validates and compiles a TOML policy file. `file` only names the file in
/// errors.
///
/// All errors found are returned together, sorted by position; see [`PolicyError`].
pub fn load(text: &str, file: &str) -> Result<Policy, PolicyErrors> {
    let source = Source {
        name: file,
        text,
        format: Format::Toml,
    };
    load_sources(&[source])
        .map(|l| l.policy)
        .map_err(|r| r.errors)
}

/// Imports HNS JSON (one object, an array of them, or Strata's host document with
/// `Host`, `Networks`, `Endpoints`) and compiles it like a TOML policy file. See
/// `docs/hns.md` for what is read.
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
    let source = Source {
        name: file,
        text,
        format: Format::HnsJson,
    };
    load_sources(&[source])
        .map(|l| l.policy)
        .map_err(|r| r.errors)
}

/// The text of a policy file, or an error at the line and column of its first byte that
/// is not UTF-8.
pub fn decode<'a>(bytes: &'a [u8], file: &str) -> Result<&'a str, PolicyErrors> {
    std::str::from_utf8(bytes).map_err(|e| {
        let good = &bytes[..e.valid_up_to()];
        let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
        let start = good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let col = String::from_utf8_lossy(&good[start..]).chars().count() + 1;
        let byte = bytes.get(e.valid_up_to()).copied().unwrap_or_default();
        PolicyErrors(vec![PolicyError {
            file: file.to_owned(),
            line,
            col,
            object: "file".into(),
            message: format!("invalid UTF-8 (byte 0x{byte:02x}): a policy file is UTF-8 text"),
        }])
    })
}
