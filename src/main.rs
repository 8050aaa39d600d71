//! `strata`: the command-line front end (DESIGN §4). Each subcommand lives in its own
//! module; this file only parses arguments and maps results to exit codes
//! (0 success, 1 invalid input, 2 runtime failure).

mod bench;
mod bench_control;
mod check;
#[cfg(unix)]
mod ctl;
mod import_hns;
mod lab;
mod replay;
mod run;

/// Big tables on transparent huge pages (`strata_dataplane::huge`).
#[global_allocator]
static ALLOC: strata_dataplane::huge::HugePageAlloc = strata_dataplane::huge::HugePageAlloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "strata",
    version,
    about = "Userspace packet filtering and forwarding for container hosts (an open VFP)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pcap or pcapng capture through the engine (default: the bundled example).
    Replay(replay::Args),
    /// Validate a policy; errors name file, line and object.
    Check {
        /// The policy: a TOML file, HNS JSON, Windows CNI configurations; several files
        /// make one policy.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the TOML policy file equivalent to HNS JSON documents.
    ImportHns {
        /// HNS JSON, Windows CNI configurations (and TOML files to merge with them).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Benchmarks.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Talk to a running service: ports, layers, flows, stats; apply, endpoint, rule.
    #[cfg(unix)]
    Ctl(ctl::Args),
    /// The host dataplane service: attach to the interfaces the policy names and switch.
    Run(run::Args),
    /// A real host in network namespaces, switched by Strata: `up` or `down`.
    #[command(subcommand)]
    Lab(lab::LabCommand),
}

/// How a subcommand failed, mapped to DESIGN §4's exit codes.
#[derive(Debug)]
pub enum Failure {
    /// Invalid input (policy, capture, arguments): exit 1.
    Input(String),
    /// Runtime failure (I/O while writing, device errors): exit 2.
    Runtime(String),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let result = match cli.command {
        Command::Replay(args) => replay::run(args),
        Command::Check { files } => check::run(&files),
        Command::ImportHns { files } => import_hns::run(&files),
        Command::Bench(b) => bench::run(b),
        #[cfg(unix)]
        Command::Ctl(args) => ctl::run(args),
        Command::Run(args) => run::run(args),
        Command::Lab(l) => lab::run(l),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(msg)) => {
            eprintln!("strata: {msg}");
            ExitCode::from(1)
        }
        Err(Failure::Runtime(msg)) => {
            eprintln!("strata: {msg}");
            ExitCode::from(2)
        }
    }
}
