//! The control protocol (`docs/control.md`): one JSON object per line each way. A client
//! writes a [`Request`] line, the service answers with one [`Reply`] line, and the
//! connection stays open for the next request. These types are the whole contract
//! between `strata ctl` (or a controller, or `strata-cni`) and the service.

use serde::{Deserialize, Serialize};

/// Where `strata run` serves the control socket unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/strata/strata.sock";

/// The longest request line the service reads (a whole policy travels in one): longer
/// ones are answered with an error and the connection is closed.
pub const MAX_REQUEST_BYTES: usize = 32 << 20;

/// A policy document sent over the socket: its text and the name errors give it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// Names the document in errors (`FILE:LINE:COL: ...`), usually the client's path.
    pub name: String,
    pub text: String,
    /// `toml` or `hns-json`; by default told from the name (`*.json`) and the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
}

/// How a document is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Toml,
    HnsJson,
}

impl Document {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Document {
        Document {
            name: name.into(),
            text: text.into(),
            format: None,
        }
    }

    /// The format: as given, else as `strata check` tells it (`*.toml`; `*.json`,
    /// `*.conf`, `*.conflist`; else JSON if the text starts like JSON).
    pub fn format(&self) -> Format {
        if let Some(f) = self.format {
            return f;
        }
        match strata_rules::policy::Format::of(&self.name, &self.text) {
            strata_rules::policy::Format::Toml => Format::Toml,
            strata_rules::policy::Format::HnsJson => Format::HnsJson,
        }
    }
}

/// What a client asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Request {
    /// Endpoint ports: name, interface, MAC, IPs, network, isolation, counters.
    Ports,
    /// A port's layers, groups and rules with their hit counters.
    Layers { port: String },
    /// Recorded connections (5-tuple, rewrite, age, packets), of one port or all.
    Flows {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        port: Option<String>,
    },
    /// Totals, drops by reason, table occupancy, policy generation, update results.
    Stats,
    /// A whole new policy, atomically.
    Apply { document: Document },
    /// Adds the endpoints of a document (TOML `[[endpoint]]` tables or HNS endpoint
    /// objects), compiled with the running policy's host, networks and load balancers.
    EndpointAdd { document: Document },
    /// Adds one endpoint described by its fields (what a CNI plugin knows), written for
    /// the running policy's format by the service.
    EndpointAttach { endpoint: EndpointSpec },
    /// Removes an endpoint.
    EndpointRemove { name: String },
    /// Adds ACLs (TOML `[[acl]]` / `[[endpoint.acl]]` tables, or HNS ACL policies) to an
    /// endpoint: each group they land in is replaced as a whole.
    RuleAdd { port: String, document: Document },
    /// Removes a rule by id (narrowed by layer and group when the id is not unique).
    RuleRemove {
        port: String,
        rule: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        layer: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
    },
    /// Zeroes every counter (ports, rules, totals); flows and connections stay.
    CountersReset,
}

/// An endpoint by its fields: what `strata-cni` attaches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointSpec {
    pub name: String,
    /// The Strata network it joins.
    pub network: String,
    pub mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
    /// The host-side interface the service attaches to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
}

/// The answer to one request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Reply {
    Ok { ok: Success },
    Err { error: ErrorReply },
}

impl Reply {
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Reply {
        Reply::Err {
            error: ErrorReply {
                kind,
                message: message.into(),
                errors: Vec::new(),
            },
        }
    }
}

/// A successful answer: one variant per request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Success {
    Ports(Vec<PortInfo>),
    Layers(Vec<LayerInfo>),
    Flows(Vec<FlowInfo>),
    Stats(StatsInfo),
    Updated(Updated),
    CountersReset,
}

/// Why a request failed. `invalid` and `request` mean the input was wrong (`strata ctl`
/// exits 1), `runtime` that the service could not do it (exit 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// A policy or change that does not validate: `errors` lists each problem.
    Invalid,
    /// A request that is not JSON, not a known command, too large, or names nothing.
    Request,
    /// The service failed (a worker did not answer).
    Runtime,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    pub kind: ErrorKind,
    pub message: String,
    /// `strata check`'s line-numbered errors, for `invalid`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<PolicyErrorInfo>,
}

/// One policy problem: `FILE:LINE:COL: OBJECT: message`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyErrorInfo {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub object: String,
    pub message: String,
}

impl std::fmt::Display for PolicyErrorInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.col, self.object, self.message
        )
    }
}

/// A policy change that was published.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Updated {
    /// The snapshot's serial (what `stats` calls the policy generation).
    pub generation: u64,
    /// Ports whose layers changed (they got a new generation).
    pub changed_ports: Vec<String>,
    pub added_ports: Vec<String>,
    pub removed_ports: Vec<String>,
    /// Compiling and publishing, microseconds.
    pub publish_us: u64,
}

/// Packet counters of one port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortCountersInfo {
    pub packets_out: u64,
    pub packets_in: u64,
    /// IP bytes (header and payload).
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub dropped: u64,
    pub fast_path: u64,
    pub slow_path: u64,
}

/// An endpoint port (like `Get-NetCompartment` / `vfpctrl /list-vmswitch-port`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortInfo {
    pub name: String,
    pub interface: Option<String>,
    pub mac: String,
    pub ips: Vec<String>,
    pub network: String,
    pub isolation: String,
    /// The port's generation: bumped whenever its layers change.
    pub generation: u64,
    pub layers: usize,
    pub rules: usize,
    pub counters: PortCountersInfo,
    pub flows: usize,
    pub connections: usize,
}

/// One layer of a port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerInfo {
    pub name: String,
    pub groups: Vec<GroupInfo>,
    /// Default entries of each direction, then `otherwise`.
    pub defaults_out: Vec<DefaultInfo>,
    pub defaults_in: Vec<DefaultInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    pub name: String,
    /// `in`, `out` or `both`.
    pub direction: String,
    pub condition: Option<String>,
    pub rules: Vec<RuleInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleInfo {
    pub id: String,
    pub priority: u32,
    pub conditions: String,
    pub action: String,
    pub terminating: bool,
    pub stateful: bool,
    /// Packets this rule decided.
    pub hits: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultInfo {
    /// `default:<entry>` or `default` for `otherwise`.
    pub name: String,
    pub conditions: String,
    pub action: String,
    pub hits: u64,
}

/// A recorded connection of a port.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlowInfo {
    pub port: String,
    /// The direction of its first packet: `out` (from the container) or `in`.
    pub direction: String,
    pub protocol: u8,
    /// The first packet's addresses as it entered the port: `ip:port` (ICMP: `ip`, the
    /// echo identifier in `src`'s port).
    pub src: String,
    pub dst: String,
    /// As it left the port after the layers' rewrites, when they changed it.
    pub rewritten_src: Option<String>,
    pub rewritten_dst: Option<String>,
    /// TCP state (`syn-sent`, `established`, ...), else empty.
    pub state: String,
    /// Seconds of packet time since its first packet, and since its last one.
    pub age_s: f64,
    pub idle_s: f64,
    pub packets_orig: u64,
    pub packets_reply: u64,
}

/// Totals and the control plane's own figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsInfo {
    pub packets: u64,
    pub forwarded: u64,
    pub dropped: u64,
    /// By reason name (`acl`, `no-route`, ...), zero counts left out.
    pub drops: Vec<(String, u64)>,
    pub arp_replies: u64,
    pub fast_path: u64,
    pub slow_path: u64,
    pub flows: usize,
    pub connections: usize,
    pub nat_bindings: usize,
    pub ports: usize,
    pub workers: usize,
    /// The running snapshot's serial.
    pub generation: u64,
    pub updates: UpdateCounts,
    /// Rules (and defaults) by packets decided, most first, at most 20.
    pub top_rules: Vec<(String, u64)>,
}

/// Policy updates since the service started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateCounts {
    pub applied: u64,
    pub refused: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_as_documented() {
        let r: Request = serde_json::from_str(r#"{"command":"layers","port":"web"}"#).unwrap();
        assert_eq!(r, Request::Layers { port: "web".into() });
        let r: Request = serde_json::from_str(r#"{"command":"flows"}"#).unwrap();
        assert_eq!(r, Request::Flows { port: None });
        let r: Request = serde_json::from_str(
            r#"{"command":"rule-remove","port":"web","rule":"r1","group":"acl-in"}"#,
        )
        .unwrap();
        assert_eq!(
            r,
            Request::RuleRemove {
                port: "web".into(),
                rule: "r1".into(),
                layer: None,
                group: Some("acl-in".into())
            }
        );
        assert!(serde_json::from_str::<Request>(r#"{"command":"reboot"}"#).is_err());
    }

    #[test]
    fn replies_round_trip() {
        let ok = Reply::Ok {
            ok: Success::CountersReset,
        };
        let text = serde_json::to_string(&ok).unwrap();
        assert_eq!(text, r#"{"ok":"counters-reset"}"#);
        assert_eq!(serde_json::from_str::<Reply>(&text).unwrap(), ok);
        let err = Reply::error(ErrorKind::Request, "no such port");
        let text = serde_json::to_string(&err).unwrap();
        assert_eq!(
            text,
            r#"{"error":{"kind":"request","message":"no such port"}}"#
        );
        assert_eq!(serde_json::from_str::<Reply>(&text).unwrap(), err);
    }

    #[test]
    fn formats_by_name_then_text() {
        assert_eq!(Document::new("a.json", "").format(), Format::HnsJson);
        assert_eq!(Document::new("a.toml", "{").format(), Format::Toml);
        assert_eq!(
            Document::new("-", " {\"Name\":1}").format(),
            Format::HnsJson
        );
        assert_eq!(Document::new("-", "[[endpoint]]").format(), Format::Toml);
    }
}
