//! What the WinDivert device translates, platform independent so that it is tested on
//! Linux too. WinDivert's network layer hands over IP packets (no Ethernet header) with
//! an address: the interface index and whether the packet was leaving the host's stack
//! (outbound) or arriving (inbound). The engine works on Ethernet frames entering at a
//! port, so:
//!
//! - **interface → port**: each port's `interface` (an endpoint's vEthernet adapter, the
//!   uplink NIC) is resolved to an interface index by the device; a packet *arriving* on
//!   an endpoint's adapter was sent by the container (enters at that endpoint, direction
//!   `out`), one arriving on the uplink's comes from the network (enters at the uplink,
//!   direction `in`); packets the host's own stack sends (*outbound*) are not the
//!   switch's and are re-injected untouched;
//! - **IP → frame**: a received packet is wrapped in an Ethernet header — source MAC the
//!   ingress port's (the endpoint's MAC, or the uplink's), destination the switch's (the
//!   uplink MAC, the containers' gateway) — so that what replay shows holds;
//! - **frame → IP**: what leaves a port is stripped of its Ethernet header (and VLAN
//!   tags: VLANs belong to the NIC on Windows) and injected *outbound* on the egress
//!   port's interface, so it leaves the host there. Non-IP answers (ARP) are not sent:
//!   Windows' own stack and the Hyper-V switch resolve neighbours.

use strata_rules::model::Mac;

use crate::packet::{self, FrameKind};
use crate::policy::{CompiledPolicy, PortId};

/// The Ethernet header of an IPv4 or IPv6 packet received at a port.
pub fn to_frame(ip: &[u8], src: Mac, dst: Mac, out: &mut Vec<u8>) -> bool {
    let ethertype: u16 = match ip.first().map(|b| b >> 4) {
        Some(4) => 0x0800,
        Some(6) => 0x86dd,
        _ => return false,
    };
    out.clear();
    out.extend_from_slice(&dst.0);
    out.extend_from_slice(&src.0);
    out.extend_from_slice(&ethertype.to_be_bytes());
    out.extend_from_slice(ip);
    true
}

/// The IP packet inside a frame leaving a port (tags and padding dropped); `None` for
/// frames that are not IP.
pub fn ip_of(frame: &[u8]) -> Option<&[u8]> {
    let p = packet::parse(frame).ok()?;
    if !matches!(p.kind, FrameKind::Ip) {
        return None;
    }
    let end = (p.l3_end as usize).min(frame.len());
    frame.get(usize::from(p.l3_offset)..end)
}

/// The interface index a policy's `interface` names on Windows: the decimal `ifIndex`.
pub fn interface_index_of(name: &str) -> Option<u32> {
    name.trim().parse().ok().filter(|&i| i != 0)
}

/// Which port a packet arriving on interface `index` enters at, given each port's
/// interface index (`indices`: the device resolves the policy's interface names).
pub fn ingress(index: u32, indices: &[(u32, PortId)]) -> Option<PortId> {
    indices.iter().find(|(i, _)| *i == index).map(|(_, p)| *p)
}

/// The interface index a port's packets leave through.
pub fn egress(port: PortId, indices: &[(u32, PortId)]) -> Option<u32> {
    indices.iter().find(|(_, p)| *p == port).map(|(i, _)| *i)
}

/// The MAC a received packet is given as its source: the endpoint's own, or the
/// uplink's for the network side.
pub fn source_mac(port: PortId, policy: &CompiledPolicy) -> Mac {
    match port {
        PortId::Endpoint(s) => policy.port(s).map_or(Mac::ZERO, |p| p.port.mac),
        PortId::Uplink => Mac([0x02, 0, 0, 0, 0, 0xfe]),
    }
}

/// Whether the switch takes a packet: only what arrives (inbound) on an attached
/// interface; what the host's stack sends is its own.
pub fn diverted(outbound: bool, port: Option<PortId>) -> bool {
    !outbound && port.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::testutil;
    use crate::policy::CompileOptions;

    const POLICY: &str = r#"
[host]
mac = "02:00:00:00:00:01"
addresses = ["198.19.16.10"]
interface = "Ethernet"

[[network]]
name = "nat"
driver = "nat"
subnets = ["198.18.16.0/24"]
gateway = "198.18.16.1"

[[endpoint]]
name = "web"
network = "nat"
mac = "00:15:5d:00:00:0a"
ipv4 = "198.18.16.10"
interface = "vEthernet (web)"
"#;

    #[test]
    fn a_packet_round_trips_through_a_frame() {
        let frame = testutil::ipv4_udp_frame();
        let ip = ip_of(&frame).unwrap().to_vec();
        assert_eq!(ip, frame[14..]);
        let mut out = Vec::new();
        let (src, dst) = (Mac([0, 0x15, 0x5d, 0, 0, 0x0a]), Mac([2, 0, 0, 0, 0, 1]));
        assert!(to_frame(&ip, src, dst, &mut out));
        let p = packet::parse(&out).unwrap();
        assert_eq!((p.fields.src_mac, p.fields.dst_mac), (src, dst));
        assert_eq!(ip_of(&out).unwrap(), &ip[..]);
        // Tags are dropped on the way out; non-IP is not sent.
        let tagged = testutil::eth(0x0800, &[(0x8100, 7)], &ip);
        assert_eq!(ip_of(&tagged).unwrap(), &ip[..]);
        assert!(ip_of(&testutil::eth(0x0806, &[], &[0; 28])).is_none());
        assert!(!to_frame(&[0x10, 0, 0], src, dst, &mut out));
    }

    #[test]
    fn interfaces_and_directions_map_to_ports() {
        let policy = strata_rules::policy::load(POLICY, "p.toml").unwrap();
        let c = CompiledPolicy::compile(&policy, None, CompileOptions::default());
        let web = c.port_by_name("web").unwrap();
        let indices = [(12, web), (3, PortId::Uplink)];
        assert_eq!(ingress(12, &indices), Some(web));
        assert_eq!(ingress(3, &indices), Some(PortId::Uplink));
        assert_eq!(ingress(99, &indices), None);
        assert_eq!(egress(PortId::Uplink, &indices), Some(3));
        assert_eq!(egress(web, &indices), Some(12));
        assert!(diverted(false, Some(web)));
        assert!(
            !diverted(true, Some(web)),
            "the host's own packets are its own"
        );
        assert!(!diverted(false, None));
        assert_eq!(source_mac(web, &c), Mac([0, 0x15, 0x5d, 0, 0, 0x0a]));
        assert_eq!(interface_index_of("12"), Some(12));
        assert_eq!(interface_index_of(" 7 "), Some(7));
        assert_eq!(interface_index_of("vEthernet (web)"), None);
        assert_eq!(interface_index_of("0"), None);
    }
}
