//! IPv4 (RFC 791): header with options, fragments.
//!
//! The header checksum is deliberately *not* verified on ingress. Strata is a switch, not
//! the packet's destination: the receiving stack verifies it anyway, our rewrites update
//! checksums incrementally (RFC 1624) so a bad checksum stays bad and is still caught
//! there, and checking it here would cost every packet a pass over its header for no
//! security gain (a forged header can carry a valid checksum). [`header_checksum_ok`] is
//! there for whoever wants to look.

use std::net::{IpAddr, Ipv4Addr};

use super::{Fragment, FragmentInfo, IpInfo, ParseError, be16, checksum, u8_at};

pub const MIN_HEADER_LEN: usize = 20;

/// Field offsets from the start of the IPv4 header.
pub mod field {
    pub const VER_IHL: usize = 0;
    pub const TOTAL_LEN: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLAGS_FRAG: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

const MORE_FRAGMENTS: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

fn addr_at(h: &[u8], off: usize) -> Ipv4Addr {
    match h.get(off..off + 4) {
        Some(s) => <[u8; 4]>::try_from(s).map_or(Ipv4Addr::UNSPECIFIED, Ipv4Addr::from),
        None => Ipv4Addr::UNSPECIFIED,
    }
}

/// Parses the IPv4 header at `l3`. `snapped`: the capture cut the frame, so a total
/// length beyond the bytes present is expected.
pub(crate) fn parse(frame: &[u8], l3: usize, snapped: bool) -> Result<IpInfo, ParseError> {
    let h = frame.get(l3..).unwrap_or(&[]);
    if h.len() < MIN_HEADER_LEN {
        return Err(ParseError::TruncatedIpv4);
    }
    let ver_ihl = u8_at(h, field::VER_IHL);
    if ver_ihl >> 4 != 4 {
        return Err(ParseError::Ipv4BadVersion);
    }
    let ihl = usize::from(ver_ihl & 0x0f) * 4;
    if ihl < MIN_HEADER_LEN {
        return Err(ParseError::Ipv4BadIhl);
    }
    if ihl > h.len() {
        return Err(ParseError::TruncatedIpv4);
    }
    let mut total = usize::from(be16(h, field::TOTAL_LEN).unwrap_or(0));
    if total == 0 {
        // Total length 0 is what TSO and BIG TCP (> 64 KiB) super-packets carry when
        // captured on the sending host, as on the host side of a container's veth; Linux
        // itself then takes the length from the buffer, and so do we.
        total = h.len();
    }
    if total < ihl || (total > h.len() && !snapped) {
        return Err(ParseError::Ipv4BadTotalLength);
    }
    let ff = be16(h, field::FLAGS_FRAG).unwrap_or(0);
    let fragment = if ff & FRAG_OFFSET_MASK != 0 {
        Fragment::NonFirst
    } else if ff & MORE_FRAGMENTS != 0 {
        Fragment::First
    } else {
        Fragment::None
    };
    let frag = if fragment == Fragment::None {
        FragmentInfo::default()
    } else {
        FragmentInfo {
            id: u32::from(be16(h, field::IDENT).unwrap_or(0)),
            offset: u32::from(ff & FRAG_OFFSET_MASK) * 8,
            more: ff & MORE_FRAGMENTS != 0,
            len: u32::try_from(total - ihl).unwrap_or(0),
        }
    };
    Ok(IpInfo {
        version: 4,
        src: IpAddr::V4(addr_at(h, field::SRC)),
        dst: IpAddr::V4(addr_at(h, field::DST)),
        protocol: u8_at(h, field::PROTOCOL),
        fragment,
        frag,
        ttl: u8_at(h, field::TTL),
        end: l3 + total,
        l4_offset: l3 + ihl,
        has_l4: fragment != Fragment::NonFirst,
    })
}

/// Whether the IPv4 header at `l3` has a correct checksum (`false` if it is cut short).
pub fn header_checksum_ok(frame: &[u8], l3: usize) -> bool {
    let Some(&b0) = frame.get(l3) else {
        return false;
    };
    let ihl = usize::from(b0 & 0x0f) * 4;
    match frame.get(l3..l3 + ihl) {
        Some(h) if ihl >= MIN_HEADER_LEN => checksum::finish(checksum::sum(0, h)) == 0,
        _ => false,
    }
}
