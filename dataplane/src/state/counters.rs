//! Counters a worker keeps: per port (packets each way, drops, fast and slow path) and
//! per rule and default entry (packets decided). A policy reload keeps the hit counts of
//! rules that did not change ([`LayerCounters::carried_over`]).

use strata_rules::decision::DecidedBy;
use strata_rules::model::{Direction, Layer};

use crate::policy::{CompiledLayer, Decision};

/// Hit counters of one layer: per rule (by group), and per default entry for each
/// direction (the last slot counts `otherwise`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LayerCounters {
    pub rules: Vec<Vec<u64>>,
    pub default_out: Vec<u64>,
    pub default_in: Vec<u64>,
}

impl LayerCounters {
    /// Zeroed counters shaped like `layer`.
    pub fn zeroed(layer: &Layer) -> LayerCounters {
        LayerCounters {
            rules: layer
                .groups
                .iter()
                .map(|g| vec![0; g.rules.len()])
                .collect(),
            default_out: vec![0; layer.defaults.outbound.entries.len() + 1],
            default_in: vec![0; layer.defaults.inbound.entries.len() + 1],
        }
    }

    /// Counters for `new`, carrying over the counts of `old`'s rules that `new` still has
    /// unchanged (same group name, rule id, conditions, action and flags), and of default
    /// entries with the same name and meaning.
    pub fn carried_over(new: &Layer, old: Option<(&Layer, &LayerCounters)>) -> LayerCounters {
        let mut c = LayerCounters::zeroed(new);
        let Some((old, counts)) = old else {
            return c;
        };
        for (g, slots) in new.groups.iter().zip(c.rules.iter_mut()) {
            let Some((og, ocounts)) = old.groups.iter().zip(&counts.rules).find(|(og, _)| {
                og.name == g.name && og.direction == g.direction && og.condition == g.condition
            }) else {
                continue;
            };
            for (r, slot) in g.rules.iter().zip(slots.iter_mut()) {
                if let Some((_, n)) = og.rules.iter().zip(ocounts).find(|(or, _)| *or == r) {
                    *slot = *n;
                }
            }
        }
        for (new_d, old_d, slots, ocounts) in [
            (
                &new.defaults.outbound,
                &old.defaults.outbound,
                &mut c.default_out,
                &counts.default_out,
            ),
            (
                &new.defaults.inbound,
                &old.defaults.inbound,
                &mut c.default_in,
                &counts.default_in,
            ),
        ] {
            for (e, slot) in new_d.entries.iter().zip(slots.iter_mut()) {
                if let Some((_, n)) = old_d.entries.iter().zip(ocounts).find(|(oe, _)| *oe == e) {
                    *slot = *n;
                }
            }
            if new_d.otherwise == old_d.otherwise
                && let (Some(slot), Some(n)) = (slots.last_mut(), ocounts.last())
            {
                *slot = *n;
            }
        }
        c
    }
}

/// Counters of one port.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortCounters {
    pub packets_out: u64,
    pub packets_in: u64,
    /// IP bytes (header and payload) of those packets, for metrics.
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub dropped: u64,
    pub fast_path: u64,
    pub slow_path: u64,
    pub layers: Vec<LayerCounters>,
}

impl PortCounters {
    pub fn for_layers(layers: &[CompiledLayer]) -> PortCounters {
        PortCounters {
            layers: layers
                .iter()
                .map(|l| LayerCounters::zeroed(&l.layer))
                .collect(),
            ..PortCounters::default()
        }
    }

    /// Re-shapes the rule counters for `new` layers, keeping what `carried_over` keeps.
    pub fn relayout(&mut self, old: &[CompiledLayer], new: &[CompiledLayer]) {
        let old_counts = std::mem::take(&mut self.layers);
        self.layers = new
            .iter()
            .map(|l| {
                let before = old
                    .iter()
                    .zip(&old_counts)
                    .find(|(o, _)| o.layer.name == l.layer.name)
                    .map(|(o, c)| (&o.layer, c));
                LayerCounters::carried_over(&l.layer, before)
            })
            .collect();
    }

    /// Bumps the hit counter of every decision taken.
    pub fn count_hits(&mut self, hits: impl Iterator<Item = Decision>) {
        for d in hits {
            let Some(lc) = self.layers.get_mut(usize::from(d.layer)) else {
                continue;
            };
            let slot = match d.by {
                DecidedBy::Rule { group, rule } => {
                    lc.rules.get_mut(group).and_then(|g| g.get_mut(rule))
                }
                DecidedBy::Default { entry } => {
                    let v = match d.dir {
                        Direction::Out => &mut lc.default_out,
                        Direction::In => &mut lc.default_in,
                    };
                    let i = entry.unwrap_or(v.len().saturating_sub(1));
                    v.get_mut(i)
                }
            };
            if let Some(c) = slot {
                *c += 1;
            }
        }
    }

    /// Zeroes every counter, keeping the layout.
    pub fn reset(&mut self) {
        let layers = std::mem::take(&mut self.layers);
        *self = PortCounters {
            layers: layers
                .into_iter()
                .map(|mut l| {
                    l.rules.iter_mut().flatten().for_each(|n| *n = 0);
                    l.default_out.iter_mut().for_each(|n| *n = 0);
                    l.default_in.iter_mut().for_each(|n| *n = 0);
                    l
                })
                .collect(),
            ..PortCounters::default()
        };
    }
}
