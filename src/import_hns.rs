//! `strata import-hns FILE...`: print the TOML policy file equivalent to HNS JSON
//! documents (and any other policy files given with them), so users can move from what
//! their Windows tooling wrote to the native file. The output compiles to the same
//! policy; warnings (fields not used, values assumed) go to stderr; a policy that does
//! not compile prints its errors and exits 1.
use std::path::PathBuf;

use strata_rules::policy;

use crate::Failure;
use crate::check::{print_warnings, read_files};

pub fn run(files: &[PathBuf]) -> Result<(), Failure> {
    let read = read_files(files)?;
    match policy::import_hns(&read.sources()) {
        Ok((toml, warnings)) => {
            print_warnings(&warnings);
            print!("{toml}");
            Ok(())
        }
        Err(refused) => {
            print_warnings(&refused.warnings);
            for e in refused.errors.iter() {
                eprintln!("{e}");
            }
            let n = refused.errors.len();
            let s = if n == 1 { "" } else { "s" };
            Err(Failure::Input(format!("{}: {n} error{s}", read.label())))
        }
    }
}
