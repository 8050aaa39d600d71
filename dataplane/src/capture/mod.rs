//! Reading and writing packet captures.
//!
//! [`CaptureReader`] reads pcap (micro- and nanosecond, either byte order, and the old
//! "modified" variant) and pcapng (several sections and interfaces, interface names and
//! timestamp resolutions) and hands out one [`Frame`] per record, every frame converted
//! to Ethernet so that the rest of the engine sees one link type. [`PcapngWriter`] writes
//! what leaves each port, one pcapng interface per port, each packet commented with its
//! verdict path.
//!
//! The invariant users depend on: exactly one [`Frame`] per record in the file. A record
//! whose link type cannot be turned into Ethernet still yields a frame, with
//! [`Frame::link_error`] set, so that the pipeline drops it with reason `parse` and
//! verdict indexes stay aligned with the capture.

mod link;
mod reader;
mod writer;

pub use link::{
    LINKTYPE_ETHERNET, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP, LINKTYPE_NULL, LINKTYPE_RAW,
};
pub use reader::{CaptureFormat, CaptureReader, read_all};
pub use writer::PcapngWriter;

/// One captured record, as an Ethernet frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// The Ethernet frame (converted from the capture's link type), or the raw record
    /// when `link_error` is set.
    pub data: Vec<u8>,
    /// The frame's length on the wire (as Ethernet); more than `data.len()` when the
    /// capture's snap length cut it.
    pub orig_len: u32,
    /// The pcapng interface name (`if_name`), when the capture has one.
    pub interface: Option<String>,
    /// The link type the record was captured with.
    pub linktype: u32,
    /// Why the record could not be made an Ethernet frame (unsupported link type, or a
    /// link header cut short); `None` for a usable frame.
    pub link_error: Option<&'static str>,
}

impl Frame {
    /// Whether `data` is an Ethernet frame the parser can look at.
    pub fn is_ethernet(&self) -> bool {
        self.link_error.is_none()
    }
}

/// Why a capture could not be read (further).
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot read capture: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a pcap or pcapng capture (the file starts with {magic})")]
    NotACapture { magic: String },
    #[error("capture truncated at byte {offset}, after {records} records")]
    Truncated { offset: u64, records: u64 },
    #[error("malformed capture at byte {offset}, after {records} records: {what}")]
    Malformed {
        offset: u64,
        records: u64,
        what: &'static str,
    },
}

#[cfg(test)]
mod tests;
