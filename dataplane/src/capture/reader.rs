//! The capture reader: pcap and pcapng through `pcap-parser`'s block parsers, over a
//! window of the input that grows only as far as the largest record: a capture of any
//! size streams.

use std::io::{self, Read};
use std::path::Path;

use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapNGPacketBlock;
use pcap_parser::{
    LegacyPcapBlock, parse_block_be, parse_block_le, parse_pcap_frame, parse_pcap_frame_be,
    parse_pcap_frame_modified, parse_pcap_header, parse_sectionheaderblock,
};

use super::link::to_ethernet;
use super::{CaptureError, Frame};

const PCAPNG_SHB: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
const NANOS: u64 = 1_000_000_000;
/// How much to read at a time.
const CHUNK: usize = 256 * 1024;
/// No real record is this large (BIG TCP tops out at 512 KiB).
const MAX_RECORD: usize = 256 << 20;

/// The unread part of the input: `buf[pos..]`, refilled from `input` on demand.
struct Source {
    buf: Vec<u8>,
    pos: usize,
    /// Offset in the file of `buf[0]`.
    base: u64,
    /// `None` once it has returned end of file (or from the start, for bytes in memory).
    input: Option<Box<dyn Read + Send>>,
}

impl Source {
    fn rest(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Reads more input; `Ok(false)` at end of file.
    fn refill(&mut self) -> io::Result<bool> {
        let Some(input) = self.input.as_mut() else {
            return Ok(false);
        };
        if self.pos > 0 && self.pos >= self.buf.len() / 2 {
            // Drop what was consumed rather than growing forever.
            self.buf.drain(..self.pos);
            self.base += self.pos as u64;
            self.pos = 0;
        }
        // At least double the unread part, so that a large record takes few reads;
        // `read_to_end` through `take` fills without zeroing the buffer first.
        let want = CHUNK.max(self.buf.len() - self.pos) as u64;
        let n = input.by_ref().take(want).read_to_end(&mut self.buf)?;
        if n == 0 {
            self.input = None;
        }
        Ok(n > 0)
    }
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Source {{ offset: {}, buffered: {} }}",
            self.offset(),
            self.rest().len()
        )
    }
}

/// Which container format the file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureFormat {
    Pcap,
    Pcapng,
}

#[derive(Debug)]
struct Interface {
    linktype: u32,
    name: Option<String>,
    /// Units per second; `None` for an invalid `if_tsresol`.
    ts_per_sec: Option<u64>,
    ts_offset_s: i64,
}

#[derive(Debug)]
enum State {
    Pcap {
        big_endian: bool,
        nanos: bool,
        modified: bool,
        linktype: u32,
    },
    Pcapng {
        big_endian: bool,
        interfaces: Vec<Interface>,
    },
}

/// Reads the records of a pcap or pcapng capture as Ethernet [`Frame`]s, in file order.
///
/// The iterator yields `Ok(frame)` per record; if the file is cut short or corrupt
/// part-way, the frames before that point and then one `Err`, after which it ends.
///
/// ```no_run
/// use strata_dataplane::capture::CaptureReader;
/// let reader = CaptureReader::open("trace.pcapng")?;
/// for frame in reader {
///     let frame = frame?;
///     println!("{} bytes on {:?}", frame.data.len(), frame.interface);
/// }
/// # Ok::<(), strata_dataplane::capture::CaptureError>(())
/// ```
#[derive(Debug)]
pub struct CaptureReader {
    src: Source,
    state: State,
    records: u64,
    done: bool,
}

fn magic_hex(data: &[u8]) -> String {
    if data.is_empty() {
        return "nothing (empty file)".into();
    }
    let hex: Vec<String> = data.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("bytes {}", hex.join(" "))
}

impl CaptureReader {
    /// Reads the file at `path`, streaming.
    pub fn open(path: impl AsRef<Path>) -> Result<CaptureReader, CaptureError> {
        CaptureReader::new(std::fs::File::open(path)?)
    }

    /// Reads a capture held in memory.
    pub fn from_bytes(data: Vec<u8>) -> Result<CaptureReader, CaptureError> {
        CaptureReader::with_source(Source {
            buf: data,
            pos: 0,
            base: 0,
            input: None,
        })
    }

    /// Reads a capture from any byte stream, a window at a time. Fails at once if it is
    /// neither pcap nor pcapng, or if its file header is cut short.
    pub fn new(input: impl Read + Send + 'static) -> Result<CaptureReader, CaptureError> {
        CaptureReader::with_source(Source {
            buf: Vec::new(),
            pos: 0,
            base: 0,
            input: Some(Box::new(input)),
        })
    }

    fn with_source(mut src: Source) -> Result<CaptureReader, CaptureError> {
        let truncated = CaptureError::Truncated {
            offset: 0,
            records: 0,
        };
        let (state, header_len) = loop {
            let data = src.rest();
            let incomplete = if data.starts_with(&PCAPNG_SHB) {
                match parse_sectionheaderblock(data) {
                    Ok((rem, shb)) => {
                        let state = State::Pcapng {
                            big_endian: shb.big_endian(),
                            interfaces: Vec::new(),
                        };
                        break (state, data.len() - rem.len());
                    }
                    Err(e) if e.is_incomplete() => true,
                    Err(_) => {
                        return Err(CaptureError::Malformed {
                            offset: 0,
                            records: 0,
                            what: "bad pcapng section header",
                        });
                    }
                }
            } else {
                match parse_pcap_header(data) {
                    Ok((rem, h)) => {
                        let state = State::Pcap {
                            big_endian: h.is_bigendian(),
                            nanos: h.is_nanosecond_precision(),
                            modified: h.is_modified_format(),
                            // Only the low 16 bits name the link type; the high ones
                            // carry FCS flags in newer files.
                            linktype: (h.network.0 as u32) & 0xffff,
                        };
                        break (state, data.len() - rem.len());
                    }
                    Err(e) if e.is_incomplete() => true,
                    Err(_) => {
                        return Err(CaptureError::NotACapture {
                            magic: magic_hex(data),
                        });
                    }
                }
            };
            debug_assert!(incomplete);
            if !src.refill()? {
                let data = src.rest();
                // Too short to tell: a known magic cut short is a truncated capture.
                return Err(if data.len() >= 4 {
                    truncated
                } else {
                    CaptureError::NotACapture {
                        magic: magic_hex(data),
                    }
                });
            }
        };
        src.pos += header_len;
        Ok(CaptureReader {
            src,
            state,
            records: 0,
            done: false,
        })
    }

    /// pcap or pcapng.
    pub fn format(&self) -> CaptureFormat {
        match self.state {
            State::Pcap { .. } => CaptureFormat::Pcap,
            State::Pcapng { .. } => CaptureFormat::Pcapng,
        }
    }

    /// Records read so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Ends the iteration with an error; `incomplete`: the data ran out mid-record.
    fn fail<T>(&mut self, incomplete: bool) -> Option<Result<T, CaptureError>> {
        self.done = true;
        let (offset, records) = (self.src.offset(), self.records);
        Some(Err(if incomplete {
            CaptureError::Truncated { offset, records }
        } else {
            CaptureError::Malformed {
                offset,
                records,
                what: "unreadable record or block",
            }
        }))
    }

    /// Reads more input after the parser ran out of data: `Some` ends the iteration
    /// (end of file: `None` if nothing was left, else truncated; or an I/O error).
    fn more(&mut self) -> Option<Option<Result<Frame, CaptureError>>> {
        if self.src.rest().len() > MAX_RECORD {
            // A corrupt length field must not make us buffer an endless stream.
            self.done = true;
            return Some(Some(Err(CaptureError::Malformed {
                offset: self.src.offset(),
                records: self.records,
                what: "record larger than 256 MiB",
            })));
        }
        match self.src.refill() {
            Ok(true) => None,
            Ok(false) if self.src.rest().is_empty() => {
                self.done = true;
                Some(None)
            }
            Ok(false) => Some(self.fail(true)),
            Err(e) => {
                self.done = true;
                Some(Some(Err(CaptureError::Io(e))))
            }
        }
    }

    fn next_pcap(&mut self) -> Option<Result<Frame, CaptureError>> {
        let State::Pcap {
            big_endian,
            nanos,
            modified,
            linktype,
        } = self.state
        else {
            return None;
        };
        loop {
            let rest = self.src.rest();
            let parsed = if modified {
                parse_pcap_frame_modified(rest)
            } else if big_endian {
                parse_pcap_frame_be(rest)
            } else {
                parse_pcap_frame(rest)
            };
            let incomplete = match parsed {
                Ok((rem, b)) => {
                    let consumed = rest.len() - rem.len();
                    let frame = pcap_frame(&b, nanos, linktype);
                    self.src.pos += consumed;
                    self.records += 1;
                    return Some(Ok(frame));
                }
                Err(e) => e.is_incomplete(),
            };
            if !incomplete {
                return self.fail(false);
            }
            if let Some(end) = self.more() {
                return end;
            }
        }
    }

    fn next_pcapng(&mut self) -> Option<Result<Frame, CaptureError>> {
        loop {
            let State::Pcapng {
                big_endian,
                interfaces,
            } = &mut self.state
            else {
                return None;
            };
            let rest = self.src.rest();
            // Every block but a section header is at least 12 bytes long; pcap-parser
            // 0.17 subtracts 12 from a process information block's length unchecked (an
            // overflow panic where overflow checks are on): refuse such lengths first.
            if let (Some(kind), Some(&len)) =
                (rest.get(..4), rest.get(4..8).and_then(|b| b.first_chunk()))
            {
                let len = if *big_endian {
                    u32::from_be_bytes(len)
                } else {
                    u32::from_le_bytes(len)
                };
                if kind != [0x0a, 0x0d, 0x0d, 0x0a] && len < 12 {
                    return self.fail(false);
                }
            }
            let parsed = if *big_endian {
                parse_block_be(rest)
            } else {
                parse_block_le(rest)
            };
            let (rem, block) = match parsed {
                Ok(x) => x,
                Err(e) => {
                    if !e.is_incomplete() {
                        return self.fail(false);
                    }
                    if let Some(end) = self.more() {
                        return end;
                    }
                    continue;
                }
            };
            let consumed = rest.len() - rem.len();
            if consumed == 0 {
                return self.fail(false);
            }
            let frame = match block {
                Block::SectionHeader(shb) => {
                    // A new section: its own byte order and interfaces.
                    *big_endian = shb.big_endian();
                    interfaces.clear();
                    None
                }
                Block::InterfaceDescription(idb) => {
                    interfaces.push(Interface {
                        linktype: (idb.linktype.0 as u32) & 0xffff,
                        name: idb.if_name().and_then(|r| r.ok()).map(str::to_owned),
                        ts_per_sec: idb.ts_resolution(),
                        ts_offset_s: idb.ts_offset(),
                    });
                    None
                }
                Block::EnhancedPacket(epb) => {
                    let data = epb.packet_data();
                    let ts = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                    Some(match interfaces.get(epb.if_id as usize) {
                        Some(i) => {
                            make_frame(i.linktype, data, epb.origlen, ts_ns(ts, i), i.name.clone())
                        }
                        None => undeclared(data, epb.origlen),
                    })
                }
                Block::SimplePacket(spb) => {
                    // No timestamp, always interface 0; the captured length is what the
                    // block holds, at most the original length.
                    let data = spb.packet_data();
                    Some(match interfaces.first() {
                        Some(i) => make_frame(i.linktype, data, spb.origlen, 0, i.name.clone()),
                        None => undeclared(data, spb.origlen),
                    })
                }
                _ => None,
            };
            self.src.pos += consumed;
            if let Some(f) = frame {
                self.records += 1;
                return Some(Ok(f));
            }
        }
    }
}

fn pcap_frame(b: &LegacyPcapBlock, nanos: bool, linktype: u32) -> Frame {
    let frac = u64::from(b.ts_usec);
    let frac_ns = if nanos {
        frac
    } else {
        frac.saturating_mul(1000)
    };
    let ts_ns = u64::from(b.ts_sec)
        .saturating_mul(NANOS)
        .saturating_add(frac_ns);
    make_frame(linktype, b.data, b.origlen, ts_ns, None)
}

fn ts_ns(ts: u64, i: &Interface) -> u64 {
    let per_sec = i.ts_per_sec.unwrap_or(1_000_000).max(1);
    let ns = u128::from(ts) * u128::from(NANOS) / u128::from(per_sec);
    let off = i128::from(i.ts_offset_s) * i128::from(NANOS);
    (ns as i128 + off).clamp(0, i128::from(u64::MAX)) as u64
}

fn make_frame(
    linktype: u32,
    data: &[u8],
    orig_len: u32,
    ts_ns: u64,
    iface: Option<String>,
) -> Frame {
    // A record longer than it was on the wire is nonsense; trust the bytes.
    let orig_len = orig_len.max(u32::try_from(data.len()).unwrap_or(u32::MAX));
    let (data, orig_len, link_error) = match to_ethernet(linktype, data, orig_len) {
        Ok((d, l)) => (d, l, None),
        Err(why) => (data.to_vec(), orig_len, Some(why)),
    };
    Frame {
        ts_ns,
        data,
        orig_len,
        interface: iface,
        linktype,
        link_error,
    }
}

fn undeclared(data: &[u8], orig_len: u32) -> Frame {
    Frame {
        ts_ns: 0,
        data: data.to_vec(),
        orig_len,
        interface: None,
        linktype: u32::MAX,
        link_error: Some("packet on an interface the capture never declared"),
    }
}

impl Iterator for CaptureReader {
    type Item = Result<Frame, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.state {
            State::Pcap { .. } => self.next_pcap(),
            State::Pcapng { .. } => self.next_pcapng(),
        }
    }
}

/// Reads a whole capture from memory: the frames read, and the error that stopped the
/// reading early, if any.
pub fn read_all(data: Vec<u8>) -> (Vec<Frame>, Option<CaptureError>) {
    let reader = match CaptureReader::from_bytes(data) {
        Ok(r) => r,
        Err(e) => return (Vec::new(), Some(e)),
    };
    let mut frames = Vec::new();
    for r in reader {
        match r {
            Ok(f) => frames.push(f),
            Err(e) => return (frames, Some(e)),
        }
    }
    (frames, None)
}
