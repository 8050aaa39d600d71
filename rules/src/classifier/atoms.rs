//! Expansion of a rule's [`Conditions`] into atoms (one prefix per address, one range per
//! port, at most one protocol), and their assignment to the IPv4 and mixed spaces.

use std::net::IpAddr;

use super::space::{Atom, DPORT_SHIFT, DST_V6_BIT, PROTO_SHIFT, Probe, SPORT_SHIFT, SRC_V6_BIT};
use crate::model::{Conditions, IpPrefix, PortRange};

/// An atom and the space it belongs to. An atom whose addresses allow both IPv4-only
/// packets and others is handed out once per space.
pub(super) enum Placed {
    V4(Atom<u32>),
    Mixed(Atom<u128>),
}

/// An address as a left-aligned 128-bit string, and whether it is IPv6.
pub(super) fn widen(ip: IpAddr) -> (u128, bool) {
    match ip {
        IpAddr::V4(a) => (u128::from(u32::from(a)) << 96, false),
        IpAddr::V6(a) => (u128::from(a), true),
    }
}

/// One address condition of an atom.
#[derive(Clone, Copy)]
enum Side {
    Any,
    V4(u32, u8),
    V6(u128, u8),
}

impl Side {
    fn of(p: &IpPrefix) -> Side {
        match p.addr() {
            IpAddr::V4(a) => Side::V4(u32::from(a), p.len()),
            IpAddr::V6(a) => Side::V6(u128::from(a), p.len()),
        }
    }
    fn is_v4(self) -> bool {
        matches!(self, Side::V4(..))
    }
    /// In the IPv4 space: the address and its length, or `None` for IPv6.
    fn narrow(self) -> Option<(u32, u8)> {
        match self {
            Side::Any => Some((0, 0)),
            Side::V4(a, l) => Some((a, l)),
            Side::V6(..) => None,
        }
    }
    /// In the mixed space: address, length, and the family bit it requires, if any
    /// (an IPv4 /0 still excludes IPv6 packets, unlike an absent condition).
    fn wide(self, v6_bit: u64) -> (u128, u8, Option<u64>) {
        match self {
            Side::Any => (0, 0, None),
            Side::V4(a, l) => (u128::from(a) << 96, l, Some(0)),
            Side::V6(a, l) => (a, l, Some(v6_bit)),
        }
    }
}

fn sides(list: &[IpPrefix]) -> Vec<Side> {
    if list.is_empty() {
        vec![Side::Any]
    } else {
        list.iter().map(Side::of).collect()
    }
}

/// A port list's ranges; an empty range (lo > hi) matches nothing and is dropped.
fn ranges(list: &[PortRange]) -> Vec<PortRange> {
    if list.is_empty() {
        vec![PortRange::ANY]
    } else {
        list.iter().copied().filter(|r| r.lo <= r.hi).collect()
    }
}

/// Calls `emit` once per atom of `c` (the cross product of its lists).
pub(super) fn expand(c: &Conditions, mut emit: impl FnMut(Placed)) {
    let srcs = sides(&c.src_ip);
    let dsts = sides(&c.dst_ip);
    let sports = ranges(&c.src_port);
    let dports = ranges(&c.dst_port);
    let protos: Vec<Option<u8>> = if c.protocol.is_empty() {
        vec![None]
    } else {
        c.protocol.iter().copied().map(Some).collect()
    };
    const PROTO_MASK: u64 = 0xff << PROTO_SHIFT;
    for &s in &srcs {
        for &d in &dsts {
            for sp in &sports {
                for dp in &dports {
                    for &proto in &protos {
                        let (pm, pv) = match proto {
                            Some(p) => (PROTO_MASK, u64::from(p) << PROTO_SHIFT),
                            None => (0, 0),
                        };
                        if let (Some((sa, sl)), Some((da, dl))) = (s.narrow(), d.narrow()) {
                            emit(Placed::V4(Atom {
                                src: sa,
                                src_len: sl,
                                dst: da,
                                dst_len: dl,
                                sport_lo: sp.lo,
                                sport_hi: sp.hi,
                                dport_lo: dp.lo,
                                dport_hi: dp.hi,
                                exact_mask: pm,
                                exact_val: pv,
                            }));
                        }
                        if s.is_v4() && d.is_v4() {
                            continue;
                        }
                        let (sa, sl, sf) = s.wide(SRC_V6_BIT);
                        let (da, dl, df) = d.wide(DST_V6_BIT);
                        let (mut em, mut ev) = (pm, pv);
                        if let Some(bit) = sf {
                            em |= SRC_V6_BIT;
                            ev |= bit;
                        }
                        if let Some(bit) = df {
                            em |= DST_V6_BIT;
                            ev |= bit;
                        }
                        emit(Placed::Mixed(Atom {
                            src: sa,
                            src_len: sl,
                            dst: da,
                            dst_len: dl,
                            sport_lo: sp.lo,
                            sport_hi: sp.hi,
                            dport_lo: dp.lo,
                            dport_hi: dp.hi,
                            exact_mask: em,
                            exact_val: ev,
                        }));
                    }
                }
            }
        }
    }
}

/// A plausible all-IPv4 packet matching the first alternative of each list of `c`, with
/// pseudo-random bits where the rule leaves freedom (as ClassBench's trace generator
/// does); `None` if that alternative is IPv6 or empty. Only used to estimate lookup cost.
pub(super) fn sample_v4(c: &Conditions, seed: u64) -> Option<Probe<u32>> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = || {
        // xorshift64: deterministic, dependency-free, good enough for sampling.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut addr = |list: &[IpPrefix]| -> Option<u32> {
        let r = next() as u32;
        match list.first().map(Side::of) {
            None | Some(Side::Any) => Some(r),
            Some(Side::V4(a, l)) => Some(a | (r & !super::space::prefix_mask_v4(l))),
            Some(Side::V6(..)) => None,
        }
    };
    let src = addr(&c.src_ip)?;
    let dst = addr(&c.dst_ip)?;
    let mut port = |list: &[PortRange]| -> Option<u16> {
        let r = list.first().copied().unwrap_or(PortRange::ANY);
        let span = u32::from(r.hi.checked_sub(r.lo)?) + 1;
        Some(r.lo + (next() as u32 % span) as u16)
    };
    let sport = port(&c.src_port)?;
    let dport = port(&c.dst_port)?;
    let proto = c.protocol.first().copied().unwrap_or(6);
    Some(Probe {
        src,
        dst,
        rest: u64::from(sport) << SPORT_SHIFT
            | u64::from(dport) << DPORT_SHIFT
            | u64::from(proto) << PROTO_SHIFT,
        sport,
        dport,
    })
}
