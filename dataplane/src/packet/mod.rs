//! Zero-copy, single-pass parsing of untrusted Ethernet frames.
//!
//! [`parse`] walks Ethernet II → 802.1Q / 802.1ad tags → ARP | IPv4 | IPv6 (with its
//! extension headers) → TCP | UDP | SCTP | ICMP | ICMPv6 | IGMP once, checks every length
//! before it reads, and returns a small `Copy` [`Parsed`]: the offsets of each header (so
//! that later rewrites — NAT, VLAN push/pop, VXLAN — can patch bytes in place) and the
//! [`Fields`] that rule conditions see. It never allocates and never panics; anything it
//! cannot make sense of is a [`ParseError`], which the pipeline drops with reason
//! [`DROP_REASON`].
//!
//! One module per header, smoltcp style: each holds its field offsets and the checks for
//! its own header. This module strings them together.
//!
//! ```
//! use strata_dataplane::packet::{parse, FrameKind};
//! # let frame = strata_dataplane::packet::testutil::ipv4_udp_frame();
//! let p = parse(&frame).expect("a well-formed frame");
//! assert!(matches!(p.kind, FrameKind::Ip));
//! assert_eq!(p.fields.protocol, 17);
//! ```

pub mod arp;
pub mod checksum;
mod common;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

#[doc(hidden)]
pub mod testutil;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use strata_rules::model::{Fields, Mac, proto};

pub use arp::ArpInfo;

/// The drop reason every [`ParseError`] maps to (DESIGN §2: "parse error").
pub const DROP_REASON: &str = "parse";

/// What kind of frame this is, as far as the switch cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// IPv4 or IPv6: [`Parsed::fields`] is meaningful.
    Ip,
    /// An Ethernet/IPv4 ARP packet.
    Arp(ArpInfo),
    /// Anything else: LLC (802.3 length field), LLDP, MPLS, MACsec, ... The switch may
    /// bridge it or drop it by policy; it is not a parse error.
    Other { ethertype: u16 },
}

/// A fragment's identity and place in its datagram (zero for an unfragmented packet).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragmentInfo {
    /// The datagram's identification (IPv4: 16 bits; IPv6 Fragment header: 32).
    pub id: u32,
    /// Where this fragment's data starts in the datagram, in bytes.
    pub offset: u32,
    /// The More Fragments flag.
    pub more: bool,
    /// Bytes of fragment data this fragment carries (per the IP length).
    pub len: u32,
}

/// Where a packet sits in an IP fragment train.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Fragment {
    /// Not fragmented.
    #[default]
    None,
    /// Offset 0, more fragments follow: carries the L4 header.
    First,
    /// Offset > 0: no L4 header, so ports are 0 and `l4_offset` is `None`.
    NonFirst,
}

/// The facts and offsets of one parsed frame. Offsets are from the start of the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub kind: FrameKind,
    /// What rule conditions see. For non-IP frames: the MACs and VLAN, unspecified IPv4
    /// addresses, protocol 0, ports 0.
    pub fields: Fields,
    /// Offset of the outermost VLAN tag (its TPID), to pop or rewrite it.
    pub vlan_offset: Option<u16>,
    /// Number of VLAN tags (0, 1 or 2); tag `i` starts at `vlan_offset + 4 * i`.
    pub vlan_count: u8,
    /// The outer (service) VID of a QinQ frame; `fields.vlan` holds the inner one.
    pub outer_vlan: Option<u16>,
    /// The innermost EtherType (after the tags).
    pub ethertype: u16,
    /// Start of the L3 header (just after the innermost EtherType).
    pub l3_offset: u16,
    /// Start of the L4 header, when one is present (not for non-first fragments, ESP,
    /// no-next-header, ARP or non-IP frames).
    pub l4_offset: Option<u16>,
    /// Start of what follows the last header parsed (the L4 payload for TCP/UDP/SCTP,
    /// the ICMP body after its 4-byte header, the fragment data of a non-first fragment).
    pub payload_offset: u16,
    /// End of the IP packet as its header says (`l3_offset` + total length), which may
    /// be before the end of the frame (Ethernet padding) or, for a frame cut by the
    /// capture's snap length, after it. 0 for non-IP frames.
    pub l3_end: u32,
    /// 4 or 6; 0 for non-IP frames.
    pub ip_version: u8,
    pub fragment: Fragment,
    /// The fragment's identity and place, for fragments.
    pub frag: FragmentInfo,
    /// TCP flags (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, ...); 0 otherwise.
    pub tcp_flags: u8,
    /// A TCP segment's sequence space (connection tracking judges RSTs by it).
    pub tcp_seq: strata_rules::conn::TcpSeq,
    /// The identifier of an ICMP/ICMPv6 echo request or reply: flow keys use it in place
    /// of ports.
    pub icmp_id: Option<u16>,
    /// IPv4 TTL or IPv6 hop limit; 0 for non-IP.
    pub ttl: u8,
    /// The frame was cut by the capture (shorter than its original length) and the IP
    /// packet extends past the bytes present.
    pub truncated: bool,
}

/// Why a frame could not be parsed. Every variant is dropped with reason
/// [`DROP_REASON`]; [`ParseError::reason`] says precisely why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than the 14-byte Ethernet header.
    TruncatedEthernet,
    /// A VLAN tag (TPID 0x8100/0x88a8/0x9100) cut short.
    TruncatedVlan,
    /// More than two VLAN tags.
    TooManyVlanTags,
    /// ARP shorter than 28 bytes.
    TruncatedArp,
    /// ARP for something other than Ethernet/IPv4.
    UnsupportedArp,
    /// Less than 20 bytes, or less than the IHL says.
    TruncatedIpv4,
    /// EtherType 0x0800 but the version nibble is not 4.
    Ipv4BadVersion,
    /// IHL below 5.
    Ipv4BadIhl,
    /// Total length below the header length, or beyond the frame.
    Ipv4BadTotalLength,
    /// Less than the 40-byte fixed header.
    TruncatedIpv6,
    /// EtherType 0x86dd but the version nibble is not 6.
    Ipv6BadVersion,
    /// Payload length beyond the frame.
    Ipv6BadPayloadLength,
    /// An extension header that does not fit in the packet.
    TruncatedIpv6ExtHeader,
    /// More extension headers than [`ipv6::MAX_EXT_HEADERS`].
    Ipv6TooManyExtHeaders,
    /// TCP header (20 bytes, or its data offset) cut short.
    TruncatedTcp,
    /// TCP data offset below 5.
    TcpBadDataOffset,
    TruncatedUdp,
    TruncatedSctp,
    /// ICMP/ICMPv6 shorter than 4 bytes, or an echo shorter than 8.
    TruncatedIcmp,
    TruncatedIgmp,
}

impl ParseError {
    /// A short human reason, for logs and verdict details.
    pub fn reason(&self) -> &'static str {
        use ParseError::*;
        match self {
            TruncatedEthernet => "truncated Ethernet header",
            TruncatedVlan => "truncated VLAN tag",
            TooManyVlanTags => "more than two VLAN tags",
            TruncatedArp => "truncated ARP packet",
            UnsupportedArp => "ARP for other than Ethernet/IPv4",
            TruncatedIpv4 => "truncated IPv4 header",
            Ipv4BadVersion => "IPv4 EtherType with IP version other than 4",
            Ipv4BadIhl => "IPv4 header length below 20 bytes",
            Ipv4BadTotalLength => "IPv4 total length below header length or beyond frame",
            TruncatedIpv6 => "truncated IPv6 header",
            Ipv6BadVersion => "IPv6 EtherType with IP version other than 6",
            Ipv6BadPayloadLength => "IPv6 payload length beyond frame",
            TruncatedIpv6ExtHeader => "truncated IPv6 extension header",
            Ipv6TooManyExtHeaders => "too many IPv6 extension headers",
            TruncatedTcp => "truncated TCP header",
            TcpBadDataOffset => "TCP data offset below 20 bytes",
            TruncatedUdp => "truncated UDP header",
            TruncatedSctp => "truncated SCTP header",
            TruncatedIcmp => "truncated ICMP header",
            TruncatedIgmp => "truncated IGMP header",
        }
    }

    /// Always [`DROP_REASON`].
    pub fn drop_reason(&self) -> &'static str {
        DROP_REASON
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for ParseError {}

/// What the IPv4 or IPv6 layer tells the rest of the walk.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IpInfo {
    pub version: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The upper-layer protocol (after IPv6 extension headers).
    pub protocol: u8,
    pub fragment: Fragment,
    pub frag: FragmentInfo,
    pub ttl: u8,
    /// End of the IP packet (frame offset), per its length field.
    pub end: usize,
    /// Where the upper-layer header starts (or the fragment data, for a non-first one).
    pub l4_offset: usize,
    /// Whether an upper-layer header is there to parse.
    pub has_l4: bool,
}

/// Reads a big-endian u16 at `off`; callers have checked the bounds (so `None` never
/// happens on the paths below, but no index can panic either).
#[inline]
pub(crate) fn be16(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    <[u8; 2]>::try_from(s).ok().map(u16::from_be_bytes)
}

/// The byte at `off`, or 0 past the end (callers have checked the length first).
#[inline]
pub(crate) fn u8_at(b: &[u8], off: usize) -> u8 {
    b.get(off).copied().unwrap_or(0)
}

#[inline]
pub(crate) fn mac_at(b: &[u8], off: usize) -> Option<Mac> {
    let s = b.get(off..off.checked_add(6)?)?;
    let mut m = [0u8; 6];
    m.copy_from_slice(s);
    Some(Mac(m))
}

/// Offsets fit in u16: every header walk is bounded well below 64 KiB (Ethernet + 2 tags +
/// IPv4 with 60 bytes or IPv6 with at most `MAX_EXT_HEADERS` headers of ≤ 2 KiB each).
#[inline]
fn off16(o: usize) -> u16 {
    u16::try_from(o).unwrap_or(u16::MAX)
}

/// Parses a complete frame (as received from a device: nothing cut off). An IP length
/// beyond the frame is an error.
pub fn parse(frame: &[u8]) -> Result<Parsed, ParseError> {
    parse_inner(frame, false)
}

/// Parses a frame from a capture whose original length was `orig_len`. When the capture
/// cut the frame (`frame.len() < orig_len`), the IP packet may extend past the bytes
/// present (`Parsed::truncated` is then set), but the L4 header must still be complete:
/// a flow cannot be classified without its ports.
pub fn parse_captured(frame: &[u8], orig_len: u32) -> Result<Parsed, ParseError> {
    parse_inner(frame, (frame.len() as u64) < u64::from(orig_len))
}

fn parse_inner(frame: &[u8], snapped: bool) -> Result<Parsed, ParseError> {
    match common::parse(frame) {
        Some(p) => Ok(p),
        None => parse_any(frame, snapped),
    }
}

/// Every frame, header by header (the common case's shortcut aside: `common`).
pub(crate) fn parse_any(frame: &[u8], snapped: bool) -> Result<Parsed, ParseError> {
    let eth = ethernet::parse(frame)?;
    let mut p = Parsed {
        kind: FrameKind::Other {
            ethertype: eth.ethertype,
        },
        fields: Fields {
            src_mac: eth.src,
            dst_mac: eth.dst,
            vlan: eth.vlan,
            vni: None,
            src_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            dst_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            protocol: 0,
            src_port: 0,
            dst_port: 0,
            icmp: None,
        },
        vlan_offset: eth.vlan_offset.map(off16),
        vlan_count: eth.vlan_count,
        outer_vlan: eth.outer_vlan,
        ethertype: eth.ethertype,
        l3_offset: off16(eth.l3_offset),
        l4_offset: None,
        payload_offset: off16(eth.l3_offset),
        l3_end: 0,
        ip_version: 0,
        fragment: Fragment::None,
        frag: FragmentInfo {
            id: 0,
            offset: 0,
            more: false,
            len: 0,
        },
        tcp_flags: 0,
        tcp_seq: strata_rules::conn::TcpSeq::default(),
        icmp_id: None,
        ttl: 0,
        truncated: false,
    };
    let l3 = eth.l3_offset;
    let ip = match eth.ethertype {
        ethernet::ETHERTYPE_ARP => {
            p.kind = FrameKind::Arp(arp::parse(frame, l3)?);
            return Ok(p);
        }
        ethernet::ETHERTYPE_IPV4 => ipv4::parse(frame, l3, snapped)?,
        ethernet::ETHERTYPE_IPV6 => ipv6::parse(frame, l3, snapped)?,
        _ => return Ok(p),
    };
    p.kind = FrameKind::Ip;
    p.ip_version = ip.version;
    p.fields.src_ip = ip.src;
    p.fields.dst_ip = ip.dst;
    p.fields.protocol = ip.protocol;
    p.fragment = ip.fragment;
    p.frag = ip.frag;
    p.ttl = ip.ttl;
    p.l3_end = u32::try_from(ip.end).unwrap_or(u32::MAX);
    p.truncated = ip.end > frame.len();
    p.payload_offset = off16(ip.l4_offset);
    if !ip.has_l4 {
        return Ok(p);
    }
    // The L4 header must lie within both the IP packet and the bytes we have.
    let l4_end = ip.end.min(frame.len());
    let l4 = frame.get(ip.l4_offset..l4_end).unwrap_or(&[]);
    p.l4_offset = Some(off16(ip.l4_offset));
    let hdr_len = match ip.protocol {
        proto::TCP => {
            let t = tcp::parse(l4)?;
            p.fields.src_port = t.src_port;
            p.fields.dst_port = t.dst_port;
            p.tcp_flags = t.flags;
            let payload = ip.end.saturating_sub(ip.l4_offset + t.header_len);
            p.tcp_seq = strata_rules::conn::TcpSeq {
                seq: t.seq,
                ack: t.ack,
                window: t.window,
                wscale: t.wscale,
                len: u32::try_from(payload).unwrap_or(u32::MAX),
            };
            t.header_len
        }
        proto::UDP => {
            let u = udp::parse(l4)?;
            p.fields.src_port = u.src_port;
            p.fields.dst_port = u.dst_port;
            udp::HEADER_LEN
        }
        proto::SCTP => {
            // SCTP's common header starts with the two ports, then tag and CRC32c.
            if l4.len() < 12 {
                return Err(ParseError::TruncatedSctp);
            }
            p.fields.src_port = be16(l4, 0).unwrap_or(0);
            p.fields.dst_port = be16(l4, 2).unwrap_or(0);
            12
        }
        proto::ICMP | proto::ICMPV6 => {
            let i = icmp::parse(l4, ip.protocol == proto::ICMPV6)?;
            p.fields.icmp = Some((i.icmp_type, i.code));
            p.icmp_id = i.echo_id;
            icmp::HEADER_LEN
        }
        proto::IGMP => {
            // Every IGMP message (v1, v2, v3 query and report) is at least 8 bytes.
            if l4.len() < 8 {
                return Err(ParseError::TruncatedIgmp);
            }
            8
        }
        _ => {
            // An unknown protocol: we know where its header starts, nothing more.
            0
        }
    };
    p.payload_offset = off16(ip.l4_offset + hdr_len);
    Ok(p)
}

impl Parsed {
    /// Whether the frame carries IPv4.
    pub fn is_ipv4(&self) -> bool {
        matches!(self.kind, FrameKind::Ip) && self.ip_version == 4
    }

    /// Whether the frame carries IPv6.
    pub fn is_ipv6(&self) -> bool {
        matches!(self.kind, FrameKind::Ip) && self.ip_version == 6
    }

    /// Length of the IP packet (header and payload) as its header says; 0 for non-IP.
    pub fn ip_len(&self) -> u32 {
        self.l3_end.saturating_sub(u32::from(self.l3_offset))
    }

    /// Offset of the IPv4 header checksum.
    pub fn ipv4_checksum_offset(&self) -> Option<usize> {
        self.is_ipv4()
            .then(|| self.l3_offset as usize + ipv4::field::CHECKSUM)
    }

    /// Offset of the IPv4 TTL or IPv6 hop limit.
    pub fn ttl_offset(&self) -> Option<usize> {
        match self.ip_version {
            4 => Some(self.l3_offset as usize + ipv4::field::TTL),
            6 => Some(self.l3_offset as usize + ipv6::field::HOP_LIMIT),
            _ => None,
        }
    }

    /// Offset and length (4 or 16) of the source IP address.
    pub fn src_ip_offset(&self) -> Option<(usize, usize)> {
        let l3 = self.l3_offset as usize;
        match self.ip_version {
            4 => Some((l3 + ipv4::field::SRC, 4)),
            6 => Some((l3 + ipv6::field::SRC, 16)),
            _ => None,
        }
    }

    /// Offset and length (4 or 16) of the destination IP address.
    pub fn dst_ip_offset(&self) -> Option<(usize, usize)> {
        let l3 = self.l3_offset as usize;
        match self.ip_version {
            4 => Some((l3 + ipv4::field::DST, 4)),
            6 => Some((l3 + ipv6::field::DST, 16)),
            _ => None,
        }
    }

    /// Offsets of the L4 source and destination ports (TCP, UDP, SCTP), when present.
    pub fn port_offsets(&self) -> Option<(usize, usize)> {
        let l4 = self.l4_offset? as usize;
        proto::has_ports(self.fields.protocol).then_some((l4, l4 + 2))
    }

    /// Offset of the ICMP/ICMPv6 echo identifier, when this is an echo.
    pub fn icmp_id_offset(&self) -> Option<usize> {
        self.icmp_id?;
        Some(self.l4_offset? as usize + icmp::field::ECHO_ID)
    }

    /// Offset of the L4 checksum: TCP, UDP, ICMP, ICMPv6 (16-bit Internet checksums) and
    /// SCTP (CRC32c, 4 bytes). `None` when there is no L4 header or no known checksum.
    pub fn l4_checksum_offset(&self) -> Option<usize> {
        let l4 = self.l4_offset? as usize;
        match self.fields.protocol {
            proto::TCP => Some(l4 + tcp::field::CHECKSUM),
            proto::UDP => Some(l4 + udp::field::CHECKSUM),
            proto::ICMP | proto::ICMPV6 => Some(l4 + icmp::field::CHECKSUM),
            proto::SCTP => Some(l4 + 8),
            proto::IGMP => Some(l4 + 2),
            _ => None,
        }
    }

    /// Offset of the innermost EtherType (just before `l3_offset`).
    pub fn ethertype_offset(&self) -> usize {
        (self.l3_offset as usize).saturating_sub(2)
    }
}

/// Writes a big-endian u16 at `off`; `false` (nothing written) if out of bounds.
pub fn set_u16(buf: &mut [u8], off: usize, v: u16) -> bool {
    match off.checked_add(2).and_then(|end| buf.get_mut(off..end)) {
        Some(s) => {
            s.copy_from_slice(&v.to_be_bytes());
            true
        }
        None => false,
    }
}

/// Copies `v` to `off`; `false` (nothing written) if out of bounds.
pub fn set_bytes(buf: &mut [u8], off: usize, v: &[u8]) -> bool {
    match off
        .checked_add(v.len())
        .and_then(|end| buf.get_mut(off..end))
    {
        Some(s) => {
            s.copy_from_slice(v);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests;
