//! Connections: what DESIGN §2 "Stateful" needs both the reference evaluator and the
//! engine to agree on, defined once — the connection key of a packet, the TCP state
//! machine and idle timeouts, and the rewrite that turns a reply back.
//!
//! These are definitions, not evaluation: the reference evaluator and the engine each
//! evaluate policy their own way and are tested against each other; what a connection
//! *is* must not differ between them.

use std::net::IpAddr;

use crate::model::{Fields, proto};

/// Idle timeouts, in nanoseconds of packet time.
pub mod timeouts {
    const S: u64 = 1_000_000_000;
    /// A TCP connection that has seen traffic both ways and no FIN from both sides.
    pub const TCP_ESTABLISHED: u64 = 300 * S;
    /// A TCP connection opened by a SYN with no reply yet, or closing (FIN both ways).
    pub const TCP_TRANSITORY: u64 = 30 * S;
    pub const UDP: u64 = 120 * S;
    pub const ICMP: u64 = 30 * S;
    pub const OTHER: u64 = 60 * S;
}

/// TCP flag bits as they appear in the header.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const ACK: u8 = 0x10;
}

/// What identifies a connection: the 5-tuple, with ICMP echo identifiers standing in for
/// ports (source and destination port both = identifier, so request and reply reverse
/// into each other). Other ICMP messages have no connection.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ConnKey {
    pub src_ip: IpAddr,
    pub dst_ip: IpAddr,
    pub protocol: u8,
    pub src_port: u16,
    pub dst_port: u16,
}

impl ConnKey {
    pub fn reverse(&self) -> ConnKey {
        ConnKey {
            src_ip: self.dst_ip,
            dst_ip: self.src_ip,
            protocol: self.protocol,
            src_port: self.dst_port,
            dst_port: self.src_port,
        }
    }
}

/// ICMP echo request and reply types (ICMPv4 8/0, ICMPv6 128/129).
pub fn is_icmp_echo(protocol: u8, icmp_type: u8) -> bool {
    matches!(
        (protocol, icmp_type),
        (proto::ICMP, 0 | 8) | (proto::ICMPV6, 128 | 129)
    )
}

/// Whether a packet with ICMP `(type, code)` `icmp` answers a connection opened by a
/// packet with `opened_by`: for ICMP echo, only the other echo type does (a request is
/// answered by a reply, never by another request reusing the identifier); for anything
/// else, any packet of the reverse key does.
pub fn answers(protocol: u8, opened_by: Option<(u8, u8)>, icmp: Option<(u8, u8)>) -> bool {
    let counterpart = |t: u8| match (protocol, t) {
        (proto::ICMP, 8) => Some(0),
        (proto::ICMP, 0) => Some(8),
        (proto::ICMPV6, 128) => Some(129),
        (proto::ICMPV6, 129) => Some(128),
        _ => None,
    };
    match (opened_by, icmp) {
        (Some((o, _)), Some((t, _))) if is_icmp_echo(protocol, o) => counterpart(o) == Some(t),
        _ => true,
    }
}

/// The connection key of a packet, or `None` if it can't belong to a connection.
pub fn conn_key(f: &Fields, icmp_id: Option<u16>) -> Option<ConnKey> {
    let (src_port, dst_port) = match f.icmp {
        Some((t, _)) if is_icmp_echo(f.protocol, t) => {
            let id = icmp_id?;
            (id, id)
        }
        Some(_) => return None,
        None => (f.src_port, f.dst_port),
    };
    Some(ConnKey {
        src_ip: f.src_ip,
        dst_ip: f.dst_ip,
        protocol: f.protocol,
        src_port,
        dst_port,
    })
}

/// TCP connection progress, enough to pick a timeout.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TcpState {
    /// Opened by a bare SYN, no packet back yet.
    SynSent,
    Established,
    /// FIN seen from one side (true = originator).
    Closing {
        fin_orig: bool,
        fin_reply: bool,
    },
}

/// The state machine shared by the spec and the engine: the state after a packet with
/// `flags` in direction `from_orig`, or `None` when the connection ends (RST).
pub fn tcp_next(state: TcpState, flags: u8, from_orig: bool) -> Option<TcpState> {
    if flags & tcp_flags::RST != 0 {
        return None;
    }
    let fin = flags & tcp_flags::FIN != 0;
    let s = match state {
        TcpState::SynSent if !from_orig => TcpState::Established,
        s => s,
    };
    Some(match (s, fin) {
        (TcpState::Established, true) => TcpState::Closing {
            fin_orig: from_orig,
            fin_reply: !from_orig,
        },
        (
            TcpState::Closing {
                fin_orig,
                fin_reply,
            },
            true,
        ) => TcpState::Closing {
            fin_orig: fin_orig || from_orig,
            fin_reply: fin_reply || !from_orig,
        },
        (s, _) => s,
    })
}

/// The state a new TCP connection starts in.
pub fn tcp_initial(flags: u8) -> TcpState {
    if flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN {
        TcpState::SynSent
    } else {
        TcpState::Established
    }
}

/// The idle timeout of a connection of `protocol` in `tcp` state.
pub fn idle_timeout(protocol: u8, tcp: TcpState) -> u64 {
    match protocol {
        proto::TCP => match tcp {
            TcpState::Established => timeouts::TCP_ESTABLISHED,
            TcpState::Closing {
                fin_orig: true,
                fin_reply: true,
            }
            | TcpState::SynSent => timeouts::TCP_TRANSITORY,
            TcpState::Closing { .. } => timeouts::TCP_ESTABLISHED,
        },
        proto::UDP => timeouts::UDP,
        proto::ICMP | proto::ICMPV6 => timeouts::ICMP,
        _ => timeouts::OTHER,
    }
}

/// What a traversal's layers set in a packet (the transpositions, composed): a later
/// layer's setting of a field wins.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Rewrite {
    pub src_mac: Option<crate::model::Mac>,
    pub dst_mac: Option<crate::model::Mac>,
    pub src_ip: Option<IpAddr>,
    pub dst_ip: Option<IpAddr>,
    /// Source port, or the ICMP echo identifier.
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
}

impl Rewrite {
    pub fn then(self, n: Rewrite) -> Rewrite {
        Rewrite {
            src_mac: n.src_mac.or(self.src_mac),
            dst_mac: n.dst_mac.or(self.dst_mac),
            src_ip: n.src_ip.or(self.src_ip),
            dst_ip: n.dst_ip.or(self.dst_ip),
            src_port: n.src_port.or(self.src_port),
            dst_port: n.dst_port.or(self.dst_port),
        }
    }

    /// Applies it: ports change only for protocols with ports; an ICMP echo's identifier
    /// takes the source (else destination) port.
    pub fn apply(&self, f: &Fields, icmp_id: Option<u16>) -> (Fields, Option<u16>) {
        let mut g = *f;
        g.src_mac = self.src_mac.unwrap_or(g.src_mac);
        g.dst_mac = self.dst_mac.unwrap_or(g.dst_mac);
        g.src_ip = self.src_ip.unwrap_or(g.src_ip);
        g.dst_ip = self.dst_ip.unwrap_or(g.dst_ip);
        let mut id = icmp_id;
        if proto::has_ports(f.protocol) {
            g.src_port = self.src_port.unwrap_or(g.src_port);
            g.dst_port = self.dst_port.unwrap_or(g.dst_port);
        } else if icmp_id.is_some() {
            id = self.src_port.or(self.dst_port).or(icmp_id);
        }
        (g, id)
    }

    /// The rewrite that turns a reply of a connection that entered as `entry` and left
    /// as `exit` back into the reverse of `entry`: whatever the connection changed is
    /// changed back.
    pub fn reply_of(
        entry: &Fields,
        entry_id: Option<u16>,
        exit: &Fields,
        exit_id: Option<u16>,
    ) -> Rewrite {
        fn changed<T: PartialEq>(a: T, b: T) -> Option<T> {
            (a != b).then_some(a)
        }
        let (src_port, dst_port) = if proto::has_ports(entry.protocol) {
            (
                changed(entry.dst_port, exit.dst_port),
                changed(entry.src_port, exit.src_port),
            )
        } else {
            (if entry_id != exit_id { entry_id } else { None }, None)
        };
        Rewrite {
            src_mac: changed(entry.dst_mac, exit.dst_mac),
            dst_mac: changed(entry.src_mac, exit.src_mac),
            src_ip: changed(entry.dst_ip, exit.dst_ip),
            dst_ip: changed(entry.src_ip, exit.src_ip),
            src_port,
            dst_port,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_other_echo_type_answers_an_echo() {
        assert!(answers(proto::ICMP, Some((8, 0)), Some((0, 0))));
        assert!(!answers(proto::ICMP, Some((8, 0)), Some((8, 0))));
        assert!(answers(proto::ICMPV6, Some((128, 0)), Some((129, 0))));
        assert!(!answers(proto::ICMPV6, Some((128, 0)), Some((128, 0))));
        assert!(answers(proto::TCP, None, None));
    }

    #[test]
    fn tcp_state_machine() {
        let s = tcp_initial(tcp_flags::SYN);
        assert_eq!(s, TcpState::SynSent);
        let s = tcp_next(s, tcp_flags::SYN | tcp_flags::ACK, false).unwrap();
        assert_eq!(s, TcpState::Established);
        let s = tcp_next(s, tcp_flags::FIN | tcp_flags::ACK, true).unwrap();
        assert_eq!(idle_timeout(proto::TCP, s), timeouts::TCP_ESTABLISHED);
        let s = tcp_next(s, tcp_flags::FIN | tcp_flags::ACK, false).unwrap();
        assert_eq!(idle_timeout(proto::TCP, s), timeouts::TCP_TRANSITORY);
        assert!(tcp_next(s, tcp_flags::RST, true).is_none());
    }
}
