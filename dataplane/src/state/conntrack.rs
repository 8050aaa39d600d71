//! Connection tracking: the connections a port has recorded, so that replies pass
//! without rule evaluation (DESIGN §2 "Stateful").
//!
//! Connections live in a slab addressed by [`ConnRef`] (slot + serial, so a stale
//! reference from a flow-table entry is detected, never misapplied) and are indexed by
//! their originating direction and [`ConnKey`] twice: as the first packet entered the
//! port (`entry_key`: later packets of the same direction) and as it left it after the
//! layers' transpositions (`exit_key`: replies arrive as its reverse). A removed
//! connection's NAT binding is queued in `released` for the owner of the NAT pools.
//! Timeouts and the TCP state machine are the shared definitions of `strata_rules::conn`,
//! so the engine and the reference evaluator age connections alike.

use ahash::RandomState;

use std::collections::HashMap;

use strata_rules::conn::{self as spec, ConnKey, TcpState};
use strata_rules::model::{Direction, Fields, proto};

/// A handle on a connection; detects that the slot was reused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ConnRef {
    slot: u32,
    serial: u32,
}

/// State a connection holds on to so that all its packets are translated alike.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bindings {
    /// The NAT port allocated by a SNAT layer: (external IP, protocol, port).
    pub snat: Option<(std::net::IpAddr, u8, u16)>,
    /// The backend a load-balancing layer chose: (layer, backend index).
    pub backend: Option<(u16, u16)>,
}

/// One recorded connection.
#[derive(Clone, Debug)]
pub struct Connection {
    /// The first packet's key where it entered the port.
    pub key: ConnKey,
    /// Its key where it left the port, after the layers' transpositions.
    pub exit_key: ConnKey,
    pub orig_dir: Direction,
    /// The rewrite of the connection's own direction, and of its replies.
    pub rewrite: crate::transpose::Transposition,
    pub reply_rewrite: crate::transpose::Transposition,
    pub bindings: Bindings,
    /// The headers that opened (or last re-validated) it: re-evaluated when the policy
    /// changes.
    pub orig_fields: Fields,
    pub orig_icmp_id: Option<u16>,
    pub tcp: TcpState,
    pub last_seen: u64,
    /// The port generation under which it was last validated.
    pub generation: u64,
}

impl Connection {
    fn expired(&self, now: u64) -> bool {
        now.saturating_sub(self.last_seen) > spec::idle_timeout(self.key.protocol, self.tcp)
    }
}

/// What a connection has carried, for listings (`strata ctl flows`). Kept beside the
/// connection, not in it: the packet path only bumps it in `touch`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnUsage {
    /// Packet time of its first packet.
    pub opened: u64,
    /// Packets in its own direction (the opening one included), and replies.
    pub packets_orig: u64,
    pub packets_reply: u64,
}

struct Slot {
    serial: u32,
    conn: Option<Connection>,
    usage: ConnUsage,
}

/// The connection table of one port, bounded by `capacity`.
pub struct ConnTable {
    index: HashMap<(Direction, ConnKey), ConnRef, RandomState>,
    by_exit: HashMap<(Direction, ConnKey), ConnRef, RandomState>,
    /// Bindings of removed connections, for the NAT pools' owner to free.
    pub released: Vec<Bindings>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    capacity: usize,
}

/// The table is full of live connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

impl ConnTable {
    pub fn new(capacity: usize) -> ConnTable {
        ConnTable {
            // Tables start empty and grow on the slow path up to their capacity: a port
            // with a handful of flows costs a handful of entries.
            index: HashMap::default(),
            by_exit: HashMap::default(),
            released: Vec::new(),
            slots: Vec::new(),
            free: Vec::new(),
            capacity,
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn get(&self, r: ConnRef) -> Option<&Connection> {
        let s = self.slots.get(r.slot as usize)?;
        if s.serial != r.serial {
            return None;
        }
        s.conn.as_ref()
    }

    /// The connection if it still exists and has not expired at `now`; an expired one is
    /// removed.
    pub fn live(&mut self, r: ConnRef, now: u64) -> Option<&mut Connection> {
        let expired = self.get(r)?.expired(now);
        if expired {
            self.remove(r);
            return None;
        }
        self.slots[r.slot as usize].conn.as_mut()
    }

    /// Finds the live connection with this originating direction and key.
    pub fn lookup(&mut self, orig_dir: Direction, key: ConnKey, now: u64) -> Option<ConnRef> {
        let r = *self.index.get(&(orig_dir, key))?;
        self.live(r, now).map(|_| r)
    }

    /// Finds the live connection whose replies look like `reply_key` arriving in
    /// `reply_dir`.
    pub fn lookup_reply(
        &mut self,
        reply_dir: Direction,
        reply_key: ConnKey,
        now: u64,
    ) -> Option<ConnRef> {
        let r = *self
            .by_exit
            .get(&(reply_dir.reverse(), reply_key.reverse()))?;
        self.live(r, now).map(|_| r)
    }

    /// Records a new connection. When full, expired connections are swept first.
    pub fn insert(&mut self, conn: Connection, now: u64) -> Result<ConnRef, Full> {
        if self.index.len() >= self.capacity {
            self.sweep(now);
            if self.index.len() >= self.capacity {
                return Err(Full);
            }
        }
        let idx = (conn.orig_dir, conn.key);
        let exit = (conn.orig_dir, conn.exit_key);
        let usage = ConnUsage {
            opened: now,
            packets_orig: 1,
            packets_reply: 0,
        };
        let r = match self.free.pop() {
            Some(slot) => {
                let s = &mut self.slots[slot as usize];
                s.serial = s.serial.wrapping_add(1);
                s.conn = Some(conn);
                s.usage = usage;
                ConnRef {
                    slot,
                    serial: s.serial,
                }
            }
            None => {
                let slot = self.slots.len() as u32;
                self.slots.push(Slot {
                    serial: 0,
                    conn: Some(conn),
                    usage,
                });
                ConnRef { slot, serial: 0 }
            }
        };
        if let Some(old) = self.index.insert(idx, r) {
            self.remove(old);
            self.index.insert(idx, r);
        }
        if let Some(old) = self.by_exit.insert(exit, r)
            && old != r
        {
            self.remove(old);
            self.by_exit.insert(exit, r);
        }
        Ok(r)
    }

    pub fn remove(&mut self, r: ConnRef) {
        let Some(c) = self.get(r) else { return };
        let (idx, exit, bindings) = ((c.orig_dir, c.key), (c.orig_dir, c.exit_key), c.bindings);
        if self.index.get(&idx) == Some(&r) {
            self.index.remove(&idx);
        }
        if self.by_exit.get(&exit) == Some(&r) {
            self.by_exit.remove(&exit);
        }
        if let Some(s) = self.slots.get_mut(r.slot as usize)
            && s.serial == r.serial
            && s.conn.take().is_some()
        {
            self.free.push(r.slot);
        }
        if bindings != Bindings::default() {
            self.released.push(bindings);
        }
    }

    /// Updates the clock and TCP state of a live connection for a packet with `flags`;
    /// a RST removes it (after this packet, which passes). Returns whether it lives on.
    pub fn touch(&mut self, r: ConnRef, tcp_flags: u8, from_orig: bool, now: u64) -> bool {
        let Some(s) = self
            .slots
            .get_mut(r.slot as usize)
            .filter(|s| s.serial == r.serial)
        else {
            return false;
        };
        let Some(c) = s.conn.as_mut() else {
            return false;
        };
        if from_orig {
            s.usage.packets_orig += 1;
        } else {
            s.usage.packets_reply += 1;
        }
        c.last_seen = now;
        if c.key.protocol == proto::TCP {
            match spec::tcp_next(c.tcp, tcp_flags, from_orig) {
                Some(s) => c.tcp = s,
                None => {
                    self.remove(r);
                    return false;
                }
            }
        }
        true
    }

    /// Every recorded connection (expired ones not yet swept included), with its usage.
    pub fn iter(&self) -> impl Iterator<Item = (&Connection, ConnUsage)> + '_ {
        self.slots
            .iter()
            .filter_map(|s| s.conn.as_ref().map(|c| (c, s.usage)))
    }

    /// Removes every expired connection; returns how many.
    pub fn sweep(&mut self, now: u64) -> usize {
        let dead: Vec<ConnRef> = self
            .index
            .values()
            .copied()
            .filter(|r| self.get(*r).is_some_and(|c| c.expired(now)))
            .collect();
        for r in &dead {
            self.remove(*r);
        }
        dead.len()
    }
}
