//! TCP (RFC 9293): ports, flags and sequence space for connection tracking, the header
//! length.

use super::{ParseError, be16, u8_at};

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
    pub seq: u32,
    pub ack: u32,
    pub window: u16,
    /// The window scale option (RFC 7323), read from SYNs only.
    pub wscale: Option<u8>,
    /// Header length including options.
    pub header_len: usize,
}

fn be32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map_or(0, u32::from_be_bytes)
}

/// The window scale option among `options`, if present and well formed.
fn window_scale(options: &[u8]) -> Option<u8> {
    let mut i = 0;
    while let Some(&kind) = options.get(i) {
        match kind {
            0 => return None,
            1 => i += 1,
            _ => {
                let len = usize::from(*options.get(i + 1)?);
                if len < 2 {
                    return None;
                }
                if kind == 3 && len == 3 {
                    return options.get(i + 2).copied();
                }
                i += len;
            }
        }
    }
    None
}

/// Parses a TCP header at the start of `l4` (bounded by the IP packet and the frame).
pub fn parse(l4: &[u8]) -> Result<TcpInfo, ParseError> {
    if l4.len() < MIN_HEADER_LEN {
        return Err(ParseError::TruncatedTcp);
    }
    let header_len = usize::from(u8_at(l4, field::DATA_OFFSET) >> 4) * 4;
    if header_len < MIN_HEADER_LEN {
        return Err(ParseError::TcpBadDataOffset);
    }
    // Options cut short would leave the payload offset pointing past the data.
    if header_len > l4.len() {
        return Err(ParseError::TruncatedTcp);
    }
    let flags = u8_at(l4, field::FLAGS);
    let wscale = if flags & SYN != 0 {
        window_scale(l4.get(MIN_HEADER_LEN..header_len).unwrap_or(&[]))
    } else {
        None
    };
    Ok(TcpInfo {
        src_port: be16(l4, field::SRC_PORT).unwrap_or(0),
        dst_port: be16(l4, field::DST_PORT).unwrap_or(0),
        flags,
        seq: be32(l4, field::SEQ),
        ack: be32(l4, field::ACK),
        window: be16(l4, field::WINDOW).unwrap_or(0),
        wscale,
        header_len,
    })
}
