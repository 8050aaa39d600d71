//! Ethernet II with up to two VLAN tags (802.1Q, or an 802.1ad / legacy 0x9100 outer
//! tag in front of an 802.1Q one: QinQ).

use strata_rules::model::Mac;

use super::{ParseError, be16, mac_at};

pub const HEADER_LEN: usize = 14;
pub const TAG_LEN: usize = 4;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_VLAN: u16 = 0x8100;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const ETHERTYPE_QINQ: u16 = 0x88a8;
/// Pre-standard QinQ TPID still seen on older switches.
pub const ETHERTYPE_QINQ_LEGACY: u16 = 0x9100;

/// Field offsets from the start of the frame.
pub mod field {
    pub const DST: usize = 0;
    pub const SRC: usize = 6;
    pub const ETHERTYPE: usize = 12;
}

/// What the Ethernet layer tells.
#[derive(Clone, Copy, Debug)]
pub struct EthInfo {
    pub dst: Mac,
    pub src: Mac,
    /// Innermost VID; `None` for untagged and priority-tagged (VID 0) frames: a priority
    /// tag carries no VLAN membership (802.1Q §9.6), so VLAN conditions treat it as none.
    pub vlan: Option<u16>,
    pub outer_vlan: Option<u16>,
    pub vlan_offset: Option<usize>,
    pub vlan_count: u8,
    pub ethertype: u16,
    pub l3_offset: usize,
}

fn is_tpid(t: u16) -> bool {
    matches!(t, ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_LEGACY)
}

/// Parses the Ethernet header and its VLAN tags.
pub fn parse(frame: &[u8]) -> Result<EthInfo, ParseError> {
    if frame.len() < HEADER_LEN {
        return Err(ParseError::TruncatedEthernet);
    }
    let dst = mac_at(frame, field::DST).ok_or(ParseError::TruncatedEthernet)?;
    let src = mac_at(frame, field::SRC).ok_or(ParseError::TruncatedEthernet)?;
    let mut off = field::ETHERTYPE;
    let mut ethertype = be16(frame, off).ok_or(ParseError::TruncatedEthernet)?;
    let mut vids = [0u16; 2];
    let mut count = 0usize;
    while is_tpid(ethertype) {
        if count == 2 {
            return Err(ParseError::TooManyVlanTags);
        }
        // Tag control info follows the TPID, then the next EtherType.
        let tci = be16(frame, off + 2).ok_or(ParseError::TruncatedVlan)?;
        ethertype = be16(frame, off + 4).ok_or(ParseError::TruncatedVlan)?;
        if let Some(v) = vids.get_mut(count) {
            *v = tci & 0x0fff;
        }
        count += 1;
        off += TAG_LEN;
    }
    let inner = count.checked_sub(1).and_then(|i| vids.get(i).copied());
    Ok(EthInfo {
        dst,
        src,
        vlan: inner.filter(|&v| v != 0),
        outer_vlan: (count == 2).then_some(vids.first().copied().unwrap_or(0)),
        vlan_offset: (count > 0).then_some(field::ETHERTYPE),
        vlan_count: count as u8,
        ethertype,
        l3_offset: off + 2,
    })
}
