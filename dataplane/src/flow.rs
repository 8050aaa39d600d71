//! Flow keys: what the unified flow table and the connection table are keyed by.

use std::net::IpAddr;

use strata_rules::conn::{ConnKey, is_icmp_echo};
use strata_rules::model::proto;
use strata_rules::model::{Direction, Fields};

/// `FlowKey::b` of ICMP echo requests and replies: both directions of a ping share a key
/// shape, so a connection's reply entry can be found from its [`ConnKey`].
const ECHO: u16 = 0xffff;

/// What the packet path extracts from a frame for policy: the fields rules look at, plus
/// what connection tracking needs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PacketMeta {
    pub fields: Fields,
    /// ICMP echo identifier, for echo requests and replies.
    pub icmp_id: Option<u16>,
    pub tcp_flags: u8,
    /// A TCP segment's sequence space.
    pub tcp_seq: strata_rules::conn::TcpSeq,
    /// The IP packet's length (header and payload), for MTU checks.
    pub ip_len: u32,
    /// For an ICMP error: the connection key of the packet it quotes, so the error can
    /// follow that connection (and be translated like it).
    pub related: Option<ConnKey>,
}

impl PacketMeta {
    /// The connection this packet would belong to (see `conn::conn_key`).
    pub fn conn_key(&self) -> Option<ConnKey> {
        strata_rules::conn::conn_key(&self.fields, self.icmp_id)
    }
}

/// The unified flow table's key: a direction and the 5-tuple, with ICMP's identifier,
/// type and code standing in for ports. Fields that rarely vary within a 5-tuple (MACs,
/// VLAN, VNI) are not hashed; the entry keeps the full [`Fields`] it was computed for
/// and a hit must match them exactly, so the cache can never answer for other headers.
///
/// Packed into integers (IPv4 addresses mapped into IPv6 space, the family kept apart in
/// `meta`) so that hashing and comparing it are a few word operations.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FlowKey {
    src: [u64; 2],
    dst: [u64; 2],
    /// `a` (high half) and `b` (low half): ports, or ICMP identifier and type/code.
    ports: u32,
    /// Protocol, direction and address family.
    meta: u16,
}

fn packed(ip: IpAddr) -> [u64; 2] {
    let w = match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    };
    // Two words, not one u128: 8-byte alignment keeps the key at 40 bytes.
    [(w >> 64) as u64, w as u64]
}

fn key(dir: Direction, src: IpAddr, dst: IpAddr, protocol: u8, a: u16, b: u16) -> FlowKey {
    let d = match dir {
        Direction::Out => 0,
        Direction::In => 1,
    };
    FlowKey {
        src: packed(src),
        dst: packed(dst),
        ports: u32::from(a) << 16 | u32::from(b),
        meta: u16::from(protocol) << 8 | d << 1 | u16::from(src.is_ipv6()),
    }
}

impl FlowKey {
    pub fn of(dir: Direction, m: &PacketMeta) -> FlowKey {
        FlowKey::of_fields(dir, &m.fields, m.icmp_id)
    }

    /// The key of a packet with these fields (and ICMP echo identifier).
    pub fn of_fields(dir: Direction, f: &Fields, icmp_id: Option<u16>) -> FlowKey {
        let (a, b) = match f.icmp {
            Some((t, _)) if is_icmp_echo(f.protocol, t) => (icmp_id.unwrap_or(0), ECHO),
            Some((t, c)) => (0, u16::from_be_bytes([t, c])),
            None => (f.src_port, f.dst_port),
        };
        key(dir, f.src_ip, f.dst_ip, f.protocol, a, b)
    }
}

impl FlowKey {
    /// Connection key `k` with its originating direction, packed as a flow key (words
    /// hash faster than its addresses' enums).
    pub fn of_conn(dir: Direction, k: &ConnKey) -> FlowKey {
        key(dir, k.src_ip, k.dst_ip, k.protocol, k.src_port, k.dst_port)
    }

    /// The key under which replies to connection `k`, opened in direction `dir`, arrive.
    pub fn reply_of(dir: Direction, k: &ConnKey) -> FlowKey {
        let (a, b) = if proto::is_icmp(k.protocol) {
            (k.src_port, ECHO)
        } else {
            (k.dst_port, k.src_port)
        };
        key(dir.reverse(), k.dst_ip, k.src_ip, k.protocol, a, b)
    }
}
