//! TCP (RFC 9293): ports, flags for connection tracking, the header length.

use super::{ParseError, be16};

pub const MIN_HEADER_LEN: usize = 20;

/// Field offsets from the start of the TCP header.
pub mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
}

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

/// What the TCP header tells.
#[derive(Clone, Copy, Debug)]
pub struct TcpInfo {
    pub src_port: u16,
    pub dst_port: u16,
    pub flags: u8,
    /// Header length including options.
    pub header_len: usize,
}

/// Parses a TCP header at the start of `l4` (bounded by the IP packet and the frame).
pub fn parse(l4: &[u8]) -> Result<TcpInfo, ParseError> {
    if l4.len() < MIN_HEADER_LEN {
        return Err(ParseError::TruncatedTcp);
    }
    let header_len = usize::from(l4[field::DATA_OFFSET] >> 4) * 4;
    if header_len < MIN_HEADER_LEN {
        return Err(ParseError::TcpBadDataOffset);
    }
    // Options cut short would leave the payload offset pointing past the data.
    if header_len > l4.len() {
        return Err(ParseError::TruncatedTcp);
    }
    Ok(TcpInfo {
        src_port: be16(l4, field::SRC_PORT).unwrap_or(0),
        dst_port: be16(l4, field::DST_PORT).unwrap_or(0),
        flags: l4[field::FLAGS],
        header_len,
    })
}
