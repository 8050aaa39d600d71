//! Which worker owns a frame (DESIGN §5): with several workers, each owns a disjoint
//! part of the state (flows, connections, NAT bindings), and both directions of a
//! connection must reach the same one, also when NAT rewrote one side. The rule, after
//! VPP's NAT44-ED:
//!
//! - between two endpoints of this host (nothing translated on the way): a symmetric
//!   hash of the whole tuple, so both directions agree;
//! - between an endpoint and anything beyond the uplink: a hash of the *remote* side
//!   (address, port, protocol), which no SNAT, port mapping or OutboundNAT changes;
//! - replies to a host (NAT) address: the NAT port (or ICMP echo identifier) itself
//!   names its owner, because each worker allocates NAT ports only from its own
//!   [`Share`] of every pool ([`Share::allocate`]); a port mapping's new inbound
//!   connections hash their remote side, as the container's replies will;
//! - a hairpin (an endpoint to a port mapping of this host): the symmetric hash of the
//!   sender and the mapped endpoint, which is what the mapped endpoint's reply carries
//!   (or, when the sender's SNAT translated it, the reply's NAT port names the owner);
//! - neighbour replies (ARP, ND advertisements) from the uplink go to every worker, so
//!   that each learns the MAC; ARP requests, other non-IP frames and frames that do not
//!   parse go to whoever received them (nothing they do is per-connection state).
//!
//! Known gap: a load-balanced connection to a backend on this host changes the remote
//! side (VIP → DIP) inside the host, so its reply may reach another worker.

use std::net::IpAddr;

use strata_rules::PortRange;
use strata_rules::model::proto;

use super::nat::PortPool;
use crate::packet::{self, FrameKind, Parsed};
use crate::policy::{CompiledPolicy, PortId};
use crate::transpose::bytes;

/// Who processes a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    Worker(usize),
    /// Any worker: the one that received it.
    Any,
    /// Every worker (each learns from it).
    All,
}

/// Ports are shared out in blocks of this many: block `k` (ports `64k..64k+63`) belongs
/// to worker `k % count`, so every range of 128 ports or more has ports for each of two
/// workers, and the owner of a port is one division away.
pub const BLOCK: u16 = 64;

/// A worker's share of every NAT pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Share {
    pub index: u16,
    pub count: u16,
}

impl Share {
    /// The worker that allocates `port` among `count`.
    pub fn owner_of(port: u16, count: usize) -> usize {
        usize::from(port / BLOCK) % count.max(1)
    }

    pub fn owns(&self, port: u16) -> bool {
        Share::owner_of(port, usize::from(self.count)) == usize::from(self.index)
    }

    /// A port of `pool` within `range` and this share: `preferred` if it is one and
    /// free, else the lowest free one. Walks this share's blocks of the range.
    pub fn allocate(&self, pool: &mut PortPool, range: PortRange, preferred: u16) -> Option<u16> {
        if range.contains(preferred)
            && self.owns(preferred)
            && pool.allocate_in(PortRange::single(preferred), preferred) == Some(preferred)
        {
            return Some(preferred);
        }
        if range.lo > range.hi {
            return None;
        }
        let count = u32::from(self.count.max(1));
        let mut block = u32::from(range.lo / BLOCK);
        // The first block of ours at or after `range.lo`.
        let skip = (u32::from(self.index) + count - block % count) % count;
        block += skip;
        while block * u32::from(BLOCK) <= u32::from(range.hi) {
            let lo = (block * u32::from(BLOCK)).max(u32::from(range.lo)) as u16;
            let hi =
                (block * u32::from(BLOCK) + u32::from(BLOCK) - 1).min(u32::from(range.hi)) as u16;
            if let Some(p) = pool.allocate_in(PortRange { lo, hi }, lo) {
                return Some(p);
            }
            block += count;
        }
        None
    }
}

/// A 64-bit mix (splitmix64's finaliser): deterministic, the same on every worker.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn side(ip: IpAddr, port: u16) -> u64 {
    let a = match ip {
        IpAddr::V4(a) => u64::from(u32::from(a)),
        IpAddr::V6(a) => {
            let v = u128::from(a);
            (v as u64) ^ ((v >> 64) as u64).rotate_left(17)
        }
    };
    mix(a ^ (u64::from(port) << 40))
}

/// The owner of the side (`ip`, `port`) of a `protocol` conversation.
fn by_side(ip: IpAddr, port: u16, protocol: u8, n: usize) -> Owner {
    Owner::Worker((mix(side(ip, port) ^ u64::from(protocol)) % n as u64) as usize)
}

/// The owner of a conversation between two sides, whichever sends.
fn by_pair(a: (IpAddr, u16), b: (IpAddr, u16), protocol: u8, n: usize) -> Owner {
    let (x, y) = (side(a.0, a.1), side(b.0, b.1));
    let h = mix(x.min(y) ^ x.max(y).rotate_left(23) ^ u64::from(protocol));
    Owner::Worker((h % n as u64) as usize)
}

/// The port the remote side of a packet hashes by: TCP/UDP/SCTP ports; 0 for the rest
/// (an ICMP echo's identifier belongs to the local side, and NAT rewrites it).
fn port_of(p: &Parsed, src: bool) -> u16 {
    if !proto::has_ports(p.fields.protocol) {
        return 0;
    }
    if src {
        p.fields.src_port
    } else {
        p.fields.dst_port
    }
}

/// Which of `workers` owns `frame`, received at `ingress`.
pub fn owner(policy: &CompiledPolicy, ingress: PortId, frame: &[u8], workers: usize) -> Owner {
    if workers <= 1 {
        return Owner::Any;
    }
    owner_parsed(policy, ingress, frame, &packet::parse(frame), workers)
}

/// [`owner`] of a frame already parsed (the worker parses once, for this and the engine).
pub fn owner_parsed(
    policy: &CompiledPolicy,
    ingress: PortId,
    frame: &[u8],
    parsed: &Result<Parsed, packet::ParseError>,
    workers: usize,
) -> Owner {
    if workers <= 1 {
        return Owner::Any;
    }
    let Ok(p) = parsed else {
        return Owner::Any;
    };
    match p.kind {
        FrameKind::Arp(a) if ingress == PortId::Uplink && a.op == 2 => return Owner::All,
        FrameKind::Ip => {}
        _ => return Owner::Any,
    }
    let f = p.fields;
    if f.protocol == proto::ICMPV6
        && let Some((t, _)) = f.icmp
        && (133..=137).contains(&t)
    {
        // Neighbour discovery: advertisements from the uplink teach every worker.
        return if t == 136 && ingress == PortId::Uplink {
            Owner::All
        } else {
            Owner::Any
        };
    }
    match ingress {
        PortId::Endpoint(_) => from_endpoint(policy, frame, p, workers),
        PortId::Uplink => from_uplink(policy, frame, p, workers),
    }
}

fn from_endpoint(policy: &CompiledPolicy, frame: &[u8], p: &Parsed, n: usize) -> Owner {
    let f = p.fields;
    let (src, dst) = ((f.src_ip, port_of(p, true)), (f.dst_ip, port_of(p, false)));
    if let Some(q) = bytes::icmp_error_inner(frame, p).filter(|_| is_error(p)) {
        // An error about a packet the endpoint received: that packet's conversation.
        let inner = ((q.src_ip, q.src_port), (q.dst_ip, q.dst_port));
        return if policy.slot_of_ip(&q.src_ip).is_some() {
            by_pair(inner.0, inner.1, q.protocol, n)
        } else {
            by_side(q.src_ip, q.src_port, q.protocol, n)
        };
    }
    let local_mac = policy.slot_of_mac(&f.dst_mac).is_some();
    if local_mac || policy.slot_of_ip(&f.dst_ip).is_some() || link_local(f.dst_ip) {
        return by_pair(src, dst, f.protocol, n);
    }
    if policy.is_host_address(f.dst_ip) && proto::has_ports(f.protocol) {
        // A hairpin through a port mapping: as the mapped endpoint's reply will be.
        if let Some(q) = policy.mapping(f.protocol, f.dst_port)
            && let Some(port) = policy.port(q)
            && let Some(m) = port
                .port
                .port_mappings
                .iter()
                .find(|m| m.protocol == f.protocol && m.external_port == f.dst_port)
            && let Some(ip) = port
                .port
                .ips
                .iter()
                .find(|i| i.is_ipv4() == f.src_ip.is_ipv4())
        {
            return by_pair(src, (*ip, m.internal_port), f.protocol, n);
        }
        // A reply to a hairpin the sender's SNAT translated: the NAT port names it.
        return nat_port_owner(f.dst_port, n);
    }
    by_side(dst.0, dst.1, f.protocol, n)
}

fn is_error(p: &Parsed) -> bool {
    p.fields
        .icmp
        .is_some_and(|(t, _)| bytes::is_icmp_error(p.ip_version, t))
}

fn from_uplink(policy: &CompiledPolicy, frame: &[u8], p: &Parsed, n: usize) -> Owner {
    let f = p.fields;
    if !policy.vxlan_ports().is_empty()
        && policy.is_host_address(f.dst_ip)
        && let Some(vx) = bytes::vxlan_of(frame, p, policy.vxlan_ports())
    {
        // Overlay: the inner packet's remote side (its sender).
        return match bytes::parse_inner(frame, p, &vx) {
            Ok(inner) if matches!(inner.kind, FrameKind::Ip) => by_side(
                inner.fields.src_ip,
                port_of(&inner, true),
                inner.fields.protocol,
                n,
            ),
            Ok(inner) if matches!(inner.kind, FrameKind::Arp(a) if a.op == 2) => Owner::All,
            _ => Owner::Any,
        };
    }
    if is_error(p)
        && let Some(q) = bytes::icmp_error_inner(frame, p)
    {
        // An error about a packet that left through the uplink: that packet's
        // conversation (its source was ours: a NAT port names the owner).
        if policy.is_host_address(q.src_ip) {
            return nat_port_owner(q.src_port, n);
        }
        return by_side(q.dst_ip, q.dst_port, q.protocol, n);
    }
    if policy.is_host_address(f.dst_ip) {
        if proto::has_ports(f.protocol) {
            if policy.mapping(f.protocol, f.dst_port).is_some() {
                return by_side(f.src_ip, f.src_port, f.protocol, n);
            }
            return nat_port_owner(f.dst_port, n);
        }
        if let (Some((t, _)), Some(id)) = (f.icmp, p.icmp_id) {
            // An echo reply to a NATed ping: its identifier is a NAT port. A request to
            // the host is answered by whoever got it.
            let reply = matches!((f.protocol, t), (proto::ICMP, 0) | (proto::ICMPV6, 129));
            return if reply {
                nat_port_owner(id, n)
            } else {
                Owner::Any
            };
        }
    }
    if policy.is_host_address(f.src_ip) && proto::has_ports(f.protocol) {
        // The host's own stack: the container's replies go to a host address, where the
        // port names the owner (as for NAT replies), so the host's packets follow it.
        return nat_port_owner(f.src_port, n);
    }
    // Between two endpoints of this host by way of the uplink (an l2tunnel hairpin, or a
    // sender on the segment using a local endpoint's address): the symmetric hash, as the
    // same conversation gets when an endpoint sends it directly.
    let to_local =
        policy.slot_of_mac(&f.dst_mac).is_some() || policy.slot_of_ip(&f.dst_ip).is_some();
    if to_local && (policy.slot_of_ip(&f.src_ip).is_some() || link_local(f.src_ip)) {
        let (src, dst) = ((f.src_ip, port_of(p, true)), (f.dst_ip, port_of(p, false)));
        return by_pair(src, dst, f.protocol, n);
    }
    by_side(f.src_ip, port_of(p, true), f.protocol, n)
}

/// A link-local address (IPv6 `fe80::/10`, IPv4 `169.254.0.0/16`): never behind NAT or
/// the uplink's routers, so its conversations are owned like those between endpoints.
fn link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => a.segments()[0] & 0xffc0 == 0xfe80,
    }
}

fn nat_port_owner(port: u16, n: usize) -> Owner {
    Owner::Worker(Share::owner_of(port, n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::testutil;
    use crate::policy::CompileOptions;
    use std::collections::HashSet;

    const POLICY: &str = r#"
[host]
mac = "02:00:00:00:00:01"
addresses = ["198.19.16.10"]

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

[[endpoint.port_mapping]]
protocol = "tcp"
internal_port = 80
external_port = 8080

[[endpoint]]
name = "b"
network = "nat"
mac = "00:15:5d:00:00:0b"
ipv4 = "198.18.16.11"
"#;

    const A: [u8; 4] = [198, 18, 16, 10];
    const B: [u8; 4] = [198, 18, 16, 11];
    const HOST: [u8; 4] = [198, 19, 16, 10];
    const EXT: [u8; 4] = [198, 19, 16, 20];

    fn tcp(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16) -> Vec<u8> {
        testutil::eth(
            0x0800,
            &[],
            &testutil::ipv4_full(6, src, dst, &[], 0, &testutil::tcp(sp, dp, 0x02, &[], b"")),
        )
    }

    fn policy() -> CompiledPolicy {
        let p = strata_rules::policy::load(POLICY, "p.toml").unwrap();
        CompiledPolicy::compile(&p, None, CompileOptions::default())
    }

    #[test]
    fn both_directions_of_a_connection_have_one_owner() {
        let c = policy();
        let (a, b) = (c.port_by_name("a").unwrap(), c.port_by_name("b").unwrap());
        let mut owners = HashSet::new();
        for n in [2, 3, 4] {
            for sp in 40000..40064u16 {
                // Endpoint to endpoint.
                let there = owner(&c, a, &tcp(A, sp, B, 5432), n);
                let back = owner(&c, b, &tcp(B, 5432, A, sp), n);
                assert_eq!(there, back, "a<->b port {sp}, {n} workers");
                owners.insert(there);
                // SNAT to the outside: the reply's NAT port names the worker that owns
                // the connection when that worker allocated it from its share.
                let Owner::Worker(w) = owner(&c, a, &tcp(A, sp, EXT, 443), n) else {
                    panic!("an outbound TCP packet has one owner");
                };
                let share = Share {
                    index: w as u16,
                    count: n as u16,
                };
                let mut pool = PortPool::new(PortRange {
                    lo: 1024,
                    hi: 65535,
                });
                let nat = share
                    .allocate(
                        &mut pool,
                        PortRange {
                            lo: 1024,
                            hi: 65535,
                        },
                        sp,
                    )
                    .unwrap();
                assert!(share.owns(nat));
                assert_eq!(
                    owner(&c, PortId::Uplink, &tcp(EXT, 443, HOST, nat), n),
                    Owner::Worker(w)
                );
                // A port mapping: outside in, and the container's reply.
                let inbound = owner(&c, PortId::Uplink, &tcp(EXT, sp, HOST, 8080), n);
                let reply = owner(&c, a, &tcp(A, 80, EXT, sp), n);
                assert_eq!(inbound, reply, "port mapping, remote port {sp}");
                // A hairpin: b to a through the mapping, and a's reply to b.
                let hairpin = owner(&c, b, &tcp(B, sp, HOST, 8080), n);
                let hp_reply = owner(&c, a, &tcp(A, 80, B, sp), n);
                assert_eq!(hairpin, hp_reply, "hairpin, port {sp}");
            }
        }
        assert!(owners.len() > 1, "connections spread over the workers");
        assert_eq!(owner(&c, a, &tcp(A, 1, B, 2), 1), Owner::Any);
    }

    #[test]
    fn neighbour_replies_go_to_all_and_the_rest_to_anyone() {
        let c = policy();
        let arp = |op: u16| {
            let mut body = vec![0, 1, 8, 0, 6, 4];
            body.extend_from_slice(&op.to_be_bytes());
            body.extend_from_slice(&[2, 0, 0, 0, 0, 0x20]);
            body.extend_from_slice(&EXT);
            body.extend_from_slice(&[0; 6]);
            body.extend_from_slice(&HOST);
            testutil::eth(0x0806, &[], &body)
        };
        assert_eq!(owner(&c, PortId::Uplink, &arp(2), 2), Owner::All);
        assert_eq!(owner(&c, PortId::Uplink, &arp(1), 2), Owner::Any);
        assert_eq!(owner(&c, PortId::Uplink, &[1, 2, 3], 2), Owner::Any);
    }

    #[test]
    fn shares_split_every_range_and_never_overlap() {
        let range = PortRange { lo: 1000, hi: 1300 };
        let mut taken = HashSet::new();
        for index in 0..2 {
            let share = Share { index, count: 2 };
            let mut pool = PortPool::new(range);
            let mut got = 0;
            while let Some(p) = share.allocate(&mut pool, range, 0) {
                assert!(range.contains(p) && share.owns(p));
                assert!(taken.insert(p), "port {p} given to two workers");
                got += 1;
            }
            assert!(got > 100, "worker {index} got {got} ports");
        }
        assert_eq!(taken.len(), 301);
    }
}
