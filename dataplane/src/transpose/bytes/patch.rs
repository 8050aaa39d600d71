//! Incremental checksum patching (RFC 1624) and SCTP's CRC32c update: a rewrite changes a
//! few words and the checksums follow from those words alone.

use super::*;

/// A running RFC 1624 update: the sum of `~old + new` over the changed words, applied to
/// a checksum at the end (eqn. 3 for many words: `HC' = ~(~HC + Σ(~m + m'))`).
#[derive(Clone, Copy, Default, Debug)]
pub(super) struct Delta(u64);

impl Delta {
    pub(super) fn add(&mut self, old: u16, new: u16) {
        self.0 += u64::from(!old) + u64::from(new);
    }

    pub(super) fn merge(&mut self, other: Delta) {
        self.0 += other.0;
    }

    pub(super) fn is_zero(&self) -> bool {
        self.0 == 0
    }

    pub(super) fn apply(&self, check: u16) -> u16 {
        let mut acc = u64::from(!check) + self.0;
        while acc > 0xffff_ffff {
            acc = (acc & 0xffff_ffff) + (acc >> 32);
        }
        checksum::finish(acc as u32)
    }
}

/// Writes `new` (an even number of bytes) at `off`, adding each word's change to every
/// delta in `deltas`.
pub(super) fn write_words(
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
        let (Ok(old), Ok(nw)) = (<[u8; 2]>::try_from(&*d), <[u8; 2]>::try_from(n)) else {
            continue;
        };
        let (old, nw) = (u16::from_be_bytes(old), u16::from_be_bytes(nw));
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
pub(super) fn patch_checksum(
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

/// An address's bytes as a slice (4 or 16).
pub(super) fn ip_slice(b: &[u8; 16], n: usize) -> &[u8] {
    b.get(..n).unwrap_or(b)
}

pub(super) fn ip_bytes(ip: &IpAddr) -> ([u8; 16], usize) {
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

pub(super) fn version_of(ip: &IpAddr) -> u8 {
    if ip.is_ipv4() { 4 } else { 6 }
}

/// The CRC32c table (reflected polynomial 0x82f63b78).
// Built at compile time: an index out of bounds would fail the build, not a packet.
#[allow(clippy::indexing_slicing)]
pub(super) const CRC32C: [u32; 256] = {
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
// Every index is masked to 0..=255, the table's 256 entries.
#[allow(clippy::indexing_slicing)]
pub(super) fn crc32c_linear(prefix: &[u8], zeros: usize) -> u32 {
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
pub(super) fn sctp_fix_crc(s: &mut [u8]) {
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
