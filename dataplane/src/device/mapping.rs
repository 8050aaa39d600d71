//! Which device carries which port, platform independent: a port's frames leave through
//! the interface the policy names for it (an endpoint's `interface`, the uplink's
//! `[host] interface`), and frames received on that interface enter at that port.

use crate::policy::{CompiledPolicy, PortId};

/// The interface a port's frames leave through: an endpoint's `interface`, the
/// uplink's `[host] interface`.
pub fn interface_of(port: PortId, policy: &CompiledPolicy) -> Option<&str> {
    match port {
        PortId::Endpoint(s) => policy.port(s)?.port.interface.as_deref(),
        PortId::Uplink => policy.uplink.interface.as_deref(),
    }
}

/// The port whose interface is `name`, if any.
pub fn port_of_interface(name: &str, policy: &CompiledPolicy) -> Option<PortId> {
    if policy.uplink.interface.as_deref() == Some(name) {
        return Some(PortId::Uplink);
    }
    policy
        .ports()
        .find(|(_, p)| p.port.interface.as_deref() == Some(name))
        .map(|(s, _)| PortId::Endpoint(s))
}

/// Every interface the policy names, with its port: what the service attaches to.
pub fn interfaces(policy: &CompiledPolicy) -> Vec<(String, PortId)> {
    let mut v: Vec<(String, PortId)> = Vec::new();
    if let Some(i) = &policy.uplink.interface {
        v.push((i.clone(), PortId::Uplink));
    }
    for (s, p) in policy.ports() {
        if let Some(i) = &p.port.interface {
            v.push((i.clone(), PortId::Endpoint(s)));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::CompileOptions;

    const POLICY: &str = r#"
[host]
mac = "02:00:00:00:00:01"
addresses = ["198.19.16.10"]
interface = "up0"

[[network]]
name = "nat"
driver = "nat"
subnets = ["198.18.16.0/24"]
gateway = "198.18.16.1"

[[endpoint]]
name = "a"
network = "nat"
mac = "00:15:5d:00:00:0a"
ipv4 = "198.18.16.10"
interface = "veth-a"

[[endpoint]]
name = "b"
network = "nat"
mac = "00:15:5d:00:00:0b"
ipv4 = "198.18.16.11"
"#;

    #[test]
    fn interfaces_name_their_ports_both_ways() {
        let policy = strata_rules::policy::load(POLICY, "p.toml").unwrap();
        let c = CompiledPolicy::compile(&policy, None, CompileOptions::default());
        let a = c.port_by_name("a").unwrap();
        let b = c.port_by_name("b").unwrap();
        assert_eq!(port_of_interface("up0", &c), Some(PortId::Uplink));
        assert_eq!(port_of_interface("veth-a", &c), Some(a));
        assert_eq!(port_of_interface("veth-b", &c), None);
        assert_eq!(interface_of(a, &c), Some("veth-a"));
        assert_eq!(interface_of(b, &c), None);
        assert_eq!(interface_of(PortId::Uplink, &c), Some("up0"));
        assert_eq!(
            interfaces(&c),
            vec![
                ("up0".to_string(), PortId::Uplink),
                ("veth-a".to_string(), a)
            ]
        );
    }
}
