//! Devices: where frames come from and go to. One trait for every kind — a capture file
//! (replay), memory (benchmarks, tests), and the host's interfaces (AF_PACKET on Linux,
//! WinDivert on Windows) — so that one worker loop ([`crate::worker`]) drives them all
//! and replay is the service with a file for a NIC.
//!
//! A device receives frames in batches into a [`Batch`] the worker owns (buffers reused
//! from batch to batch), and sends one frame at a time out of a port it carries.

pub mod capture;
pub mod memory;

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
}
