//! Source validation (DESIGN "Isolation is the product"): which source addresses a frame
//! may carry, so that an endpoint can pose only as itself and the outside cannot pose as
//! a container it does not reach. Definitions the reference evaluator and the engine
//! share.
//!
//! An endpoint sends from its own MAC and its own addresses, and from the addresses
//! protocols require before an address is known: IPv6 link-local (`fe80::/10`:
//! neighbour discovery, router solicitation), the unspecified IPv6 address for ICMPv6
//! (duplicate address detection, MLD), and `0.0.0.0` for DHCP (UDP 68 → 67). A frame
//! without a link layer (a raw IP capture: zero MAC) is judged by its addresses alone.
//!
//! The uplink may not claim the address of a local endpoint that the outside cannot
//! reach: one on a `nat` network (reachable only through port mappings) or an `overlay`
//! network (reachable only encapsulated). Only the host itself (a frame from one of its
//! own addresses) reaches such containers directly.

use std::net::IpAddr;

use crate::model::{Driver, Fields, Mac, Port, proto};

/// Whether endpoint `port` may send a packet with these headers.
pub fn endpoint_may_send(port: &Port, f: &Fields) -> bool {
    let mac_ok = f.src_mac == port.mac || f.src_mac == Mac::ZERO;
    mac_ok && endpoint_may_use(port, f.src_ip, f)
}

/// Whether endpoint `port` may use `ip` as the source of a packet with these headers.
fn endpoint_may_use(port: &Port, ip: IpAddr, f: &Fields) -> bool {
    if port.ips.contains(&ip) {
        return true;
    }
    match ip {
        IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80 => true,
        IpAddr::V6(a) if a.is_unspecified() => f.protocol == proto::ICMPV6,
        IpAddr::V4(a) if a.is_unspecified() => {
            f.protocol == proto::UDP && f.src_port == 68 && f.dst_port == 67
        }
        _ => false,
    }
}

/// Whether an endpoint may send ARP as `sender_mac` / `sender_ip` (`0.0.0.0`: a probe).
pub fn endpoint_may_arp(port: &Port, sender_mac: Mac, sender_ip: std::net::Ipv4Addr) -> bool {
    sender_mac == port.mac
        && (sender_ip.is_unspecified() || port.ips.contains(&IpAddr::V4(sender_ip)))
}

/// Whether the outside cannot reach endpoints of a network with this driver directly, so
/// that a frame from the uplink may not claim their addresses either.
pub fn hidden_from_outside(driver: Driver) -> bool {
    matches!(driver, Driver::Nat | Driver::Overlay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Isolation;

    fn port() -> Port {
        Port {
            name: "web".into(),
            network: "nat".into(),
            mac: Mac([0, 0x15, 0x5d, 1, 1, 10]),
            ips: vec![
                "198.18.1.10".parse().unwrap(),
                "2001:db8:1::10".parse().unwrap(),
            ],
            isolation: Isolation::Process,
            interface: None,
            port_mappings: vec![],
            layers: vec![],
        }
    }

    fn fields(src: &str, mac: Mac, protocol: u8, sp: u16, dp: u16) -> Fields {
        Fields {
            src_mac: mac,
            dst_mac: Mac::BROADCAST,
            vlan: None,
            vni: None,
            src_ip: src.parse().unwrap(),
            dst_ip: src.parse().unwrap(),
            protocol,
            src_port: sp,
            dst_port: dp,
            icmp: None,
        }
    }

    #[test]
    fn an_endpoint_sends_as_itself_and_as_protocols_require() {
        let p = port();
        let own = p.mac;
        assert!(endpoint_may_send(
            &p,
            &fields("198.18.1.10", own, proto::TCP, 1, 2)
        ));
        assert!(endpoint_may_send(
            &p,
            &fields("2001:db8:1::10", own, proto::UDP, 1, 2)
        ));
        assert!(endpoint_may_send(
            &p,
            &fields("198.18.1.10", Mac::ZERO, proto::TCP, 1, 2)
        ));
        assert!(endpoint_may_send(
            &p,
            &fields("fe80::1", own, proto::ICMPV6, 0, 0)
        ));
        assert!(endpoint_may_send(
            &p,
            &fields("::", own, proto::ICMPV6, 0, 0)
        ));
        assert!(endpoint_may_send(
            &p,
            &fields("0.0.0.0", own, proto::UDP, 68, 67)
        ));

        assert!(
            !endpoint_may_send(&p, &fields("198.18.1.11", own, proto::TCP, 1, 2)),
            "another's address"
        );
        assert!(
            !endpoint_may_send(
                &p,
                &fields("198.18.1.10", Mac([2, 0, 0, 0, 0, 9]), proto::TCP, 1, 2)
            ),
            "another's MAC"
        );
        assert!(!endpoint_may_send(&p, &fields("::", own, proto::UDP, 1, 2)));
        assert!(!endpoint_may_send(
            &p,
            &fields("0.0.0.0", own, proto::UDP, 68, 53)
        ));
    }

    #[test]
    fn arp_from_an_endpoint() {
        let p = port();
        assert!(endpoint_may_arp(&p, p.mac, "198.18.1.10".parse().unwrap()));
        assert!(endpoint_may_arp(&p, p.mac, "0.0.0.0".parse().unwrap()));
        assert!(!endpoint_may_arp(&p, p.mac, "198.18.1.11".parse().unwrap()));
        assert!(!endpoint_may_arp(
            &p,
            Mac([2, 0, 0, 0, 0, 9]),
            "198.18.1.10".parse().unwrap()
        ));
    }
}
