//! `strata check FILE...`: validate a policy made of one file or several (a TOML policy,
//! HNS JSON, Windows CNI configurations) and say what it holds, or print every problem
//! found (one per line, `FILE:LINE:COL: OBJECT: message`) and exit 1. Warnings (fields
//! read and not used, values assumed) go to stderr either way.
use std::io::Read;
use std::path::{Path, PathBuf};

use strata_rules::policy::{self, Loaded, MAX_POLICY_BYTES, PolicyErrors, Refused, Source};

use crate::Failure;

/// Warnings printed before the rest are only counted.
const SHOWN_WARNINGS: usize = 50;

/// The files of a policy, read: names and texts.
pub struct Files {
    pub names: Vec<String>,
    pub texts: Vec<String>,
}

impl Files {
    pub fn sources(&self) -> Vec<Source<'_>> {
        self.names
            .iter()
            .zip(&self.texts)
            .map(|(n, t)| Source::new(n, t))
            .collect()
    }

    /// `a.toml + b.json`, for messages.
    pub fn label(&self) -> String {
        self.names.join(" + ")
    }
}

fn errors_failure(label: &str, errors: &PolicyErrors) -> Failure {
    for e in errors.iter() {
        eprintln!("{e}");
    }
    let n = errors.len();
    let s = if n == 1 { "" } else { "s" };
    Failure::Input(format!("{label}: {n} error{s}"))
}

/// Reads one file, at most `budget` bytes of it (a device like /dev/zero never ends).
fn read_capped(file: &Path, budget: usize) -> Result<Vec<u8>, Failure> {
    let name = file.display();
    let f = std::fs::File::open(file)
        .map_err(|e| Failure::Input(format!("cannot read policy file {name}: {e}")))?;
    let mut bytes = Vec::new();
    let limit = u64::try_from(budget).unwrap_or(u64::MAX).saturating_add(1);
    f.take(limit)
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::Input(format!("cannot read policy file {name}: {e}")))?;
    if bytes.len() > budget {
        return Err(Failure::Input(format!(
            "{name}: the policy is larger than {} MiB (all files together): refused unread",
            MAX_POLICY_BYTES >> 20
        )));
    }
    Ok(bytes)
}

/// Reads the files of a policy, all of them together at most [`MAX_POLICY_BYTES`], each
/// UTF-8 (an invalid byte is reported at its line and column).
pub fn read_files(files: &[PathBuf]) -> Result<Files, Failure> {
    let mut out = Files {
        names: Vec::new(),
        texts: Vec::new(),
    };
    let mut budget = MAX_POLICY_BYTES;
    for file in files {
        let name = file.display().to_string();
        let bytes = read_capped(file, budget)?;
        budget -= bytes.len();
        let text = match policy::decode(&bytes, &name) {
            Ok(t) => t.to_owned(),
            Err(e) => return Err(errors_failure(&name, &e)),
        };
        out.names.push(name);
        out.texts.push(text);
    }
    Ok(out)
}

/// Reads and compiles a policy: `*.toml` as the TOML policy file, `*.json`, `*.conf`,
/// `*.conflist` as HNS JSON (other names: by their first character). `strata check` and
/// `strata replay --policy` both use it.
pub fn load(files: &[PathBuf]) -> Result<(Files, Result<Loaded, Refused>), Failure> {
    let read = read_files(files)?;
    let loaded = policy::load_sources(&read.sources());
    Ok((read, loaded))
}

/// Prints warnings to stderr, the first [`SHOWN_WARNINGS`] of them.
pub fn print_warnings(warnings: &[policy::PolicyError]) {
    for w in warnings.iter().take(SHOWN_WARNINGS) {
        eprintln!("{}", w.as_warning());
    }
    if warnings.len() > SHOWN_WARNINGS {
        eprintln!("... and {} more warnings", warnings.len() - SHOWN_WARNINGS);
    }
}

fn summary(label: &str, l: &Loaded) {
    let p = &l.policy;
    let rules: usize = p
        .ports
        .iter()
        .flat_map(|port| &port.layers)
        .flat_map(|layer| &layer.groups)
        .map(|group| group.rules.len())
        .sum();
    let balancers = match p.load_balancers.len() {
        0 => String::new(),
        n => format!(", {n} load balancers"),
    };
    println!(
        "{label}: ok ({} networks, {} endpoints, {rules} rules{balancers})",
        p.networks.len(),
        p.ports.len()
    );
    for t in &l.templates {
        println!(
            "  endpoint template of {}: ACLs {}, OutBoundNATs {}, routes {}; endpoints that get it: {}",
            t.scope, t.acls, t.outbound_nats, t.routes, t.endpoints
        );
    }
}

pub fn run(files: &[PathBuf]) -> Result<(), Failure> {
    let (read, loaded) = load(files)?;
    let label = read.label();
    match loaded {
        Ok(l) => {
            print_warnings(&l.warnings);
            summary(&label, &l);
            Ok(())
        }
        Err(refused) => {
            print_warnings(&refused.warnings);
            Err(errors_failure(&label, &refused.errors))
        }
    }
}
