//! Helpers shared by the dataplane's integration tests.

use std::net::IpAddr;

use strata_dataplane::{FrameInfo, PacketMeta};
use strata_rules::model::{Fields, Mac};

/// An IP packet as the switch sees it: from `src` (MAC, address, port) to `dst`, of
/// `protocol`, `ip_len` bytes long, with these TCP flags. Addresses are parsed, so a
/// typo fails the test at once.
pub fn packet(
    src: (Mac, &str, u16),
    dst: (Mac, &str, u16),
    protocol: u8,
    tcp_flags: u8,
    ip_len: u32,
) -> FrameInfo {
    let ip = |s: &str| s.parse::<IpAddr>().expect("an IP address");
    FrameInfo::Ip(PacketMeta {
        fields: Fields {
            src_mac: src.0,
            dst_mac: dst.0,
            vlan: None,
            vni: None,
            src_ip: ip(src.1),
            dst_ip: ip(dst.1),
            protocol,
            src_port: src.2,
            dst_port: dst.2,
            icmp: None,
        },
        icmp_id: None,
        tcp_flags,
        tcp_seq: Default::default(),
        ip_len,
        related: None,
    })
}
