//! The worker loop (DESIGN §5): take a batch from a device, run the engine on each frame,
//! send each output to the device that carries its port. The policy snapshot is looked
//! at once per batch, so every frame of a batch is judged by one policy.
//!
//! `strata replay` is this loop over a capture device, the benchmarks over a memory
//! device, and the service over the host's interfaces.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::device::handover::Handoff;
use crate::device::{self, Batch, Device, DeviceCounters, DeviceError, Received, Transmit};
use crate::engine::{Engine, Ingress, Outcome, OutputKind, Rx};
use crate::policy::{CompiledPolicy, PortId, Published};
use crate::report::Report;
use crate::state::ownership::{self, Owner};
use crate::verdict::{Answer, VerdictRecord};

/// Frames per batch.
pub const BATCH: usize = 64;

/// Sees every frame's outcome, in order (replay writes verdict records; the service
/// could log).
pub trait Observer {
    fn observe(
        &mut self,
        index: u64,
        outcome: &Outcome<'_>,
        policy: &CompiledPolicy,
    ) -> Result<(), WorkerError>;
}

/// Observes nothing.
impl Observer for () {
    fn observe(&mut self, _: u64, _: &Outcome<'_>, _: &CompiledPolicy) -> Result<(), WorkerError> {
        Ok(())
    }
}

/// What the control thread asks a running worker, answered between two poll rounds (no
/// lock on the packet path: the worker reads its own state and replies on a channel).
pub enum Request {
    /// The worker's figures.
    Report(Sender<WorkerReport>),
    /// Zero every counter (flows and connections stay).
    ResetCounters(Sender<()>),
    /// Runs a function on the worker's engine, read-only (the control plane's listings,
    /// e.g. connections); it answers on a channel it carries.
    Inspect(Box<dyn FnOnce(&Engine) + Send>),
}

/// One worker's answer to [`Request::Report`].
#[derive(Clone, Debug)]
pub struct WorkerReport {
    pub report: Report,
    /// Each device's own counters, by name.
    pub devices: Vec<(String, DeviceCounters)>,
    /// Frames handed to their owner, and dropped on a full handover queue.
    pub handed_over: u64,
    pub handover_dropped: u64,
}

/// How long an idle worker sleeps at most before it looks at its stop flag and
/// requests again.
const IDLE_WAIT: Duration = Duration::from_millis(50);

/// Why the loop stopped early.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// An observer could not record an outcome.
    #[error("{what}: {err}")]
    Observer {
        what: &'static str,
        err: std::io::Error,
    },
}

/// A worker: an engine, where its policy comes from, and the batch it receives into.
pub struct Worker {
    engine: Engine,
    source: Option<Published>,
    batch: Batch,
    /// Which device carries each port's output (by slot), and the uplink's; recomputed
    /// for each new snapshot.
    routes: Vec<Option<usize>>,
    uplink: Option<usize>,
    /// Which devices want verdict notes with what they send.
    notes: Vec<bool>,
    routed_for: u64,
    /// Frames processed so far (the index of the next one).
    frames: u64,
    /// Time spent in the engine call, when measured.
    engine_time: Option<Duration>,
    /// Where control requests come from (the service).
    requests: Option<Receiver<Request>>,
    /// With several workers: this one's index and the queues to the others.
    handoff: Option<Handoff>,
    /// When the uplink's unknown neighbours were last asked for (live devices only).
    solicited: Option<Instant>,
    solicitations: Vec<Vec<u8>>,
    /// The batch's frames parsed (the first stage), kept between batches.
    parsed: Vec<ParseResult>,
}

type ParseResult = Result<crate::packet::Parsed, crate::packet::ParseError>;

/// How often the uplink's unknown neighbours are asked for.
const SOLICIT_EVERY: Duration = Duration::from_secs(1);

impl Worker {
    pub fn new(engine: Engine) -> Worker {
        Worker {
            engine,
            source: None,
            batch: Batch::new(BATCH),
            routes: Vec::new(),
            uplink: None,
            notes: Vec::new(),
            routed_for: 0,
            frames: 0,
            engine_time: None,
            requests: None,
            handoff: None,
            solicited: None,
            solicitations: Vec::new(),
            parsed: Vec::with_capacity(BATCH),
        }
    }

    /// Asks for the uplink's unknown neighbours (ARP, ND) once a second, out of the
    /// uplink's device: the service's workers do, replay does not.
    pub fn resolving(mut self) -> Worker {
        self.solicited = Some(Instant::now() - SOLICIT_EVERY);
        self
    }

    /// Answers the requests that arrive on `requests`, once per poll round.
    pub fn serving(mut self, requests: Receiver<Request>) -> Worker {
        self.requests = Some(requests);
        self
    }

    /// One of several workers (DESIGN §5): frames another worker owns are handed to it.
    pub fn sharing(mut self, handoff: Handoff) -> Worker {
        self.handoff = Some(handoff);
        self
    }

    /// Follows the snapshots published in `source`.
    pub fn follow(mut self, source: Published) -> Worker {
        self.source = Some(source);
        self
    }

    /// Measures the time spent in the engine call (replay's rate figure).
    pub fn timed(mut self) -> Worker {
        self.engine_time = Some(Duration::ZERO);
        self
    }

    /// The set of devices changed (one attached or detached): ports are routed to
    /// devices afresh at the next round.
    pub fn reroute(&mut self) {
        self.routed_for = 0;
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    pub fn frames(&self) -> u64 {
        self.frames
    }

    pub fn engine_time(&self) -> Option<Duration> {
        self.engine_time
    }

    /// Runs until every device is finished, or `stop` is set. A round that brought no
    /// frame sleeps until a device may have some (live devices only: files and memory
    /// always have frames until they finish).
    pub fn run(
        &mut self,
        devices: &mut [&mut dyn Device],
        observer: &mut dyn Observer,
        stop: &AtomicBool,
    ) -> Result<(), WorkerError> {
        while !stop.load(Ordering::Relaxed) {
            let before = self.frames;
            if !self.poll(devices, observer)? {
                break;
            }
            if self.frames == before {
                device::wait_any(devices, IDLE_WAIT);
            }
        }
        for d in devices.iter_mut() {
            d.flush()?;
        }
        Ok(())
    }

    /// One batch from each device, then what was sent is flushed and control requests
    /// are answered; `false` once every device is finished.
    pub fn poll(
        &mut self,
        devices: &mut [&mut dyn Device],
        observer: &mut dyn Observer,
    ) -> Result<bool, WorkerError> {
        self.refresh(devices);
        let mut active = false;
        for i in 0..devices.len() {
            self.batch.clear();
            let Some(dev) = devices.get_mut(i) else { break };
            match dev.recv(&mut self.batch)? {
                Received::Finished => continue,
                Received::Idle => {
                    active = true;
                    continue;
                }
                Received::Frames => active = true,
            }
            self.refresh(devices);
            let handed = devices.get(i).is_some_and(|d| d.is_handover());
            self.process_batch(devices, observer, handed)?;
        }
        self.solicit(devices)?;
        for d in devices.iter_mut() {
            d.flush()?;
        }
        if let Some(h) = self.handoff.as_mut() {
            h.notify();
        }
        self.serve(devices);
        Ok(active)
    }

    /// Sends the requests for the uplink's unknown neighbours, when they are due.
    fn solicit(&mut self, devices: &mut [&mut dyn Device]) -> Result<(), WorkerError> {
        let Some(last) = self.solicited else {
            return Ok(());
        };
        if last.elapsed() < SOLICIT_EVERY {
            return Ok(());
        }
        self.solicited = Some(Instant::now());
        let Some(dev) = self.uplink.and_then(|d| devices.get_mut(d)) else {
            return Ok(());
        };
        self.solicitations.clear();
        self.engine.solicit(&mut self.solicitations);
        let policy = self.engine.policy();
        for frame in &self.solicitations {
            dev.send(&Transmit {
                port: PortId::Uplink,
                port_name: policy.port_name(PortId::Uplink),
                frame,
                orig_len: frame.len() as u32,
                ts_ns: 0,
                note: None,
            })?;
        }
        Ok(())
    }

    /// Answers the control requests waiting, if any.
    fn serve(&mut self, devices: &mut [&mut dyn Device]) {
        let Some(requests) = &self.requests else {
            return;
        };
        while let Ok(r) = requests.try_recv() {
            match r {
                Request::Report(reply) => {
                    let (handed_over, handover_dropped) = self
                        .handoff
                        .as_ref()
                        .map_or((0, 0), |h| (h.handed, h.dropped));
                    let _ = reply.send(WorkerReport {
                        report: self.engine.report(),
                        devices: devices
                            .iter_mut()
                            .map(|d| (d.name().to_string(), d.counters()))
                            .collect(),
                        handed_over,
                        handover_dropped,
                    });
                }
                Request::ResetCounters(reply) => {
                    self.engine.reset_counters();
                    let _ = reply.send(());
                }
                Request::Inspect(f) => f(&self.engine),
            }
        }
    }

    /// Installs the newest published snapshot, if it changed, and routes ports to devices
    /// (and devices to the ports they receive for).
    fn refresh(&mut self, devices: &mut [&mut dyn Device]) {
        if let Some(src) = &self.source {
            let current = src.load();
            if current.serial != self.engine.policy().serial {
                self.engine.install(current);
            }
        }
        let policy = self.engine.policy();
        if self.routed_for == policy.serial {
            return;
        }
        let carrier = |port: PortId| devices.iter().position(|d| d.carries(port, policy));
        self.routes = (0..policy.slots())
            .map(|s| carrier(PortId::Endpoint(s)))
            .collect();
        self.uplink = carrier(PortId::Uplink);
        self.notes = devices.iter().map(|d| d.wants_notes()).collect();
        for d in devices.iter_mut() {
            d.attach(policy);
        }
        self.routed_for = policy.serial;
    }

    /// Runs the batch through the engine; `handed`: the batch came from other workers
    /// (never handed on again, whatever this worker thinks of its owner).
    fn process_batch(
        &mut self,
        devices: &mut [&mut dyn Device],
        observer: &mut dyn Observer,
        handed: bool,
    ) -> Result<(), WorkerError> {
        let Worker {
            engine,
            batch,
            routes,
            uplink,
            notes,
            frames,
            engine_time,
            handoff,
            parsed,
            ..
        } = self;
        // The snapshot does not change within a batch (it is installed between batches):
        // one handle for the batch names every outcome.
        let policy = std::sync::Arc::clone(engine.policy());
        // One frame, parsed once for the owner and the engine. A macro pastes the body
        // into both loops below, where it inlines (its closure, called once in place,
        // only turns `return` into "next frame"); one closure called from two loops was
        // not inlined, and the hit path paid ~60 instructions a packet for the call.
        macro_rules! one_frame {
            ($f:expr, $parsed:expr) => {{
                let f: &crate::device::RxFrame = $f;
                let parsed: &ParseResult = $parsed;
                let r: Result<(), WorkerError> = (|| {
                    if let (Some(h), false, Some(port)) = (handoff.as_mut(), handed, f.port) {
                        match ownership::owner_parsed(&policy, port, &f.data, parsed, h.workers()) {
                            Owner::Worker(w) if w != h.me() => {
                                h.send(w, &f.data, port, f.ts_ns);
                                return Ok(());
                            }
                            Owner::All => {
                                let me = h.me();
                                for w in (0..h.workers()).filter(|&w| w != me) {
                                    h.send(w, &f.data, port, f.ts_ns);
                                }
                            }
                            Owner::Worker(_) | Owner::Any => {}
                        }
                    }
                    let rx = Rx {
                        data: &f.data,
                        orig_len: f.orig_len,
                        ts_ns: f.ts_ns,
                        ingress: match (&f.port, &f.interface) {
                            (Some(p), _) => Ingress::Port(*p),
                            (None, Some(name)) => Ingress::Named(name),
                            (None, None) => Ingress::Auto,
                        },
                        link_error: f.link_error,
                    };
                    let index = *frames;
                    *frames += 1;
                    let started = engine_time.is_some().then(Instant::now);
                    let outcome = engine.process_parsed(rx, parsed);
                    if let (Some(t), Some(s)) = (engine_time.as_mut(), started) {
                        *t += s.elapsed();
                    }
                    observer.observe(index, &outcome, &policy)?;
                    let Some(out) = outcome.output else {
                        return Ok(());
                    };
                    let route = match out.port {
                        PortId::Endpoint(s) => routes.get(s).copied().flatten(),
                        PortId::Uplink => *uplink,
                    };
                    let Some(d) = route else { return Ok(()) };
                    let wants_notes = notes.get(d).copied().unwrap_or(false);
                    let Some(dev) = devices.get_mut(d) else {
                        return Ok(());
                    };
                    let note = wants_notes.then(|| {
                        let path = VerdictRecord::of(index, &policy, &outcome.verdict).path();
                        match (out.kind, outcome.verdict.answer) {
                            (OutputKind::Answer, Some(Answer::TooBig { .. })) => {
                                format!("{path}; answered with ICMP too big")
                            }
                            _ => path,
                        }
                    });
                    dev.send(&Transmit {
                        port: out.port,
                        port_name: policy.port_name(out.port),
                        frame: out.frame,
                        orig_len: out.orig_len,
                        ts_ns: f.ts_ns,
                        note: note.as_deref(),
                    })?;
                    Ok(())
                })();
                r?;
            }};
        }
        // Once the tables outgrow the caches the batch goes in stages, as VPP runs its
        // vectors: every frame parsed, then every frame's flow state looked up, so that
        // the memory misses of the whole batch overlap instead of stalling each packet in
        // turn, then each packet processed with its state in the cache. Below that, each
        // frame is parsed where it is processed (a parse kept and read back costs more).
        parsed.clear();
        if engine.tables_outgrow_caches() {
            parsed.extend(
                batch
                    .frames()
                    .iter()
                    .map(|f| crate::packet::parse_captured(&f.data, f.orig_len)),
            );
            for (f, p) in batch.frames().iter().zip(parsed.iter()) {
                engine.warm(f.port, p);
            }
            for (f, p) in batch.frames().iter().zip(parsed.iter()) {
                one_frame!(f, p);
            }
        } else {
            for f in batch.frames() {
                one_frame!(f, &crate::packet::parse_captured(&f.data, f.orig_len));
            }
        }
        Ok(())
    }
}
