//! What `strata ctl` shows, built from the running snapshot and what the workers report:
//! ports with their counters, layers with rule hit counters, connections, totals. The
//! connection listing reads one engine's state and runs on the worker that owns it.

use std::net::IpAddr;

use strata_dataplane::DropReason;
use strata_dataplane::engine::Engine;
use strata_dataplane::policy::CompiledPolicy;
use strata_dataplane::report::{PortReport, Report};
use strata_rules::conn::{ConnKey, TcpState};
use strata_rules::model::{Action, Conditions, DefaultPolicy, Isolation, proto};

use crate::protocol::{
    DefaultInfo, FlowInfo, GroupInfo, LayerInfo, PortCountersInfo, PortInfo, RuleInfo, StatsInfo,
};

/// Endpoint ports in policy order, with the counters of `report`.
pub fn ports(policy: &CompiledPolicy, report: &Report) -> Vec<PortInfo> {
    policy
        .ports()
        .map(|(_, p)| {
            let r = report.ports.iter().find(|r| r.name == p.name());
            let model = &p.port;
            PortInfo {
                name: model.name.clone(),
                interface: model.interface.clone(),
                mac: model.mac.to_string(),
                ips: model.ips.iter().map(IpAddr::to_string).collect(),
                network: model.network.clone(),
                isolation: match model.isolation {
                    Isolation::Process => "process",
                    Isolation::ProcessLegacy => "process-legacy",
                    Isolation::HyperV => "hyperv",
                }
                .to_string(),
                generation: p.generation,
                layers: p.layers.len(),
                rules: p
                    .layers
                    .iter()
                    .flat_map(|l| &l.layer.groups)
                    .map(|g| g.rules.len())
                    .sum(),
                counters: r.map(counters).unwrap_or_default(),
                flows: r.map_or(0, |r| r.flows),
                connections: r.map_or(0, |r| r.connections),
            }
        })
        .collect()
}

fn counters(r: &PortReport) -> PortCountersInfo {
    let c = &r.counters;
    PortCountersInfo {
        packets_out: c.packets_out,
        packets_in: c.packets_in,
        bytes_out: c.bytes_out,
        bytes_in: c.bytes_in,
        dropped: c.dropped,
        fast_path: c.fast_path,
        slow_path: c.slow_path,
    }
}

/// A port's layers with hit counters; `None` if there is no such endpoint port.
pub fn layers(policy: &CompiledPolicy, report: &Report, port: &str) -> Option<Vec<LayerInfo>> {
    let (_, p) = policy.ports().find(|(_, p)| p.name() == port)?;
    let counts = report
        .ports
        .iter()
        .find(|r| r.name == port)
        .map(|r| &r.counters.layers[..])
        .unwrap_or_default();
    Some(
        p.layers
            .iter()
            .enumerate()
            .map(|(li, compiled)| {
                let layer = &compiled.layer;
                // Counters laid out for another generation (a worker that has not installed
                // this snapshot yet) are shown where their shape still fits.
                let c = counts.get(li);
                let groups = layer
                    .groups
                    .iter()
                    .enumerate()
                    .map(|(gi, g)| GroupInfo {
                        name: g.name.clone(),
                        direction: format!("{:?}", g.direction).to_lowercase(),
                        condition: g.condition.as_ref().map(conditions),
                        rules: g
                            .rules
                            .iter()
                            .enumerate()
                            .map(|(ri, r)| RuleInfo {
                                id: r.id.clone(),
                                priority: r.priority,
                                conditions: conditions(&r.conditions),
                                action: action(&r.action),
                                terminating: r.terminating,
                                stateful: r.stateful || r.action.is_transposition(),
                                hits: c
                                    .and_then(|c| c.rules.get(gi))
                                    .and_then(|g| g.get(ri))
                                    .copied()
                                    .unwrap_or(0),
                            })
                            .collect(),
                    })
                    .collect();
                LayerInfo {
                    name: layer.name.clone(),
                    groups,
                    defaults_out: defaults(&layer.defaults.outbound, c.map(|c| &c.default_out[..])),
                    defaults_in: defaults(&layer.defaults.inbound, c.map(|c| &c.default_in[..])),
                }
            })
            .collect(),
    )
}

fn defaults(d: &DefaultPolicy, counts: Option<&[u64]>) -> Vec<DefaultInfo> {
    let hits = |i: usize| counts.and_then(|c| c.get(i)).copied().unwrap_or(0);
    d.entries
        .iter()
        .enumerate()
        .map(|(i, e)| DefaultInfo {
            name: format!("default:{}", e.name),
            conditions: conditions(&e.conditions),
            action: action(&e.action),
            hits: hits(i),
        })
        .chain(std::iter::once(DefaultInfo {
            name: "default".into(),
            conditions: "*".into(),
            action: action(&d.otherwise),
            hits: hits(d.entries.len()),
        }))
        .collect()
}

/// Conditions in one line: `proto=tcp dst=198.18.1.0/24 dport=80,443`; `*` for any.
pub fn conditions(c: &Conditions) -> String {
    fn join<T: ToString>(v: &[T]) -> String {
        v.iter().map(T::to_string).collect::<Vec<_>>().join(",")
    }
    let mut parts = Vec::new();
    if !c.protocol.is_empty() {
        let names: Vec<String> = c.protocol.iter().map(|&p| protocol_name(p)).collect();
        parts.push(format!("proto={}", names.join(",")));
    }
    let fields: [(&str, String); 10] = [
        ("src", join(&c.src_ip)),
        ("dst", join(&c.dst_ip)),
        ("sport", join(&c.src_port)),
        ("dport", join(&c.dst_port)),
        ("icmp-type", join(&c.icmp_type)),
        ("icmp-code", join(&c.icmp_code)),
        ("src-mac", join(&c.src_mac)),
        ("dst-mac", join(&c.dst_mac)),
        ("vlan", join(&c.vlan)),
        ("vni", join(&c.vni)),
    ];
    for (name, v) in fields {
        if !v.is_empty() {
            parts.push(format!("{name}={v}"));
        }
    }
    if parts.is_empty() {
        "*".into()
    } else {
        parts.join(" ")
    }
}

fn protocol_name(p: u8) -> String {
    match p {
        proto::TCP => "tcp".into(),
        proto::UDP => "udp".into(),
        proto::ICMP => "icmp".into(),
        proto::ICMPV6 => "icmpv6".into(),
        proto::IGMP => "igmp".into(),
        proto::GRE => "gre".into(),
        proto::SCTP => "sctp".into(),
        p => p.to_string(),
    }
}

/// An action in a few words: `allow`, `snat 198.19.0.10:1024-65535`, `lb svc (2)`.
pub fn action(a: &Action) -> String {
    match a {
        Action::Allow => "allow".into(),
        Action::Block => "block".into(),
        Action::Snat { ip, ports } => format!("snat {ip}:{ports}"),
        Action::Dnat { ip, port: Some(p) } => format!("dnat {ip}:{p}"),
        Action::Dnat { ip, port: None } => format!("dnat {ip}"),
        Action::LoadBalance(lb) => format!("lb {} ({} backends)", lb.name, lb.backends.len()),
        Action::SetMac { src, dst } => {
            let m = |m: &Option<_>| m.map_or("-".to_string(), |m: strata_rules::Mac| m.to_string());
            format!("set-mac {}>{}", m(src), m(dst))
        }
    }
}

/// Totals of `report` with the control plane's figures filled in by the caller.
pub fn stats(policy: &CompiledPolicy, report: &Report) -> StatsInfo {
    let s = &report.stats;
    StatsInfo {
        packets: s.packets,
        forwarded: s.forwarded,
        dropped: s.dropped_total(),
        drops: DropReason::ALL
            .iter()
            .zip(s.dropped)
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| (r.as_str().to_string(), n))
            .collect(),
        arp_replies: s.arp_replies,
        fast_path: report.ports.iter().map(|p| p.counters.fast_path).sum(),
        slow_path: report.ports.iter().map(|p| p.counters.slow_path).sum(),
        flows: report.flows,
        connections: report.connections,
        ports: policy.ports().count(),
        generation: policy.serial,
        top_rules: report.rule_hits.iter().take(20).cloned().collect(),
        ..StatsInfo::default()
    }
}

/// The connections an engine has recorded, of one port (by name) or all.
pub fn flows(engine: &Engine, port: Option<&str>) -> Vec<FlowInfo> {
    let policy = engine.policy();
    let state = engine.state();
    let now = state.clock;
    let mut out = Vec::new();
    for (slot, p) in policy.ports() {
        if port.is_some_and(|n| n != p.name()) {
            continue;
        }
        let Some(st) = state.port(slot) else { continue };
        for (c, usage) in st.conns.iter() {
            let (src, dst) = (endpoint(&c.key, true), endpoint(&c.key, false));
            let (xsrc, xdst) = (endpoint(&c.exit_key, true), endpoint(&c.exit_key, false));
            let secs = |ns: u64| ns as f64 / 1e9;
            out.push(FlowInfo {
                port: p.name().to_string(),
                direction: c.orig_dir.as_str().to_string(),
                protocol: c.key.protocol,
                rewritten_src: (xsrc != src).then_some(xsrc),
                rewritten_dst: (xdst != dst).then_some(xdst),
                src,
                dst,
                state: match (c.key.protocol, c.tcp) {
                    (proto::TCP, TcpState::SynSent) => "syn-sent".into(),
                    (proto::TCP, TcpState::Established) => "established".into(),
                    (proto::TCP, TcpState::Closing { .. }) => "closing".into(),
                    _ => String::new(),
                },
                age_s: secs(now.saturating_sub(usage.opened)),
                idle_s: secs(now.saturating_sub(c.last_seen)),
                packets_orig: usage.packets_orig,
                packets_reply: usage.packets_reply,
            });
        }
    }
    out
}

/// `ip:port` (IPv6 `[ip]:port`), or the bare address for protocols without ports.
fn endpoint(k: &ConnKey, source: bool) -> String {
    let (ip, port) = if source {
        (k.src_ip, k.src_port)
    } else {
        (k.dst_ip, k.dst_port)
    };
    if !proto::has_ports(k.protocol) && !proto::is_icmp(k.protocol) {
        return ip.to_string();
    }
    match ip {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}
