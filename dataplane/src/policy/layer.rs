//! Compiled layers: the slow path's evaluation of one layer (DESIGN §2 "Evaluation of one
//! layer"): groups in order, each group's best rule selected by a compiled matcher (a
//! sorted scan for small groups, the tuple-space classifier for large ones), a
//! terminating rule deciding at once, else the last group that selected a rule, else the
//! layer's default for the direction and protocol.

use strata_rules::classifier::{ClassRule, Classifier};
use strata_rules::decision::DecidedBy;
use strata_rules::maglev::Maglev;
use strata_rules::model::{Action, Direction, Fields, Layer};

use super::matcher::{Match, Probe, Scan};

/// What decided one layer of one traversal: an index path into the port's layers.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Decision {
    pub layer: u16,
    pub dir: Direction,
    pub by: DecidedBy,
}

impl Decision {
    /// The decision in one word, for flow-table entries: rule or entry index (low 32
    /// bits, all ones for a default's `otherwise`), group (16), layer (14), direction,
    /// and whether a default decided (the top bit).
    pub fn pack(self) -> u64 {
        let (kind, group, index) = match self.by {
            DecidedBy::Rule { group, rule } => {
                (0u64, group as u64 & 0xffff, rule as u64 & 0xffff_ffff)
            }
            DecidedBy::Default { entry } => {
                (1, 0, entry.map_or(0xffff_ffff, |e| e as u64 & 0xffff_ffff))
            }
        };
        let dir = u64::from(self.dir == Direction::In);
        kind << 63 | dir << 62 | (u64::from(self.layer) & 0x3fff) << 48 | group << 32 | index
    }

    pub fn unpack(w: u64) -> Decision {
        let index = (w & 0xffff_ffff) as usize;
        let by = if w >> 63 == 1 {
            DecidedBy::Default {
                entry: (index != 0xffff_ffff).then_some(index),
            }
        } else {
            DecidedBy::Rule {
                group: ((w >> 32) & 0xffff) as usize,
                rule: index,
            }
        };
        Decision {
            layer: ((w >> 48) & 0x3fff) as u16,
            dir: if (w >> 62) & 1 == 1 {
                Direction::In
            } else {
                Direction::Out
            },
            by,
        }
    }
}

/// Selects a group's best rule.
enum GroupMatcher {
    /// Few rules: a scan in priority order is fastest.
    Scan(Scan),
    /// Many: the tuple-space classifier (`strata_rules::classifier`).
    Classifier(Box<Classifier>),
}

impl std::fmt::Debug for GroupMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GroupMatcher::Scan(_) => f.write_str("Scan"),
            GroupMatcher::Classifier(c) => write!(f, "Classifier({} rules)", c.len()),
        }
    }
}

/// A layer ready for the packet path.
#[derive(Debug)]
pub struct CompiledLayer {
    pub layer: Layer,
    matchers: Vec<GroupMatcher>,
    /// Each group's condition, if it has one.
    conditions: Vec<Option<Match>>,
    /// The defaults' entries, per direction (out, in).
    defaults: [Vec<Match>; 2],
    /// Consistent-hash tables of load-balancing rules, by (group, rule).
    maglev: Vec<Vec<Option<Maglev>>>,
}

/// One layer's outcome.
pub struct LayerOutcome<'a> {
    pub action: &'a Action,
    pub by: DecidedBy,
    pub stateful: bool,
}

impl CompiledLayer {
    /// Compiles a layer; groups of at least `classifier_min_rules` rules get a classifier.
    pub fn compile(layer: Layer, classifier_min_rules: usize) -> CompiledLayer {
        let matchers = layer
            .groups
            .iter()
            .map(|g| {
                if g.rules.len() < classifier_min_rules.max(1) {
                    return GroupMatcher::Scan(Scan::compile(&g.rules));
                }
                let rules: Vec<ClassRule> = (0u32..)
                    .zip(&g.rules)
                    .map(|(id, r)| ClassRule {
                        id,
                        priority: r.priority,
                        conditions: r.conditions.clone(),
                    })
                    .collect();
                GroupMatcher::Classifier(Box::new(Classifier::build(&rules)))
            })
            .collect();
        let maglev = layer
            .groups
            .iter()
            .map(|g| {
                g.rules
                    .iter()
                    .map(|r| match &r.action {
                        Action::LoadBalance(lb) => Some(Maglev::new(&lb.backends)),
                        _ => None,
                    })
                    .collect()
            })
            .collect();
        let conditions = layer
            .groups
            .iter()
            .map(|g| g.condition.as_ref().map(Match::compile))
            .collect();
        let entries = |d: &strata_rules::DefaultPolicy| {
            d.entries
                .iter()
                .map(|e| Match::compile(&e.conditions))
                .collect()
        };
        let defaults = [
            entries(&layer.defaults.outbound),
            entries(&layer.defaults.inbound),
        ];
        CompiledLayer {
            layer,
            matchers,
            conditions,
            defaults,
            maglev,
        }
    }

    /// The consistent-hash table of a load-balancing rule.
    pub fn maglev(&self, by: DecidedBy) -> Option<&Maglev> {
        match by {
            DecidedBy::Rule { group, rule } => self.maglev.get(group)?.get(rule)?.as_ref(),
            DecidedBy::Default { .. } => None,
        }
    }

    fn best(&self, group: usize, probe: &Probe, f: &Fields) -> Option<usize> {
        match self.matchers.get(group)? {
            GroupMatcher::Scan(s) => s.best(probe),
            GroupMatcher::Classifier(c) => c.classify(f).map(|id| id as usize),
        }
    }

    pub fn evaluate(&self, dir: Direction, f: &Fields) -> LayerOutcome<'_> {
        let probe = Probe::of(f);
        let mut last: Option<(usize, usize)> = None;
        for (gi, g) in self.layer.groups.iter().enumerate() {
            let gated = self.conditions.get(gi).and_then(Option::as_ref);
            if !g.direction.applies(dir) || gated.is_some_and(|c| !c.matches(&probe)) {
                continue;
            }
            if let Some(ri) = self.best(gi, &probe, f) {
                last = Some((gi, ri));
                if g.rules.get(ri).is_some_and(|r| r.terminating) {
                    break;
                }
            }
        }
        let chosen =
            last.and_then(|(g, r)| Some(((g, r), self.layer.groups.get(g)?.rules.get(r)?)));
        if let Some(((group, rule), r)) = chosen {
            return LayerOutcome {
                action: &r.action,
                by: DecidedBy::Rule { group, rule },
                stateful: r.stateful || r.action.is_transposition(),
            };
        }
        let d = self.layer.defaults.for_direction(dir);
        let [outbound, inbound] = &self.defaults;
        let compiled = match dir {
            Direction::Out => outbound,
            Direction::In => inbound,
        };
        let entry = compiled.iter().position(|m| m.matches(&probe));
        let action = entry
            .and_then(|i| d.entries.get(i))
            .map_or(&d.otherwise, |e| &e.action);
        LayerOutcome {
            action,
            by: DecidedBy::Default { entry },
            stateful: !action.is_block(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_pack_into_one_word_and_back() {
        for dir in [Direction::Out, Direction::In] {
            for by in [
                DecidedBy::Rule { group: 0, rule: 0 },
                DecidedBy::Rule {
                    group: 65535,
                    rule: 4_000_000_000,
                },
                DecidedBy::Default { entry: None },
                DecidedBy::Default { entry: Some(0) },
                DecidedBy::Default { entry: Some(7) },
            ] {
                for layer in [0u16, 3, 0x3fff] {
                    let d = Decision { layer, dir, by };
                    assert_eq!(Decision::unpack(d.pack()), d);
                }
            }
        }
    }
}
