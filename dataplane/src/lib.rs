//! `strata-dataplane`: the packet path.
//!
//! - [`packet`]: zero-copy parsing of untrusted frames into offsets and rule fields.
//! - [`capture`]: reading pcap/pcapng captures (any common link type, as Ethernet) and
//!   writing pcapng with per-port interfaces and per-packet comments.

pub mod capture;
pub mod packet;
