//! Why a packet was dropped. Every drop has one of these; counters by reason fall out.

/// A named drop reason. [`DropReason::as_str`] is the name verdicts and summaries print.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum DropReason {
    /// The frame could not be parsed (truncated or malformed headers).
    Parse,
    /// A frame the switch does not carry: neither IP nor ARP (STP, LLDP, ...), or a
    /// capture record of a link type that is not Ethernet.
    Unsupported,
    /// A rule of an ACL (or other) layer blocked it.
    Acl,
    /// A layer's default for the direction and protocol blocked it.
    AclDefault,
    /// Nowhere to deliver it (from the uplink to no endpoint).
    NoRoute,
    /// The port's connection table is full of live connections: no room to record a new
    /// one.
    ConnectionTableFull,
    /// The NAT had no free port for a new connection.
    NatPortsExhausted,
    /// A VXLAN packet for a VNI this host does not carry.
    VniMismatch,
    /// A tagged frame with a VLAN ID its network does not carry.
    VlanMismatch,
    /// Larger than the uplink MTU after encapsulation.
    TooBig,
    /// A source the sender may not use: an endpoint posing as another (MAC or address),
    /// or the uplink claiming the address of a container the outside cannot reach.
    SpoofedSource,
    /// From the uplink to an endpoint its network does not expose to the outside: a NAT
    /// network's containers are reached only through port mappings and replies, an
    /// overlay's only encapsulated.
    NotExposed,
    /// A TCP RST outside the receiver's window (RFC 5961): an off-path guess; the
    /// connection it aimed at carries on.
    TcpOutOfWindow,
    /// A later fragment that cannot follow a first one: its first was not seen (or
    /// expired), it overlaps another fragment of its datagram, or it is a TCP fragment
    /// at offset 8 (RFC 1858, RFC 3128, RFC 5722).
    Fragment,
}

impl DropReason {
    pub const ALL: [DropReason; 14] = [
        DropReason::Parse,
        DropReason::Unsupported,
        DropReason::Acl,
        DropReason::AclDefault,
        DropReason::NoRoute,
        DropReason::ConnectionTableFull,
        DropReason::NatPortsExhausted,
        DropReason::VniMismatch,
        DropReason::VlanMismatch,
        DropReason::TooBig,
        DropReason::SpoofedSource,
        DropReason::NotExposed,
        DropReason::TcpOutOfWindow,
        DropReason::Fragment,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Parse => "parse",
            DropReason::Unsupported => "unsupported",
            DropReason::Acl => "acl",
            DropReason::AclDefault => "acl-default",
            DropReason::NoRoute => "no-route",
            DropReason::ConnectionTableFull => "connection-table-full",
            DropReason::NatPortsExhausted => "nat-ports-exhausted",
            DropReason::VniMismatch => "vni-mismatch",
            DropReason::VlanMismatch => "vlan-mismatch",
            DropReason::TooBig => "too-big",
            DropReason::SpoofedSource => "spoofed-source",
            DropReason::NotExposed => "not-exposed",
            DropReason::TcpOutOfWindow => "tcp-out-of-window",
            DropReason::Fragment => "fragment",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
