//! `strata lab up|down` (to be written).
use crate::Failure;

#[derive(clap::Subcommand)]
pub enum LabCommand {
    Up,
    Down,
}

pub fn run(_c: LabCommand) -> Result<(), Failure> {
    Err(Failure::Runtime("not yet".into()))
}
