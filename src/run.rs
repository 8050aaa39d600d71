//! `strata run --config FILE [--workers N]`: the host dataplane service (DESIGN §4, §5).
//! Attaches to every interface the policy names (AF_PACKET on Linux), runs N workers in
//! the foreground, logs to stderr (tracing) with a summary line per interval, and stops
//! cleanly on SIGTERM or SIGINT. It refuses to start, with exit 1 and a message saying
//! why, when the policy is invalid, an interface is missing or it lacks privileges.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use strata_control::service::{Service, ServiceConfig, ServiceError, ServiceReport};
use strata_dataplane::DropReason;

use crate::Failure;

#[derive(clap::Args)]
pub struct Args {
    /// The policy file (TOML, or HNS JSON if it ends in .json).
    #[arg(long)]
    pub config: PathBuf,
    /// Worker threads (each owns a share of the connections and NAT ports).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Seconds between two summary lines in the log.
    #[arg(long, default_value_t = 10)]
    pub interval: u64,
}

/// The most workers: beyond the cores of any host it would run on.
const MAX_WORKERS: usize = 256;

/// Logs go to stderr; `STRATA_LOG=debug` says more.
pub fn init_logging() {
    let level = match std::env::var("STRATA_LOG").as_deref() {
        Ok("debug") => tracing::Level::DEBUG,
        Ok("trace") => tracing::Level::TRACE,
        Ok("warn") => tracing::Level::WARN,
        _ => tracing::Level::INFO,
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

pub fn run(args: Args) -> Result<(), Failure> {
    init_logging();
    if args.workers == 0 || args.workers > MAX_WORKERS {
        return Err(Failure::Input(format!(
            "--workers must be 1..={MAX_WORKERS}, not {}",
            args.workers
        )));
    }
    let name = args.config.display().to_string();
    let policy = crate::check::load(&args.config)?.map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        Failure::Input(format!("invalid policy {name}:\n{}", lines.join("\n")))
    })?;
    let config = ServiceConfig {
        workers: args.workers,
        ..ServiceConfig::default()
    };
    let service = Service::start(policy, config).map_err(|e| match e {
        ServiceError::Attach(_) | ServiceError::Unsupported => {
            Failure::Input(format!("cannot start with {name}: {e}"))
        }
        e => Failure::Runtime(e.to_string()),
    })?;
    let handle = service.handle();
    let stop = handle.stop_flag();
    #[cfg(unix)]
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, std::sync::Arc::clone(&stop))
            .map_err(|e| Failure::Runtime(format!("installing the signal handler: {e}")))?;
    }
    tracing::info!(
        config = %name,
        workers = args.workers,
        "running; SIGTERM or SIGINT stops"
    );
    let interval = Duration::from_secs(args.interval.max(1));
    let mut last = Instant::now();
    let mut died = false;
    while !handle.stopping() {
        std::thread::sleep(Duration::from_millis(100));
        if !service.running() {
            died = true;
            handle.stop();
            break;
        }
        if last.elapsed() >= interval {
            last = Instant::now();
            tracing::info!("{}", summary(&handle.report()));
        }
    }
    let last_report = handle.report();
    service.join();
    tracing::info!("stopped: {}", summary(&last_report));
    if died {
        return Err(Failure::Runtime("a worker stopped unexpectedly".into()));
    }
    Ok(())
}

/// One line of figures: totals, drops by reason, table sizes, device drops.
pub fn summary(r: &ServiceReport) -> String {
    let st = &r.report.stats;
    let mut s = format!(
        "packets={} forwarded={} dropped={}",
        st.packets,
        st.forwarded,
        st.dropped_total()
    );
    for reason in DropReason::ALL {
        let n = st.dropped[reason.index()];
        if n > 0 {
            s.push_str(&format!(" {}={n}", reason.as_str()));
        }
    }
    s.push_str(&format!(
        " flows={} connections={} arp_replies={}",
        r.report.flows, r.report.connections, st.arp_replies
    ));
    let (mut rx, mut tx, mut lost) = (0, 0, 0);
    for c in r.devices.values() {
        rx += c.rx;
        tx += c.tx;
        lost += c.rx_truncated + c.rx_unattached + c.tx_dropped + c.tx_errors;
    }
    s.push_str(&format!(" rx={rx} tx={tx} device_drops={lost}"));
    if r.workers > 1 {
        s.push_str(&format!(
            " workers={} handed_over={} handover_dropped={}",
            r.workers, r.handed_over, r.handover_dropped
        ));
    }
    s
}
