//! The byte-level rewrite: a [`Transposition`] applied to a frame in place, with RFC 1624
//! incremental checksums, VLAN push/pop, and VXLAN encapsulation and decapsulation in a
//! [`PacketBuf`] whose headroom spares the packet path any reallocation; plus the ICMP
//! error helpers that NAT needs (the quoted packet, its translation, "too big" replies).
//!
//! Checksums are patched, never recomputed, on the packet path: a rewrite changes a few
//! 16-bit words, and RFC 1624 eqn. 3 gives the new checksum from the old one and those
//! words alone. That is exact even when the capture cut the payload off (`caplen <
//! orig_len`): the checksum field and the changed words are all that is needed, so a
//! truncated frame gets the checksum its full original would have. The only full
//! computations are the outer UDP checksum of an IPv6-underlay encapsulation (RFC 7348
//! and RFC 6935: it is required there; over a truncated frame it covers only the bytes
//! present and cannot be right) and the replies built by [`icmp_too_big`]. SCTP's
//! CRC32c is updated from the ports' change too (a CRC is affine), which costs a pass
//! over as many zero bytes as the packet is long, but reads none of it.
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use strata_dataplane::packet;
//! use strata_dataplane::transpose::Transposition;
//! use strata_dataplane::transpose::bytes::{DEFAULT_HEADROOM, PacketBuf, apply};
//! # let frame = strata_dataplane::packet::testutil::ipv4_udp_frame();
//! let parsed = packet::parse(&frame).unwrap();
//! let snat = Transposition {
//!     src_ip: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
//!     src_port: Some(61000),
//!     ..Transposition::NONE
//! };
//! let mut pkt = PacketBuf::with_headroom(&frame, DEFAULT_HEADROOM);
//! apply(&snat, &mut pkt, &parsed).unwrap();
//! let after = packet::parse(pkt.as_slice()).unwrap();
//! assert_eq!(after.fields.src_port, 61000);
//! assert!(packet::ipv4::header_checksum_ok(pkt.as_slice(), 14));
//! ```

use std::net::IpAddr;

use strata_rules::model::{Mac, proto};

use super::{Encap, Transposition, VlanOp};
use crate::packet::{
    self, Fragment, FrameKind, ParseError, Parsed, be16, checksum, ethernet, icmp, ipv4, ipv6, tcp,
    udp,
};

mod buf;
mod icmp_error;
mod patch;
mod rewrite;
mod vxlan;

pub use buf::{DEFAULT_HEADROOM, PacketBuf};
pub use icmp_error::{
    InnerPacket, icmp_error_inner, icmp_too_big, is_icmp_error, translate_icmp_error,
};
pub use rewrite::apply;
pub use vxlan::{VXLAN_FLAG_I, VXLAN_HEADER_LEN, VXLAN_PORT, Vxlan, parse_inner, vxlan_of};
#[allow(unused_imports)]
use {icmp_error::*, patch::*, rewrite::*, vxlan::*};

/// Why a rewrite could not be applied. The frame is left untouched in every case but
/// [`TransposeError::OutOfBounds`] (a `Parsed` that does not describe the frame).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransposeError {
    #[error("address rewrite of a frame that is not IP")]
    NotIp,
    #[error("rewrite address family differs from the packet's")]
    AddressFamily,
    #[error("decapsulation of a frame that is not Ethernet/IP/UDP/VXLAN")]
    NotVxlan,
    #[error("inner frame: {0}")]
    Inner(ParseError),
    #[error("encapsulated packet longer than 65535 bytes")]
    TooLong,
    #[error("header offsets beyond the frame")]
    OutOfBounds,
    #[error("not an ICMP error with a quoted packet")]
    NotIcmpError,
}

#[cfg(test)]
mod tests;
