//! Windows: the WinDivert device, one per interface the policy names, feeding the same
//! engine as AF_PACKET does on Linux. WinDivert's network layer diverts the IP packets
//! arriving on that interface (filter `inbound and ifIdx == N`); what the host's own
//! stack sends is not diverted. A reader thread blocks in `WinDivertRecv` and queues
//! packets; [`Device::recv`] takes them without blocking, wrapping each in an Ethernet
//! header, and [`Device::send`] injects what leaves a port outbound on its interface.
//! The translations are in [`super::windivert_map`], tested on every platform.
//!
//! On Windows, a policy's `interface` is the interface index (`Get-NetAdapter`'s
//! `ifIndex`), e.g. `interface = "12"`.

use std::sync::Arc;

use crossbeam_channel::{Receiver, bounded};
use strata_rules::model::Mac;
use windivert::prelude::*;

use super::mapping::port_of_interface;
use super::windivert_map::{interface_index_of, ip_of, source_mac, to_frame};
use super::{Batch, Device, DeviceCounters, DeviceError, Received, Transmit};
use crate::policy::{CompiledPolicy, PortId};

/// Packets queued between the reader thread and the worker.
const QUEUE: usize = 8192;

/// The WinDivert handle, shared by the reader thread (receiving) and the worker
/// (injecting).
struct Handle(WinDivert<NetworkLayer>);

// SAFETY: a WinDivert handle is a kernel handle that WinDivert documents as usable from
// several threads at once (one may receive while another sends); the wrapper holds
// nothing else.
unsafe impl Send for Handle {}
// SAFETY: as above: `WinDivertRecv` and `WinDivertSend` may run concurrently.
unsafe impl Sync for Handle {}

/// One interface attached through WinDivert.
pub struct WinDivertDevice {
    name: String,
    index: u32,
    handle: Arc<Handle>,
    rx: Receiver<Vec<u8>>,
    port: Option<PortId>,
    src_mac: Mac,
    dst_mac: Mac,
    counters: DeviceCounters,
}

/// Why an interface could not be attached.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("interface `{0}`: on Windows give the interface index (Get-NetAdapter ifIndex)")]
    NotAnIndex(String),
    #[error("interface `{name}`: opening WinDivert (needs Administrator): {err}")]
    Open { name: String, err: String },
}

impl WinDivertDevice {
    pub fn open(name: &str) -> Result<WinDivertDevice, OpenError> {
        let index = interface_index_of(name).ok_or_else(|| OpenError::NotAnIndex(name.into()))?;
        let filter = format!("inbound and ifIdx == {index}");
        let divert =
            WinDivert::network(&filter, 0, WinDivertFlags::new()).map_err(|e| OpenError::Open {
                name: name.into(),
                err: e.to_string(),
            })?;
        let handle = Arc::new(Handle(divert));
        let (tx, rx) = bounded(QUEUE);
        let reader = Arc::clone(&handle);
        // The reader ends when the handle fails (closed at process exit).
        std::thread::Builder::new()
            .name(format!("windivert-{index}"))
            .spawn(move || {
                let mut buf = vec![0u8; 65535];
                while let Ok(p) = reader.0.recv(Some(&mut buf)) {
                    if tx.try_send(p.data.into_owned()).is_err() && tx.is_empty() {
                        break;
                    }
                }
            })
            .map_err(|e| OpenError::Open {
                name: name.into(),
                err: e.to_string(),
            })?;
        Ok(WinDivertDevice {
            name: name.to_string(),
            index,
            handle,
            rx,
            port: None,
            src_mac: Mac::ZERO,
            dst_mac: Mac::ZERO,
            counters: DeviceCounters::default(),
        })
    }
}

impl Device for WinDivertDevice {
    fn recv(&mut self, batch: &mut Batch) -> Result<Received, DeviceError> {
        while !batch.is_full() {
            let Ok(ip) = self.rx.try_recv() else { break };
            let Some(port) = self.port else {
                self.counters.rx_unattached += 1;
                continue;
            };
            let Some(slot) = batch.next_slot() else { break };
            if !to_frame(&ip, self.src_mac, self.dst_mac, &mut slot.data) {
                slot.data.clear();
            }
            slot.orig_len = slot.data.len() as u32;
            slot.ts_ns = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            slot.port = Some(port);
            self.counters.rx += 1;
        }
        Ok(if batch.is_empty() {
            Received::Idle
        } else {
            Received::Frames
        })
    }

    fn send(&mut self, tx: &Transmit<'_>) -> Result<(), DeviceError> {
        let Some(ip) = ip_of(tx.frame) else {
            // ARP and other link-layer answers: Windows resolves its own neighbours.
            return Ok(());
        };
        // SAFETY: the address is zeroed by `new`; every field WinDivert reads for an
        // injection (interface, direction, checksum flags) is set below.
        let mut packet = unsafe { WinDivertPacket::<NetworkLayer>::new(ip.to_vec()) };
        packet.address.set_interface_index(self.index);
        packet.address.set_subinterface_index(0);
        packet.address.set_outbound(true);
        packet.address.set_ip_checksum(true);
        packet.address.set_tcp_checksum(true);
        packet.address.set_udp_checksum(true);
        match self.handle.0.send(&packet) {
            Ok(_) => self.counters.tx += 1,
            Err(_) => self.counters.tx_errors += 1,
        }
        Ok(())
    }

    fn carries(&self, port: PortId, policy: &CompiledPolicy) -> bool {
        super::mapping::interface_of(port, policy) == Some(self.name.as_str())
    }

    fn attach(&mut self, policy: &CompiledPolicy) {
        self.port = port_of_interface(&self.name, policy);
        if let Some(p) = self.port {
            self.src_mac = source_mac(p, policy);
        }
        self.dst_mac = policy.uplink.mac;
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn counters(&mut self) -> DeviceCounters {
        self.counters
    }
}
