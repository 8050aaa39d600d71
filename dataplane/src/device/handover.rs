//! Handing frames between workers (DESIGN §5, "mutable state has one owner"): a worker
//! that receives a frame another worker owns passes it on through a bounded lock-free
//! queue (crossbeam), and the owner receives it through a [`HandoverDevice`] in its own
//! device list, as if its own interface had: same ingress port, same packet time.
//!
//! Buffers travel with the frames and come back through a shared free list, so that a
//! steady stream of handovers allocates nothing. A full queue drops the frame (counted):
//! a worker never blocks on another.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};

use super::{Batch, Device, DeviceCounters, DeviceError, Received, Transmit};
use crate::policy::{CompiledPolicy, PortId};

/// Frames a queue holds before the sender drops.
pub const QUEUE: usize = 4096;

/// A frame on its way to its owner.
pub struct Handed {
    pub data: Vec<u8>,
    pub port: PortId,
    pub ts_ns: u64,
}

/// Wakes an idle worker: an eventfd on Linux (its device polls on it), nothing
/// elsewhere (the worker naps briefly instead).
#[derive(Default)]
pub struct Wake {
    #[cfg(target_os = "linux")]
    fd: Option<super::afpacket::EventFd>,
}

impl Wake {
    pub fn new() -> Wake {
        Wake {
            #[cfg(target_os = "linux")]
            fd: super::afpacket::EventFd::new().ok(),
        }
    }

    fn ring(&self) {
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.fd {
            fd.signal();
        }
    }

    fn clear(&self) {
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.fd {
            fd.clear();
        }
    }

    fn raw(&self) -> Option<i32> {
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.fd {
            return Some(fd.raw());
        }
        None
    }
}

/// The queues of a set of workers: build once, then give each worker its
/// [`Handoff`] and [`HandoverDevice`].
pub struct Queues {
    senders: Vec<Sender<Handed>>,
    receivers: Vec<Option<Receiver<Handed>>>,
    wakes: Vec<Arc<Wake>>,
    free: (Sender<Vec<u8>>, Receiver<Vec<u8>>),
}

impl Queues {
    pub fn new(workers: usize) -> Queues {
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..workers)
            .map(|_| bounded(QUEUE))
            .map(|(s, r)| (s, Some(r)))
            .unzip();
        Queues {
            senders,
            receivers,
            wakes: (0..workers).map(|_| Arc::new(Wake::new())).collect(),
            free: bounded(QUEUE * workers.max(1)),
        }
    }

    /// Worker `me`'s sending side and receiving device (`None` if taken already).
    pub fn for_worker(&mut self, me: usize) -> Option<(Handoff, HandoverDevice)> {
        let rx = self.receivers.get_mut(me)?.take()?;
        let handoff = Handoff {
            me,
            peers: self.senders.clone(),
            wakes: self.wakes.clone(),
            woken: vec![false; self.senders.len()],
            free: self.free.clone(),
            handed: 0,
            dropped: 0,
        };
        let device = HandoverDevice {
            rx,
            free: self.free.0.clone(),
            wake: Arc::clone(self.wakes.get(me)?),
            received: 0,
        };
        Some((handoff, device))
    }
}

/// A worker's way to hand frames to the others.
pub struct Handoff {
    me: usize,
    peers: Vec<Sender<Handed>>,
    wakes: Vec<Arc<Wake>>,
    woken: Vec<bool>,
    free: (Sender<Vec<u8>>, Receiver<Vec<u8>>),
    /// Frames handed over, and those dropped on a full queue.
    pub handed: u64,
    pub dropped: u64,
}

impl Handoff {
    /// This worker's index.
    pub fn me(&self) -> usize {
        self.me
    }

    pub fn workers(&self) -> usize {
        self.peers.len()
    }

    /// Queues a copy of `frame` for worker `to`.
    pub fn send(&mut self, to: usize, frame: &[u8], port: PortId, ts_ns: u64) {
        let Some(peer) = self.peers.get(to) else {
            return;
        };
        let mut data = self
            .free
            .1
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(2048));
        data.clear();
        data.extend_from_slice(frame);
        match peer.try_send(Handed { data, port, ts_ns }) {
            Ok(()) => {
                self.handed += 1;
                if let Some(w) = self.woken.get_mut(to) {
                    *w = true;
                }
            }
            Err(TrySendError::Full(h) | TrySendError::Disconnected(h)) => {
                self.dropped += 1;
                let _ = self.free.0.try_send(h.data);
            }
        }
    }

    /// Wakes the workers that were handed frames since the last call.
    pub fn notify(&mut self) {
        for (w, woken) in self.wakes.iter().zip(self.woken.iter_mut()) {
            if std::mem::take(woken) {
                w.ring();
            }
        }
    }
}

/// The frames other workers handed to this one.
pub struct HandoverDevice {
    rx: Receiver<Handed>,
    free: Sender<Vec<u8>>,
    wake: Arc<Wake>,
    received: u64,
}

impl Device for HandoverDevice {
    fn recv(&mut self, batch: &mut Batch) -> Result<Received, DeviceError> {
        self.wake.clear();
        while !batch.is_full() {
            let Ok(mut h) = self.rx.try_recv() else {
                break;
            };
            let Some(slot) = batch.next_slot() else { break };
            // The handed buffer becomes the slot's; the slot's old one goes back.
            std::mem::swap(&mut slot.data, &mut h.data);
            slot.orig_len = slot.data.len() as u32;
            slot.ts_ns = h.ts_ns;
            slot.port = Some(h.port);
            let _ = self.free.try_send(h.data);
            self.received += 1;
        }
        Ok(if batch.is_empty() {
            Received::Idle
        } else {
            Received::Frames
        })
    }

    fn send(&mut self, _tx: &Transmit<'_>) -> Result<(), DeviceError> {
        Ok(())
    }

    fn carries(&self, _port: PortId, _policy: &CompiledPolicy) -> bool {
        false
    }

    fn ready_fd(&self) -> Option<i32> {
        self.wake.raw()
    }

    fn name(&self) -> &str {
        "handover"
    }

    fn counters(&mut self) -> DeviceCounters {
        DeviceCounters {
            rx: self.received,
            ..DeviceCounters::default()
        }
    }

    fn is_handover(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_reach_their_owner_with_port_and_time_and_buffers_come_back() {
        let mut q = Queues::new(2);
        let (mut h0, _d0) = q.for_worker(0).unwrap();
        let (_h1, mut d1) = q.for_worker(1).unwrap();
        assert!(q.for_worker(1).is_none());
        h0.send(1, b"frame-one", PortId::Endpoint(3), 42);
        h0.send(1, b"frame-two", PortId::Uplink, 43);
        h0.notify();
        let mut batch = Batch::new(8);
        assert_eq!(d1.recv(&mut batch).unwrap(), Received::Frames);
        let f = batch.frames();
        assert_eq!(f.len(), 2);
        assert_eq!(
            (&f[0].data[..], f[0].port, f[0].ts_ns),
            (&b"frame-one"[..], Some(PortId::Endpoint(3)), 42)
        );
        assert_eq!(f[1].port, Some(PortId::Uplink));
        // The slots' old buffers went to the free list: the next send reuses one.
        assert_eq!(q.free.1.len(), 2);
        batch.clear();
        assert_eq!(d1.recv(&mut batch).unwrap(), Received::Idle);
        assert_eq!(h0.handed, 2);
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let mut q = Queues::new(2);
        let (mut h0, _d0) = q.for_worker(0).unwrap();
        for _ in 0..QUEUE + 5 {
            h0.send(1, b"x", PortId::Uplink, 0);
        }
        assert_eq!(h0.handed, QUEUE as u64);
        assert_eq!(h0.dropped, 5);
    }
}
