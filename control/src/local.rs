//! An in-process dataplane: one worker thread running the real worker loop over frames
//! handed to it in memory, following the published snapshot, and answering the control
//! plane's requests (report, connections, counter reset) between batches — the service's
//! shape without the host's interfaces. Tests and `strata bench control` drive it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded, unbounded};
use strata_dataplane::device::{Batch, Device, DeviceError, Received, Transmit};
use strata_dataplane::engine::Engine;
use strata_dataplane::policy::{CompileOptions, CompiledPolicy, PortId, Published};
use strata_dataplane::report::Report;
use strata_dataplane::state::Limits;
use strata_dataplane::worker::{Observer, Worker};
use strata_rules::model::Policy;

use crate::api::{Dataplane, engine_flows};
use crate::protocol::FlowInfo;
use crate::publish::Publisher;

/// A frame for the worker: its bytes and its packet time (ns).
pub type Frame = (Vec<u8>, u64);

enum Ask {
    Report(Sender<Report>),
    Flows(Option<String>, Sender<Vec<FlowInfo>>),
    Reset(Sender<()>),
}

/// Frames from a channel; what leaves is counted.
struct ChannelDevice {
    frames: Receiver<Frame>,
    sent: u64,
}

impl Device for ChannelDevice {
    fn recv(&mut self, batch: &mut Batch) -> Result<Received, DeviceError> {
        // Wait a little for the first frame (so an idle worker does not spin), then take
        // what is there.
        let first = match self.frames.recv_timeout(Duration::from_millis(1)) {
            Ok(f) => f,
            Err(RecvTimeoutError::Timeout) => return Ok(Received::Idle),
            Err(RecvTimeoutError::Disconnected) => return Ok(Received::Finished),
        };
        let mut next = Some(first);
        while let Some((data, ts_ns)) = next.take() {
            let Some(slot) = batch.next_slot() else { break };
            slot.data.extend_from_slice(&data);
            slot.orig_len = data.len() as u32;
            slot.ts_ns = ts_ns;
            if batch.is_full() {
                break;
            }
            next = self.frames.try_recv().ok();
        }
        Ok(Received::Frames)
    }

    fn send(&mut self, _tx: &Transmit<'_>) -> Result<(), DeviceError> {
        self.sent += 1;
        Ok(())
    }

    fn carries(&self, _port: PortId, _policy: &CompiledPolicy) -> bool {
        true
    }
}

/// One worker thread over frames sent to it.
pub struct LocalDataplane {
    publisher: Publisher,
    frames: Option<Sender<Frame>>,
    asks: Sender<Ask>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LocalDataplane {
    /// Compiles `policy`, publishes it, and starts the worker; `observer` sees every
    /// frame's outcome.
    pub fn start(
        policy: &Policy,
        options: CompileOptions,
        mut observer: Box<dyn Observer + Send>,
    ) -> LocalDataplane {
        let published = Published::new(CompiledPolicy::compile(policy, None, options));
        let (frames_tx, frames_rx) = bounded::<Frame>(4096);
        let (asks_tx, asks_rx) = unbounded::<Ask>();
        let stop = Arc::new(AtomicBool::new(false));
        let source = published.clone();
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("strata-worker".into())
            .spawn(move || {
                let engine = Engine::new(source.load(), Limits::default());
                let mut worker = Worker::new(engine).follow(source);
                let mut device = ChannelDevice {
                    frames: frames_rx,
                    sent: 0,
                };
                loop {
                    while let Ok(ask) = asks_rx.try_recv() {
                        answer(worker.engine_mut(), ask);
                    }
                    if stopping.load(Ordering::Relaxed) {
                        break;
                    }
                    let mut devices: [&mut dyn Device; 1] = [&mut device];
                    match worker.poll(&mut devices, observer.as_mut()) {
                        Ok(true) => {}
                        Ok(false) | Err(_) => {
                            // No more frames: keep answering until told to stop.
                            match asks_rx.recv_timeout(Duration::from_millis(20)) {
                                Ok(ask) => answer(worker.engine_mut(), ask),
                                Err(RecvTimeoutError::Timeout) => {}
                                Err(RecvTimeoutError::Disconnected) => break,
                            }
                        }
                    }
                }
            })
            .ok();
        LocalDataplane {
            publisher: Publisher::following(published),
            frames: Some(frames_tx),
            asks: asks_tx,
            stop,
            thread,
        }
    }

    /// Where snapshots are published (tests publish directly, without the controller).
    pub fn published(&self) -> Published {
        self.publisher.published()
    }

    /// Hands frames to the worker (blocks while its queue is full).
    pub fn send(&self, frame: Frame) -> bool {
        self.frames.as_ref().is_some_and(|f| f.send(frame).is_ok())
    }

    /// Waits until the worker has taken every frame sent so far and answered.
    pub fn sync(&self) {
        while self.frames.as_ref().is_some_and(|f| !f.is_empty()) {
            std::thread::sleep(Duration::from_micros(200));
        }
        // A report is answered between batches: once it comes back, the batch that held
        // the last frame is done.
        let _ = self.report();
    }

    fn ask<T>(&self, make: impl FnOnce(Sender<T>) -> Ask) -> Result<T, String> {
        let (tx, rx) = bounded(1);
        self.asks
            .send(make(tx))
            .map_err(|_| "the worker has stopped".to_string())?;
        rx.recv_timeout(Duration::from_secs(5))
            .map_err(|_| "the worker did not answer within 5 s".to_string())
    }
}

fn answer(engine: &mut Engine, ask: Ask) {
    match ask {
        Ask::Report(tx) => {
            let _ = tx.send(engine.report());
        }
        Ask::Flows(port, tx) => {
            let _ = tx.send(engine_flows(engine, port.as_deref()));
        }
        Ask::Reset(tx) => {
            engine.reset_counters();
            let _ = tx.send(());
        }
    }
}

impl Drop for LocalDataplane {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.frames = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Dataplane for LocalDataplane {
    fn publish(&self, policy: &Policy, changed: Option<&[String]>) -> Result<Duration, String> {
        Ok(self.publisher.apply_changed(policy, changed))
    }

    fn snapshot(&self) -> Arc<CompiledPolicy> {
        self.publisher.current()
    }

    fn report(&self) -> Result<Report, String> {
        self.ask(Ask::Report)
    }

    fn flows(&self, port: Option<&str>) -> Result<Vec<FlowInfo>, String> {
        let port = port.map(str::to_string);
        self.ask(|tx| Ask::Flows(port, tx))
    }

    fn reset_counters(&self) -> Result<(), String> {
        self.ask(Ask::Reset)
    }

    fn workers(&self) -> usize {
        1
    }
}
