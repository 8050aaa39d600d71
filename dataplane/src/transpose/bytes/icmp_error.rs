//! ICMP errors: recognising them, the packet they quote and its translation (NAT), and
//! building "fragmentation needed" / "packet too big" replies.

use super::*;

/// Whether an ICMP (`version` 4) or ICMPv6 type is an error that quotes a packet.
pub fn is_icmp_error(version: u8, icmp_type: u8) -> bool {
    match version {
        // Destination unreachable, source quench, redirect, time exceeded, parameter
        // problem (RFC 792).
        4 => matches!(icmp_type, 3 | 4 | 5 | 11 | 12),
        // Destination unreachable, packet too big, time exceeded, parameter problem
        // (RFC 4443).
        6 => matches!(icmp_type, 1..=4),
        _ => false,
    }
}

/// The packet quoted in an ICMP error: what NAT translates back, and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InnerPacket {
    /// 4 or 6: always the outer packet's.
    pub ip_version: u8,
    pub src_ip: IpAddr,
    pub dst_ip: IpAddr,
    pub protocol: u8,
    /// TCP/UDP/SCTP ports, or a quoted ICMP echo's identifier in both; 0 when the quote
    /// does not hold them.
    pub src_port: u16,
    pub dst_port: u16,
    /// The quoted packet is an ICMP echo (request or reply), `src_port` its identifier.
    pub icmp_echo: bool,
    pub fragment: Fragment,
    /// Offset of the quoted IP header in the frame.
    pub l3_offset: usize,
    /// Offset of the quoted L4 header, when the quote reaches it.
    pub l4_offset: Option<usize>,
    /// End of the quote: the end of the ICMP message, or of the frame if it is cut.
    pub end: usize,
}

/// Parses the packet quoted by an ICMPv4 error (types 3, 4, 5, 11, 12) or ICMPv6 error
/// (types 1 to 4). The quote is usually cut (RFC 792: IP header and 8 bytes), so its
/// lengths are not checked against what is there; the IP header must be whole.
pub fn icmp_error_inner(frame: &[u8], parsed: &Parsed) -> Option<InnerPacket> {
    let (icmp_type, _) = parsed.fields.icmp?;
    let want = if parsed.ip_version == 4 {
        proto::ICMP
    } else {
        proto::ICMPV6
    };
    if !matches!(parsed.kind, FrameKind::Ip)
        || parsed.fields.protocol != want
        || !is_icmp_error(parsed.ip_version, icmp_type)
    {
        return None;
    }
    let end = (parsed.l3_end as usize).min(frame.len());
    let bounded = frame.get(..end)?;
    // The ICMP header is 8 bytes (type, code, checksum, 4 more) before the quote.
    let q = parsed.l4_offset? as usize + 8;
    let info = match (bounded.get(q)? >> 4, parsed.ip_version) {
        (4, 4) => ipv4::parse(bounded, q, true).ok()?,
        (6, 6) => ipv6::parse(bounded, q, true).ok()?,
        _ => return None,
    };
    let l4 = (info.has_l4 && info.l4_offset < end).then_some(info.l4_offset);
    let mut inner = InnerPacket {
        ip_version: info.version,
        src_ip: info.src,
        dst_ip: info.dst,
        protocol: info.protocol,
        src_port: 0,
        dst_port: 0,
        icmp_echo: false,
        fragment: info.fragment,
        l3_offset: q,
        l4_offset: l4,
        end,
    };
    if let Some(l4) = l4 {
        if proto::has_ports(info.protocol) {
            if let (Some(s), Some(d)) = (be16(bounded, l4), be16(bounded, l4 + 2)) {
                inner.src_port = s;
                inner.dst_port = d;
            }
        } else if let (true, Some(id)) = (
            info.protocol == want
                && bounded
                    .get(l4)
                    .is_some_and(|&t| icmp::is_echo(t, info.version == 6)),
            be16(bounded, l4 + icmp::field::ECHO_ID),
        ) {
            inner.icmp_echo = true;
            inner.src_port = id;
            inner.dst_port = id;
        }
    }
    Some(inner)
}

/// Rewrites the packet quoted in an ICMP error: its source and destination address and
/// port (a quoted ICMP echo: its identifier, from `inner_src` first), the quoted IPv4
/// header checksum, the quoted L4 checksum when the quote holds it (incrementally, so it
/// is what the full original packet would carry), and the outer ICMP checksum, which
/// covers the quote. The outer addresses are `apply`'s business: run it with the outer
/// rewrite too (it keeps an ICMPv6 checksum's pseudo-header right).
pub fn translate_icmp_error(
    pkt: &mut PacketBuf,
    parsed: &Parsed,
    inner_src: Option<(IpAddr, u16)>,
    inner_dst: Option<(IpAddr, u16)>,
) -> Result<(), TransposeError> {
    let inner = icmp_error_inner(pkt.as_slice(), parsed).ok_or(TransposeError::NotIcmpError)?;
    for (ip, _) in [inner_src, inner_dst].into_iter().flatten() {
        if version_of(&ip) != inner.ip_version {
            return Err(TransposeError::AddressFamily);
        }
    }
    let outer_csum =
        parsed.l4_offset.ok_or(TransposeError::NotIcmpError)? as usize + icmp::field::CHECKSUM;
    let end = inner.end;
    let buf = pkt
        .as_mut_slice()
        .get_mut(..end)
        .ok_or(TransposeError::OutOfBounds)?;
    let (mut outer, mut l3, mut pseudo, mut l4) = (
        Delta::default(),
        Delta::default(),
        Delta::default(),
        Delta::default(),
    );
    let (src_off, dst_off) = if inner.ip_version == 4 {
        (ipv4::field::SRC, ipv4::field::DST)
    } else {
        (ipv6::field::SRC, ipv6::field::DST)
    };
    for (new, off) in [(inner_src, src_off), (inner_dst, dst_off)] {
        if let Some((ip, _)) = new {
            let (b, n) = ip_bytes(&ip);
            let deltas = &mut [&mut outer, &mut l3, &mut pseudo];
            write_words(buf, inner.l3_offset + off, ip_slice(&b, n), deltas)?;
        }
    }
    if inner.ip_version == 4 && !l3.is_zero() {
        let off = inner.l3_offset + ipv4::field::CHECKSUM;
        let old = be16(buf, off).ok_or(TransposeError::OutOfBounds)?;
        write_words(buf, off, &l3.apply(old).to_be_bytes(), &mut [&mut outer])?;
    }
    if let (Some(l4_off), false) = (inner.l4_offset, inner.fragment == Fragment::NonFirst) {
        let fits = |off: usize| off + 2 <= end;
        if proto::has_ports(inner.protocol) {
            for (new, off) in [(inner_src, l4_off), (inner_dst, l4_off + 2)] {
                if let (Some((_, port)), true) = (new, fits(off)) {
                    write_words(buf, off, &port.to_be_bytes(), &mut [&mut outer, &mut l4])?;
                }
            }
        } else if inner.icmp_echo {
            let off = l4_off + icmp::field::ECHO_ID;
            if let Some((_, id)) = inner_src.or(inner_dst) {
                write_words(buf, off, &id.to_be_bytes(), &mut [&mut outer, &mut l4])?;
            }
        }
        let (field, with_pseudo, udp) = match inner.protocol {
            proto::TCP => (Some(tcp::field::CHECKSUM), true, false),
            proto::UDP => (Some(udp::field::CHECKSUM), true, true),
            proto::ICMPV6 => (Some(icmp::field::CHECKSUM), true, false),
            proto::ICMP => (Some(icmp::field::CHECKSUM), false, false),
            _ => (None, false, false),
        };
        if with_pseudo {
            l4.merge(pseudo);
        }
        if let Some(off) = field.map(|f| l4_off + f).filter(|&o| fits(o)) {
            let old = be16(buf, off).ok_or(TransposeError::OutOfBounds)?;
            if !(l4.is_zero() || udp && old == 0) {
                let mut new = l4.apply(old);
                if udp && new == 0 {
                    new = 0xffff;
                }
                write_words(buf, off, &new.to_be_bytes(), &mut [&mut outer])?;
            }
        }
    }
    if !outer.is_zero() {
        patch_checksum(buf, outer_csum, &outer, false)?;
    }
    Ok(())
}

/// The largest ICMPv4 error: RFC 1812 §4.3.2.3 quotes as much as fits in 576 bytes.
pub(super) const ICMP4_ERROR_MAX: usize = 576;
/// RFC 4443 §2.4(c): as much as fits in the minimum IPv6 MTU.
pub(super) const ICMP6_ERROR_MAX: usize = 1280;

/// The reply to `frame`'s sender saying it is too big for `mtu`: ICMPv4 "fragmentation
/// needed" (type 3 code 4, with the next-hop MTU, RFC 1191) or ICMPv6 "packet too big"
/// (type 2, RFC 4443), from `src_mac`/`src_ip` (the gateway) to the sender, on the same
/// VLAN tags, quoting as much of the original as the RFCs allow (576 and 1280 bytes in
/// all) and with its checksums. `None` where no error may be sent: not IP, `src_ip` of
/// the other family, an ICMP error (or ICMPv6 redirect) itself, a non-first fragment, an
/// unspecified, multicast or broadcast sender, or (IPv4) a multicast or broadcast
/// destination (RFC 1122 §3.2.2, RFC 4443 §2.4(e); a packet too big is allowed for an
/// IPv6 multicast destination, §2.4(e.3)). Whether DF is set is the caller's to check.
// `out` is built here: `h0` and `m0` mark bytes already pushed (the IPv4 header's 20,
// the ICMP header's 8), so every range below lies inside it.
#[allow(clippy::indexing_slicing)]
pub fn icmp_too_big(
    frame: &[u8],
    parsed: &Parsed,
    mtu: u16,
    src_mac: Mac,
    src_ip: IpAddr,
) -> Option<Vec<u8>> {
    if !matches!(parsed.kind, FrameKind::Ip) || version_of(&src_ip) != parsed.ip_version {
        return None;
    }
    let v6 = parsed.ip_version == 6;
    if let Some((t, _)) = parsed.fields.icmp {
        let icmp_proto = if v6 { proto::ICMPV6 } else { proto::ICMP };
        if parsed.fields.protocol == icmp_proto
            && (is_icmp_error(parsed.ip_version, t) || (v6 && (t < 128 || t == 137)))
        {
            return None;
        }
    }
    if parsed.fragment == Fragment::NonFirst {
        return None;
    }
    let (to, dst) = (parsed.fields.src_ip, parsed.fields.dst_ip);
    let bad_source = match to {
        IpAddr::V4(a) => a.is_unspecified() || a.is_multicast() || a.is_broadcast(),
        IpAddr::V6(a) => a.is_unspecified() || a.is_multicast(),
    };
    let bad_dest = match dst {
        IpAddr::V4(a) => a.is_multicast() || a.is_broadcast(),
        IpAddr::V6(_) => false,
    };
    if bad_source || bad_dest {
        return None;
    }
    let l3 = parsed.l3_offset as usize;
    let end = (parsed.l3_end as usize).min(frame.len());
    let ip_hdr = if v6 {
        ipv6::HEADER_LEN
    } else {
        ipv4::MIN_HEADER_LEN
    };
    let max = if v6 { ICMP6_ERROR_MAX } else { ICMP4_ERROR_MAX };
    let quote = frame.get(l3..end.min(l3 + max - ip_hdr - 8))?;
    let tags = frame.get(ethernet::field::ETHERTYPE..parsed.ethertype_offset())?;
    let icmp_len = 8 + quote.len();
    let mut out = Vec::with_capacity(l3 + ip_hdr + icmp_len);
    out.extend_from_slice(&parsed.fields.src_mac.0);
    out.extend_from_slice(&src_mac.0);
    out.extend_from_slice(tags);
    let (s, n) = ip_bytes(&src_ip);
    let (d, _) = ip_bytes(&to);
    if v6 {
        out.extend_from_slice(&ethernet::ETHERTYPE_IPV6.to_be_bytes());
        out.extend_from_slice(&[0x60, 0, 0, 0]);
        out.extend_from_slice(&(icmp_len as u16).to_be_bytes());
        out.extend_from_slice(&[proto::ICMPV6, 64]);
        out.extend_from_slice(ip_slice(&s, n));
        out.extend_from_slice(ip_slice(&d, n));
    } else {
        out.extend_from_slice(&ethernet::ETHERTYPE_IPV4.to_be_bytes());
        let total = (ip_hdr + icmp_len) as u16;
        let h0 = out.len();
        out.extend_from_slice(&[0x45, 0]);
        out.extend_from_slice(&total.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0, 64, proto::ICMP, 0, 0]);
        out.extend_from_slice(&s[..4]);
        out.extend_from_slice(&d[..4]);
        let c = checksum::finish(checksum::sum(0, &out[h0..]));
        out[h0 + 10..h0 + 12].copy_from_slice(&c.to_be_bytes());
    }
    let m0 = out.len();
    if v6 {
        out.extend_from_slice(&[2, 0, 0, 0]);
        out.extend_from_slice(&u32::from(mtu).to_be_bytes());
    } else {
        out.extend_from_slice(&[3, 4, 0, 0, 0, 0]);
        out.extend_from_slice(&mtu.to_be_bytes());
    }
    out.extend_from_slice(quote);
    let mut acc = 0;
    if v6 {
        acc = checksum::sum(acc, ip_slice(&s, n));
        acc = checksum::sum(acc, ip_slice(&d, n));
        acc = checksum::sum(acc, &(icmp_len as u32).to_be_bytes());
        acc = checksum::sum(acc, &[0, 0, 0, proto::ICMPV6]);
    }
    let c = checksum::finish(checksum::sum(acc, &out[m0..]));
    out[m0 + 2..m0 + 4].copy_from_slice(&c.to_be_bytes());
    Some(out)
}
