//! The object model of DESIGN §2, as data: what a compiled policy *is*.
//!
//! A [`Policy`] is the whole switch: networks, endpoint [`Port`]s and the uplink. Each port
//! carries its ordered [`Layer`]s; a layer holds [`Group`]s of [`Rule`]s and a
//! [`Defaults`] per direction. Nothing here knows about files (see `policy`) or about
//! how the dataplane evaluates it fast (see `classifier` and the `dataplane` crate); the
//! meaning of these types is given by the reference evaluator in `reference`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    pub const BROADCAST: Mac = Mac([0xff; 6]);
    pub const ZERO: Mac = Mac([0; 6]);

    /// Group (multicast or broadcast) addresses have the low bit of the first octet set.
    pub fn is_group(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Mac {
    type Err = String;
    /// Accepts `00:15:5d:00:00:01` and the Windows form `00-15-5D-00-00-01`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(format!("`{s}` is not a MAC address (six hex octets)"));
        }
        let mut m = [0u8; 6];
        for (o, p) in m.iter_mut().zip(parts) {
            if p.len() != 2 {
                return Err(format!("`{s}` is not a MAC address (six hex octets)"));
            }
            *o = u8::from_str_radix(p, 16)
                .map_err(|_| format!("`{s}` is not a MAC address (six hex octets)"))?;
        }
        Ok(Mac(m))
    }
}

/// Which way a packet crosses a port: `Out` = from the container into the switch, `In` =
/// towards the container. Outbound packets traverse a port's layers top to bottom,
/// inbound ones bottom to top.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum Direction {
    Out,
    In,
}

impl Direction {
    pub fn reverse(self) -> Direction {
        match self {
            Direction::Out => Direction::In,
            Direction::In => Direction::Out,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Out => "out",
            Direction::In => "in",
        }
    }
}

/// The directions a group applies to.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum GroupDirection {
    In,
    Out,
    Both,
}

impl GroupDirection {
    pub fn applies(self, d: Direction) -> bool {
        matches!(
            (self, d),
            (GroupDirection::Both, _)
                | (GroupDirection::In, Direction::In)
                | (GroupDirection::Out, Direction::Out)
        )
    }
}

/// An IPv4 or IPv6 prefix; host bits are always zero. An IPv4 prefix never matches an
/// IPv6 address and vice versa.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct IpPrefix {
    addr: IpAddr,
    len: u8,
}

impl IpPrefix {
    /// A prefix from an address and a length; host bits are cleared. `None` if the length
    /// is longer than the address.
    pub fn new(addr: IpAddr, len: u8) -> Option<IpPrefix> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max {
            return None;
        }
        let addr = match addr {
            IpAddr::V4(a) => {
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                IpAddr::V6((u128::from(a) & mask).into())
            }
        };
        Some(IpPrefix { addr, len })
    }
    /// The prefix holding exactly one address.
    pub fn host(addr: IpAddr) -> IpPrefix {
        let len = if addr.is_ipv4() { 32 } else { 128 };
        IpPrefix { addr, len }
    }
    pub fn addr(&self) -> IpAddr {
        self.addr
    }
    pub fn len(&self) -> u8 {
        self.len
    }
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(p), IpAddr::V4(a)) => {
                self.len == 0 || (u32::from(p) ^ u32::from(a)) >> (32 - self.len) == 0
            }
            (IpAddr::V6(p), IpAddr::V6(a)) => {
                self.len == 0 || (u128::from(p) ^ u128::from(a)) >> (128 - self.len) == 0
            }
            _ => false,
        }
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for IpPrefix {
    type Err = String;
    /// `198.18.0.0/15`, `2001:db8::/32`, or a bare address (a host prefix). Host bits set
    /// under the mask are an error: `10.0.0.1/8` is almost always a typo.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or CIDR prefix"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            None => max,
            Some(l) => l
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&l| l <= max)
                .ok_or_else(|| format!("`{s}`: prefix length must be 0..={max}"))?,
        };
        let p = IpPrefix::new(addr, len).ok_or_else(|| format!("`{s}`: bad prefix"))?;
        if p.addr != addr {
            return Err(format!(
                "`{s}` has host bits set under /{len} (did you mean {p}?)"
            ));
        }
        Ok(p)
    }
}

/// An inclusive port range.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub const ANY: PortRange = PortRange {
        lo: 0,
        hi: u16::MAX,
    };
    pub fn single(p: u16) -> PortRange {
        PortRange { lo: p, hi: p }
    }
    pub fn contains(&self, p: u16) -> bool {
        self.lo <= p && p <= self.hi
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

/// IP protocol numbers that the model names.
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const IGMP: u8 = 2;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const GRE: u8 = 47;
    pub const ICMPV6: u8 = 58;
    pub const SCTP: u8 = 132;

    /// Protocols whose packets carry source and destination ports.
    pub fn has_ports(p: u8) -> bool {
        matches!(p, TCP | UDP | SCTP)
    }
    pub fn is_icmp(p: u8) -> bool {
        matches!(p, ICMP | ICMPV6)
    }
}

/// What a rule's conditions look at in a packet: the headers as this layer sees them
/// (after the transpositions of the layers it has already crossed).
///
/// Packets of a protocol without ports have `src_port == dst_port == 0`; `icmp` is set
/// for ICMP and ICMPv6 only; `vlan` and `vni` are set when the frame carried them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Fields {
    pub src_mac: Mac,
    pub dst_mac: Mac,
    pub vlan: Option<u16>,
    pub vni: Option<u32>,
    pub src_ip: IpAddr,
    pub dst_ip: IpAddr,
    pub protocol: u8,
    pub src_port: u16,
    pub dst_port: u16,
    /// ICMP (type, code).
    pub icmp: Option<(u8, u8)>,
}

/// A rule's or group's match: AND across fields, OR within a field's list. An empty list
/// matches everything. A field the packet lacks (no VLAN tag, no VNI, not ICMP) matches
/// only an empty list.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Conditions {
    pub src_ip: Vec<IpPrefix>,
    pub dst_ip: Vec<IpPrefix>,
    pub src_port: Vec<PortRange>,
    pub dst_port: Vec<PortRange>,
    pub protocol: Vec<u8>,
    pub icmp_type: Vec<u8>,
    pub icmp_code: Vec<u8>,
    pub src_mac: Vec<Mac>,
    pub dst_mac: Vec<Mac>,
    pub vlan: Vec<u16>,
    pub vni: Vec<u32>,
}

impl Conditions {
    /// Matches everything.
    pub fn any() -> Conditions {
        Conditions::default()
    }

    pub fn is_any(&self) -> bool {
        *self == Conditions::default()
    }

    /// The obviously correct match: one linear scan per field.
    pub fn matches(&self, f: &Fields) -> bool {
        fn any_of<T>(list: &[T], pred: impl Fn(&T) -> bool) -> bool {
            list.is_empty() || list.iter().any(pred)
        }
        fn opt_of<T: PartialEq + Copy>(list: &[T], v: Option<T>) -> bool {
            list.is_empty() || v.is_some_and(|v| list.contains(&v))
        }
        any_of(&self.src_ip, |p| p.contains(f.src_ip))
            && any_of(&self.dst_ip, |p| p.contains(f.dst_ip))
            && any_of(&self.src_port, |r| r.contains(f.src_port))
            && any_of(&self.dst_port, |r| r.contains(f.dst_port))
            && any_of(&self.protocol, |p| *p == f.protocol)
            && opt_of(&self.icmp_type, f.icmp.map(|(t, _)| t))
            && opt_of(&self.icmp_code, f.icmp.map(|(_, c)| c))
            && any_of(&self.src_mac, |m| *m == f.src_mac)
            && any_of(&self.dst_mac, |m| *m == f.dst_mac)
            && opt_of(&self.vlan, f.vlan)
            && opt_of(&self.vni, f.vni)
    }
}

/// What a rule does to the packets it selects. `Allow` and `Block` decide; the header
/// transpositions of the `transposition` module imply allow and change what the following
/// layers see.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Action {
    Allow,
    Block,
}

impl Action {
    pub fn is_block(&self) -> bool {
        matches!(self, Action::Block)
    }
}

/// A rule: lower `priority` wins; ties go to the rule written first.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Rule {
    pub id: String,
    pub priority: u32,
    pub conditions: Conditions,
    pub action: Action,
    /// A terminating rule decides its layer at once; otherwise later groups may override.
    pub terminating: bool,
    /// A stateful rule records the connection so that its replies pass without evaluation.
    pub stateful: bool,
}

/// An ordered set of rules with an optional condition that gates the whole group.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Group {
    pub name: String,
    pub direction: GroupDirection,
    pub condition: Option<Conditions>,
    pub rules: Vec<Rule>,
}

/// One entry of a layer's default policy: packets matching `conditions` get `action`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DefaultRule {
    /// Shown in verdicts, e.g. `tcp`, `dhcp`, `port-mapping:80`.
    pub name: String,
    pub conditions: Conditions,
    pub action: Action,
}

/// A layer's default for one direction: the first matching entry decides, else
/// `otherwise`. Default allows are stateful (DESIGN §2: replies of an allowed connection
/// always come back).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DefaultPolicy {
    pub entries: Vec<DefaultRule>,
    pub otherwise: Action,
}

impl DefaultPolicy {
    pub fn allow_all() -> DefaultPolicy {
        DefaultPolicy {
            entries: vec![],
            otherwise: Action::Allow,
        }
    }
    pub fn block_all() -> DefaultPolicy {
        DefaultPolicy {
            entries: vec![],
            otherwise: Action::Block,
        }
    }
}

/// Per-direction defaults of a layer.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Defaults {
    pub outbound: DefaultPolicy,
    pub inbound: DefaultPolicy,
}

impl Defaults {
    pub fn allow_all() -> Defaults {
        Defaults {
            outbound: DefaultPolicy::allow_all(),
            inbound: DefaultPolicy::allow_all(),
        }
    }
    pub fn for_direction(&self, d: Direction) -> &DefaultPolicy {
        match d {
            Direction::Out => &self.outbound,
            Direction::In => &self.inbound,
        }
    }
}

/// A layer: groups visited in order, and defaults per direction.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Layer {
    pub name: String,
    pub groups: Vec<Group>,
    pub defaults: Defaults,
}

/// Network drivers of DESIGN §1.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Driver {
    Nat,
    Transparent,
    L2Bridge,
    L2Tunnel,
    Overlay,
}

impl Driver {
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::Nat => "nat",
            Driver::Transparent => "transparent",
            Driver::L2Bridge => "l2bridge",
            Driver::L2Tunnel => "l2tunnel",
            Driver::Overlay => "overlay",
        }
    }
}

/// Container isolation modes; they choose the default ACL profile (DESIGN §1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Isolation {
    Process,
    ProcessLegacy,
    HyperV,
}

/// A network: a virtual switch segment with its addressing.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Network {
    pub name: String,
    pub driver: Driver,
    pub subnets: Vec<IpPrefix>,
    pub gateway: Option<IpAddr>,
    pub vlan: Option<u16>,
    pub vni: Option<u32>,
}

/// An endpoint's vNIC port with its layers, top (nearest the container) first.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Port {
    pub name: String,
    pub network: String,
    pub mac: Mac,
    pub ips: Vec<IpAddr>,
    pub isolation: Isolation,
    /// Host-side interface (veth) the service attaches to, if any.
    pub interface: Option<String>,
    pub layers: Vec<Layer>,
}

/// The host's uplink port.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Uplink {
    pub name: String,
    pub mac: Mac,
    pub ips: Vec<IpAddr>,
    pub mtu: u16,
    pub interface: Option<String>,
}

impl Default for Uplink {
    fn default() -> Uplink {
        Uplink {
            name: "uplink".into(),
            mac: Mac([0x02, 0, 0, 0, 0, 0x01]),
            ips: vec![],
            mtu: 1500,
            interface: None,
        }
    }
}

/// The whole compiled policy of one host switch.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Policy {
    pub networks: Vec<Network>,
    pub ports: Vec<Port>,
    pub uplink: Uplink,
}

impl Policy {
    pub fn port(&self, name: &str) -> Option<&Port> {
        self.ports.iter().find(|p| p.name == name)
    }
    pub fn network(&self, name: &str) -> Option<&Network> {
        self.networks.iter().find(|n| n.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_parse_and_contains() {
        let p: IpPrefix = "198.18.0.0/15".parse().unwrap();
        assert!(p.contains("198.19.255.255".parse().unwrap()));
        assert!(!p.contains("198.20.0.0".parse().unwrap()));
        assert!(!p.contains("2001:db8::1".parse().unwrap()));
        assert!("198.18.0.1/15".parse::<IpPrefix>().is_err());
        let any: IpPrefix = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains("1.2.3.4".parse().unwrap()));
        let v6: IpPrefix = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!v6.contains("2001:db9::".parse().unwrap()));
    }

    #[test]
    fn mac_forms() {
        let a: Mac = "00-15-5D-00-00-01".parse().unwrap();
        let b: Mac = "00:15:5d:00:00:01".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "00:15:5d:00:00:01");
        assert!("00:15:5d:00:00".parse::<Mac>().is_err());
    }
}
