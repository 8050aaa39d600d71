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
        match old {
            Some((old_layer, counts)) => Carry::between(old_layer, new).apply(counts, new),
            None => LayerCounters::zeroed(new),
        }
    }

    /// The counters in one sequence: rules group by group, then the outbound defaults,
    /// then the inbound ones ([`Carry`] indexes it).
    fn flat(&self) -> impl Iterator<Item = u64> + '_ {
        self.rules
            .iter()
            .flatten()
            .chain(&self.default_out)
            .chain(&self.default_in)
            .copied()
    }
}

/// Where each counter of a layer's new form comes from in its old form: an index into
/// the old counters' [`LayerCounters::flat`] sequence, or `None` (starts at zero).
/// Computed when a policy is compiled, away from the packet path; a worker installing
/// the snapshot only copies counts along it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Carry(Vec<Option<u32>>);

impl Carry {
    /// What `old`'s counters carry into `new`'s (see [`LayerCounters::carried_over`]).
    pub fn between(old: &Layer, new: &Layer) -> Carry {
        let mut map = Vec::new();
        // Where each old group's rules and each old default list start in the sequence.
        let mut starts = Vec::with_capacity(old.groups.len());
        let mut at = 0usize;
        for g in &old.groups {
            starts.push(at);
            at += g.rules.len();
        }
        let out_start = at;
        let in_start = out_start + old.defaults.outbound.entries.len() + 1;
        for g in &new.groups {
            let og = old.groups.iter().zip(&starts).find(|(og, _)| {
                og.name == g.name && og.direction == g.direction && og.condition == g.condition
            });
            let Some((og, &base)) = og else {
                map.extend(std::iter::repeat_n(None, g.rules.len()));
                continue;
            };
            // Equal rules have equal ids: index the old ones by id, so a large group
            // costs a hash lookup per rule, not a scan of the old group.
            let mut by_id: std::collections::HashMap<&str, Vec<usize>> =
                std::collections::HashMap::with_capacity(og.rules.len());
            for (i, or) in og.rules.iter().enumerate() {
                by_id.entry(or.id.as_str()).or_default().push(i);
            }
            for r in &g.rules {
                let first_equal = by_id
                    .get(r.id.as_str())
                    .and_then(|c| c.iter().copied().find(|&i| og.rules.get(i) == Some(r)));
                map.push(first_equal.map(|i| (base + i) as u32));
            }
        }
        for (new_d, old_d, start) in [
            (&new.defaults.outbound, &old.defaults.outbound, out_start),
            (&new.defaults.inbound, &old.defaults.inbound, in_start),
        ] {
            for e in &new_d.entries {
                let i = old_d.entries.iter().position(|oe| oe == e);
                map.push(i.map(|i| (start + i) as u32));
            }
            let otherwise = new_d.otherwise == old_d.otherwise;
            map.push(otherwise.then_some((start + old_d.entries.len()) as u32));
        }
        Carry(map)
    }

    /// `new`'s counters, carried from `old` (counters of the old form).
    pub fn apply(&self, old: &LayerCounters, new: &Layer) -> LayerCounters {
        let mut c = LayerCounters::zeroed(new);
        let flat: Vec<u64> = old.flat().collect();
        let take = |i: &Option<u32>| i.and_then(|i| flat.get(i as usize)).copied().unwrap_or(0);
        let mut from = self.0.iter();
        for slot in c
            .rules
            .iter_mut()
            .flatten()
            .chain(c.default_out.iter_mut())
            .chain(c.default_in.iter_mut())
        {
            *slot = from.next().map(take).unwrap_or(0);
        }
        c
    }
}

/// How a port's counters follow from the generation before (one entry per new layer:
/// the old layer's index and its [`Carry`], or `None` for a new layer).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortCarry {
    /// The generation these maps start from.
    pub from_generation: u64,
    pub layers: Vec<Option<(usize, Carry)>>,
}

impl PortCarry {
    /// The maps from `old` layers to `new` ones (layers matched by name).
    pub fn between(
        from_generation: u64,
        old: &[CompiledLayer],
        new: &[CompiledLayer],
    ) -> PortCarry {
        PortCarry {
            from_generation,
            layers: new
                .iter()
                .map(|l| {
                    let (i, o) = old
                        .iter()
                        .enumerate()
                        .find(|(_, o)| o.layer.name == l.layer.name)?;
                    Some((i, Carry::between(&o.layer, &l.layer)))
                })
                .collect(),
        }
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

    /// Re-shapes the rule counters along maps computed at compile time: a copy per
    /// counter, cheap enough for a worker between two batches.
    pub fn carry(&mut self, carry: &PortCarry, new: &[CompiledLayer]) {
        let old_counts = std::mem::take(&mut self.layers);
        self.layers = new
            .iter()
            .zip(&carry.layers)
            .map(|(l, c)| match c {
                Some((i, map)) => match old_counts.get(*i) {
                    Some(old) => map.apply(old, &l.layer),
                    None => LayerCounters::zeroed(&l.layer),
                },
                None => LayerCounters::zeroed(&l.layer),
            })
            .collect();
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
