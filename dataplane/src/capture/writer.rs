//! A minimal pcapng writer (little-endian): one section, one Interface Description Block
//! per port (named with `if_name`, nanosecond `if_tsresol`), one Enhanced Packet Block
//! per packet with an optional comment — Wireshark shows it as `frame.comment`, which is
//! where the verdict path goes.

use std::io::{self, Write};

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 0x0000_0001;
const EPB: u32 = 0x0000_0006;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const LINKTYPE_ETHERNET: u16 = 1;

const OPT_ENDOFOPT: u16 = 0;
const OPT_COMMENT: u16 = 1;
const OPT_SHB_USERAPPL: u16 = 4;
const OPT_IF_NAME: u16 = 2;
const OPT_IF_TSRESOL: u16 = 9;

/// Option values are at most 65535 bytes; longer strings are cut at a char boundary.
fn clip(s: &str) -> &str {
    if s.len() <= usize::from(u16::MAX) {
        return s;
    }
    let mut end = usize::from(u16::MAX);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

/// Appends one option (code, length, value, padding).
fn push_option(buf: &mut Vec<u8>, code: u16, value: &[u8]) {
    buf.extend_from_slice(&code.to_le_bytes());
    buf.extend_from_slice(&(value.len() as u16).to_le_bytes());
    buf.extend_from_slice(value);
    buf.extend(std::iter::repeat_n(0u8, pad4(value.len())));
}

/// Writes pcapng to any `Write`.
///
/// ```
/// use strata_dataplane::capture::{PcapngWriter, CaptureReader};
/// let mut w = PcapngWriter::new(Vec::new());
/// let web = w.interface("web");
/// w.write(web, 1_000, &[0u8; 60], 60, Some("acl:g1:r7 -> forward"))?;
/// let bytes = w.finish()?;
/// let frames: Vec<_> = CaptureReader::from_bytes(bytes).unwrap().collect();
/// assert_eq!(frames.len(), 1);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct PcapngWriter<W: Write> {
    out: W,
    /// Interface names, by id.
    names: Vec<String>,
    /// How many of `names` have had their IDB written.
    written: usize,
    header_done: bool,
    buf: Vec<u8>,
}

impl<W: Write> PcapngWriter<W> {
    /// A writer; nothing is written until the first packet (or [`finish`](Self::finish)).
    pub fn new(out: W) -> PcapngWriter<W> {
        PcapngWriter {
            out,
            names: Vec::new(),
            written: 0,
            header_done: false,
            buf: Vec::with_capacity(2048),
        }
    }

    /// The id of the interface named `name`, declared on first use.
    pub fn interface(&mut self, name: &str) -> u32 {
        let id = match self.names.iter().position(|n| n == name) {
            Some(i) => i,
            None => {
                self.names.push(name.to_owned());
                self.names.len() - 1
            }
        };
        id as u32
    }

    /// Writes the block in `self.buf` (body only) framed by type and total lengths.
    fn emit(&mut self, block_type: u32) -> io::Result<()> {
        let total = u32::try_from(self.buf.len() + 12)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pcapng block too large"))?;
        self.out.write_all(&block_type.to_le_bytes())?;
        self.out.write_all(&total.to_le_bytes())?;
        self.out.write_all(&self.buf)?;
        self.out.write_all(&total.to_le_bytes())
    }

    /// Writes the section header and any interfaces declared but not yet written.
    fn flush_headers(&mut self) -> io::Result<()> {
        if !self.header_done {
            self.buf.clear();
            self.buf.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
            self.buf.extend_from_slice(&1u16.to_le_bytes());
            self.buf.extend_from_slice(&0u16.to_le_bytes());
            // Section length unknown: we stream.
            self.buf.extend_from_slice(&(-1i64).to_le_bytes());
            push_option(&mut self.buf, OPT_SHB_USERAPPL, b"strata");
            push_option(&mut self.buf, OPT_ENDOFOPT, &[]);
            self.emit(SHB)?;
            self.header_done = true;
        }
        while let Some(name) = self.names.get(self.written) {
            let name = clip(name).as_bytes().to_vec();
            self.buf.clear();
            self.buf.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
            self.buf.extend_from_slice(&0u16.to_le_bytes());
            self.buf.extend_from_slice(&0u32.to_le_bytes()); // snaplen: no limit
            push_option(&mut self.buf, OPT_IF_NAME, &name);
            push_option(&mut self.buf, OPT_IF_TSRESOL, &[9]);
            push_option(&mut self.buf, OPT_ENDOFOPT, &[]);
            self.emit(IDB)?;
            self.written += 1;
        }
        Ok(())
    }

    /// Writes one packet on interface `iface` (from [`interface`](Self::interface)) at
    /// `ts_ns` nanoseconds since the epoch; `orig_len` is its length on the wire.
    pub fn write(
        &mut self,
        iface: u32,
        ts_ns: u64,
        data: &[u8],
        orig_len: u32,
        comment: Option<&str>,
    ) -> io::Result<()> {
        if iface as usize >= self.names.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("pcapng interface {iface} was never declared"),
            ));
        }
        let caplen = u32::try_from(data.len())
            .ok()
            .filter(|l| *l < u32::MAX - 64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "packet too large"))?;
        self.flush_headers()?;
        self.buf.clear();
        self.buf.extend_from_slice(&iface.to_le_bytes());
        self.buf
            .extend_from_slice(&((ts_ns >> 32) as u32).to_le_bytes());
        self.buf.extend_from_slice(&(ts_ns as u32).to_le_bytes());
        self.buf.extend_from_slice(&caplen.to_le_bytes());
        self.buf
            .extend_from_slice(&orig_len.max(caplen).to_le_bytes());
        self.buf.extend_from_slice(data);
        self.buf.extend(std::iter::repeat_n(0u8, pad4(data.len())));
        if let Some(c) = comment {
            push_option(&mut self.buf, OPT_COMMENT, clip(c).as_bytes());
            push_option(&mut self.buf, OPT_ENDOFOPT, &[]);
        }
        self.emit(EPB)
    }

    /// Writes any pending headers and flushes the output.
    pub fn flush(&mut self) -> io::Result<()> {
        self.flush_headers()?;
        self.out.flush()
    }

    /// Flushes and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.flush()?;
        Ok(self.out)
    }
}
