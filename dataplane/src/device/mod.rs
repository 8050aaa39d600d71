//! Devices: where frames come from and go to. One trait for every kind — a capture file
//! (replay), memory (benchmarks, tests), and the host's interfaces (AF_PACKET on Linux,
//! WinDivert on Windows) — so that one worker loop ([`crate::worker`]) drives them all
//! and replay is the service with a file for a NIC.
//!
//! A device receives frames in batches into a [`Batch`] the worker owns (buffers reused
//! from batch to batch), and sends one frame at a time out of a port it carries.

#[cfg(target_os = "linux")]
pub mod afpacket;
pub mod capture;
pub mod handover;
pub mod mapping;
pub mod memory;
pub mod offload;
#[cfg(windows)]
pub mod windivert;
pub mod windivert_map;

use std::time::Duration;

use crate::policy::{CompiledPolicy, PortId};

/// One received frame, in a buffer the batch reuses.
#[derive(Clone, Debug, Default)]
pub struct RxFrame {
    pub data: Vec<u8>,
    /// Its length on the wire; more than `data.len()` when a capture cut it short.
    pub orig_len: u32,
    pub ts_ns: u64,
    /// The port the device received it on, when the device knows.
    pub port: Option<PortId>,
    /// A capture's interface name (pcapng), naming the ingress port.
    pub interface: Option<String>,
    /// The record could not be made an Ethernet frame.
    pub link_error: bool,
}

/// Frames received in one go.
#[derive(Debug)]
pub struct Batch {
    frames: Vec<RxFrame>,
    len: usize,
}

impl Batch {
    pub fn new(capacity: usize) -> Batch {
        Batch {
            frames: (0..capacity.max(1)).map(|_| RxFrame::default()).collect(),
            len: 0,
        }
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_full(&self) -> bool {
        self.len == self.frames.len()
    }

    /// The next free slot, its buffer cleared but kept; `None` when the batch is full.
    pub fn next_slot(&mut self) -> Option<&mut RxFrame> {
        let f = self.frames.get_mut(self.len)?;
        self.len += 1;
        f.data.clear();
        f.orig_len = 0;
        f.ts_ns = 0;
        f.port = None;
        f.interface = None;
        f.link_error = false;
        Some(f)
    }

    pub fn frames(&self) -> &[RxFrame] {
        self.frames.get(..self.len).unwrap_or(&[])
    }
}

/// What a receive brought.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// Frames are in the batch.
    Frames,
    /// Nothing now; more may come.
    Idle,
    /// Nothing will ever come again (the end of a capture).
    Finished,
}

/// A frame to send.
#[derive(Clone, Copy, Debug)]
pub struct Transmit<'a> {
    pub port: PortId,
    pub port_name: &'a str,
    pub frame: &'a [u8],
    pub orig_len: u32,
    pub ts_ns: u64,
    /// The verdict path, for devices that record it (pcapng comments).
    pub note: Option<&'a str>,
}

/// Why a device failed.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("{device}: {err}")]
    Io { device: String, err: std::io::Error },
}

/// What a live device counts of its own: frames in and out, and those it could not
/// pass on, by reason (the engine never saw them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceCounters {
    pub rx: u64,
    pub tx: u64,
    /// Cut short by the receive ring (a GSO/TSO super-packet larger than a block):
    /// cannot be forwarded whole.
    pub rx_truncated: u64,
    /// Received on an interface no port of the current policy names.
    pub rx_unattached: u64,
    /// Dropped by the kernel because the receive ring was full (the worker fell behind).
    pub rx_ring_full: u64,
    /// Larger than a transmit slot, or the transmit ring was full.
    pub tx_dropped: u64,
    /// The kernel refused a transmit round (interface down, queue full).
    pub tx_errors: u64,
    /// Partial checksums (checksum offload) completed before the engine.
    pub checksums_completed: u64,
}

impl DeviceCounters {
    pub fn add(&mut self, o: &DeviceCounters) {
        self.rx += o.rx;
        self.tx += o.tx;
        self.rx_truncated += o.rx_truncated;
        self.rx_unattached += o.rx_unattached;
        self.rx_ring_full += o.rx_ring_full;
        self.tx_dropped += o.tx_dropped;
        self.tx_errors += o.tx_errors;
        self.checksums_completed += o.checksums_completed;
    }
}

/// Sleeps until one of `devices` may have frames, or `timeout` passes: in poll(2) on
/// their descriptors where they have them, else a short nap.
pub fn wait_any(devices: &[&mut dyn Device], timeout: Duration) {
    let fds: smallvec::SmallVec<[i32; 16]> = devices.iter().filter_map(|d| d.ready_fd()).collect();
    let blind = fds.len() < devices.len();
    #[cfg(target_os = "linux")]
    if !fds.is_empty() {
        afpacket::wait_readable(&fds, if blind { BLIND_WAIT } else { timeout });
        return;
    }
    std::thread::sleep(if blind { BLIND_WAIT } else { timeout });
}

/// How long an idle worker naps when a device cannot tell it when frames arrive.
const BLIND_WAIT: Duration = Duration::from_millis(1);

/// A source and sink of frames.
pub trait Device {
    /// Receives up to the batch's capacity.
    fn recv(&mut self, batch: &mut Batch) -> Result<Received, DeviceError>;

    /// Sends a frame out of one of the ports this device carries.
    fn send(&mut self, tx: &Transmit<'_>) -> Result<(), DeviceError>;

    /// Whether frames leaving `port` go out through this device.
    fn carries(&self, port: PortId, policy: &CompiledPolicy) -> bool;

    /// Whether `send` wants the verdict path in [`Transmit::note`] (building it costs).
    fn wants_notes(&self) -> bool {
        false
    }

    /// Pushes out anything buffered.
    fn flush(&mut self) -> Result<(), DeviceError> {
        Ok(())
    }

    /// A new snapshot is current: a device that receives for one port (an interface's)
    /// finds which.
    fn attach(&mut self, _policy: &CompiledPolicy) {}

    /// A descriptor that polls readable when frames wait, so that an idle worker can
    /// sleep on it; `None` for devices that never idle (files, memory) or cannot say.
    fn ready_fd(&self) -> Option<i32> {
        None
    }

    /// The interface or source, for logs.
    fn name(&self) -> &str {
        ""
    }

    /// The device's own counters (`&mut`: a device may read the kernel's on the way).
    fn counters(&mut self) -> DeviceCounters {
        DeviceCounters::default()
    }

    /// Whether this device brings frames other workers handed over (they are never
    /// handed over again).
    fn is_handover(&self) -> bool {
        false
    }
}
