//! UDP (RFC 768): ports. The length field is not checked against the IP length: the IP
//! header is what bounds the packet, and receivers check UDP's own length.

use super::{ParseError, be16};

pub const HEADER_LEN: usize = 8;

/// Field offsets from the start of the UDP header.
pub mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

/// What the UDP header tells.
#[derive(Clone, Copy, Debug)]
pub struct UdpInfo {
    pub src_port: u16,
    pub dst_port: u16,
}

/// Parses a UDP header at the start of `l4` (bounded by the IP packet and the frame).
pub fn parse(l4: &[u8]) -> Result<UdpInfo, ParseError> {
    if l4.len() < HEADER_LEN {
        return Err(ParseError::TruncatedUdp);
    }
    Ok(UdpInfo {
        src_port: be16(l4, field::SRC_PORT).unwrap_or(0),
        dst_port: be16(l4, field::DST_PORT).unwrap_or(0),
    })
}
