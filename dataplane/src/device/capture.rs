//! A capture file as a device: its records are the received frames (each entering at
//! the port its pcapng interface names, else by its addresses), and what leaves any port
//! is written to an optional pcapng file, one interface per port, each frame commented
//! with its verdict path.

use std::io::Write;

use super::{Batch, Device, DeviceError, Received, Transmit};
use crate::capture::{CaptureReader, PcapngWriter};
use crate::policy::{CompiledPolicy, PortId};

/// Replays a capture; records what leaves.
pub struct CaptureDevice {
    reader: CaptureReader,
    out: Option<PcapngWriter<Box<dyn Write>>>,
    /// Why reading stopped before the end of the file, if it did.
    error: Option<String>,
    finished: bool,
}

impl CaptureDevice {
    pub fn new(reader: CaptureReader, out: Option<PcapngWriter<Box<dyn Write>>>) -> CaptureDevice {
        CaptureDevice {
            reader,
            out,
            error: None,
            finished: false,
        }
    }

    /// The damage that stopped the replay early (a truncated or malformed capture): the
    /// frames before it were replayed.
    pub fn capture_error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Finishes the pcapng output, if any.
    pub fn finish(self) -> Result<(), DeviceError> {
        if let Some(w) = self.out {
            w.finish()
                .and_then(|mut w| w.flush())
                .map_err(|err| DeviceError::Io {
                    device: "pcapng output".into(),
                    err,
                })?;
        }
        Ok(())
    }
}

impl Device for CaptureDevice {
    fn recv(&mut self, batch: &mut Batch) -> Result<Received, DeviceError> {
        if self.finished {
            return Ok(Received::Finished);
        }
        while !batch.is_full() {
            match self.reader.next() {
                None => {
                    self.finished = true;
                    break;
                }
                Some(Err(e)) => {
                    self.error = Some(e.to_string());
                    self.finished = true;
                    break;
                }
                Some(Ok(f)) => {
                    let Some(slot) = batch.next_slot() else { break };
                    slot.data = f.data;
                    slot.orig_len = f.orig_len;
                    slot.ts_ns = f.ts_ns;
                    slot.interface = f.interface;
                    slot.link_error = f.link_error.is_some();
                }
            }
        }
        Ok(if batch.is_empty() {
            Received::Finished
        } else {
            Received::Frames
        })
    }

    fn send(&mut self, tx: &Transmit<'_>) -> Result<(), DeviceError> {
        let Some(w) = self.out.as_mut() else {
            return Ok(());
        };
        let iface = w.interface(tx.port_name);
        w.write(iface, tx.ts_ns, tx.frame, tx.orig_len, tx.note)
            .map_err(|err| DeviceError::Io {
                device: "pcapng output".into(),
                err,
            })
    }

    fn carries(&self, _port: PortId, _policy: &CompiledPolicy) -> bool {
        true
    }

    fn wants_notes(&self) -> bool {
        self.out.is_some()
    }
}
