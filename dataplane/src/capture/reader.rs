//! The capture reader: pcap and pcapng through `pcap-parser`'s block parsers, over the
//! whole file in memory (replayed captures are small; a streaming reader can replace
//! this behind the same iterator).

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
    data: Vec<u8>,
    pos: usize,
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
    /// Reads the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<CaptureReader, CaptureError> {
        CaptureReader::from_bytes(std::fs::read(path)?)
    }

    /// Reads a capture held in memory. Fails at once if it is neither pcap nor pcapng,
    /// or if its file header is cut short.
    pub fn from_bytes(data: Vec<u8>) -> Result<CaptureReader, CaptureError> {
        let (state, pos) = if data.starts_with(&PCAPNG_SHB) {
            match parse_sectionheaderblock(&data) {
                Ok((rem, shb)) => (
                    State::Pcapng {
                        big_endian: shb.big_endian(),
                        interfaces: Vec::new(),
                    },
                    data.len() - rem.len(),
                ),
                Err(e) if e.is_incomplete() => {
                    return Err(CaptureError::Truncated {
                        offset: 0,
                        records: 0,
                    });
                }
                Err(_) => {
                    return Err(CaptureError::Malformed {
                        offset: 0,
                        records: 0,
                        what: "bad pcapng section header",
                    });
                }
            }
        } else {
            match parse_pcap_header(&data) {
                Ok((rem, h)) => (
                    State::Pcap {
                        big_endian: h.is_bigendian(),
                        nanos: h.is_nanosecond_precision(),
                        modified: h.is_modified_format(),
                        // Only the low 16 bits name the link type; the high ones
                        // carry FCS flags in newer files.
                        linktype: (h.network.0 as u32) & 0xffff,
                    },
                    data.len() - rem.len(),
                ),
                Err(e) if e.is_incomplete() && data.len() >= 4 => {
                    return Err(CaptureError::Truncated {
                        offset: 0,
                        records: 0,
                    });
                }
                Err(_) => {
                    return Err(CaptureError::NotACapture {
                        magic: magic_hex(&data),
                    });
                }
            }
        };
        Ok(CaptureReader {
            data,
            pos,
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
        let (offset, records) = (self.pos, self.records);
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
        let rest = self.data.get(self.pos..).unwrap_or(&[]);
        if rest.is_empty() {
            self.done = true;
            return None;
        }
        let parsed = if modified {
            parse_pcap_frame_modified(rest)
        } else if big_endian {
            parse_pcap_frame_be(rest)
        } else {
            parse_pcap_frame(rest)
        };
        let (rem, b): (&[u8], LegacyPcapBlock) = match parsed {
            Ok(x) => x,
            Err(e) => {
                let incomplete = e.is_incomplete();
                return self.fail(incomplete);
            }
        };
        let frac = u64::from(b.ts_usec);
        let frac_ns = if nanos {
            frac
        } else {
            frac.saturating_mul(1000)
        };
        let ts_ns = u64::from(b.ts_sec)
            .saturating_mul(NANOS)
            .saturating_add(frac_ns);
        let frame = make_frame(linktype, b.data, b.origlen, ts_ns, None);
        self.pos = self.data.len() - rem.len();
        self.records += 1;
        Some(Ok(frame))
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
            let rest = self.data.get(self.pos..).unwrap_or(&[]);
            if rest.is_empty() {
                self.done = true;
                return None;
            }
            let parsed = if *big_endian {
                parse_block_be(rest)
            } else {
                parse_block_le(rest)
            };
            let (rem, block) = match parsed {
                Ok(x) => x,
                Err(e) => {
                    let incomplete = e.is_incomplete();
                    return self.fail(incomplete);
                }
            };
            let consumed = rest.len() - rem.len();
            if consumed == 0 {
                self.done = true;
                return Some(Err(CaptureError::Malformed {
                    offset: self.pos,
                    records: self.records,
                    what: "empty block",
                }));
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
            self.pos += consumed;
            if let Some(f) = frame {
                self.records += 1;
                return Some(Ok(f));
            }
        }
    }
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
