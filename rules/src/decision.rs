//! Decisions: which rule or default decided a layer, and the names verdicts print for it
//! (`layer`, `group`, `rule`; a default shows `default` or `default:<entry>`).

use crate::model::{Direction, Layer};

/// Who decided a layer.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum DecidedBy {
    /// Group index and rule index within the layer.
    Rule { group: usize, rule: usize },
    /// The layer's default for the direction: the entry index, or `None` for `otherwise`.
    Default { entry: Option<usize> },
}

/// The names of what decided a layer, as verdicts print them.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DecisionNames {
    pub layer: String,
    /// `None` when the layer's default decided.
    pub group: Option<String>,
    /// The rule id, or `default` / `default:<entry>` for the layer's default.
    pub rule: String,
}

impl DecisionNames {
    pub fn of(layer: &Layer, dir: Direction, by: DecidedBy) -> DecisionNames {
        match by {
            DecidedBy::Rule { group, rule } => DecisionNames {
                layer: layer.name.clone(),
                group: Some(layer.groups[group].name.clone()),
                rule: layer.groups[group].rules[rule].id.clone(),
            },
            DecidedBy::Default { entry } => DecisionNames {
                layer: layer.name.clone(),
                group: None,
                rule: match entry {
                    Some(i) => format!(
                        "default:{}",
                        layer.defaults.for_direction(dir).entries[i].name
                    ),
                    None => "default".to_string(),
                },
            },
        }
    }
}
