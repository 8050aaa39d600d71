//! `strata replay`: run a capture through the engine, print a summary, optionally write
//! verdicts (JSON lines) and what leaves each port (pcapng with comments).
//!
//! With no capture and no `--policy`, the bundled example (`examples/demo.pcapng` with
//! `examples/policy.toml`, compiled into the binary) is replayed, so the command works
//! from any directory.
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use strata_control::replay::{Outputs, ReplayError, replay};
use strata_dataplane::Switch;
use strata_dataplane::capture::{CaptureReader, PcapngWriter};

use crate::Failure;

const DEMO_CAPTURE: &[u8] = include_bytes!("../examples/demo.pcapng");
const DEMO_POLICY: &str = include_str!("../examples/policy.toml");

#[derive(clap::Args)]
pub struct Args {
    /// pcap or pcapng file (default: the bundled example capture).
    pub capture: Option<PathBuf>,
    /// Policy file (default: the bundled example policy); give it several times for a
    /// policy made of several files (a host document and HNS JSON, say).
    #[arg(long)]
    pub policy: Vec<PathBuf>,
    /// Write what leaves each port as pcapng, each frame commented with its verdict path.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write one JSON object per input packet.
    #[arg(long)]
    pub verdicts: Option<PathBuf>,
}

fn create(path: &PathBuf) -> Result<Box<dyn Write>, Failure> {
    let f = File::create(path)
        .map_err(|e| Failure::Runtime(format!("cannot create {}: {e}", path.display())))?;
    Ok(Box::new(BufWriter::new(f)))
}

pub fn run(args: Args) -> Result<(), Failure> {
    let (policy_name, loaded) = if args.policy.is_empty() {
        (
            "examples/policy.toml (bundled)".to_string(),
            strata_rules::policy::load(DEMO_POLICY, "examples/policy.toml"),
        )
    } else {
        let (files, loaded) = crate::check::load(&args.policy)?;
        let loaded = loaded.map(|l| {
            crate::check::print_warnings(&l.warnings);
            l.policy
        });
        (files.label(), loaded.map_err(|r| r.errors))
    };
    let policy = loaded.map_err(|e| Failure::Input(format!("invalid policy:\n{e}")))?;
    let (capture_name, reader) = match &args.capture {
        Some(c) => (
            c.display().to_string(),
            CaptureReader::open(c).map_err(|e| Failure::Input(format!("{}: {e}", c.display())))?,
        ),
        None => (
            "examples/demo.pcapng (bundled)".to_string(),
            CaptureReader::from_bytes(DEMO_CAPTURE.to_vec())
                .map_err(|e| Failure::Runtime(format!("bundled capture: {e}")))?,
        ),
    };
    let mut out = Outputs {
        pcapng: args
            .out
            .as_ref()
            .map(create)
            .transpose()?
            .map(PcapngWriter::new),
        verdicts: args.verdicts.as_ref().map(create).transpose()?,
    };
    let mut sw = Switch::new(policy);
    let failure = |e| match e {
        ReplayError::Capture(e) => Failure::Input(format!("{capture_name}: {e}")),
        e @ ReplayError::Output { .. } => Failure::Runtime(e.to_string()),
    };
    let summary = replay(&mut sw, reader, &mut out).map_err(failure)?;
    out.finish().map_err(failure)?;
    println!("strata replay: {capture_name} with policy {policy_name}");
    print!("{}", summary.render());
    Ok(())
}
