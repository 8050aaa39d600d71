//! The mutable state of the packet path, owned by one worker (DESIGN §5): each port's
//! flow table, connections and counters, the host's NAT bindings, the underlay MACs
//! learned from VXLAN, the packet clock and the switch's totals. Nothing here is shared
//! or locked; the compiled policy it is read with is the immutable snapshot of
//! [`crate::policy`].
//!
//! State is keyed by port slot and checked against the snapshot by
//! [`EngineState::reconcile`] whenever a worker installs a new one: a port that left (or
//! whose slot now holds another incarnation) gives its NAT ports back and starts over; a
//! port whose layers changed keeps its flows and connections (they are re-validated on
//! their next packet, DESIGN §2) and the counts of its unchanged rules.

pub mod conntrack;
pub mod counters;
pub mod fragments;
pub mod intern;
pub mod nat;
pub mod ownership;
pub mod path;
pub mod uft;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use ahash::RandomState;
use strata_rules::PortRange;
use strata_rules::model::Mac;

use crate::drop::DropReason;
use crate::policy::{CompiledPolicy, CompiledPort};
use conntrack::{Bindings, ConnRef, ConnTable};
use counters::PortCounters;
use nat::NatPools;
use uft::FlowTable;

/// Table sizes of each port.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Flows cached per port (and whole paths per engine); 0 caches nothing.
    pub flows: usize,
    pub connections: usize,
    /// Datagrams whose later fragments are awaited, host-wide.
    pub fragments: usize,
    /// Entries each table is sized for at start (the engine's path table, and each
    /// port's flows and connections): no table grows — and rehashes on the packet path
    /// — until it holds more. 0: tables start empty and grow (the default; a host's
    /// ports mostly carry a handful of flows each).
    pub reserve: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            flows: 1 << 20,
            connections: 1 << 20,
            fragments: 4096,
            reserve: 0,
        }
    }
}

/// A NAT binding: (external address, protocol, port).
pub type Binding = (IpAddr, u8, u16);

/// The host's NAT state, shared by every port: the port pools of each external address,
/// which port's connection owns each allocated binding (so the switch can deliver replies
/// that arrive on the uplink), and the host ports that port mappings reserve.
#[derive(Default)]
pub struct NatState {
    pub pools: NatPools,
    pub owners: HashMap<Binding, (usize, ConnRef), RandomState>,
    reserved: HashSet<Binding, RandomState>,
}

impl NatState {
    /// Gives a removed connection's binding back.
    pub fn release(&mut self, b: &Bindings) {
        if let Some((ip, p, port)) = b.snat {
            self.pools.free(ip, p, port);
            self.owners.remove(&(ip, p, port));
        }
    }

    /// Reserves the host ports of `policy`'s port mappings (SNAT never hands them out)
    /// and frees those of mappings that are gone.
    fn reserve_mappings(&mut self, policy: &CompiledPolicy) {
        let wanted: HashSet<Binding, RandomState> = policy
            .mapped_ports()
            .flat_map(|(protocol, port)| {
                policy
                    .uplink
                    .ips
                    .iter()
                    .map(move |&ip| (ip, protocol, port))
            })
            .collect();
        for &(ip, protocol, port) in self.reserved.difference(&wanted) {
            self.pools.free(ip, protocol, port);
        }
        self.reserved.retain(|b| wanted.contains(b));
        for &(ip, protocol, port) in &wanted {
            if self.reserved.contains(&(ip, protocol, port)) {
                continue;
            }
            let single = PortRange { lo: port, hi: port };
            if self.pools.allocate(ip, protocol, single, port) == Some(port) {
                self.reserved.insert((ip, protocol, port));
            }
        }
    }
}

/// What a port's last traversal was, for the path table: whether it may be replayed
/// from a path entry (a flow-table answer or a cached slow-path decision), its
/// connection and its decisions.
#[derive(Clone, Debug, Default)]
pub struct LastLeg {
    pub cacheable: bool,
    pub conn: Option<(ConnRef, bool)>,
    pub hits: smallvec::SmallVec<[u64; 4]>,
}

/// One port's state.
pub struct PortState {
    /// The port incarnation this state belongs to.
    pub incarnation: u64,
    /// The generation the counters are laid out for.
    pub generation: u64,
    pub flows: FlowTable,
    pub conns: ConnTable,
    pub counters: PortCounters,
    /// The last traversal, for the path table.
    pub last: LastLeg,
    /// Moves when a cached flow is forgotten because a new connection made it a reply:
    /// paths recorded through this port before then no longer hold.
    pub version: u64,
}

impl PortState {
    fn new(p: &CompiledPort, limits: Limits) -> PortState {
        PortState {
            incarnation: p.incarnation,
            generation: p.generation,
            flows: FlowTable::new(limits.flows, limits.reserve),
            conns: ConnTable::new(limits.connections, limits.reserve),
            counters: PortCounters::for_layers(&p.layers),
            last: LastLeg::default(),
            version: 0,
        }
    }

    /// Frees the NAT ports of connections the table removed.
    pub fn release(&mut self, nat: &mut NatState) {
        for b in self.conns.released.drain(..) {
            nat.release(&b);
        }
    }

    /// Forgets the connections idle past their timeout at `now` (all of them at
    /// `u64::MAX`) and gives their NAT ports back; returns how many. The whole table:
    /// not for the packet path (see `sweep_some`).
    pub fn sweep(&mut self, now: u64, nat: &mut NatState) -> usize {
        let n = self.conns.sweep(now);
        self.release(nat);
        n
    }

    /// Like `sweep`, over at most `budget` connection slots.
    pub fn sweep_some(&mut self, now: u64, budget: usize, nat: &mut NatState) -> usize {
        let n = self.conns.sweep_some(now, budget, false);
        self.release(nat);
        n
    }
}

/// Totals over everything the engine processed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SwitchStats {
    pub packets: u64,
    pub forwarded: u64,
    pub dropped: [u64; DropReason::ALL.len()],
    pub arp_replies: u64,
}

impl SwitchStats {
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }

    pub fn count(&mut self, drop: Option<DropReason>) {
        self.packets += 1;
        match drop {
            Some(r) => {
                if let Some(n) = self.dropped.get_mut(r.index()) {
                    *n += 1;
                }
            }
            None => self.forwarded += 1,
        }
    }
}

/// Everything a worker changes while processing packets.
pub struct EngineState {
    /// Per slot.
    pub ports: Vec<Option<PortState>>,
    pub nat: NatState,
    /// Provider address → MAC, learned from the VXLAN the uplink receives: where
    /// encapsulated packets to that remote host are sent on the underlay.
    pub underlay: HashMap<IpAddr, Mac, RandomState>,
    /// Uplink neighbours the switch needs and has not learned (`switch::resolve`).
    pub wanted: crate::switch::resolve::Wanted,
    /// Strata is the host (the service): the uplink is the physical network, not also
    /// the host's own stack (as a capture's uplink is), so a NAT network's prefix is
    /// unreachable from it.
    pub host: bool,
    /// Packet time; it never runs backwards for connection ageing.
    pub clock: u64,
    /// The port whose connections a full NAT pool sweeps next (round robin).
    pub sweep_port: usize,
    /// Datagrams whose first fragment passed (or not): the verdict their others follow.
    pub fragments: fragments::FragmentTable,
    /// The unified flow table: whole paths.
    pub paths: path::PathTable,
    /// The traversals of the frame being decided, and whether they may be replayed.
    pub legs: smallvec::SmallVec<[path::Leg; 2]>,
    pub legs_cacheable: bool,
    /// Bumped whenever a learned underlay MAC changes (encapsulations depend on it).
    pub underlay_epoch: u64,
    pub limits: Limits,
    pub stats: SwitchStats,
}

impl EngineState {
    pub fn new(limits: Limits) -> EngineState {
        EngineState {
            ports: Vec::new(),
            nat: NatState::default(),
            underlay: HashMap::default(),
            wanted: Default::default(),
            host: false,
            clock: 0,
            sweep_port: 0,
            fragments: fragments::FragmentTable::new(limits.fragments),
            paths: path::PathTable::new(limits.flows, limits.reserve),
            legs: smallvec::SmallVec::new(),
            legs_cacheable: false,
            underlay_epoch: 0,
            limits,
            stats: SwitchStats::default(),
        }
    }

    /// Brings the state in line with `new`, the snapshot that replaces `old` (see the
    /// module's notes). Costs a look at each port, and a counter relayout for ports whose
    /// layers changed: never a walk over flows or connections of ports that stay.
    pub fn reconcile(&mut self, old: Option<&CompiledPolicy>, new: &CompiledPolicy) {
        if self.ports.len() < new.slots() {
            self.ports.resize_with(new.slots(), || None);
        }
        for (slot, state) in self.ports.iter_mut().enumerate() {
            let port = new.port(slot);
            match (state.as_mut(), port) {
                (Some(st), Some(p)) if st.incarnation == p.incarnation => {
                    if st.generation != p.generation {
                        match &p.carry {
                            // The usual case: the maps computed at compile time.
                            Some(c) if c.from_generation == st.generation => {
                                st.counters.carry(c, &p.layers)
                            }
                            // This worker skipped a generation: match rules here.
                            _ => {
                                let before = old
                                    .and_then(|o| o.port(slot))
                                    .map_or(&[][..], |o| &o.layers[..]);
                                st.counters.relayout(before, &p.layers);
                            }
                        }
                        st.generation = p.generation;
                    }
                }
                _ => {
                    if let Some(mut gone) = state.take() {
                        gone.sweep(u64::MAX, &mut self.nat);
                    }
                    *state = port.map(|p| PortState::new(p, self.limits));
                }
            }
        }
        self.nat.reserve_mappings(new);
    }

    /// The state of the port in `slot`.
    pub fn port(&self, slot: usize) -> Option<&PortState> {
        self.ports.get(slot)?.as_ref()
    }

    /// Bytes of flow and connection state (every port's tables) on the heap.
    pub fn flow_state_bytes(&self) -> usize {
        self.ports
            .iter()
            .flatten()
            .map(|p| p.flows.memory_bytes() + p.conns.memory_bytes())
            .sum::<usize>()
            + self.paths.memory_bytes()
    }

    /// NAT ports in use by connections on the host.
    pub fn nat_bindings(&self) -> usize {
        self.nat.owners.len()
    }
}
