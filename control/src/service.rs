//! The host dataplane service (`strata run`, DESIGN §5): N worker threads, each a
//! [`Worker`] over its own devices — an AF_PACKET attachment to every interface the
//! policy names (the containers' host-side veths and the uplink), shared between the
//! workers by kernel fanout — plus, with several workers, the handover queue through
//! which the others pass it the frames it owns.
//!
//! The control side ([`ServiceHandle`]) owns the [`Publisher`]: applying a policy
//! compiles and publishes it (workers install it at their next batch) and attaches the
//! interfaces it newly names; reading counters asks every worker over its request
//! channel and sums the answers, so the packet path takes no lock. Stopping sets a flag
//! the workers look at between rounds (an idle worker sleeps at most 50 ms).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use strata_dataplane::device::handover::Queues;
use strata_dataplane::device::{self, Device, DeviceCounters, mapping};
use strata_dataplane::engine::Engine;
use strata_dataplane::policy::{CompileOptions, CompiledPolicy};
use strata_dataplane::report::Report;
use strata_dataplane::state::Limits;
use strata_dataplane::state::ownership::Share;
use strata_dataplane::worker::{Request, Worker, WorkerReport};
use strata_rules::model::Policy;

use crate::publish::Publisher;

/// How the service runs.
#[derive(Clone, Copy, Debug)]
pub struct ServiceConfig {
    pub workers: usize,
    pub limits: Limits,
    pub options: CompileOptions,
}

impl Default for ServiceConfig {
    fn default() -> ServiceConfig {
        ServiceConfig {
            workers: 1,
            limits: Limits::default(),
            options: CompileOptions::default(),
        }
    }
}

/// Why the service could not start or take a policy.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// An interface the policy names could not be attached (missing, no privileges).
    #[error("{0}")]
    Attach(String),
    /// The platform has no device for host interfaces.
    #[error("attaching host interfaces is not supported on this platform")]
    Unsupported,
    #[error("the service has stopped")]
    Stopped,
    #[error("starting worker thread: {0}")]
    Thread(std::io::Error),
}

/// What every worker's figures add up to.
#[derive(Clone, Debug)]
pub struct ServiceReport {
    pub report: Report,
    /// Each interface's counters, over all workers.
    pub devices: BTreeMap<String, DeviceCounters>,
    pub handed_over: u64,
    pub handover_dropped: u64,
    pub workers: usize,
}

type BoxedDevice = Box<dyn Device + Send>;

/// A change of a worker's device set.
enum DeviceChange {
    Attach(BoxedDevice),
    Detach(String),
}

struct WorkerLink {
    requests: Sender<Request>,
    devices: Sender<DeviceChange>,
}

struct Inner {
    publisher: Publisher,
    /// The policy running, as written; serialises applies.
    policy: Mutex<Policy>,
    stop: Arc<AtomicBool>,
    workers: Vec<WorkerLink>,
}

/// The running service, as the control socket and the CLI use it: plain methods, any
/// thread.
#[derive(Clone)]
pub struct ServiceHandle {
    inner: Arc<Inner>,
}

/// The service and its threads.
pub struct Service {
    handle: ServiceHandle,
    threads: Vec<(usize, JoinHandle<()>)>,
}

/// Opens worker `w`'s attachment to `name`.
fn open(name: &str, workers: usize) -> Result<BoxedDevice, ServiceError> {
    #[cfg(target_os = "linux")]
    {
        use strata_dataplane::device::afpacket::{AfPacketDevice, Fanout, TxPath, interface_index};
        let fanout = (workers > 1).then(|| Fanout {
            // One group per interface, shared by the workers of this process only.
            group: ((std::process::id() as u16) ^ (interface_index(name).unwrap_or(0) as u16))
                .wrapping_mul(2654435761u32 as u16),
        });
        AfPacketDevice::open(name, fanout, TxPath::from_env(TxPath::Ring))
            .map(|d| Box::new(d) as BoxedDevice)
            .map_err(|e| ServiceError::Attach(e.to_string()))
    }
    #[cfg(windows)]
    {
        // One WinDivert handle per interface: several workers would each divert a
        // copy, so on Windows the service runs one worker.
        let _ = workers;
        use strata_dataplane::device::windivert::WinDivertDevice;
        WinDivertDevice::open(name)
            .map(|d| Box::new(d) as BoxedDevice)
            .map_err(|e| ServiceError::Attach(e.to_string()))
    }
    #[cfg(not(any(target_os = "linux", windows)))]
    {
        let _ = (name, workers);
        Err(ServiceError::Unsupported)
    }
}

/// Every interface `policy` names, once each.
fn interface_names(policy: &CompiledPolicy) -> Vec<String> {
    let mut names: Vec<String> = mapping::interfaces(policy)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Opens `names` for each of `workers`: `result[w]` holds worker `w`'s devices.
fn open_all(names: &[String], workers: usize) -> Result<Vec<Vec<BoxedDevice>>, ServiceError> {
    let mut per_worker: Vec<Vec<BoxedDevice>> = (0..workers).map(|_| Vec::new()).collect();
    for name in names {
        for devices in per_worker.iter_mut() {
            devices.push(open(name, workers)?);
        }
    }
    Ok(per_worker)
}

impl Service {
    /// Compiles and publishes `policy`, attaches every interface it names, and starts
    /// the workers. Fails, attaching nothing, when an interface is missing or cannot be
    /// opened.
    pub fn start(policy: Policy, config: ServiceConfig) -> Result<Service, ServiceError> {
        // WinDivert diverts each packet to one handle of a filter: one worker there.
        let workers = if cfg!(windows) {
            1
        } else {
            config.workers.max(1)
        };
        let publisher = Publisher::new(&policy, config.options);
        let names = interface_names(&publisher.current());
        let mut devices = open_all(&names, workers)?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut queues = (workers > 1).then(|| Queues::new(workers));
        let mut links = Vec::new();
        let mut threads = Vec::new();
        for (w, mut own) in devices.drain(..).enumerate() {
            let (req_tx, req_rx) = unbounded();
            let (dev_tx, dev_rx) = unbounded();
            let mut engine = Engine::new(publisher.current(), config.limits);
            engine.route_as_host();
            if workers > 1 {
                // A reply's NAT port names the worker that allocated it.
                engine.share_nat(Share {
                    index: w as u16,
                    count: workers as u16,
                });
            }
            let mut worker = Worker::new(engine)
                .follow(publisher.published())
                .serving(req_rx)
                .resolving();
            if let Some((handoff, handover)) = queues.as_mut().and_then(|q| q.for_worker(w)) {
                worker = worker.sharing(handoff);
                own.push(Box::new(handover));
            }
            let stop = Arc::clone(&stop);
            let thread = std::thread::Builder::new()
                .name(format!("strata-worker-{w}"))
                .spawn(move || run_worker(w, worker, own, dev_rx, &stop))
                .map_err(ServiceError::Thread)?;
            threads.push((w, thread));
            links.push(WorkerLink {
                requests: req_tx,
                devices: dev_tx,
            });
        }
        tracing::info!(
            workers,
            interfaces = %names.join(","),
            "attached {} interface(s)",
            names.len()
        );
        Ok(Service {
            handle: ServiceHandle {
                inner: Arc::new(Inner {
                    publisher,
                    policy: Mutex::new(policy),
                    stop,
                    workers: links,
                }),
            },
            threads,
        })
    }

    pub fn handle(&self) -> ServiceHandle {
        self.handle.clone()
    }

    /// Stops the workers and waits for them.
    pub fn stop(self) {
        self.handle.stop();
        self.join();
    }

    /// Waits for the workers to end (after [`ServiceHandle::stop`]).
    pub fn join(self) {
        for (w, t) in self.threads {
            if t.join().is_err() {
                tracing::error!(worker = w, "worker thread panicked");
            }
        }
    }

    /// Whether every worker is still running.
    pub fn running(&self) -> bool {
        self.threads.iter().all(|(_, t)| !t.is_finished())
    }
}

/// A worker thread: rounds over its devices until stopped, taking device changes
/// between rounds.
fn run_worker(
    w: usize,
    mut worker: Worker,
    mut devices: Vec<BoxedDevice>,
    changes: Receiver<DeviceChange>,
    stop: &AtomicBool,
) {
    loop {
        while let Ok(c) = changes.try_recv() {
            match c {
                DeviceChange::Attach(d) => devices.push(d),
                DeviceChange::Detach(name) => {
                    devices.retain(|d| d.is_handover() || d.name() != name)
                }
            }
            worker.reroute();
        }
        let mut refs: Vec<&mut dyn Device> = devices
            .iter_mut()
            .map(|d| d.as_mut() as &mut dyn Device)
            .collect();
        loop {
            if stop.load(Ordering::Relaxed) {
                for d in refs.iter_mut() {
                    let _ = d.flush();
                }
                return;
            }
            let before = worker.frames();
            if let Err(e) = worker.poll(&mut refs, &mut ()) {
                tracing::error!(worker = w, "device failed: {e}");
                stop.store(true, Ordering::Relaxed);
                return;
            }
            if !changes.is_empty() {
                break;
            }
            if worker.frames() == before {
                device::wait_any(&refs, Duration::from_millis(50));
            }
        }
    }
}

impl ServiceHandle {
    /// Applies a whole new policy: attaches the interfaces it newly names (failing, with
    /// the running policy untouched, if one cannot be), compiles it against the running
    /// snapshot and publishes it, then detaches the interfaces it no longer names.
    pub fn apply(&self, policy: Policy) -> Result<Duration, ServiceError> {
        let took = self.apply_changed(&policy, None)?;
        *self
            .inner
            .policy
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = policy;
        Ok(took)
    }

    /// [`apply`](Self::apply), told which ports may have changed (the control plane
    /// knows for an edit; see `CompiledPolicy::compile_changed`). The policy is compiled
    /// once, against the running snapshot, and that snapshot is what is published. The
    /// model is not kept (the control plane keeps its own; a copy of a large policy
    /// costs more than a one-rule change): [`policy`](Self::policy) is the last one
    /// given to `apply`.
    pub fn apply_changed(
        &self,
        policy: &Policy,
        changed: Option<&[String]>,
    ) -> Result<Duration, ServiceError> {
        let inner = &self.inner;
        if inner.stop.load(Ordering::Relaxed) {
            return Err(ServiceError::Stopped);
        }
        // Serialises applies.
        let _running = inner.policy.lock().unwrap_or_else(PoisonError::into_inner);
        let started = std::time::Instant::now();
        let before = interface_names(&inner.publisher.current());
        let next = inner.publisher.compile(policy, changed);
        let after = interface_names(&next);
        let added: Vec<String> = after
            .iter()
            .filter(|n| !before.contains(n))
            .cloned()
            .collect();
        let removed: Vec<String> = before
            .iter()
            .filter(|n| !after.contains(n))
            .cloned()
            .collect();
        let workers = inner.workers.len();
        let opened = open_all(&added, workers)?;
        for (link, devices) in inner.workers.iter().zip(opened) {
            for d in devices {
                let _ = link.devices.send(DeviceChange::Attach(d));
            }
        }
        let took = inner.publisher.publish(next, started);
        for link in &inner.workers {
            for name in &removed {
                let _ = link.devices.send(DeviceChange::Detach(name.clone()));
            }
        }
        if !added.is_empty() || !removed.is_empty() {
            tracing::info!(added = %added.join(","), removed = %removed.join(","), "interfaces changed");
        }
        Ok(took)
    }

    /// The policy last given to [`apply`](Self::apply), as written.
    pub fn policy(&self) -> Policy {
        self.inner
            .policy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The running compiled snapshot.
    pub fn snapshot(&self) -> Arc<CompiledPolicy> {
        self.inner.publisher.current()
    }

    /// Every worker's figures, summed. A worker that does not answer within a second
    /// (stopped) is left out.
    pub fn report(&self) -> ServiceReport {
        let mut replies: Vec<WorkerReport> = Vec::new();
        let pending: Vec<Receiver<WorkerReport>> = self
            .inner
            .workers
            .iter()
            .filter_map(|l| {
                let (tx, rx) = bounded(1);
                l.requests.send(Request::Report(tx)).ok().map(|()| rx)
            })
            .collect();
        for rx in pending {
            if let Ok(r) = rx.recv_timeout(Duration::from_secs(1)) {
                replies.push(r);
            }
        }
        let workers = replies.len();
        let mut devices: BTreeMap<String, DeviceCounters> = BTreeMap::new();
        let (mut handed_over, mut handover_dropped) = (0, 0);
        let mut total: Option<Report> = None;
        for r in replies {
            for (name, c) in &r.devices {
                devices.entry(name.clone()).or_default().add(c);
            }
            handed_over += r.handed_over;
            handover_dropped += r.handover_dropped;
            match total.as_mut() {
                Some(t) => t.merge(&r.report),
                None => total = Some(r.report),
            }
        }
        let report = total.unwrap_or_else(|| Report {
            stats: Default::default(),
            ports: Vec::new(),
            rule_hits: Vec::new(),
            flows: 0,
            connections: 0,
        });
        ServiceReport {
            report,
            devices,
            handed_over,
            handover_dropped,
            workers,
        }
    }

    /// Zeroes every worker's counters (flows and connections stay).
    pub fn reset_counters(&self) {
        let pending: Vec<Receiver<()>> = self
            .inner
            .workers
            .iter()
            .filter_map(|l| {
                let (tx, rx) = bounded(1);
                l.requests
                    .send(Request::ResetCounters(tx))
                    .ok()
                    .map(|()| rx)
            })
            .collect();
        for rx in pending {
            let _ = rx.recv_timeout(Duration::from_secs(1));
        }
    }

    /// Runs `f` on every worker's engine (between two of its rounds) and returns what
    /// each answered within a second.
    pub fn inspect<T: Send + 'static>(
        &self,
        f: impl Fn(&Engine) -> T + Send + Sync + 'static,
    ) -> Vec<T> {
        let f = Arc::new(f);
        let pending: Vec<Receiver<T>> = self
            .inner
            .workers
            .iter()
            .filter_map(|l| {
                let (tx, rx) = bounded(1);
                let f = Arc::clone(&f);
                let job = Box::new(move |e: &Engine| {
                    let _ = tx.send(f(e));
                });
                l.requests.send(Request::Inspect(job)).ok().map(|()| rx)
            })
            .collect();
        pending
            .into_iter()
            .filter_map(|rx| rx.recv_timeout(Duration::from_secs(1)).ok())
            .collect()
    }

    /// How many workers run.
    pub fn workers(&self) -> usize {
        self.inner.workers.len()
    }

    /// Asks the workers to stop after their current round.
    pub fn stop(&self) {
        self.inner.stop.store(true, Ordering::Relaxed);
    }

    /// The flag that stops the service: a signal handler may set it.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.inner.stop)
    }

    pub fn stopping(&self) -> bool {
        self.inner.stop.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
[host]
mac = "02:00:00:00:10:01"
addresses = ["198.19.16.10"]

[[network]]
name = "nat"
driver = "nat"
subnets = ["198.18.16.0/24"]
gateway = "198.18.16.1"

[[endpoint]]
name = "a"
network = "nat"
mac = "00:15:5d:10:00:0a"
ipv4 = "198.18.16.10"
"#;

    /// Without interfaces (no privileges needed): the workers run, answer reports,
    /// take a new policy and stop.
    #[test]
    fn workers_report_take_policies_and_stop() {
        let policy = strata_rules::policy::load(POLICY, "p.toml").expect("policy");
        let service = Service::start(
            policy.clone(),
            ServiceConfig {
                workers: 2,
                ..ServiceConfig::default()
            },
        )
        .expect("start");
        let handle = service.handle();
        let r = handle.report();
        // One worker on Windows (`Service::start` says why).
        let expected = if cfg!(windows) { 1 } else { 2 };
        assert_eq!(r.workers, expected, "every worker answers");
        assert_eq!(r.report.stats.packets, 0);
        assert_eq!(
            r.report.ports.len(),
            1,
            "ports merged by name: {:?}",
            r.report.ports
        );
        let mut next = policy.clone();
        next.ports[0].name = "b".into();
        handle.apply(next).expect("apply");
        assert_eq!(handle.policy().ports[0].name, "b");
        assert!(handle.snapshot().port_by_name("b").is_some());
        handle.reset_counters();
        assert!(service.running());
        service.stop();
        assert!(handle.stopping());
        assert!(matches!(handle.apply(policy), Err(ServiceError::Stopped)));
    }

    // Linux: elsewhere the interfaces are WinDivert's or unsupported, with other errors.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_missing_interface_is_refused() {
        let text = POLICY.replace(
            "[[endpoint]]",
            "[[endpoint]]\ninterface = \"s11-no-such-if\"",
        );
        let policy = strata_rules::policy::load(&text, "p.toml").expect("policy");
        match Service::start(policy, ServiceConfig::default()) {
            Err(ServiceError::Attach(why)) => assert!(why.contains("s11-no-such-if"), "{why}"),
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("started without its interface"),
        }
    }
}
