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

impl Report {
    /// Adds `other`'s figures (another worker's, under the same policy) to these:
    /// totals, each port's counters (by name), rule hits (by name).
    pub fn merge(&mut self, other: &Report) {
        let (a, b) = (&mut self.stats, &other.stats);
        a.packets += b.packets;
        a.forwarded += b.forwarded;
        a.arp_replies += b.arp_replies;
        for (x, y) in a.dropped.iter_mut().zip(&b.dropped) {
            *x += y;
        }
        for p in &other.ports {
            match self.ports.iter_mut().find(|q| q.name == p.name) {
                Some(q) => {
                    q.flows += p.flows;
                    q.connections += p.connections;
                    add_counters(&mut q.counters, &p.counters);
                }
                None => self.ports.push(p.clone()),
            }
        }
        for (name, n) in &other.rule_hits {
            match self.rule_hits.iter_mut().find(|(m, _)| m == name) {
                Some((_, m)) => *m += n,
                None => self.rule_hits.push((name.clone(), *n)),
            }
        }
        self.rule_hits
            .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        self.flows += other.flows;
        self.connections += other.connections;
    }
}

fn add_counters(a: &mut PortCounters, b: &PortCounters) {
    a.packets_out += b.packets_out;
    a.packets_in += b.packets_in;
    a.dropped += b.dropped;
    a.fast_path += b.fast_path;
    a.slow_path += b.slow_path;
    for (x, y) in a.layers.iter_mut().zip(&b.layers) {
        for (g, h) in x.rules.iter_mut().zip(&y.rules) {
            for (m, n) in g.iter_mut().zip(h) {
                *m += n;
            }
        }
        for (m, n) in x.default_out.iter_mut().zip(&y.default_out) {
            *m += n;
        }
        for (m, n) in x.default_in.iter_mut().zip(&y.default_in) {
            *m += n;
        }
    }
}
