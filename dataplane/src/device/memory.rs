//! Frames from memory as a device: the benchmarks' workload (the same frames sent over
//! and over, DPDK testpmd's way) and tests. What leaves is counted, not kept.

use super::{Batch, Device, DeviceError, Received, Transmit};
use crate::policy::{CompiledPolicy, PortId};

/// Sends `frames` in order, `rounds` times over, each entering at `port` (or by its
/// addresses when `None`).
pub struct MemoryDevice {
    frames: Vec<Vec<u8>>,
    port: Option<PortId>,
    next: usize,
    rounds_left: u64,
    ts_ns: u64,
    /// Frames sent out, and their bytes.
    pub sent: u64,
    pub sent_bytes: u64,
}

impl MemoryDevice {
    pub fn new(frames: Vec<Vec<u8>>, port: Option<PortId>, rounds: u64) -> MemoryDevice {
        MemoryDevice {
            frames,
            port,
            next: 0,
            rounds_left: rounds,
            ts_ns: 1,
            sent: 0,
            sent_bytes: 0,
        }
    }

    /// How many frames one round sends.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Sends the frames `rounds` more times.
    pub fn rewind(&mut self, rounds: u64) {
        self.next = 0;
        self.rounds_left = rounds;
    }
}

impl Device for MemoryDevice {
    fn recv(&mut self, batch: &mut Batch) -> Result<Received, DeviceError> {
        if self.frames.is_empty() {
            return Ok(Received::Finished);
        }
        while self.rounds_left > 0 && !batch.is_full() {
            let Some(frame) = self.frames.get(self.next) else {
                break;
            };
            let Some(slot) = batch.next_slot() else { break };
            slot.data.extend_from_slice(frame);
            slot.orig_len = frame.len() as u32;
            slot.ts_ns = self.ts_ns;
            slot.port = self.port;
            self.next += 1;
            if self.next == self.frames.len() {
                self.next = 0;
                self.rounds_left -= 1;
                self.ts_ns += 1;
            }
        }
        Ok(if batch.is_empty() {
            Received::Finished
        } else {
            Received::Frames
        })
    }

    fn send(&mut self, tx: &Transmit<'_>) -> Result<(), DeviceError> {
        self.sent += 1;
        self.sent_bytes += tx.frame.len() as u64;
        Ok(())
    }

    fn carries(&self, _port: PortId, _policy: &CompiledPolicy) -> bool {
        true
    }
}
