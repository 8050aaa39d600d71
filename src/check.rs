//! `strata check FILE`: validate a policy file and say what it holds, or print every
//! problem found (one per line, `FILE:LINE:COL: OBJECT: message`) and exit 1. A file
//! named `*.json` is read as an HNS JSON export, anything else as the TOML policy file.
use std::path::Path;

use strata_rules::Policy;
use strata_rules::policy::{self, PolicyErrors};

use crate::Failure;

/// Reads and compiles a policy file: `*.json` as an HNS JSON export, anything else as
/// the TOML policy file. (`strata check` and `strata replay --policy` both use it.)
pub fn load(file: &Path) -> Result<Result<Policy, PolicyErrors>, Failure> {
    let name = file.display().to_string();
    let text = std::fs::read_to_string(file)
        .map_err(|e| Failure::Input(format!("cannot read policy file {name}: {e}")))?;
    let is_json = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    Ok(if is_json {
        policy::load_hns_json(&text, &name)
    } else {
        policy::load(&text, &name)
    })
}

pub fn run(file: &Path) -> Result<(), Failure> {
    let name = file.display().to_string();
    match load(file)? {
        Ok(p) => {
            let rules: usize = p
                .ports
                .iter()
                .flat_map(|port| &port.layers)
                .flat_map(|layer| &layer.groups)
                .map(|group| group.rules.len())
                .sum();
            println!(
                "{name}: ok ({} networks, {} endpoints, {rules} rules)",
                p.networks.len(),
                p.ports.len()
            );
            Ok(())
        }
        Err(errors) => {
            for e in errors.iter() {
                eprintln!("{e}");
            }
            let n = errors.len();
            let s = if n == 1 { "" } else { "s" };
            Err(Failure::Input(format!("{name}: {n} error{s}")))
        }
    }
}
