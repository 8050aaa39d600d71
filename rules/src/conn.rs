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
///
/// Laid out as declared, the protocol first: the engine's connection records keep it in
/// the cache line every packet touches (its idle timeout depends on it).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(C)]
pub struct ConnKey {
    pub protocol: u8,
    pub src_port: u16,
    pub dst_port: u16,
    pub src_ip: IpAddr,
    pub dst_ip: IpAddr,
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

/// A TCP segment's place in its sequence space, as tracking reads it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Hash)]
pub struct TcpSeq {
    pub seq: u32,
    pub ack: u32,
    /// The window field as sent (scaled by the sender's window scale, except in a SYN).
    pub window: u16,
    /// The window scale option, if the segment carries one (SYNs only).
    pub wscale: Option<u8>,
    /// Payload bytes (from the IP length, whatever a capture kept).
    pub len: u32,
}

/// Per-direction sequence tracking (index 0: the originator, 1: the other side), enough
/// to judge an RST as RFC 5961 does: the next sequence number each side will send, the
/// largest window each side advertised, and whether window scaling is in effect.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TcpTrack {
    next: [Option<u32>; 2],
    window: [u32; 2],
    scale: [Option<u8>; 2],
    syn: [bool; 2],
}

/// What a segment does to a tracked TCP connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Segment {
    /// It passes; the connection lives on.
    Pass,
    /// It passes and the connection ends with it: an RST at exactly the sequence number
    /// the receiver expects (or one the receiver cannot yet judge).
    Ends,
    /// An RST outside the receiver's window: dropped, the connection untouched (an
    /// off-path attacker guessing sequence numbers).
    OutOfWindow,
}

impl TcpTrack {
    /// Tracking for a connection opened by this segment from the originator.
    pub fn opened(flags: u8, s: &TcpSeq) -> TcpTrack {
        let mut t = TcpTrack::default();
        t.record(0, flags, s);
        t
    }

    fn record(&mut self, d: usize, flags: u8, s: &TcpSeq) {
        let syn = flags & tcp_flags::SYN != 0;
        if syn {
            self.syn[d] = true;
            self.scale[d] = s.wscale.map(|w| w.min(14));
        }
        let fin = u32::from(flags & tcp_flags::FIN != 0);
        let end = s
            .seq
            .wrapping_add(s.len)
            .wrapping_add(u32::from(syn))
            .wrapping_add(fin);
        self.next[d] = match self.next[d] {
            Some(n) if (end.wrapping_sub(n) as i32) <= 0 => Some(n),
            _ => Some(end),
        };
        let window = if syn {
            u32::from(s.window)
        } else {
            u32::from(s.window) << self.shift(d)
        };
        self.window[d] = self.window[d].max(window);
    }

    /// How far `d`'s window fields are shifted: its SYN's scale once both SYNs asked for
    /// scaling; none when a SYN without it was seen; the most possible when `d`'s SYN
    /// was never seen (a connection picked up mid-stream: judge liberally).
    fn shift(&self, d: usize) -> u8 {
        match (self.syn[d], self.scale) {
            (false, _) => 14,
            (true, [Some(a), Some(b)]) => {
                if d == 0 {
                    a
                } else {
                    b
                }
            }
            (true, _) => 0,
        }
    }

    /// Judges a segment from the originator (`from_orig`) or the other side, and records
    /// it. An RST ends the connection only at the exact next sequence number; within the
    /// receiver's window it passes without ending it (the receiver answers with a
    /// challenge ACK, RFC 5961 §3.2); outside, it is refused.
    pub fn segment(&mut self, from_orig: bool, flags: u8, s: &TcpSeq) -> Segment {
        let (d, o) = if from_orig { (0, 1) } else { (1, 0) };
        if flags & tcp_flags::RST == 0 {
            self.record(d, flags, s);
            return Segment::Pass;
        }
        let Some(next) = self.next[d] else {
            // The receiver has not heard from this side yet (an RST answering a SYN):
            // nothing to judge it against.
            return Segment::Ends;
        };
        if s.seq == next {
            return Segment::Ends;
        }
        // The receiver's window; one never advertised is taken as the widest.
        let window = if self.window[o] == 0 && !self.syn[o] {
            u32::MAX >> 1
        } else {
            self.window[o].max(1)
        };
        if s.seq.wrapping_sub(next) < window {
            Segment::Pass
        } else {
            Segment::OutOfWindow
        }
    }
}

/// Whether a segment starts a new connection over one that has finished: a bare SYN on a
/// connection closed both ways (TIME_WAIT reuse).
pub fn reopens(state: TcpState, flags: u8) -> bool {
    let closed = matches!(
        state,
        TcpState::Closing {
            fin_orig: true,
            fin_reply: true
        }
    );
    closed && flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN
}

/// A tracked connection's step for one segment: `Segment::Pass` updates its state (a bare
/// SYN from the originator on a finished connection starts it over), `Ends` and
/// `OutOfWindow` leave the state to the caller (remove it, or drop the segment).
pub fn tcp_step(
    state: &mut TcpState,
    track: &mut TcpTrack,
    from_orig: bool,
    flags: u8,
    s: &TcpSeq,
) -> Segment {
    if from_orig && reopens(*state, flags) {
        *state = tcp_initial(flags);
        *track = TcpTrack::opened(flags, s);
        return Segment::Pass;
    }
    let verdict = track.segment(from_orig, flags, s);
    if verdict == Segment::Pass && flags & tcp_flags::RST == 0 {
        // `tcp_next` ends a connection only on RST, which never reaches it here.
        if let Some(next) = tcp_next(*state, flags, from_orig) {
            *state = next;
        }
    }
    verdict
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
    use tcp_flags::{ACK, FIN, RST, SYN};

    fn seg(seq: u32, window: u16, len: u32) -> TcpSeq {
        TcpSeq {
            seq,
            ack: 0,
            window,
            wscale: None,
            len,
        }
    }

    #[test]
    fn an_rst_ends_a_connection_only_at_the_expected_sequence_number() {
        let mut t = TcpTrack::opened(SYN, &seg(1000, 65535, 0));
        assert_eq!(
            t.segment(false, SYN | ACK, &seg(5000, 65535, 0)),
            Segment::Pass
        );
        assert_eq!(t.segment(true, ACK, &seg(1001, 65535, 100)), Segment::Pass);
        // The originator's next byte is 1101: an RST there ends it.
        assert_eq!(
            t.clone().segment(true, RST, &seg(1101, 0, 0)),
            Segment::Ends
        );
        // Within the other side's window: passes (a challenge ACK follows), not the end.
        assert_eq!(
            t.clone().segment(true, RST, &seg(1101 + 30000, 0, 0)),
            Segment::Pass
        );
        // Off-path guesses: refused.
        assert_eq!(
            t.clone().segment(true, RST, &seg(1101 + 70000, 0, 0)),
            Segment::OutOfWindow
        );
        assert_eq!(
            t.clone().segment(true, RST, &seg(1000, 0, 0)),
            Segment::OutOfWindow
        );
        assert_eq!(
            t.clone().segment(false, RST, &seg(5001, 0, 0)),
            Segment::Ends
        );
        assert_eq!(t.segment(false, RST, &seg(9, 0, 0)), Segment::OutOfWindow);
    }

    #[test]
    fn an_rst_answering_a_syn_ends_it_and_window_scaling_widens_the_window() {
        let mut t = TcpTrack::opened(SYN, &seg(1000, 65535, 0));
        assert_eq!(t.segment(false, RST | ACK, &seg(0, 0, 0)), Segment::Ends);

        let syn = TcpSeq {
            wscale: Some(7),
            ..seg(1000, 65535, 0)
        };
        let mut t = TcpTrack::opened(SYN, &syn);
        let syn_ack = TcpSeq {
            wscale: Some(7),
            ..seg(5000, 65535, 0)
        };
        assert_eq!(t.segment(false, SYN | ACK, &syn_ack), Segment::Pass);
        assert_eq!(t.segment(false, ACK, &seg(5001, 1000, 0)), Segment::Pass);
        // The other side advertised 1000 << 7 = 128,000 bytes.
        assert_eq!(
            t.clone().segment(true, RST, &seg(1001 + 100_000, 0, 0)),
            Segment::Pass
        );
        assert_eq!(
            t.segment(true, RST, &seg(1001 + 200_000, 0, 0)),
            Segment::OutOfWindow
        );
    }

    #[test]
    fn time_wait_reuse_and_mid_stream_pickup() {
        let mut st = tcp_initial(SYN);
        let mut t = TcpTrack::opened(SYN, &seg(1, 1000, 0));
        for (orig, flags, s) in [
            (false, SYN | ACK, 10),
            (true, FIN | ACK, 2),
            (false, FIN | ACK, 11),
        ] {
            assert_eq!(
                tcp_step(&mut st, &mut t, orig, flags, &seg(s, 1000, 0)),
                Segment::Pass
            );
        }
        assert!(reopens(st, SYN));
        assert_eq!(
            tcp_step(&mut st, &mut t, true, SYN, &seg(900, 1000, 0)),
            Segment::Pass
        );
        assert_eq!(st, TcpState::SynSent);

        // First seen mid-stream: nothing known of the other side, nothing refused.
        let mut st = tcp_initial(ACK);
        let mut t = TcpTrack::opened(ACK, &seg(7_000_000, 500, 1400));
        assert_eq!(
            tcp_step(&mut st, &mut t, false, ACK, &seg(42, 500, 0)),
            Segment::Pass
        );
        assert_eq!(st, TcpState::Established);
    }

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
