//! `strata run --config FILE [--workers N] [--control SOCKET] [--metrics ADDR:PORT]`: the
//! host dataplane service (DESIGN §4, §5). Attaches to every interface the policy names
//! (AF_PACKET on Linux), runs N workers in the foreground, serves the control socket
//! (`strata ctl`, `strata-cni`), watches the policy file and re-applies it when it
//! changes, serves Prometheus metrics when asked, logs to stderr (tracing) with a summary
//! line per interval, and stops cleanly on SIGTERM or SIGINT (socket removed). It refuses
//! to start, with exit 1 and a message saying why, when the policy is invalid, an
//! interface is missing or it lacks privileges. Ready = the control socket accepts.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_control::api::{Control, Controller};
use strata_control::edit::PolicyState;
use strata_control::metrics::MetricsServer;
use strata_control::protocol::Document;
#[cfg(unix)]
use strata_control::socket::ControlSocket;
use strata_control::watch::PolicyWatcher;

use strata_control::service::{Service, ServiceConfig, ServiceError, ServiceReport};
use strata_dataplane::DropReason;

use crate::Failure;

#[derive(clap::Args)]
pub struct Args {
    /// The policy file (TOML, or HNS JSON if it ends in .json); repeat for a policy
    /// made of several files, as `strata check` takes them.
    #[arg(long, required = true)]
    pub config: Vec<PathBuf>,
    /// Worker threads (each owns a share of the connections and NAT ports).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Seconds between two summary lines in the log.
    #[arg(long, default_value_t = 10)]
    pub interval: u64,
    /// The control socket (`strata ctl --socket`).
    #[arg(long, default_value = strata_control::protocol::DEFAULT_SOCKET)]
    pub control: PathBuf,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9101).
    #[arg(long)]
    pub metrics: Option<String>,
    /// The most flows each port's flow and connection tables hold (and each worker's
    /// path table); a new flow beyond is refused as `connection-table-full`.
    #[arg(long, default_value_t = 1 << 20, value_parser = clap::value_parser!(u32).range(1..=1 << 26))]
    pub flows: u32,
    /// Size those tables for `--flows` at start: the memory is taken at once (about
    /// 620 bytes a flow, per port and worker) and no table grows on the packet path.
    #[arg(long)]
    pub preallocate: bool,
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

/// What `--preallocate` takes: each worker's tables for `flows` flows — every port's
/// flow and connection tables and the path table — at about 620 bytes a flow each
/// (README "Benchmarks": the figure `strata bench pipeline` prints as bytes_per_flow).
fn preallocated_bytes(flows: usize, ports: usize, workers: usize) -> u64 {
    const BYTES_PER_FLOW: u64 = 620;
    (flows as u64)
        .saturating_mul(BYTES_PER_FLOW)
        .saturating_mul(ports as u64 + 1)
        .saturating_mul(workers as u64)
}

/// The memory the system says is available (`MemAvailable`, Linux), in bytes.
fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb.saturating_mul(1024))
}

pub fn run(args: Args) -> Result<(), Failure> {
    init_logging();
    if args.workers == 0 || args.workers > MAX_WORKERS {
        return Err(Failure::Input(format!(
            "--workers must be 1..={MAX_WORKERS}, not {}",
            args.workers
        )));
    }
    let (files, loaded) = crate::check::load(&args.config)?;
    let name = files.label();
    match &loaded {
        Ok(l) => crate::check::print_warnings(&l.warnings),
        Err(refused) => {
            return Err(Failure::Input(format!(
                "invalid policy {name}:\n{}",
                refused.errors
            )));
        }
    }
    let documents: Vec<Document> = files
        .names
        .iter()
        .zip(&files.texts)
        .map(|(n, t)| Document::new(n.clone(), t.clone()))
        .collect();
    let state = PolicyState::of_files(documents)
        .map_err(|r| Failure::Input(format!("invalid policy {name}:\n{r}")))?;
    let policy = state.current().clone();
    let flows = args.flows as usize;
    if args.preallocate {
        // Sized at start, the tables must fit: refused here with the figures, never an
        // allocation failure (an abort) in a worker.
        let need = preallocated_bytes(flows, policy.ports.len(), args.workers);
        if let Some(available) = available_memory()
            && need > available
        {
            return Err(Failure::Input(format!(
                "--preallocate: {flows} flows for {} ports and {} workers need about {:.1} GB, \
                 more than the {:.1} GB available; lower --flows or drop --preallocate",
                policy.ports.len(),
                args.workers,
                need as f64 / 1e9,
                available as f64 / 1e9
            )));
        }
    }
    let config = ServiceConfig {
        workers: args.workers,
        limits: strata_dataplane::state::Limits {
            flows,
            connections: flows,
            reserve: if args.preallocate { flows } else { 0 },
            ..Default::default()
        },
        ..ServiceConfig::default()
    };
    let service = Service::start(policy, config).map_err(|e| match e {
        ServiceError::Attach(_) | ServiceError::Unsupported => {
            Failure::Input(format!("cannot start with {name}: {e}"))
        }
        e => Failure::Runtime(e.to_string()),
    })?;
    let handle = service.handle();
    #[cfg(unix)]
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, handle.stop_flag())
            .map_err(|e| Failure::Runtime(format!("installing the signal handler: {e}")))?;
    }
    // The control plane: the socket, the file watch and the metrics all go through one
    // controller over the service.
    let controller = Arc::new(Controller::new(handle.clone(), state));
    let control: Arc<dyn Control> = controller.clone();
    let started = (|| {
        let watch = PolicyWatcher::start(&args.config, files.texts.clone(), Arc::clone(&control))
            .map_err(Failure::Runtime)?;
        let metrics = match &args.metrics {
            Some(addr) => {
                Some(MetricsServer::serve(addr, Arc::clone(&control)).map_err(Failure::Input)?)
            }
            None => None,
        };
        #[cfg(unix)]
        let socket = ControlSocket::serve(&args.control, Arc::clone(&control))
            .map_err(|e| Failure::Runtime(e.to_string()))?;
        // No Unix socket in Rust's standard library on Windows yet: no `strata ctl` there.
        #[cfg(not(unix))]
        let socket = {
            tracing::warn!("no control socket on this platform");
        };
        Ok((watch, metrics, socket))
    })();
    let (_watch, metrics, socket) = match started {
        Ok(s) => s,
        Err(e) => {
            handle.stop();
            service.join();
            return Err(e);
        }
    };
    tracing::info!(
        config = %name,
        workers = args.workers,
        control = %args.control.display(),
        metrics = %metrics.as_ref().map(|m| m.addr().to_string()).unwrap_or_else(|| "off".into()),
        "running; SIGTERM or SIGINT stops"
    );
    let interval = Duration::from_secs(args.interval.max(1));
    let mut last = Instant::now();
    let mut died = false;
    while !handle.stopping() {
        std::thread::sleep(Duration::from_millis(100));
        if !service.running() {
            // A signal may have stopped the workers since the loop's condition was read:
            // only a worker that ended with nobody asking it to has died.
            died = !handle.stopping();
            handle.stop();
            break;
        }
        if last.elapsed() >= interval {
            last = Instant::now();
            tracing::info!("{}", summary(&handle.report()));
        }
    }
    let last_report = handle.report();
    #[cfg(unix)]
    drop(socket);
    #[cfg(not(unix))]
    let () = socket;
    drop(metrics);
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
    let mut all = strata_dataplane::device::DeviceCounters::default();
    for c in r.devices.values() {
        all.add(c);
    }
    s.push_str(&format!(" rx={} tx={}", all.rx, all.tx));
    // Frames the devices could not pass on (the engine never saw them), by reason.
    for (name, n) in [
        ("rx_ring_full", all.rx_ring_full),
        ("rx_truncated", all.rx_truncated),
        ("rx_unattached", all.rx_unattached),
        ("tx_dropped", all.tx_dropped),
        ("tx_errors", all.tx_errors),
    ] {
        if n > 0 {
            s.push_str(&format!(" {name}={n}"));
        }
    }
    if r.workers > 1 {
        s.push_str(&format!(
            " workers={} handed_over={} handover_dropped={}",
            r.workers, r.handed_over, r.handover_dropped
        ));
    }
    s
}
