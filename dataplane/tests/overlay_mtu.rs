//! EncapOverhead: a packet that would exceed the uplink MTU once VXLAN-encapsulated is
//! dropped `too-big`, and the container is told the MTU that fits: 50 bytes less over an
//! IPv4 underlay, 70 over IPv6.

mod common;

use std::net::IpAddr;

use strata_dataplane::verdict::Answer;
use strata_dataplane::{DropReason, Engine, FrameInfo, PortId};
use strata_rules::model::{Mac, proto};

fn policy(provider: &str) -> String {
    format!(
        r#"
[host]
mac = "02:00:00:00:00:01"
addresses = ["198.19.0.10", "2001:db8:ff::10"]
mtu = 1500

[[network]]
name = "o"
driver = "overlay"
subnets = ["198.18.2.0/24"]
gateway = "198.18.2.1"
vni = 4096
[[network.remote_subnet_route]]
prefix = "198.18.3.0/24"
provider_address = "{provider}"

[[endpoint]]
name = "api"
network = "o"
mac = "00:15:5d:02:02:0a"
ipv4 = "198.18.2.10"
"#
    )
}

fn tcp_of_len(ip_len: u32) -> FrameInfo {
    common::packet(
        (
            Mac([0x00, 0x15, 0x5d, 0x02, 0x02, 0x0a]),
            "198.18.2.10",
            50000,
        ),
        (Mac([2, 0, 0, 0, 0, 1]), "198.18.3.5", 80),
        proto::TCP,
        0x10,
        ip_len,
    )
}

fn check(provider: &str, overhead: u16) {
    let p = strata_rules::policy::load(&policy(provider), "o.toml").expect("policy");
    let mut sw = Engine::for_policy(&p);
    let api = sw.policy().port_by_name("api").expect("api");
    let fits = sw.decide(api, &tcp_of_len(u32::from(1500 - overhead)), 1);
    assert_eq!(fits.egress, Some(PortId::Uplink), "{provider}");
    let encap = fits.rewrite.encap.expect("encapsulated");
    assert_eq!(encap.dst_ip, provider.parse::<IpAddr>().unwrap());
    assert_eq!(
        encap.src_ip.is_ipv4(),
        provider.contains('.'),
        "outer source of the same family"
    );
    assert_eq!(encap.vni, 4096);
    let big = sw.decide(api, &tcp_of_len(u32::from(1500 - overhead) + 1), 2);
    assert_eq!(big.drop, Some(DropReason::TooBig), "{provider}");
    assert_eq!(
        big.answer,
        Some(Answer::TooBig {
            mtu: 1500 - overhead
        })
    );
}

#[test]
fn ipv4_underlay_overhead_is_50_bytes() {
    check("198.19.0.20", 50);
}

#[test]
fn ipv6_underlay_overhead_is_70_bytes() {
    check("2001:db8:ff::20", 70);
}
