//! Frame builders for tests, doc examples and fuzz seeds: crafted packets with correct
//! lengths and checksums, which tests then break on purpose. Not for the packet path.

// Test support (frames for tests, doc examples, fuzz seeds), not the packet path: it may
// index and panic.
#![allow(clippy::indexing_slicing, clippy::panic)]

use super::checksum;

pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
pub const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

/// An Ethernet frame: `tags` are (TPID, TCI) pairs, outermost first.
pub fn eth(ethertype: u16, tags: &[(u16, u16)], payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + 4 * tags.len() + payload.len());
    f.extend_from_slice(&MAC_B);
    f.extend_from_slice(&MAC_A);
    for (tpid, tci) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An IPv4 packet with a 20-byte header plus `options`, `flags_frag` as the raw
/// flags/fragment-offset word.
pub fn ipv4_full(
    protocol: u8,
    src: [u8; 4],
    dst: [u8; 4],
    options: &[u8],
    flags_frag: u16,
    payload: &[u8],
) -> Vec<u8> {
    let ihl = 20 + options.len();
    let total = (ihl + payload.len()) as u16;
    let mut h = vec![0x40 | (ihl / 4) as u8, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0x12, 0x34]);
    h.extend_from_slice(&flags_frag.to_be_bytes());
    h.extend_from_slice(&[64, protocol, 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(options);
    let c = checksum::finish(checksum::sum(0, &h));
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

pub fn ipv4(protocol: u8, payload: &[u8]) -> Vec<u8> {
    ipv4_full(protocol, [10, 0, 0, 1], [10, 0, 0, 2], &[], 0, payload)
}

/// An IPv6 packet; `payload` includes any extension headers, `next` is the first.
pub fn ipv6(next: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    h.extend_from_slice(&[next, 64]);
    let mut src = [0u8; 16];
    src[..2].copy_from_slice(&[0x20, 0x01]);
    src[15] = 1;
    let mut dst = src;
    dst[15] = 2;
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(payload);
    h
}

/// A UDP header and payload (checksum left 0: "none" for IPv4).
pub fn udp(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + payload.len());
    u.extend_from_slice(&src_port.to_be_bytes());
    u.extend_from_slice(&dst_port.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// A TCP header with `options` (a multiple of 4 bytes) and payload.
pub fn tcp(src_port: u16, dst_port: u16, flags: u8, options: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&src_port.to_be_bytes());
    t.extend_from_slice(&dst_port.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
    t.push((((20 + options.len()) / 4) as u8) << 4);
    t.push(flags);
    t.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(options);
    t.extend_from_slice(payload);
    t
}

/// An ICMP message: type, code, zero checksum, then `rest`.
pub fn icmp(icmp_type: u8, code: u8, rest: &[u8]) -> Vec<u8> {
    let mut m = vec![icmp_type, code, 0, 0];
    m.extend_from_slice(rest);
    m
}

/// A plain UDP-in-IPv4 Ethernet frame, 10.0.0.1:1234 → 10.0.0.2:53.
pub fn ipv4_udp_frame() -> Vec<u8> {
    eth(0x0800, &[], &ipv4(17, &udp(1234, 53, b"hello")))
}

/// Checks what every successful parse promises about its offsets; panics with the
/// frame's hex when one is broken. Used by property tests and the fuzz targets.
pub fn check_invariants(frame: &[u8], p: &super::Parsed) {
    let bad = |what: &str| -> ! {
        let hex: String = frame.iter().map(|b| format!("{b:02x}")).collect();
        panic!("{what}: {p:?} for frame {hex}")
    };
    let len = frame.len();
    if p.l3_offset as usize > len {
        bad("l3_offset beyond the frame");
    }
    if (p.payload_offset as usize) > len.max(p.l3_end as usize) {
        bad("payload_offset beyond the packet");
    }
    let l4_bad = |l4: u16| l4 as usize > len || p.payload_offset < l4 || l4 < p.l3_offset;
    if p.l4_offset.is_some_and(l4_bad) {
        bad("l4_offset out of order");
    }
    for (off, n) in [p.src_ip_offset(), p.dst_ip_offset()].into_iter().flatten() {
        if off + n > len {
            bad("IP address beyond the frame");
        }
    }
    if p.port_offsets()
        .is_some_and(|(s, d)| s + 2 > len || d + 2 > len)
    {
        bad("ports beyond the frame");
    }
    if p.l4_checksum_offset().is_some_and(|c| c + 2 > len) {
        bad("L4 checksum beyond the frame");
    }
    if p.ipv4_checksum_offset().is_some_and(|c| c + 2 > len) {
        bad("IPv4 checksum beyond the frame");
    }
    if p.is_ipv4() || p.is_ipv6() {
        if !p.truncated && p.l3_end as usize > len {
            bad("IP packet beyond an untruncated frame");
        }
        if p.fragment == super::Fragment::NonFirst
            && (p.l4_offset.is_some() || p.fields.src_port != 0 || p.fields.dst_port != 0)
        {
            bad("non-first fragment with an L4 header");
        }
    }
}
