//! Link types, and their conversion to Ethernet: the engine is an Ethernet switch, so a
//! capture of Linux "cooked" or raw IP packets is replayed as the Ethernet frames they
//! would have been.

/// <https://www.tcpdump.org/linktypes.html>
pub const LINKTYPE_NULL: u32 = 0;
pub const LINKTYPE_ETHERNET: u32 = 1;
/// DLT_RAW as some platforms wrote it into files before LINKTYPE_RAW existed.
pub const LINKTYPE_RAW_12: u32 = 12;
pub const LINKTYPE_RAW_14: u32 = 14;
pub const LINKTYPE_RAW: u32 = 101;
pub const LINKTYPE_LOOP: u32 = 108;
pub const LINKTYPE_LINUX_SLL: u32 = 113;
pub const LINKTYPE_IPV4: u32 = 228;
pub const LINKTYPE_IPV6: u32 = 229;
pub const LINKTYPE_LINUX_SLL2: u32 = 276;

const SLL_LEN: usize = 16;
const SLL2_LEN: usize = 20;
/// SLL packet type "broadcast" (sent to everyone by somebody else).
const SLL_BROADCAST: u16 = 1;

fn be16(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    <[u8; 2]>::try_from(s).ok().map(u16::from_be_bytes)
}

/// Builds the Ethernet frame `dst src ethertype payload`.
fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Raw IP: the EtherType follows from the version nibble.
fn from_ip(payload: &[u8]) -> Result<Vec<u8>, &'static str> {
    let ethertype = match payload.first().map(|b| b >> 4) {
        Some(4) => 0x0800,
        Some(6) => 0x86dd,
        Some(_) => return Err("raw IP record with an IP version other than 4 or 6"),
        None => return Err("empty raw IP record"),
    };
    Ok(ethernet([0; 6], [0; 6], ethertype, payload))
}

/// Linux cooked capture: the sender's address (when it is a MAC) becomes the source
/// MAC, the protocol the EtherType; the receiver is unknown, so the destination is zero
/// (or broadcast, when the kernel said the packet was broadcast).
fn from_sll(proto: u16, pkttype: u16, addr: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut src = [0u8; 6];
    if addr.len() == 6 {
        src.copy_from_slice(addr);
    }
    let dst = if pkttype == SLL_BROADCAST {
        [0xff; 6]
    } else {
        [0; 6]
    };
    ethernet(dst, src, proto, payload)
}

/// Converts one record to an Ethernet frame. Returns the frame and its original length
/// as Ethernet, or why it cannot be converted.
pub(crate) fn to_ethernet(
    linktype: u32,
    data: &[u8],
    orig_len: u32,
) -> Result<(Vec<u8>, u32), &'static str> {
    // The Ethernet header replaces a link header of `hdr` bytes.
    let adjust = |hdr: usize| -> u32 {
        (u64::from(orig_len) + 14)
            .saturating_sub(hdr as u64)
            .min(u64::from(u32::MAX)) as u32
    };
    match linktype {
        LINKTYPE_ETHERNET => Ok((data.to_vec(), orig_len)),
        LINKTYPE_RAW | LINKTYPE_RAW_12 | LINKTYPE_RAW_14 | LINKTYPE_IPV4 | LINKTYPE_IPV6 => {
            Ok((from_ip(data)?, adjust(0)))
        }
        LINKTYPE_NULL | LINKTYPE_LOOP => {
            // A 4-byte address family (host or network order, by platform) precedes
            // the packet; the IP version nibble is the reliable part.
            let payload = data.get(4..).ok_or("truncated BSD loopback header")?;
            Ok((from_ip(payload)?, adjust(4)))
        }
        LINKTYPE_LINUX_SLL => {
            if data.len() < SLL_LEN {
                return Err("truncated Linux cooked (SLL) header");
            }
            let pkttype = be16(data, 0).unwrap_or(0);
            let halen = usize::from(be16(data, 4).unwrap_or(0)).min(8);
            let addr = data.get(6..6 + halen).unwrap_or(&[]);
            let proto = be16(data, 14).unwrap_or(0);
            let payload = data.get(SLL_LEN..).unwrap_or(&[]);
            Ok((from_sll(proto, pkttype, addr, payload), adjust(SLL_LEN)))
        }
        LINKTYPE_LINUX_SLL2 => {
            if data.len() < SLL2_LEN {
                return Err("truncated Linux cooked v2 (SLL2) header");
            }
            let proto = be16(data, 0).unwrap_or(0);
            let pkttype = u16::from(crate::packet::u8_at(data, 10));
            let halen = usize::from(crate::packet::u8_at(data, 11)).min(8);
            let addr = data.get(12..12 + halen).unwrap_or(&[]);
            let payload = data.get(SLL2_LEN..).unwrap_or(&[]);
            Ok((from_sll(proto, pkttype, addr, payload), adjust(SLL2_LEN)))
        }
        _ => Err("unsupported link type"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sll_to_ethernet() {
        let mut rec = vec![0, 4, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
        rec.extend_from_slice(&[0x45; 20]);
        let (f, len) = to_ethernet(LINKTYPE_LINUX_SLL, &rec, 36).unwrap();
        assert_eq!(&f[..14], &[0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 8, 0]);
        assert_eq!(len, 34);
        assert_eq!(f.len(), 34);
        assert!(to_ethernet(LINKTYPE_LINUX_SLL, &rec[..10], 10).is_err());
    }

    #[test]
    fn sll2_and_raw() {
        let mut rec = vec![
            0x86, 0xdd, 0, 0, 0, 0, 0, 2, 0, 1, 1, 6, 9, 9, 9, 9, 9, 9, 0, 0,
        ];
        rec.push(0x60);
        let (f, _) = to_ethernet(LINKTYPE_LINUX_SLL2, &rec, 21).unwrap();
        assert_eq!(
            &f[..14],
            &[
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 9, 9, 9, 9, 9, 9, 0x86, 0xdd
            ]
        );
        let (f, len) = to_ethernet(LINKTYPE_RAW, &[0x45, 0], 20).unwrap();
        assert_eq!(&f[12..], &[8, 0, 0x45, 0]);
        assert_eq!(len, 34);
        assert!(to_ethernet(LINKTYPE_RAW, &[0x15], 1).is_err());
        assert!(to_ethernet(LINKTYPE_RAW, &[], 0).is_err());
        let (f, _) = to_ethernet(LINKTYPE_NULL, &[2, 0, 0, 0, 0x45], 5).unwrap();
        assert_eq!(&f[12..], &[8, 0, 0x45]);
        assert!(to_ethernet(147, &[1, 2, 3], 3).is_err());
    }
}
