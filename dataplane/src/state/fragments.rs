//! IP fragments. Only a datagram's first fragment carries the transport header, so only
//! it can be judged by policy; the others follow it: the same verdict, the same egress,
//! the same rewrite (addresses; their bytes hold no ports), for as long as the datagram's
//! entry lives. Keyed by where they entered and (source, destination, protocol,
//! identification), bounded in size and time.
//!
//! Refused, with reason `fragment`: a later fragment whose first was not seen (or has
//! expired), one overlapping another of its datagram — which then loses all the rest
//! (RFC 5722; overlaps are how filters are evaded, RFC 1858, RFC 3128) — and a TCP
//! fragment at offset 8, which can only be meant to rewrite the first one's flags (RFC
//! 3128). Tiny first fragments, too short for their transport header, never get here:
//! the parser refuses them (`parse`).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use ahash::RandomState;
use smallvec::SmallVec;
use strata_rules::model::proto;

use crate::packet::FragmentInfo;
use crate::policy::PortId;
use crate::verdict::Verdict;

/// How long a datagram's fragments may keep coming (Linux's `ipfrag_time` default).
pub const FRAGMENT_TIMEOUT_NS: u64 = 30_000_000_000;

/// A datagram, as its fragments identify it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct DatagramKey {
    pub ingress: PortId,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    pub id: u32,
}

struct Datagram {
    /// The first fragment's verdict, which the others follow.
    verdict: Verdict,
    /// Byte ranges seen, `[start, end)`.
    seen: SmallVec<[(u32, u32); 8]>,
    /// Where the datagram ends, once its last fragment was seen.
    end: Option<u32>,
    /// An overlap was seen: the datagram's remaining fragments are refused.
    poisoned: bool,
    /// When it was recorded (its entry in `order`).
    born: u64,
}

/// Datagrams whose first fragment was seen, oldest first in `order`.
pub struct FragmentTable {
    map: HashMap<DatagramKey, Datagram, RandomState>,
    order: VecDeque<(DatagramKey, u64)>,
    capacity: usize,
}

impl FragmentTable {
    pub fn new(capacity: usize) -> FragmentTable {
        FragmentTable {
            map: HashMap::default(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Records a first fragment and the verdict its followers get.
    pub fn first(&mut self, key: DatagramKey, verdict: &Verdict, f: &FragmentInfo, now: u64) {
        self.expire(now);
        while self.map.len() >= self.capacity {
            // Full: the oldest datagram gives way (its late fragments will be refused).
            let Some((old, born)) = self.order.pop_front() else {
                break;
            };
            self.remove_if_born(&old, born);
        }
        let mut followed = *verdict;
        // Only the first fragment holds a quoted packet or gets an answer.
        followed.icmp_inner = None;
        followed.answer = None;
        // A first fragment seen again replaces its datagram's record but keeps its birth,
        // so that its place in `order` still names it (it expires and gives way once);
        // a new one takes the next place.
        let born = match self.map.get(&key) {
            Some(d) => d.born,
            None => {
                self.order.push_back((key, now));
                now
            }
        };
        let d = Datagram {
            verdict: followed,
            seen: SmallVec::from_slice(&[(0, f.len)]),
            end: None,
            poisoned: false,
            born,
        };
        self.map.insert(key, d);
    }

    /// The verdict a later fragment follows, or `None` if it is refused.
    pub fn follow(&mut self, key: &DatagramKey, f: &FragmentInfo, now: u64) -> Option<Verdict> {
        if key.protocol == proto::TCP && f.offset == 8 {
            // RFC 3128: nothing legitimate puts a TCP fragment at offset 8.
            self.poison(key);
            return None;
        }
        let d = self.map.get_mut(key)?;
        if now.saturating_sub(d.born) > FRAGMENT_TIMEOUT_NS || d.poisoned {
            return None;
        }
        let (start, end) = (f.offset, f.offset.saturating_add(f.len));
        if d.seen.contains(&(start, end)) {
            // A duplicate: dropped, the datagram unharmed.
            return None;
        }
        if d.seen.iter().any(|&(s, e)| start < e && s < end) {
            d.poisoned = true;
            return None;
        }
        d.seen.push((start, end));
        if !f.more {
            d.end = Some(end);
        }
        let verdict = d.verdict;
        if d.end.is_some_and(|total| covered(&mut d.seen, total)) {
            self.map.remove(key);
        }
        Some(verdict)
    }

    fn poison(&mut self, key: &DatagramKey) {
        if let Some(d) = self.map.get_mut(key) {
            d.poisoned = true;
        }
    }

    /// Forgets datagrams older than the timeout (oldest first, so this stops early).
    fn expire(&mut self, now: u64) {
        while let Some(&(key, born)) = self.order.front() {
            if now.saturating_sub(born) <= FRAGMENT_TIMEOUT_NS {
                break;
            }
            self.order.pop_front();
            self.remove_if_born(&key, born);
        }
    }

    fn remove_if_born(&mut self, key: &DatagramKey, born: u64) {
        if self.map.get(key).is_some_and(|d| d.born == born) {
            self.map.remove(key);
        }
    }
}

/// Whether `seen` covers `[0, total)` without a gap.
fn covered(seen: &mut [(u32, u32)], total: u32) -> bool {
    seen.sort_unstable();
    let mut reach = 0;
    for &(s, e) in seen.iter() {
        if s > reach {
            return false;
        }
        reach = reach.max(e);
    }
    reach >= total
}

#[cfg(test)]
mod tests {
    use strata_rules::model::Direction;

    use super::*;
    use crate::drop::DropReason;

    #[test]
    fn first_fragments_sent_again_keep_the_table_bounded() {
        let mut t = FragmentTable::new(8);
        let v = Verdict::drop(PortId::Uplink, Direction::In, DropReason::Acl);
        let f = FragmentInfo {
            id: 0,
            offset: 0,
            more: true,
            len: 8,
        };
        for round in 0..4u64 {
            for id in 0..100u32 {
                let key = DatagramKey {
                    ingress: PortId::Uplink,
                    src: std::net::Ipv4Addr::new(198, 19, 0, 1).into(),
                    dst: std::net::Ipv4Addr::new(198, 18, 0, 1).into(),
                    protocol: proto::UDP,
                    id,
                };
                // Every first fragment twice, the second a little later.
                let now = 1 + 10 * (round * 100 + u64::from(id));
                t.first(key, &v, &f, now);
                t.first(key, &v, &f, now + 1);
                assert!(t.map.len() <= 8, "{} datagrams held", t.map.len());
                assert!(t.order.len() <= 2 * 8 + 1, "{} in order", t.order.len());
            }
        }
    }
}
