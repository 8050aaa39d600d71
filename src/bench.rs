//! `strata bench ...`: benchmark subcommands.
//!
//! `bench pipeline` measures the packet path on DPDK testpmd's workload.
//! `bench classbench` measures the compiled classifier on a ClassBench filter set and
//! trace, in the same terms as DPDK's `test-acl` (build time, single-core Mpps), and can
//! write the per-packet answers so they can be checked against a reference.
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Subcommand;
use strata_rules::Fields;
use strata_rules::classbench;
use strata_rules::classifier::{ClassRule, Classifier};

use crate::Failure;

#[path = "../benches/workload.rs"]
pub mod workload;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// The packet path on DPDK testpmd's workload (64-byte UDP, N flows): prints
    /// `flows=N mode=M workers=W mpps=X ns_per_pkt=Y bytes_per_flow=B peak_rss_mb=R`,
    /// comparable with `peer-dpdk-testpmd N`.
    Pipeline {
        /// Distinct flows (testpmd's peer script uses 1024).
        #[arg(long, default_value_t = 1024)]
        flows: u32,
        /// hit (flow-table hit, plain allow), snat (hit with SNAT), vxlan (hit with VXLAN
        /// encapsulation), new (every frame a new connection through three layers with
        /// 10,000 ACL rules; mpps then counts millions of connections per second), full
        /// (the same against a full connection table: every frame refused).
        #[arg(long, default_value = "hit")]
        mode: String,
        /// Workers, each on its own thread with its share of the flows.
        #[arg(long, default_value_t = 1)]
        workers: u32,
        /// Measurement rounds of 0.3 s; the best is reported.
        #[arg(long, default_value_t = 5)]
        rounds: u32,
    },
    /// Publishing: compile-and-publish time for policies of N rules, the time until a
    /// one-rule change reaches a running worker, and the longest pause it sees at a swap.
    Control {
        /// Rule counts, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
        rules: Vec<usize>,
        /// Publishes measured per size (visibility: four times as many).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// Classify a ClassBench trace against a ClassBench filter file.
    Classbench {
        /// ClassBench filter file (`@src/len dst/len lo : hi lo : hi 0xPP/0xMM ...`;
        /// the first line has the highest priority).
        #[arg(long)]
        rules: PathBuf,
        /// The trace; gzip-compressed if its name ends in `.gz`.
        #[arg(long)]
        trace: PathBuf,
        /// Write the 0-based index of the first matching rule per trace line (-1: none).
        #[arg(long)]
        matches: Option<PathBuf>,
    },
}

pub fn run(cmd: BenchCommand) -> Result<(), Failure> {
    match cmd {
        BenchCommand::Control { rules, rounds } => crate::bench_control::run(&rules, rounds),
        BenchCommand::Classbench {
            rules,
            trace,
            matches,
        } => classbench(&rules, &trace, matches.as_deref()),
        BenchCommand::Pipeline {
            flows,
            mode,
            workers,
            rounds,
        } => {
            let Some(m) = workload::Mode::parse(&mode) else {
                return Err(Failure::Input(format!(
                    "--mode {mode:?}: expected hit, snat, vxlan, new or full"
                )));
            };
            if flows == 0 || flows > m.max_flows() {
                return Err(Failure::Input(format!(
                    "--flows {flows}: mode {mode} takes 1 to {} flows",
                    m.max_flows()
                )));
            }
            if workers == 0 || workers > 256 {
                return Err(Failure::Input(format!("--workers {workers}: 1 to 256")));
            }
            if workers > flows {
                return Err(Failure::Input(format!(
                    "--workers {workers}: at most one worker a flow (--flows {flows})"
                )));
            }
            let r = workload::measure(m, flows, workers, rounds, Duration::from_millis(300));
            // The whole process at its peak (the frames held in memory included), where
            // the system says (Linux).
            let rss = peak_rss_mb()
                .map(|mb| format!(" peak_rss_mb={mb:.0}"))
                .unwrap_or_default();
            println!(
                "flows={flows} mode={mode} workers={workers} mpps={:.2} ns_per_pkt={:.1} bytes_per_flow={:.0}{rss}",
                r.pps / 1e6,
                1e9 * f64::from(workers) / r.pps.max(1.0),
                r.bytes_per_flow
            );
            Ok(())
        }
    }
}

/// This process's peak resident memory (`VmHWM`), in MB.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Reads a text file, gunzipping it when its name ends in `.gz`.
fn read_text(path: &Path) -> Result<String, Failure> {
    let bad = |e: std::io::Error| Failure::Input(format!("{}: {e}", path.display()));
    let file = File::open(path).map_err(bad)?;
    let mut text = String::new();
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::MultiGzDecoder::new(file)
            .read_to_string(&mut text)
            .map_err(bad)?;
    } else {
        std::io::BufReader::new(file)
            .read_to_string(&mut text)
            .map_err(bad)?;
    }
    Ok(text)
}

/// Classification passes over the trace: enough to get past warm-up and noise, few enough
/// to keep the whole run to about a second on a shared machine.
const MIN_PASSES: usize = 3;
const MAX_PASSES: usize = 20;
const TIME_BUDGET: Duration = Duration::from_millis(1500);

fn classbench(rules: &Path, trace: &Path, matches: Option<&Path>) -> Result<(), Failure> {
    let filters = classbench::parse_filters(&read_text(rules)?)
        .map_err(|e| Failure::Input(format!("{}: {e}", rules.display())))?;
    let packets = classbench::parse_trace(&read_text(trace)?)
        .map_err(|e| Failure::Input(format!("{}: {e}", trace.display())))?;
    if packets.is_empty() {
        return Err(Failure::Input(format!(
            "{}: the trace has no packets",
            trace.display()
        )));
    }

    let start = Instant::now();
    let classifier = Classifier::build(&filters);
    let build = start.elapsed();

    let mut out = vec![None; packets.len()];
    let best = measure(&classifier, &packets, &mut out);
    let mpps = packets.len() as f64 / best.as_secs_f64() / 1e6;

    let update = measure_updates(&filters);

    // Written, not println!-ed: a closed pipe (`| head -1`) is an error to report, not a
    // panic.
    let (v4_tables, mixed_tables) = classifier.table_counts();
    let summary = format!(
        "rules={} packets={} build_ms={:.1} mpps={:.2}\nmemory_bytes={} tables={} ns_per_pkt={:.1} update_us={:.2}\n",
        filters.len(),
        packets.len(),
        build.as_secs_f64() * 1e3,
        mpps,
        classifier.memory_bytes(),
        v4_tables + mixed_tables,
        best.as_secs_f64() * 1e9 / packets.len() as f64,
        update.as_secs_f64() * 1e6
    );
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(summary.as_bytes())
        .and_then(|()| stdout.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(Failure::Runtime(format!("stdout: {e}")));
    }

    if let Some(path) = matches {
        let write_err = |e: std::io::Error| Failure::Runtime(format!("{}: {e}", path.display()));
        let mut w = BufWriter::new(File::create(path).map_err(write_err)?);
        for m in &out {
            match m {
                Some(i) => writeln!(w, "{i}"),
                None => writeln!(w, "-1"),
            }
            .map_err(write_err)?;
        }
        w.flush().map_err(write_err)?;
    }
    Ok(())
}

/// Runs repeated passes over the trace on this thread and returns the fastest pass.
fn measure(c: &Classifier, packets: &[Fields], out: &mut [Option<u32>]) -> Duration {
    let started = Instant::now();
    let mut best = Duration::MAX;
    for pass in 0..MAX_PASSES {
        let t = Instant::now();
        c.classify_batch(packets, out);
        best = best.min(t.elapsed());
        std::hint::black_box(&out);
        if pass + 1 >= MIN_PASSES && started.elapsed() > TIME_BUDGET {
            break;
        }
    }
    best
}

/// Mean time of one incremental update (a rule removed, or put back) over rules spread
/// through the set.
fn measure_updates(filters: &[ClassRule]) -> Duration {
    const OPS: usize = 500;
    if filters.is_empty() {
        return Duration::ZERO;
    }
    let mut c = Classifier::build(filters);
    let step = (filters.len() / OPS).max(1);
    let chosen: Vec<&ClassRule> = filters.iter().step_by(step).take(OPS).collect();
    let t = Instant::now();
    for r in &chosen {
        c.remove(r.id);
        c.insert((*r).clone());
    }
    t.elapsed() / (2 * chosen.len()) as u32
}
