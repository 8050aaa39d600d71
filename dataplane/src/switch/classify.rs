//! What the switch needs to know of a frame: IP (with, for an ICMP error, the key of the
//! packet it quotes), ARP, VXLAN to one of this host's VXLAN ports (with its inner
//! frame), or neither.

use strata_rules::conn::ConnKey;
use strata_rules::model::Mac;

use crate::flow::PacketMeta;
use crate::packet::{ArpInfo, FrameKind, ParseError, Parsed};
use crate::transpose::bytes;

/// What the switch needs to know of a frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FrameInfo {
    Ip(PacketMeta),
    Arp {
        dst_mac: Mac,
        arp: ArpInfo,
    },
    /// A VXLAN packet addressed to a VXLAN port: the outer packet and what it carries.
    Vxlan {
        vni: u32,
        outer: PacketMeta,
        inner: VxlanInner,
    },
    /// Neither IP nor ARP.
    Unsupported,
    /// Could not be parsed.
    Malformed,
}

/// The frame inside a VXLAN packet.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum VxlanInner {
    Ip(PacketMeta),
    Arp {
        dst_mac: Mac,
        arp: ArpInfo,
    },
    /// Unparseable or neither IP nor ARP.
    Other,
}

impl FrameInfo {
    /// What the switch needs of a parse result.
    pub fn of(parsed: &Result<Parsed, ParseError>) -> FrameInfo {
        match parsed {
            Err(_) => FrameInfo::Malformed,
            Ok(p) => match p.kind {
                FrameKind::Ip => FrameInfo::Ip(PacketMeta::of(p)),
                FrameKind::Arp(arp) => FrameInfo::Arp {
                    dst_mac: p.fields.dst_mac,
                    arp,
                },
                FrameKind::Other { .. } => FrameInfo::Unsupported,
            },
        }
    }

    /// What the switch needs of a frame: its parse, with VXLAN to one of `vxlan_ports`
    /// carrying its inner frame along, and an ICMP error the key of what it quotes.
    pub fn from_frame(
        data: &[u8],
        parsed: &Result<Parsed, ParseError>,
        vxlan_ports: &[u16],
    ) -> FrameInfo {
        let Ok(p) = parsed else {
            return FrameInfo::Malformed;
        };
        if !vxlan_ports.is_empty()
            && let Some(vx) = bytes::vxlan_of(data, p, vxlan_ports)
        {
            return FrameInfo::Vxlan {
                vni: vx.vni,
                outer: PacketMeta::of(p),
                inner: VxlanInner::of(&bytes::parse_inner(data, p, &vx)),
            };
        }
        match FrameInfo::of(parsed) {
            FrameInfo::Ip(mut m) => {
                if let Some((t, _)) = m.fields.icmp
                    && bytes::is_icmp_error(p.ip_version, t)
                {
                    m.related = bytes::icmp_error_inner(data, p).map(|i| ConnKey {
                        src_ip: i.src_ip,
                        dst_ip: i.dst_ip,
                        protocol: i.protocol,
                        src_port: i.src_port,
                        dst_port: i.dst_port,
                    });
                }
                FrameInfo::Ip(m)
            }
            other => other,
        }
    }
}

impl VxlanInner {
    pub fn of(parsed: &Result<Parsed, ParseError>) -> VxlanInner {
        match FrameInfo::of(parsed) {
            FrameInfo::Ip(m) => VxlanInner::Ip(m),
            FrameInfo::Arp { dst_mac, arp } => VxlanInner::Arp { dst_mac, arp },
            _ => VxlanInner::Other,
        }
    }
}

impl PacketMeta {
    /// The policy view of a parsed IP frame.
    pub fn of(p: &Parsed) -> PacketMeta {
        PacketMeta {
            fields: p.fields,
            icmp_id: p.icmp_id,
            tcp_flags: p.tcp_flags,
            tcp_seq: p.tcp_seq,
            ip_len: p.ip_len(),
            related: None,
        }
    }
}
