//! NAT port exhaustion is a named, counted drop, and it recovers when the connections
//! holding the ports expire (the switch sweeps expired connections when a pool is full).

mod common;

use strata_dataplane::{DropReason, Engine, FrameInfo, PortId};
use strata_rules::model::{Mac, proto};

const POLICY: &str = r#"
[host]
mac = "02:00:00:00:00:01"
addresses = ["198.19.0.10"]

[[network]]
name = "t"
driver = "transparent"
subnets = ["198.18.9.0/24"]

[[endpoint]]
name = "e"
network = "t"
mac = "00:15:5d:09:09:01"
ipv4 = "198.18.9.1"

[[endpoint.layer]]
name = "tiny-nat"
[[endpoint.layer.group]]
name = "out"
direction = "out"
[[endpoint.layer.group.rule]]
id = "snat"
action = "snat"
snat = { ip = "198.19.0.10", ports = "2000-2001" }
"#;

fn udp_from_e(src_port: u16) -> FrameInfo {
    common::packet(
        (
            Mac([0x00, 0x15, 0x5d, 0x09, 0x09, 0x01]),
            "198.18.9.1",
            src_port,
        ),
        (Mac([2, 0, 0, 0, 0, 0xfe]), "198.19.0.100", 53),
        proto::UDP,
        0,
        40,
    )
}

#[test]
fn exhaustion_is_a_drop_and_recovers_when_connections_expire() {
    let policy = strata_rules::policy::load(POLICY, "nat.toml").expect("policy");
    let mut sw = Engine::for_policy(&policy);
    let e = sw.policy().port_by_name("e").expect("endpoint e");
    let s = 1_000_000_000u64;
    let v = |sw: &mut Engine, port: u16, t: u64| sw.decide(e, &udp_from_e(port), t);

    assert_eq!(v(&mut sw, 1000, s).egress, Some(PortId::Uplink));
    assert_eq!(v(&mut sw, 1001, s).egress, Some(PortId::Uplink));
    assert_eq!(sw.state().nat_bindings(), 2);
    // Both ports of the range are held: a third connection cannot be translated.
    assert_eq!(
        v(&mut sw, 1002, 2 * s).drop,
        Some(DropReason::NatPortsExhausted)
    );
    assert_eq!(sw.stats().dropped[DropReason::NatPortsExhausted.index()], 1);
    // Packets of the existing connections still pass.
    assert_eq!(v(&mut sw, 1000, 3 * s).egress, Some(PortId::Uplink));
    // Once the UDP connections have been idle past their timeout (120 s), their ports
    // are free again.
    let later = 200 * s;
    assert_eq!(v(&mut sw, 1003, later).egress, Some(PortId::Uplink));
    assert_eq!(v(&mut sw, 1004, later).egress, Some(PortId::Uplink));
    assert_eq!(sw.state().nat_bindings(), 2);
    assert_eq!(
        v(&mut sw, 1005, later).drop,
        Some(DropReason::NatPortsExhausted)
    );
}
