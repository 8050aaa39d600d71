//! ICMP (RFC 792) and ICMPv6 (RFC 4443): type, code, and the echo identifier that flow
//! keys use in place of ports (so that two pings to one host are two flows, and NAT can
//! translate the identifier as it translates ports).

use super::{ParseError, be16, u8_at};

/// Type, code, checksum.
pub const HEADER_LEN: usize = 4;
/// An echo adds identifier and sequence number.
pub const ECHO_HEADER_LEN: usize = 8;

/// Field offsets from the start of the ICMP header.
pub mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const ECHO_ID: usize = 4;
    pub const ECHO_SEQ: usize = 6;
}

pub const V4_ECHO_REPLY: u8 = 0;
pub const V4_ECHO_REQUEST: u8 = 8;
pub const V6_ECHO_REQUEST: u8 = 128;
pub const V6_ECHO_REPLY: u8 = 129;

/// What the ICMP header tells.
#[derive(Clone, Copy, Debug)]
pub struct IcmpInfo {
    pub icmp_type: u8,
    pub code: u8,
    pub echo_id: Option<u16>,
}

/// Whether this type is an echo request or reply of the given ICMP version.
pub fn is_echo(icmp_type: u8, v6: bool) -> bool {
    if v6 {
        matches!(icmp_type, V6_ECHO_REQUEST | V6_ECHO_REPLY)
    } else {
        matches!(icmp_type, V4_ECHO_REQUEST | V4_ECHO_REPLY)
    }
}

/// Parses an ICMP (`v6` false) or ICMPv6 header at the start of `l4`.
pub fn parse(l4: &[u8], v6: bool) -> Result<IcmpInfo, ParseError> {
    if l4.len() < HEADER_LEN {
        return Err(ParseError::TruncatedIcmp);
    }
    let icmp_type = u8_at(l4, field::TYPE);
    let echo_id = if is_echo(icmp_type, v6) {
        if l4.len() < ECHO_HEADER_LEN {
            return Err(ParseError::TruncatedIcmp);
        }
        be16(l4, field::ECHO_ID)
    } else {
        None
    };
    Ok(IcmpInfo {
        icmp_type,
        code: u8_at(l4, field::CODE),
        echo_id,
    })
}
