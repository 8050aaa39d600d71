//! IPv6 (RFC 8200): the fixed header and a bounded walk of the extension headers.
//!
//! The walk follows hop-by-hop, routing, destination options, fragment and AH headers to
//! the upper-layer protocol; it stops at ESP (encrypted: no ports to see) and at
//! no-next-header. It gives up after [`MAX_EXT_HEADERS`] headers so that a crafted chain
//! cannot make a packet expensive (RFC 8200 allows a handful; RFC 7112 wants the whole
//! chain in the first fragment, which is what lets us find the ports at all).

use std::net::{IpAddr, Ipv6Addr};

use super::{Fragment, FragmentInfo, IpInfo, ParseError, be16, u8_at};

pub const HEADER_LEN: usize = 40;
/// Longest extension-header chain we walk.
pub const MAX_EXT_HEADERS: usize = 8;

/// Field offsets from the start of the IPv6 header.
pub mod field {
    pub const VER_TC_FLOW: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
}

pub const NH_HOP_BY_HOP: u8 = 0;
pub const NH_ROUTING: u8 = 43;
pub const NH_FRAGMENT: u8 = 44;
pub const NH_ESP: u8 = 50;
pub const NH_AH: u8 = 51;
pub const NH_NONE: u8 = 59;
pub const NH_DEST_OPTS: u8 = 60;

fn addr_at(h: &[u8], off: usize) -> Ipv6Addr {
    let mut a = [0u8; 16];
    if let Some(s) = h.get(off..off + 16) {
        a.copy_from_slice(s);
    }
    Ipv6Addr::from(a)
}

/// Parses the IPv6 header at `l3` and walks its extension headers. `snapped`: the
/// capture cut the frame, so a payload length beyond the bytes present is expected.
pub(crate) fn parse(frame: &[u8], l3: usize, snapped: bool) -> Result<IpInfo, ParseError> {
    let h = frame.get(l3..).unwrap_or(&[]);
    if h.len() < HEADER_LEN {
        return Err(ParseError::TruncatedIpv6);
    }
    if u8_at(h, field::VER_TC_FLOW) >> 4 != 6 {
        return Err(ParseError::Ipv6BadVersion);
    }
    let payload_len = usize::from(be16(h, field::PAYLOAD_LEN).unwrap_or(0));
    let first = u8_at(h, field::NEXT_HEADER);
    let total = if payload_len == 0 {
        // A jumbogram (RFC 2675) or a BIG TCP / GSO super-packet captured on the sending
        // host (Linux drops the jumbo hop-by-hop option before the tap sees it): the
        // buffer's length is the one that counts, as for IPv4 total length 0.
        h.len()
    } else {
        HEADER_LEN + payload_len
    };
    if total > h.len() && !snapped {
        return Err(ParseError::Ipv6BadPayloadLength);
    }
    // Extension headers must lie within the packet and within the bytes we have.
    let limit = total.min(h.len());
    let mut nh = first;
    let mut off = HEADER_LEN;
    let mut fragment = Fragment::None;
    let mut frag = FragmentInfo::default();
    let mut count = 0;
    loop {
        let len = match nh {
            NH_HOP_BY_HOP | NH_ROUTING | NH_DEST_OPTS | NH_AH => {
                let b = h.get(off..off + 2).filter(|_| off + 2 <= limit);
                let b = b.ok_or(ParseError::TruncatedIpv6ExtHeader)?;
                if nh == NH_AH {
                    // AH counts its length in 4-byte units, minus 2 (RFC 4302).
                    (usize::from(u8_at(b, 1)) + 2) * 4
                } else {
                    (usize::from(u8_at(b, 1)) + 1) * 8
                }
            }
            NH_FRAGMENT => {
                // RFC 2675 §3: a jumbogram never carries a Fragment header, and a GSO
                // super-packet is not a fragment: payload length 0 is a bad length here.
                if payload_len == 0 {
                    return Err(ParseError::Ipv6BadPayloadLength);
                }
                if off + 8 > limit {
                    return Err(ParseError::TruncatedIpv6ExtHeader);
                }
                let ofm = be16(h, off + 2).unwrap_or(0);
                let id = h
                    .get(off + 4..off + 8)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .map_or(0, u32::from_be_bytes);
                frag = FragmentInfo {
                    id,
                    offset: u32::from(ofm >> 3) * 8,
                    more: ofm & 1 != 0,
                    // The fragmentable part starts after the Fragment header.
                    len: u32::try_from(total.saturating_sub(off + 8)).unwrap_or(0),
                };
                fragment = if ofm >> 3 != 0 {
                    Fragment::NonFirst
                } else if ofm & 1 != 0 {
                    Fragment::First
                } else {
                    // An atomic fragment (RFC 6946): a whole packet.
                    Fragment::None
                };
                8
            }
            _ => break,
        };
        if count == MAX_EXT_HEADERS {
            return Err(ParseError::Ipv6TooManyExtHeaders);
        }
        count += 1;
        if off + len > limit {
            return Err(ParseError::TruncatedIpv6ExtHeader);
        }
        nh = u8_at(h, off);
        off += len;
        if fragment == Fragment::NonFirst {
            // The rest of the chain, and the upper-layer header, are in the first one.
            break;
        }
    }
    Ok(IpInfo {
        version: 6,
        src: IpAddr::V6(addr_at(h, field::SRC)),
        dst: IpAddr::V6(addr_at(h, field::DST)),
        protocol: nh,
        fragment,
        frag: if fragment == Fragment::None {
            FragmentInfo::default()
        } else {
            frag
        },
        ttl: u8_at(h, field::HOP_LIMIT),
        end: l3 + total,
        l4_offset: l3 + off,
        has_l4: fragment != Fragment::NonFirst && nh != NH_ESP && nh != NH_NONE,
    })
}
