//! `strata replay`: run a capture through the engine, print a summary, optionally write
//! verdicts (JSON lines) and what leaves each port (pcapng with comments).
//!
//! Replay is the service with a file for a NIC: the policy is published as the service
//! publishes it, and the dataplane's worker loop runs the engine over a capture device.
//! With no capture and no `--policy`, the bundled example (`examples/demo.pcapng` with
//! `examples/policy.toml`, compiled into the binary) is replayed, so the command works
//! from any directory. A capture damaged part-way is replayed up to the damage, then the
//! command says where and exits 1 (invalid input).
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use strata_control::publish::Publisher;
use strata_dataplane::DropReason;
use strata_dataplane::capture::{CaptureReader, PcapngWriter};
use strata_dataplane::device::capture::CaptureDevice;
use strata_dataplane::engine::Engine;
use strata_dataplane::policy::CompileOptions;
use strata_dataplane::report::Report;
use strata_dataplane::state::Limits;
use strata_dataplane::verdict::VerdictLog;
use strata_dataplane::worker::{Observer, Worker, WorkerError};

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
    let pcapng = args
        .out
        .as_ref()
        .map(create)
        .transpose()?
        .map(PcapngWriter::new);
    let mut verdicts = args
        .verdicts
        .as_ref()
        .map(create)
        .transpose()?
        .map(VerdictLog::new);

    let publisher = Publisher::new(&policy, CompileOptions::default());
    let engine = Engine::new(publisher.current(), Limits::default());
    let mut worker = Worker::new(engine).follow(publisher.published()).timed();
    let mut device = CaptureDevice::new(reader, pcapng);
    let observer: &mut dyn Observer = match verdicts.as_mut() {
        Some(v) => v,
        None => &mut (),
    };
    let never = AtomicBool::new(false);
    worker
        .run(&mut [&mut device], observer, &never)
        .map_err(|e| match e {
            WorkerError::Device(e) => Failure::Runtime(e.to_string()),
            e @ WorkerError::Observer { .. } => Failure::Runtime(e.to_string()),
        })?;
    let damage = device.capture_error().map(str::to_string);
    device
        .finish()
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    if let Some(v) = verdicts {
        v.finish()
            .map_err(|e| Failure::Runtime(format!("writing verdicts: {e}")))?;
    }

    println!("strata replay: {capture_name} with policy {policy_name}");
    let time = worker.engine_time().unwrap_or_default();
    print!("{}", render(&worker.engine().report(), time));
    match damage {
        Some(e) => Err(Failure::Input(format!(
            "{capture_name}: {e}; the {} frames before it were replayed",
            worker.frames()
        ))),
        None => Ok(()),
    }
}

/// The human summary: totals, drops by reason, each port's counters, the rules that
/// decided the most packets.
fn render(r: &Report, engine_time: Duration) -> String {
    let st = &r.stats;
    let mut s = String::new();
    s.push_str(&format!("packets     {:>10}\n", st.packets));
    s.push_str(&format!("forwarded   {:>10}\n", st.forwarded));
    s.push_str(&format!("dropped     {:>10}\n", st.dropped_total()));
    for reason in DropReason::ALL {
        let n = st.dropped[reason.index()];
        if n > 0 {
            s.push_str(&format!("  {:<20}{:>8}\n", reason.as_str(), n));
        }
    }
    s.push_str(&format!("flows       {:>10}\n", r.flows));
    s.push_str(&format!("connections {:>10}\n", r.connections));
    if st.arp_replies > 0 {
        s.push_str(&format!("arp replies {:>10}\n", st.arp_replies));
    }
    let secs = engine_time.as_secs_f64();
    let pps = if secs > 0.0 {
        st.packets as f64 / secs
    } else {
        0.0
    };
    let rate = if pps >= 1e6 {
        format!("{:.2} Mpps", pps / 1e6)
    } else {
        format!("{:.0} kpps", pps / 1e3)
    };
    let ns = if st.packets > 0 {
        engine_time.as_nanos() as f64 / st.packets as f64
    } else {
        0.0
    };
    s.push_str(&format!(
        "rate        {rate:>10} ({ns:.0} ns/packet in the engine)\n"
    ));
    if !r.ports.is_empty() {
        s.push_str("\nport              out      in   dropped  fast path   flows  connections\n");
        for p in &r.ports {
            let c = &p.counters;
            let fast = (100 * c.fast_path)
                .checked_div(c.fast_path + c.slow_path)
                .unwrap_or(0);
            s.push_str(&format!(
                "{:<12}{:>9}{:>8}{:>10}{:>10}%{:>8}{:>13}\n",
                p.name, c.packets_out, c.packets_in, c.dropped, fast, p.flows, p.connections
            ));
        }
    }
    if !r.rule_hits.is_empty() {
        s.push_str("\nrule hits (packets decided)\n");
        for (name, n) in r.rule_hits.iter().take(12) {
            s.push_str(&format!("  {name:<44}{n:>8}\n"));
        }
        if r.rule_hits.len() > 12 {
            s.push_str(&format!("  ... and {} more\n", r.rule_hits.len() - 12));
        }
    }
    s
}
