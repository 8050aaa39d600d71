//! What an engine has done, for people: totals, each port's counters and table sizes,
//! and the rules that decided the most packets (`strata replay`'s summary; the service's
//! `stats`).

use crate::engine::Engine;
use crate::state::SwitchStats;
use crate::state::counters::PortCounters;

/// One endpoint port's figures.
#[derive(Clone, Debug)]
pub struct PortReport {
    pub name: String,
    pub counters: PortCounters,
    pub flows: usize,
    pub connections: usize,
}

/// An engine's figures.
#[derive(Clone, Debug)]
pub struct Report {
    pub stats: SwitchStats,
    /// In policy order.
    pub ports: Vec<PortReport>,
    /// Rules (and layer defaults) by packets they decided, most first:
    /// `port/layer/group/rule` (a default: `port/layer/default[:entry]`).
    pub rule_hits: Vec<(String, u64)>,
    pub flows: usize,
    pub connections: usize,
}

impl Engine {
    pub fn report(&self) -> Report {
        let policy = self.policy();
        let mut ports = Vec::new();
        let mut hits = Vec::new();
        for (slot, port) in policy.ports() {
            let Some(st) = self.state().port(slot) else {
                continue;
            };
            for (compiled, c) in port.layers.iter().zip(&st.counters.layers) {
                let layer = &compiled.layer;
                let at = |rest: &str| format!("{}/{}/{rest}", port.name(), layer.name);
                for (g, counts) in layer.groups.iter().zip(&c.rules) {
                    for (r, n) in g.rules.iter().zip(counts) {
                        hits.push((at(&format!("{}/{}", g.name, r.id)), *n));
                    }
                }
                for (defaults, counts) in [
                    (&layer.defaults.outbound, &c.default_out),
                    (&layer.defaults.inbound, &c.default_in),
                ] {
                    let names = defaults
                        .entries
                        .iter()
                        .map(|e| format!("default:{}", e.name));
                    for (name, n) in names
                        .chain(std::iter::once("default".to_string()))
                        .zip(counts)
                    {
                        hits.push((at(&name), *n));
                    }
                }
            }
            ports.push(PortReport {
                name: port.name().to_string(),
                counters: st.counters.clone(),
                flows: st.flows.len(),
                connections: st.conns.len(),
            });
        }
        hits.retain(|(_, n)| *n > 0);
        hits.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Report {
            stats: self.stats().clone(),
            flows: ports.iter().map(|p| p.flows).sum(),
            connections: ports.iter().map(|p| p.connections).sum(),
            ports,
            rule_hits: hits,
        }
    }
}
