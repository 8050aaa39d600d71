//! VXLAN (RFC 7348): recognising an encapsulated frame, reading its inner frame, and
//! putting outer Ethernet/IP/UDP/VXLAN headers in front of one.

use super::*;

/// The IANA VXLAN port (RFC 7348).
pub const VXLAN_PORT: u16 = 4789;
/// The VXLAN header: flags, reserved, VNI, reserved.
pub const VXLAN_HEADER_LEN: usize = 8;
/// The "I" flag: the VNI is valid.
pub const VXLAN_FLAG_I: u8 = 0x08;

pub(super) const ENCAP_V4_LEN: usize =
    ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN + 8 + VXLAN_HEADER_LEN;
pub(super) const ENCAP_V6_LEN: usize =
    ethernet::HEADER_LEN + ipv6::HEADER_LEN + 8 + VXLAN_HEADER_LEN;

/// A VXLAN packet's facts: its VNI and where the inner Ethernet frame starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vxlan {
    pub vni: u32,
    pub inner_offset: usize,
}

/// Whether `frame` is Ethernet/IP/UDP/VXLAN: UDP to one of `ports` (any port when
/// `ports` is empty), a VXLAN header with the I flag, and room for an inner Ethernet
/// header within the outer IP packet. Fragments are not. The inner frame is
/// `frame[inner_offset..min(l3_end, len)]`.
pub fn vxlan_of(frame: &[u8], parsed: &Parsed, ports: &[u16]) -> Option<Vxlan> {
    // A fragment is not decapsulated: VTEPs must not fragment (RFC 7348 §4.3), and the
    // inner frame would be partial.
    if !matches!(parsed.kind, FrameKind::Ip)
        || parsed.fields.protocol != proto::UDP
        || parsed.fragment != Fragment::None
    {
        return None;
    }
    parsed.l4_offset?;
    if !ports.is_empty() && !ports.contains(&parsed.fields.dst_port) {
        return None;
    }
    let v = parsed.payload_offset as usize;
    let &[flags, _, _, _, vni_hi, vni_mid, vni_lo, _] = frame.get(v..v + VXLAN_HEADER_LEN)? else {
        return None;
    };
    if flags & VXLAN_FLAG_I == 0 {
        return None;
    }
    let inner_offset = v + VXLAN_HEADER_LEN;
    let end = (parsed.l3_end as usize).min(frame.len());
    if inner_offset + ethernet::HEADER_LEN > end {
        return None;
    }
    Some(Vxlan {
        vni: u32::from_be_bytes([0, vni_hi, vni_mid, vni_lo]),
        inner_offset,
    })
}

/// Parses the inner frame of a VXLAN packet (a capture-truncated outer frame gives a
/// truncated inner one).
pub fn parse_inner(frame: &[u8], parsed: &Parsed, vx: &Vxlan) -> Result<Parsed, ParseError> {
    let end = (parsed.l3_end as usize).min(frame.len());
    let inner = frame
        .get(vx.inner_offset..end)
        .ok_or(ParseError::TruncatedEthernet)?;
    if parsed.truncated {
        packet::parse_captured(inner, u32::MAX)
    } else {
        packet::parse(inner)
    }
}

/// Whether the encapsulation is over IPv6; both addresses must be of one family.
pub(super) fn encap_family(e: &Encap) -> Result<bool, TransposeError> {
    match (e.src_ip, e.dst_ip) {
        (IpAddr::V4(_), IpAddr::V4(_)) => Ok(false),
        (IpAddr::V6(_), IpAddr::V6(_)) => Ok(true),
        _ => Err(TransposeError::AddressFamily),
    }
}

/// Puts Ethernet/IP/UDP/VXLAN in front of the frame. `missing`: bytes of the inner frame
/// that a capture cut off, which the lengths count.
// `h` is the `hdr_len` bytes `prepend` just made (ENCAP_V4_LEN or ENCAP_V6_LEN): every
// range below is a constant offset inside that header, and `u` < `hdr_len` <= the frame.
#[allow(clippy::indexing_slicing)]
pub(super) fn encap(e: &Encap, pkt: &mut PacketBuf, missing: usize) -> Result<(), TransposeError> {
    let v6 = encap_family(e)?;
    let inner_len = pkt.len() + missing;
    let udp_len = 8 + VXLAN_HEADER_LEN + inner_len;
    let ip_len = if v6 {
        ipv6::HEADER_LEN
    } else {
        ipv4::MIN_HEADER_LEN
    };
    let (udp_len16, total16) = match (
        u16::try_from(udp_len),
        u16::try_from(udp_len + if v6 { 0 } else { ip_len }),
    ) {
        (Ok(u), Ok(t)) => (u, t),
        _ => return Err(TransposeError::TooLong),
    };
    let hdr_len = if v6 { ENCAP_V6_LEN } else { ENCAP_V4_LEN };
    let h = pkt.prepend(hdr_len);
    h[0..6].copy_from_slice(&e.dst_mac.0);
    h[6..12].copy_from_slice(&e.src_mac.0);
    let (src, n) = ip_bytes(&e.src_ip);
    let (dst, _) = ip_bytes(&e.dst_ip);
    let ethertype = if v6 {
        ethernet::ETHERTYPE_IPV6
    } else {
        ethernet::ETHERTYPE_IPV4
    };
    h[12..14].copy_from_slice(&ethertype.to_be_bytes());
    let ip = &mut h[ethernet::HEADER_LEN..];
    if v6 {
        ip[..4].copy_from_slice(&[0x60, 0, 0, 0]);
        ip[4..6].copy_from_slice(&udp_len16.to_be_bytes());
        ip[6] = proto::UDP;
        ip[7] = 64;
        ip[8..24].copy_from_slice(ip_slice(&src, n));
        ip[24..40].copy_from_slice(ip_slice(&dst, n));
    } else {
        let hdr = [
            0x45,
            0,
            (total16 >> 8) as u8,
            total16 as u8,
            0,
            0,
            0x40, // DF: an underlay packet is never fragmented by us (RFC 7348 §4.3)
            0,
            64,
            proto::UDP,
            0,
            0,
        ];
        ip[..12].copy_from_slice(&hdr);
        ip[12..16].copy_from_slice(&src[..4]);
        ip[16..20].copy_from_slice(&dst[..4]);
        let c = checksum::finish(checksum::sum(0, &ip[..20]));
        ip[10..12].copy_from_slice(&c.to_be_bytes());
    }
    let u = ethernet::HEADER_LEN + ip_len;
    h[u..u + 2].copy_from_slice(&e.udp_src.to_be_bytes());
    h[u + 2..u + 4].copy_from_slice(&e.udp_dst.to_be_bytes());
    h[u + 4..u + 6].copy_from_slice(&udp_len16.to_be_bytes());
    h[u + 6..u + 8].fill(0);
    let vni = e.vni & 0x00ff_ffff;
    h[u + 8..u + 16].copy_from_slice(&[
        VXLAN_FLAG_I,
        0,
        0,
        0,
        (vni >> 16) as u8,
        (vni >> 8) as u8,
        vni as u8,
        0,
    ]);
    if v6 {
        // Over IPv6 the UDP checksum is mandatory: sum the pseudo-header and the datagram.
        let mut acc = checksum::sum(0, &src);
        acc = checksum::sum(acc, &dst);
        acc = checksum::sum(acc, &(udp_len as u32).to_be_bytes());
        acc = checksum::sum(acc, &[0, 0, 0, proto::UDP]);
        let all = pkt.as_mut_slice();
        acc = checksum::sum(acc, &all[u..]);
        let mut c = checksum::finish(acc);
        if c == 0 {
            c = 0xffff;
        }
        all[u + 6..u + 8].copy_from_slice(&c.to_be_bytes());
    }
    Ok(())
}
