//! The uplink's neighbours: the MAC of each address the switch sends to on the uplink's
//! segment — a remote host's provider address (the overlay's outer destination), or the
//! destination of a routed packet leaving a NAT or L2Bridge network, which the host's
//! stack would route on Windows and Strata routes itself here. Learned from the VXLAN a
//! remote host sends (`overlay`), from ARP and from IPv6 neighbour advertisements
//! received on the uplink, and asked for by ARP requests and neighbour solicitations the
//! worker sends once a second for every address still unknown.
//!
//! Only addresses the switch wants (remote provider addresses, destinations it has sent
//! to) are learned, so that the uplink's chatter cannot fill the table.

use std::net::IpAddr;

use strata_rules::model::Mac;

use super::nd;
use crate::packet::{FrameKind, Parsed, arp, ethernet};
use crate::policy::CompiledPolicy;
use crate::state::EngineState;

/// How many unresolved addresses are remembered (the oldest is forgotten).
pub const MAX_WANTED: usize = 64;

/// Addresses whose MAC the switch needs and has not learned.
#[derive(Clone, Debug, Default)]
pub struct Wanted(Vec<IpAddr>);

impl Wanted {
    pub fn want(&mut self, ip: IpAddr) {
        if self.0.contains(&ip) {
            return;
        }
        if self.0.len() == MAX_WANTED {
            self.0.remove(0);
        }
        self.0.push(ip);
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.0.contains(ip)
    }

    fn forget(&mut self, ip: &IpAddr) {
        self.0.retain(|a| a != ip);
    }

    pub fn iter(&self) -> impl Iterator<Item = &IpAddr> {
        self.0.iter()
    }
}

/// Whether `ip` is the provider address of one of `policy`'s remote routes.
fn is_provider(policy: &CompiledPolicy, ip: &IpAddr) -> bool {
    policy
        .networks
        .iter()
        .flat_map(|n| &n.remote_routes)
        .any(|r| r.provider_address == *ip)
}

/// Learns from a frame received on the uplink: an ARP packet's sender, a neighbour
/// advertisement's target.
pub fn learn(policy: &CompiledPolicy, state: &mut EngineState, frame: &[u8], p: &Parsed) {
    let (ip, mac) = match p.kind {
        FrameKind::Arp(a) => (IpAddr::V4(a.sender_ip), a.sender_mac),
        FrameKind::Ip if p.fields.icmp == Some((136, 0)) => {
            let (Some(t), Some(m)) = (nd::target_of(frame, p), nd::advertised_mac(frame, p)) else {
                return;
            };
            (IpAddr::V6(t), m)
        }
        _ => return,
    };
    if mac.is_group() || mac == Mac::ZERO || ip.is_unspecified() {
        return;
    }
    if state.wanted.contains(&ip) || state.underlay.contains_key(&ip) || is_provider(policy, &ip) {
        if state.underlay.get(&ip) != Some(&mac) {
            state.underlay.insert(ip, mac);
            // Paths that encapsulate to this host must take the new MAC.
            state.underlay_epoch += 1;
        }
        state.wanted.forget(&ip);
    }
}

/// The MAC of `ip` on the uplink's segment; broadcast (and asked for) while unknown.
pub fn next_hop(state: &mut EngineState, ip: IpAddr) -> Mac {
    match state.underlay.get(&ip) {
        Some(m) => *m,
        None => {
            state.wanted.want(ip);
            Mac::BROADCAST
        }
    }
}

/// The requests that resolve every address still unknown: wanted ones and the remote
/// provider addresses of the policy.
pub fn requests(policy: &CompiledPolicy, state: &EngineState, out: &mut Vec<Vec<u8>>) {
    let providers = policy
        .networks
        .iter()
        .flat_map(|n| &n.remote_routes)
        .map(|r| r.provider_address);
    let mut asked: Vec<IpAddr> = Vec::new();
    for ip in state.wanted.iter().copied().chain(providers) {
        if state.underlay.contains_key(&ip) || asked.contains(&ip) {
            continue;
        }
        asked.push(ip);
        let mac = policy.uplink.mac;
        let frame = match ip {
            IpAddr::V4(t) => {
                let src = policy.uplink.ips.iter().find_map(|a| match a {
                    IpAddr::V4(a) => Some(*a),
                    IpAddr::V6(_) => None,
                });
                Some(arp_request(
                    mac,
                    src.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
                    t,
                ))
            }
            IpAddr::V6(t) => {
                let src = policy.uplink.ips.iter().find_map(|a| match a {
                    IpAddr::V6(a) => Some(*a),
                    IpAddr::V4(_) => None,
                });
                src.and_then(|s| nd::solicitation_frame(s, mac, t))
            }
        };
        out.extend(frame);
    }
}

/// "Who has `target`? Tell `src`" from `mac`.
pub fn arp_request(mac: Mac, src: std::net::Ipv4Addr, target: std::net::Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&Mac::BROADCAST.0);
    f.extend_from_slice(&mac.0);
    f.extend_from_slice(&ethernet::ETHERTYPE_ARP.to_be_bytes());
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4]);
    f.extend_from_slice(&arp::OP_REQUEST.to_be_bytes());
    f.extend_from_slice(&mac.0);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::parse;
    use crate::policy::CompileOptions;
    use crate::state::Limits;

    const POLICY: &str = r#"
[host]
mac = "02:00:00:00:10:01"
addresses = ["198.19.16.10"]

[[network]]
name = "overlay"
driver = "overlay"
subnets = ["198.18.17.0/24"]
gateway = "198.18.17.1"
vni = 4096

[[network.remote_subnet_route]]
prefix = "198.18.18.0/24"
provider_address = "198.19.16.20"

[[endpoint]]
name = "api"
network = "overlay"
mac = "00:15:5d:11:00:0a"
ipv4 = "198.18.17.10"
"#;

    #[test]
    fn providers_are_asked_for_and_learned_from_the_reply_only() {
        let p = strata_rules::policy::load(POLICY, "p.toml").unwrap();
        let c = CompiledPolicy::compile(&p, None, CompileOptions::default());
        let mut st = EngineState::new(Limits::default());
        let mut out = Vec::new();
        requests(&c, &st, &mut out);
        assert_eq!(out.len(), 1, "one ARP request for the provider address");
        let req = parse(&out[0]).unwrap();
        let FrameKind::Arp(a) = req.kind else {
            panic!("an ARP request")
        };
        assert_eq!(a.target_ip.to_string(), "198.19.16.20");
        assert_eq!(a.sender_ip.to_string(), "198.19.16.10");
        // Its reply teaches the MAC; a stranger's ARP does not.
        let theirs = Mac([2, 0, 0, 0, 0x10, 0x20]);
        let reply = |from: [u8; 4]| {
            let mut f = arp_request(theirs, from.into(), "198.19.16.10".parse().unwrap());
            f[21] = 2;
            f
        };
        for (from, learned) in [([198, 19, 16, 99], false), ([198, 19, 16, 20], true)] {
            let r = reply(from);
            learn(&c, &mut st, &r, &parse(&r).unwrap());
            assert_eq!(st.underlay.contains_key(&IpAddr::from(from)), learned);
        }
        out.clear();
        requests(&c, &st, &mut out);
        assert!(out.is_empty(), "nothing left to ask");
        // A destination sent to is wanted until it answers.
        let ext: IpAddr = "198.19.16.30".parse().unwrap();
        assert_eq!(next_hop(&mut st, ext), Mac::BROADCAST);
        requests(&c, &st, &mut out);
        assert_eq!(out.len(), 1);
    }
}
