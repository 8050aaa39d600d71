//! ARP for Ethernet/IPv4 (RFC 826): the switch answers or forwards it by its addresses.

use std::net::Ipv4Addr;

use strata_rules::model::Mac;

use super::{ParseError, be16, mac_at};

pub const PACKET_LEN: usize = 28;

pub mod field {
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: usize = 8;
    pub const SPA: usize = 14;
    pub const THA: usize = 18;
    pub const TPA: usize = 24;
}

pub const OP_REQUEST: u16 = 1;
pub const OP_REPLY: u16 = 2;

/// The meaning of an ARP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpInfo {
    pub op: u16,
    pub sender_mac: Mac,
    pub sender_ip: Ipv4Addr,
    pub target_mac: Mac,
    pub target_ip: Ipv4Addr,
}

fn ip_at(b: &[u8], off: usize) -> Option<Ipv4Addr> {
    let s = b.get(off..off + 4)?;
    <[u8; 4]>::try_from(s).ok().map(Ipv4Addr::from)
}

/// Parses the ARP packet at `l3`.
pub fn parse(frame: &[u8], l3: usize) -> Result<ArpInfo, ParseError> {
    let a = frame.get(l3..).unwrap_or(&[]);
    if a.len() < PACKET_LEN {
        return Err(ParseError::TruncatedArp);
    }
    // Hardware type 1 (Ethernet), protocol IPv4, 6-byte and 4-byte addresses: the only
    // ARP a container switch handles; anything else would be misread below.
    if be16(a, field::HTYPE) != Some(1)
        || be16(a, field::PTYPE) != Some(super::ethernet::ETHERTYPE_IPV4)
        || a.get(field::HLEN) != Some(&6)
        || a.get(field::PLEN) != Some(&4)
    {
        return Err(ParseError::UnsupportedArp);
    }
    let bad = ParseError::TruncatedArp;
    Ok(ArpInfo {
        op: be16(a, field::OPER).ok_or(bad)?,
        sender_mac: mac_at(a, field::SHA).ok_or(bad)?,
        sender_ip: ip_at(a, field::SPA).ok_or(bad)?,
        target_mac: mac_at(a, field::THA).ok_or(bad)?,
        target_ip: ip_at(a, field::TPA).ok_or(bad)?,
    })
}
