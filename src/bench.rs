//! `strata bench ...`: benchmark subcommands.
use std::path::PathBuf;

use clap::Subcommand;

use crate::Failure;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Classify a ClassBench trace against a ClassBench filter file.
    Classbench {
        #[arg(long)]
        rules: PathBuf,
        #[arg(long)]
        trace: PathBuf,
        /// Write the 0-based index of the first matching rule per trace line (-1: none).
        #[arg(long)]
        matches: Option<PathBuf>,
    },
}

pub fn run(cmd: BenchCommand) -> Result<(), Failure> {
    match cmd {
        BenchCommand::Classbench { .. } => Err(Failure::Runtime("not yet built".into())),
    }
}
