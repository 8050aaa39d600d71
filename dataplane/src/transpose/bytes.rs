//! The byte-level rewrite: a [`Transposition`] applied to a frame in place, with RFC 1624
//! incremental checksums, VLAN push/pop, and VXLAN encapsulation and decapsulation in a
//! [`PacketBuf`] whose headroom spares the packet path any reallocation; plus the ICMP
//! error helpers that NAT needs (the quoted packet, its translation, "too big" replies).
//!
//! Checksums are patched, never recomputed, on the packet path: a rewrite changes a few
//! 16-bit words, and RFC 1624 eqn. 3 gives the new checksum from the old one and those
//! words alone. That is exact even when the capture cut the payload off (`caplen <
//! orig_len`): the checksum field and the changed words are all that is needed, so a
//! truncated frame gets the checksum its full original would have. The only full
//! computations are the outer UDP checksum of an IPv6-underlay encapsulation (RFC 7348
//! and RFC 6935: it is required there; over a truncated frame it covers only the bytes
//! present and cannot be right) and the replies built by [`icmp_too_big`]. SCTP's
//! CRC32c is updated from the ports' change too (a CRC is affine), which costs a pass
//! over as many zero bytes as the packet is long, but reads none of it.
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use strata_dataplane::packet;
//! use strata_dataplane::transpose::Transposition;
//! use strata_dataplane::transpose::bytes::{DEFAULT_HEADROOM, PacketBuf, apply};
//! # let frame = strata_dataplane::packet::testutil::ipv4_udp_frame();
//! let parsed = packet::parse(&frame).unwrap();
//! let snat = Transposition {
//!     src_ip: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
//!     src_port: Some(61000),
//!     ..Transposition::NONE
//! };
//! let mut pkt = PacketBuf::with_headroom(&frame, DEFAULT_HEADROOM);
//! apply(&snat, &mut pkt, &parsed).unwrap();
//! let after = packet::parse(pkt.as_slice()).unwrap();
//! assert_eq!(after.fields.src_port, 61000);
//! assert!(packet::ipv4::header_checksum_ok(pkt.as_slice(), 14));
//! ```

use std::net::IpAddr;

use strata_rules::model::{Mac, proto};

use super::{Encap, Transposition, VlanOp};
use crate::packet::{
    self, Fragment, FrameKind, ParseError, Parsed, be16, checksum, ethernet, icmp, ipv4, ipv6, tcp,
    udp,
};

/// The IANA VXLAN port (RFC 7348).
pub const VXLAN_PORT: u16 = 4789;
/// The VXLAN header: flags, reserved, VNI, reserved.
pub const VXLAN_HEADER_LEN: usize = 8;
/// The "I" flag: the VNI is valid.
pub const VXLAN_FLAG_I: u8 = 0x08;
/// Headroom for a VXLAN encapsulation over IPv6 (14 + 40 + 8 + 8 = 70) plus a VLAN tag,
/// rounded up: what [`PacketBuf::with_headroom`] callers should reserve.
pub const DEFAULT_HEADROOM: usize = 96;

const ENCAP_V4_LEN: usize = ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN + 8 + VXLAN_HEADER_LEN;
const ENCAP_V6_LEN: usize = ethernet::HEADER_LEN + ipv6::HEADER_LEN + 8 + VXLAN_HEADER_LEN;

/// Why a rewrite could not be applied. The frame is left untouched in every case but
/// [`TransposeError::OutOfBounds`] (a `Parsed` that does not describe the frame).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransposeError {
    #[error("address rewrite of a frame that is not IP")]
    NotIp,
    #[error("rewrite address family differs from the packet's")]
    AddressFamily,
    #[error("decapsulation of a frame that is not Ethernet/IP/UDP/VXLAN")]
    NotVxlan,
    #[error("inner frame: {0}")]
    Inner(ParseError),
    #[error("encapsulated packet longer than 65535 bytes")]
    TooLong,
    #[error("header offsets beyond the frame")]
    OutOfBounds,
    #[error("not an ICMP error with a quoted packet")]
    NotIcmpError,
}

/// A frame with headroom in front of it, so that pushing headers (VXLAN, a VLAN tag)
/// moves the start instead of the frame. Stripping headers gives the room back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketBuf {
    buf: Vec<u8>,
    start: usize,
}

impl PacketBuf {
    /// A copy of `frame` with `headroom` free bytes before it.
    pub fn with_headroom(frame: &[u8], headroom: usize) -> PacketBuf {
        let mut buf = Vec::with_capacity(headroom + frame.len());
        buf.resize(headroom, 0);
        buf.extend_from_slice(frame);
        PacketBuf {
            buf,
            start: headroom,
        }
    }

    /// Reloads the buffer with `frame` behind `headroom` bytes, reusing its memory: a
    /// packet loop keeps one buffer and allocates only when a frame is larger than any
    /// before it.
    pub fn load(&mut self, frame: &[u8], headroom: usize) {
        self.buf.clear();
        self.buf.resize(headroom, 0);
        self.buf.extend_from_slice(frame);
        self.start = headroom;
    }

    /// The frame in `v`, without headroom (the first push will make some).
    pub fn from_vec(v: Vec<u8>) -> PacketBuf {
        PacketBuf { buf: v, start: 0 }
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..]
    }

    pub fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Free bytes in front of the frame.
    pub fn headroom(&self) -> usize {
        self.start
    }

    /// The frame, without its headroom.
    pub fn into_vec(mut self) -> Vec<u8> {
        self.buf.drain(..self.start);
        self.buf
    }

    /// Makes `n` new bytes in front of the frame and returns them (their content is
    /// unspecified). Uses the headroom; grows the buffer only when it is exhausted.
    pub fn prepend(&mut self, n: usize) -> &mut [u8] {
        if n > self.start {
            // Slow path: one move of the frame, with room for the next push too.
            let add = (n - self.start).max(DEFAULT_HEADROOM);
            self.buf.splice(0..0, std::iter::repeat_n(0u8, add));
            self.start += add;
        }
        self.start -= n;
        &mut self.buf[self.start..self.start + n]
    }

    /// Drops the first `n` bytes (at most the whole frame); they become headroom.
    pub fn strip_front(&mut self, n: usize) {
        self.start += n.min(self.len());
    }

    /// Keeps the first `len` bytes.
    pub fn truncate(&mut self, len: usize) {
        if len < self.len() {
            self.buf.truncate(self.start + len);
        }
    }

    /// Opens `n` bytes at `at` (clamped to the length) and returns them: the first `at`
    /// bytes move into the headroom, which for a VLAN tag after the MACs is 12 bytes.
    pub fn insert(&mut self, at: usize, n: usize) -> &mut [u8] {
        let at = at.min(self.len());
        self.prepend(n);
        let s = self.start;
        self.buf.copy_within(s + n..s + n + at, s);
        &mut self.buf[s + at..s + at + n]
    }

    /// Removes `n` bytes at `at` (clamped to the frame) by moving the first `at` bytes
    /// forward over them.
    pub fn remove(&mut self, at: usize, n: usize) {
        let len = self.len();
        if at >= len {
            return;
        }
        let n = n.min(len - at);
        let s = self.start;
        self.buf.copy_within(s..s + at, s + n);
        self.start += n;
    }
}

/// A running RFC 1624 update: the sum of `~old + new` over the changed words, applied to
/// a checksum at the end (eqn. 3 for many words: `HC' = ~(~HC + Σ(~m + m'))`).
#[derive(Clone, Copy, Default, Debug)]
struct Delta(u64);

impl Delta {
    fn add(&mut self, old: u16, new: u16) {
        self.0 += u64::from(!old) + u64::from(new);
    }

    fn merge(&mut self, other: Delta) {
        self.0 += other.0;
    }

    fn is_zero(&self) -> bool {
        self.0 == 0
    }

    fn apply(&self, check: u16) -> u16 {
        let mut acc = u64::from(!check) + self.0;
        while acc > 0xffff_ffff {
            acc = (acc & 0xffff_ffff) + (acc >> 32);
        }
        checksum::finish(acc as u32)
    }
}

/// Writes `new` (an even number of bytes) at `off`, adding each word's change to every
/// delta in `deltas`.
fn write_words(
    buf: &mut [u8],
    off: usize,
    new: &[u8],
    deltas: &mut [&mut Delta],
) -> Result<(), TransposeError> {
    let end = off
        .checked_add(new.len())
        .ok_or(TransposeError::OutOfBounds)?;
    let dst = buf.get_mut(off..end).ok_or(TransposeError::OutOfBounds)?;
    for (d, n) in dst.chunks_exact_mut(2).zip(new.chunks_exact(2)) {
        let old = u16::from_be_bytes([d[0], d[1]]);
        let nw = u16::from_be_bytes([n[0], n[1]]);
        for delta in deltas.iter_mut() {
            delta.add(old, nw);
        }
        d.copy_from_slice(n);
    }
    Ok(())
}

/// Applies `delta` to the checksum at `off`. `udp`: 0 means "no checksum" and is left as
/// is, and a result of 0 is sent as 0xffff (RFC 768; RFC 8200 §8.1 for IPv6, where a
/// zero checksum is only allowed for tunnels, RFC 6935, which we then keep).
fn patch_checksum(
    buf: &mut [u8],
    off: usize,
    delta: &Delta,
    udp: bool,
) -> Result<(), TransposeError> {
    let old = be16(buf, off).ok_or(TransposeError::OutOfBounds)?;
    if udp && old == 0 {
        return Ok(());
    }
    let mut new = delta.apply(old);
    if udp && new == 0 {
        new = 0xffff;
    }
    packet::set_u16(buf, off, new);
    Ok(())
}

fn ip_bytes(ip: &IpAddr) -> ([u8; 16], usize) {
    let mut b = [0u8; 16];
    match ip {
        IpAddr::V4(a) => {
            b[..4].copy_from_slice(&a.octets());
            (b, 4)
        }
        IpAddr::V6(a) => {
            b.copy_from_slice(&a.octets());
            (b, 16)
        }
    }
}

fn version_of(ip: &IpAddr) -> u8 {
    if ip.is_ipv4() { 4 } else { 6 }
}

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
    let h = frame.get(v..v + VXLAN_HEADER_LEN)?;
    if h[0] & VXLAN_FLAG_I == 0 {
        return None;
    }
    let inner_offset = v + VXLAN_HEADER_LEN;
    let end = (parsed.l3_end as usize).min(frame.len());
    if inner_offset + ethernet::HEADER_LEN > end {
        return None;
    }
    Some(Vxlan {
        vni: u32::from_be_bytes([0, h[4], h[5], h[6]]),
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

/// Checks that `t`'s inner rewrites fit the frame `p` describes.
fn check_fits(t: &Transposition, p: &Parsed) -> Result<(), TransposeError> {
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

fn push_vlan(pkt: &mut PacketBuf, p: &Parsed, vid: u16) -> Result<(), TransposeError> {
    let vid = vid & 0x0fff;
    match p.vlan_offset.filter(|_| p.vlan_count > 0) {
        None => {
            let tag = pkt.insert(ethernet::field::ETHERTYPE, ethernet::TAG_LEN);
            tag[..2].copy_from_slice(&ethernet::ETHERTYPE_VLAN.to_be_bytes());
            tag[2..].copy_from_slice(&vid.to_be_bytes());
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
fn rewrite_inner(t: &Transposition, buf: &mut [u8], p: &Parsed) -> Result<(), TransposeError> {
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
            write_words(buf, off, &b[..len], &mut [&mut l3, &mut pseudo])?;
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
        .map(|b| [b[0], b[1], b[2], b[3]]);
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
            if let (Some(old), Some(new)) = (old_ports, buf.get(l4_off..l4_off + 4)) {
                let delta = [
                    old[0] ^ new[0],
                    old[1] ^ new[1],
                    old[2] ^ new[2],
                    old[3] ^ new[3],
                ];
                if delta != [0; 4] {
                    // The whole SCTP packet's length, even where the capture cut it.
                    let len = (p.l3_end as usize).saturating_sub(l4_off);
                    let fix = crc32c_linear(&delta, len.saturating_sub(4));
                    let c = buf
                        .get_mut(csum + 8..csum + 12)
                        .ok_or(TransposeError::OutOfBounds)?;
                    let old = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                    c.copy_from_slice(&(old ^ fix).to_le_bytes());
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// The CRC32c table (reflected polynomial 0x82f63b78).
const CRC32C: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82f6_3b78
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// The linear part of CRC32c (no initial value, no final xor) of `prefix` followed by
/// `zeros` zero bytes. A CRC is affine: `crc(m ^ d) = crc(m) ^ linear(d)` for messages of
/// one length, so a change `d` to the first bytes updates a stored CRC without reading
/// the rest of the packet (exact on a truncated frame too, like RFC 1624 for sums).
fn crc32c_linear(prefix: &[u8], zeros: usize) -> u32 {
    let mut crc = 0u32;
    for &b in prefix {
        crc = CRC32C[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    for _ in 0..zeros {
        crc = CRC32C[(crc & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

/// Recomputes an SCTP packet's CRC32c (RFC 4960 appendix B), stored little-endian.
#[cfg(test)]
fn sctp_fix_crc(s: &mut [u8]) {
    if s.len() < 12 {
        return;
    }
    s[8..12].fill(0);
    let mut crc = !0u32;
    for &b in s.iter() {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    s[8..12].copy_from_slice(&(!crc).to_le_bytes());
}

/// Whether the encapsulation is over IPv6; both addresses must be of one family.
fn encap_family(e: &Encap) -> Result<bool, TransposeError> {
    match (e.src_ip, e.dst_ip) {
        (IpAddr::V4(_), IpAddr::V4(_)) => Ok(false),
        (IpAddr::V6(_), IpAddr::V6(_)) => Ok(true),
        _ => Err(TransposeError::AddressFamily),
    }
}

/// Puts Ethernet/IP/UDP/VXLAN in front of the frame. `missing`: bytes of the inner frame
/// that a capture cut off, which the lengths count.
fn encap(e: &Encap, pkt: &mut PacketBuf, missing: usize) -> Result<(), TransposeError> {
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
        ip[8..24].copy_from_slice(&src[..n]);
        ip[24..40].copy_from_slice(&dst[..n]);
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
            write_words(buf, inner.l3_offset + off, &b[..n], deltas)?;
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
const ICMP4_ERROR_MAX: usize = 576;
/// RFC 4443 §2.4(c): as much as fits in the minimum IPv6 MTU.
const ICMP6_ERROR_MAX: usize = 1280;

/// The reply to `frame`'s sender saying it is too big for `mtu`: ICMPv4 "fragmentation
/// needed" (type 3 code 4, with the next-hop MTU, RFC 1191) or ICMPv6 "packet too big"
/// (type 2, RFC 4443), from `src_mac`/`src_ip` (the gateway) to the sender, on the same
/// VLAN tags, quoting as much of the original as the RFCs allow (576 and 1280 bytes in
/// all) and with its checksums. `None` where no error may be sent: not IP, `src_ip` of
/// the other family, an ICMP error (or ICMPv6 redirect) itself, a non-first fragment, an
/// unspecified, multicast or broadcast sender, or (IPv4) a multicast or broadcast
/// destination (RFC 1122 §3.2.2, RFC 4443 §2.4(e); a packet too big is allowed for an
/// IPv6 multicast destination, §2.4(e.3)). Whether DF is set is the caller's to check.
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
        out.extend_from_slice(&s[..n]);
        out.extend_from_slice(&d[..n]);
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
        acc = checksum::sum(acc, &s[..n]);
        acc = checksum::sum(acc, &d[..n]);
        acc = checksum::sum(acc, &(icmp_len as u32).to_be_bytes());
        acc = checksum::sum(acc, &[0, 0, 0, proto::ICMPV6]);
    }
    let c = checksum::finish(checksum::sum(acc, &out[m0..]));
    out[m0 + 2..m0 + 4].copy_from_slice(&c.to_be_bytes());
    Some(out)
}

#[cfg(test)]
mod tests;
