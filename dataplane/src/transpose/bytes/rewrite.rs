//! Applying a [`Transposition`] to a frame in place: decap, inner MACs, addresses and
//! ports with their checksums, the VLAN operation, encap.

use super::*;

/// Checks that `t`'s inner rewrites fit the frame `p` describes.
pub(super) fn check_fits(t: &Transposition, p: &Parsed) -> Result<(), TransposeError> {
    for ip in [t.src_ip, t.dst_ip].into_iter().flatten() {
        if !matches!(p.kind, FrameKind::Ip) {
            return Err(TransposeError::NotIp);
        }
        if version_of(&ip) != p.ip_version {
            return Err(TransposeError::AddressFamily);
        }
    }
    Ok(())
}

/// Applies `t` to the frame in `pkt`, which `parsed` describes, in place: decap, then the
/// inner MACs, addresses and ports (ICMP echo: the identifier, `src_port` first, as
/// [`Transposition::apply_fields`]), then the VLAN operation, then encap. Checksums are
/// updated incrementally (see the module's notes). Ports of protocols without ports, and
/// L4 rewrites of non-first fragments, are ignored (the first fragment carries the L4
/// header and its checksum covers the whole datagram, so it alone is patched).
///
/// A VLAN push on an untagged frame inserts an 802.1Q tag (PCP 0) after the MACs; on a
/// tagged one it replaces the innermost tag (the one `Fields::vlan` reports) with that
/// same 802.1Q tag, priority 0: so that a pop then a push (which `then` composes into
/// the push) gives the same bytes either way. A pop removes the outermost tag, if any.
/// (On a QinQ frame, pop then push still differs from the push alone: the push alone
/// keeps the outer tag. `then` cannot express "pop one, replace the other".)
///
/// Decap takes any UDP port (the slow path decided the flow is VXLAN); the inner frame
/// ends where the outer IP packet does (Ethernet padding is dropped) and is re-parsed for
/// the rewrites that follow.
///
/// Errors leave the frame untouched; no allocation happens when the headroom suffices.
pub fn apply(
    t: &Transposition,
    pkt: &mut PacketBuf,
    parsed: &Parsed,
) -> Result<(), TransposeError> {
    let mut p = *parsed;
    let mut vx = None;
    if t.decap {
        let v = vxlan_of(pkt.as_slice(), &p, &[]).ok_or(TransposeError::NotVxlan)?;
        p = parse_inner(pkt.as_slice(), parsed, &v).map_err(TransposeError::Inner)?;
        vx = Some(v);
    }
    check_fits(t, &p)?;
    // Everything that can fail is checked before the first byte changes.
    let (body_start, body_end) = match vx {
        Some(v) => (v.inner_offset, (parsed.l3_end as usize).min(pkt.len())),
        None => (0, pkt.len()),
    };
    let body_len = body_end - body_start;
    // Bytes of the IP packet the capture cut off: the outer lengths must count them.
    let missing = if matches!(p.kind, FrameKind::Ip) {
        (p.l3_end as usize).saturating_sub(body_len)
    } else {
        0
    };
    let after_vlan = match t.vlan {
        VlanOp::Push(_) if p.vlan_count == 0 => body_len + ethernet::TAG_LEN,
        VlanOp::Pop if p.vlan_count > 0 => body_len - ethernet::TAG_LEN,
        _ => body_len,
    };
    if let Some(e) = &t.encap {
        let v6 = encap_family(e)?;
        let ip_hdr = if v6 { 0 } else { ipv4::MIN_HEADER_LEN };
        if ip_hdr + 8 + VXLAN_HEADER_LEN + after_vlan + missing > 0xffff {
            return Err(TransposeError::TooLong);
        }
    }

    if vx.is_some() {
        pkt.truncate(body_end);
        pkt.strip_front(body_start);
    }
    rewrite_inner(t, pkt.as_mut_slice(), &p)?;
    match t.vlan {
        VlanOp::Keep => {}
        VlanOp::Push(vid) => push_vlan(pkt, &p, vid)?,
        VlanOp::Pop => {
            if let Some(off) = p.vlan_offset.filter(|_| p.vlan_count > 0) {
                pkt.remove(off as usize, ethernet::TAG_LEN);
            }
        }
    }
    if let Some(e) = &t.encap {
        encap(e, pkt, missing)?;
    }
    Ok(())
}

pub(super) fn push_vlan(pkt: &mut PacketBuf, p: &Parsed, vid: u16) -> Result<(), TransposeError> {
    let vid = vid & 0x0fff;
    match p.vlan_offset.filter(|_| p.vlan_count > 0) {
        None => {
            let [t0, t1] = ethernet::ETHERTYPE_VLAN.to_be_bytes();
            let [v0, v1] = vid.to_be_bytes();
            // `insert` returns exactly the TAG_LEN (4) bytes it opened.
            pkt.insert(ethernet::field::ETHERTYPE, ethernet::TAG_LEN)
                .copy_from_slice(&[t0, t1, v0, v1]);
        }
        Some(off) => {
            let tag = off as usize + 4 * (usize::from(p.vlan_count) - 1);
            let mut b = [0u8; 4];
            b[..2].copy_from_slice(&ethernet::ETHERTYPE_VLAN.to_be_bytes());
            b[2..].copy_from_slice(&vid.to_be_bytes());
            if !packet::set_bytes(pkt.as_mut_slice(), tag, &b) {
                return Err(TransposeError::OutOfBounds);
            }
        }
    }
    Ok(())
}

/// The MAC, address and port rewrites, with their checksums.
pub(super) fn rewrite_inner(
    t: &Transposition,
    buf: &mut [u8],
    p: &Parsed,
) -> Result<(), TransposeError> {
    if let Some(m) = t.dst_mac {
        write_words(buf, ethernet::field::DST, &m.0, &mut [])?;
    }
    if let Some(m) = t.src_mac {
        write_words(buf, ethernet::field::SRC, &m.0, &mut [])?;
    }
    if !matches!(p.kind, FrameKind::Ip) {
        return Ok(());
    }
    // `l3`: the IPv4 header checksum; `pseudo`: what the pseudo-header adds to an L4
    // checksum; `l4`: the L4 header's own words.
    let (mut l3, mut pseudo, mut l4) = (Delta::default(), Delta::default(), Delta::default());
    for (new, at) in [(t.src_ip, p.src_ip_offset()), (t.dst_ip, p.dst_ip_offset())] {
        if let (Some(ip), Some((off, n))) = (new, at) {
            let (b, len) = ip_bytes(&ip);
            if len != n {
                return Err(TransposeError::AddressFamily);
            }
            write_words(buf, off, ip_slice(&b, len), &mut [&mut l3, &mut pseudo])?;
        }
    }
    if p.is_ipv4() && !l3.is_zero() {
        let off = p
            .ipv4_checksum_offset()
            .ok_or(TransposeError::OutOfBounds)?;
        patch_checksum(buf, off, &l3, false)?;
    }
    let Some(l4_off) = p.l4_offset.map(usize::from) else {
        return Ok(());
    };
    if p.fragment == Fragment::NonFirst {
        return Ok(());
    }
    // SCTP's CRC32c is updated from the change of the ports, not from `l4`.
    let old_ports: Option<[u8; 4]> = buf
        .get(l4_off..l4_off + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok());
    if let Some((s, d)) = p.port_offsets() {
        if let Some(port) = t.src_port {
            write_words(buf, s, &port.to_be_bytes(), &mut [&mut l4])?;
        }
        if let Some(port) = t.dst_port {
            write_words(buf, d, &port.to_be_bytes(), &mut [&mut l4])?;
        }
    } else if let (Some(off), Some(id)) = (p.icmp_id_offset(), t.src_port.or(t.dst_port)) {
        write_words(buf, off, &id.to_be_bytes(), &mut [&mut l4])?;
    }
    let csum = l4_off;
    match p.fields.protocol {
        proto::TCP | proto::UDP => {
            l4.merge(pseudo);
            if !l4.is_zero() {
                let udp = p.fields.protocol == proto::UDP;
                let f = if udp {
                    udp::field::CHECKSUM
                } else {
                    tcp::field::CHECKSUM
                };
                patch_checksum(buf, csum + f, &l4, udp)?;
            }
        }
        proto::ICMPV6 => {
            l4.merge(pseudo);
            if !l4.is_zero() {
                patch_checksum(buf, csum + icmp::field::CHECKSUM, &l4, false)?;
            }
        }
        proto::ICMP if !l4.is_zero() => {
            patch_checksum(buf, csum + icmp::field::CHECKSUM, &l4, false)?;
        }
        proto::SCTP => {
            let new_ports = buf
                .get(l4_off..l4_off + 4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok());
            if let (Some(old), Some(new)) = (old_ports, new_ports) {
                let delta = (u32::from_be_bytes(old) ^ u32::from_be_bytes(new)).to_be_bytes();
                if delta != [0; 4] {
                    // The whole SCTP packet's length, even where the capture cut it.
                    let len = (p.l3_end as usize).saturating_sub(l4_off);
                    let fix = crc32c_linear(&delta, len.saturating_sub(4));
                    let c = buf
                        .get_mut(csum + 8..csum + 12)
                        .ok_or(TransposeError::OutOfBounds)?;
                    let old = <[u8; 4]>::try_from(&*c).map_err(|_| TransposeError::OutOfBounds)?;
                    c.copy_from_slice(&(u32::from_le_bytes(old) ^ fix).to_le_bytes());
                }
            }
        }
        _ => {}
    }
    Ok(())
}
