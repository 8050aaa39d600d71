//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624), for tests and
//! for the rewriters that patch headers in place.

/// Adds `data` (as big-endian 16-bit words, an odd last byte padded with zero) to a
/// running 32-bit sum.
pub fn sum(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        if let &[hi, lo] = c {
            acc = acc.wrapping_add(u32::from(u16::from_be_bytes([hi, lo])));
        }
        // Fold early so that the sum cannot overflow on any length.
        if acc > 0xffff_0000 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
    }
    if let [b] = chunks.remainder() {
        acc = acc.wrapping_add(u32::from(*b) << 8);
    }
    acc
}

/// Folds a running sum and complements it: the value to store in a checksum field (or,
/// over data that includes its checksum, 0 when it is correct).
pub fn finish(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// RFC 1624 eqn. 3: the new checksum after one 16-bit word changed from `old` to `new`.
pub fn update16(check: u16, old: u16, new: u16) -> u16 {
    let acc = u32::from(!check) + u32::from(!old) + u32::from(new);
    finish(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_matches_full() {
        let mut hdr = [
            0x45u8, 0, 0, 0x54, 0, 0, 0x40, 0, 0x40, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let c = finish(sum(0, &hdr));
        hdr[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(finish(sum(0, &hdr)), 0);
        let old = u16::from_be_bytes([hdr[12], hdr[13]]);
        hdr[12] = 192;
        hdr[13] = 168;
        let new = u16::from_be_bytes([hdr[12], hdr[13]]);
        let c2 = update16(c, old, new);
        hdr[10..12].copy_from_slice(&c2.to_be_bytes());
        assert_eq!(finish(sum(0, &hdr)), 0);
    }
}
