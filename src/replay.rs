//! `strata replay`: run a capture through the engine.
use std::path::PathBuf;

use crate::Failure;

#[derive(clap::Args)]
pub struct Args {
    /// pcap or pcapng file (default: the bundled example capture).
    pub capture: Option<PathBuf>,
    /// Policy file (default: the bundled example policy).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Write what leaves each port as pcapng, each frame commented with its verdict path.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write one JSON object per input packet.
    #[arg(long)]
    pub verdicts: Option<PathBuf>,
}

pub fn run(_args: Args) -> Result<(), Failure> {
    Err(Failure::Runtime("not yet built".into()))
}
