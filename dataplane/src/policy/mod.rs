//! The compiled policy: one immutable snapshot of everything the packet path reads —
//! each endpoint port's compiled layers, the MAC/IP table, port mappings, networks and
//! the uplink. It is built away from the packet path ([`CompiledPolicy::compile`]) and
//! shared by reference (an `Arc`); workers never change it, and a policy change is a new
//! snapshot (DESIGN §5).
//!
//! Ports have stable **slots**: a port keeps its slot across snapshots for as long as its
//! name stays in the policy, whatever its position in the file, so state keyed by slot
//! (flows, connections, NAT owners, counters) survives reloads that reorder, add or
//! remove other ports. A port whose layers are unchanged keeps its compiled form (the
//! same `Arc`) and its generation; one whose layers changed gets generation + 1, which
//! sends its cached flows and connections through re-validation (DESIGN §2).

mod layer;
mod matcher;
mod published;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ahash::RandomState;
use strata_rules::model::{Driver, Mac, Network, Policy, Port};

pub use layer::{CompiledLayer, Decision, LayerOutcome};
pub use matcher::{Match, Probe, Scan};
pub use published::Published;

/// A port of the switch: an endpoint by its slot, or the uplink.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum PortId {
    Endpoint(usize),
    Uplink,
}

/// Choices made when compiling.
#[derive(Clone, Copy, Debug)]
pub struct CompileOptions {
    /// Groups with at least this many rules are compiled to a classifier; smaller ones
    /// are scanned (faster below a few dozen rules).
    pub classifier_min_rules: usize,
}

impl Default for CompileOptions {
    fn default() -> CompileOptions {
        CompileOptions {
            classifier_min_rules: 32,
        }
    }
}

/// Serial numbers for snapshots, port incarnations and topologies: unique in the process.
static SERIAL: AtomicU64 = AtomicU64::new(1);

fn next_serial() -> u64 {
    SERIAL.fetch_add(1, Ordering::Relaxed)
}

/// An endpoint port, compiled.
#[derive(Debug)]
pub struct CompiledPort {
    /// The port as the policy describes it (its `layers` left empty: they live in
    /// `layers`, with the model of each).
    pub port: Port,
    pub layers: Vec<CompiledLayer>,
    /// Bumped whenever the layers change: cached flows and connections of an older
    /// generation are re-validated.
    pub generation: u64,
    /// Which port this is: the same for as long as the name stays in the policy. State
    /// kept for another incarnation of a slot is discarded.
    pub incarnation: u64,
    /// How the counters of the previous generation map onto these layers, computed here
    /// so that a worker installing the snapshot only copies counts.
    pub carry: Option<crate::state::counters::PortCarry>,
    /// The model this was compiled from, to recognise an unchanged port.
    source: Port,
}

impl CompiledPort {
    fn compile(port: &Port, generation: u64, incarnation: u64, o: CompileOptions) -> CompiledPort {
        CompiledPort {
            port: Port {
                layers: Vec::new(),
                ..port.clone()
            },
            layers: port
                .layers
                .iter()
                .map(|l| CompiledLayer::compile(l.clone(), o.classifier_min_rules))
                .collect(),
            generation,
            incarnation,
            carry: None,
            source: port.clone(),
        }
    }

    pub fn name(&self) -> &str {
        &self.port.name
    }
}

/// The immutable snapshot the packet path reads.
#[derive(Debug)]
pub struct CompiledPolicy {
    /// Unique per snapshot: a worker that sees another serial installs it.
    pub serial: u64,
    /// The policy's networks and uplink (ports are in `ports`, load balancers compiled
    /// into the ports' layers).
    pub networks: Vec<Network>,
    pub uplink: strata_rules::model::Uplink,
    /// Ports by slot; `None` for a free slot.
    ports: Vec<Option<Arc<CompiledPort>>>,
    /// Each slot's network index.
    nets: Vec<Option<usize>>,
    /// Slots in policy order (reports list ports as the file does).
    order: Vec<usize>,
    by_name: HashMap<String, usize, RandomState>,
    by_mac: HashMap<Mac, usize, RandomState>,
    by_ip: HashMap<IpAddr, usize, RandomState>,
    /// Port mappings: (protocol, host port) → slot.
    mappings: HashMap<(u8, u16), usize, RandomState>,
    /// UDP ports on which the uplink receives VXLAN.
    vxlan_ports: Vec<u16>,
    /// Changes whenever anything deliveries depend on changes (ports' addresses,
    /// networks, the uplink, mappings): a remembered delivery of another topology is
    /// looked up again.
    pub topology: u64,
    options: CompileOptions,
}

impl CompiledPolicy {
    /// Compiles `policy`. With `previous`, ports keep their slots, unchanged ports their
    /// compiled form and generation (see the module's notes).
    pub fn compile(
        policy: &Policy,
        previous: Option<&CompiledPolicy>,
        options: CompileOptions,
    ) -> CompiledPolicy {
        CompiledPolicy::compile_changed(policy, previous, options, None)
    }

    /// [`compile`](Self::compile), told which ports may have changed since `previous`
    /// (`changed`: their names): the others keep their compiled form without their
    /// rules being compared, which on a large policy is most of the cost of a one-rule
    /// change. The caller must know: a port left out that did change keeps its old form.
    pub fn compile_changed(
        policy: &Policy,
        previous: Option<&CompiledPolicy>,
        options: CompileOptions,
        changed: Option<&[String]>,
    ) -> CompiledPolicy {
        let unchanged = |name: &str| changed.is_some_and(|c| !c.iter().any(|n| n == name));
        let slots = assign_slots(policy, previous);
        let width = slots.iter().map(|s| s + 1).max().unwrap_or(0);
        let mut ports: Vec<Option<Arc<CompiledPort>>> = vec![None; width];
        let mut nets = vec![None; width];
        for (p, &slot) in policy.ports.iter().zip(&slots) {
            let before = previous
                .and_then(|prev| prev.port(slot))
                .filter(|b| b.name() == p.name);
            let compiled = match before {
                Some(b) if unchanged(&p.name) || b.source == *p => Arc::clone(b),
                Some(b) => {
                    let mut next =
                        CompiledPort::compile(p, b.generation + 1, b.incarnation, options);
                    next.carry = Some(crate::state::counters::PortCarry::between(
                        b.generation,
                        &b.layers,
                        &next.layers,
                    ));
                    Arc::new(next)
                }
                None => Arc::new(CompiledPort::compile(p, 1, next_serial(), options)),
            };
            // `width` covers every slot assigned.
            if let (Some(port), Some(net)) = (ports.get_mut(slot), nets.get_mut(slot)) {
                *port = Some(compiled);
                *net = policy.networks.iter().position(|n| n.name == p.network);
            }
        }
        let mut c = CompiledPolicy {
            serial: next_serial(),
            networks: policy.networks.clone(),
            uplink: policy.uplink.clone(),
            ports,
            nets,
            order: slots.clone(),
            by_name: policy
                .ports
                .iter()
                .zip(&slots)
                .map(|(p, &s)| (p.name.clone(), s))
                .collect(),
            by_mac: policy
                .ports
                .iter()
                .zip(&slots)
                .map(|(p, &s)| (p.mac, s))
                .collect(),
            by_ip: policy
                .ports
                .iter()
                .zip(&slots)
                .flat_map(|(p, &s)| p.ips.iter().map(move |ip| (*ip, s)))
                .collect(),
            mappings: policy
                .ports
                .iter()
                .zip(&slots)
                .flat_map(|(p, &s)| {
                    p.port_mappings
                        .iter()
                        .map(move |m| ((m.protocol, m.external_port), s))
                })
                .collect(),
            vxlan_ports: policy
                .networks
                .iter()
                .filter(|n| n.driver == Driver::Overlay)
                .map(|n| n.vxlan_port)
                .collect(),
            topology: 0,
            options,
        };
        c.topology = match previous {
            Some(prev) if prev.same_topology(&c) => prev.topology,
            _ => next_serial(),
        };
        c
    }

    /// Whether deliveries computed under `self` hold under `other`.
    fn same_topology(&self, other: &CompiledPolicy) -> bool {
        let facts = |c: &CompiledPolicy| -> Vec<(usize, Port)> {
            c.order
                .iter()
                .filter_map(|&s| {
                    c.port(s).map(|p| {
                        (
                            s,
                            Port {
                                layers: Vec::new(),
                                ..p.port.clone()
                            },
                        )
                    })
                })
                .collect()
        };
        self.networks == other.networks
            && self.uplink == other.uplink
            && facts(self) == facts(other)
    }

    pub fn options(&self) -> CompileOptions {
        self.options
    }

    /// The port in `slot`.
    pub fn port(&self, slot: usize) -> Option<&Arc<CompiledPort>> {
        self.ports.get(slot)?.as_ref()
    }

    /// How many slots there are (free ones included).
    pub fn slots(&self) -> usize {
        self.ports.len()
    }

    /// Endpoint ports in policy order, with their slots.
    pub fn ports(&self) -> impl Iterator<Item = (usize, &Arc<CompiledPort>)> + '_ {
        self.order
            .iter()
            .filter_map(|&s| self.port(s).map(|p| (s, p)))
    }

    /// The network of the port in `slot`.
    pub fn network_of(&self, slot: usize) -> Option<&Network> {
        self.nets
            .get(slot)
            .copied()
            .flatten()
            .and_then(|n| self.networks.get(n))
    }

    /// The index of the network of the port in `slot`.
    pub fn network_index(&self, slot: usize) -> Option<usize> {
        self.nets.get(slot).copied().flatten()
    }

    pub fn slot_of_mac(&self, mac: &Mac) -> Option<usize> {
        self.by_mac.get(mac).copied()
    }

    pub fn slot_of_ip(&self, ip: &IpAddr) -> Option<usize> {
        self.by_ip.get(ip).copied()
    }

    /// The endpoint a port mapping of a host address leads to.
    pub fn mapping(&self, protocol: u8, host_port: u16) -> Option<usize> {
        self.mappings.get(&(protocol, host_port)).copied()
    }

    /// Every port mapping: (protocol, host port).
    pub fn mapped_ports(&self) -> impl Iterator<Item = (u8, u16)> + '_ {
        self.mappings.keys().copied()
    }

    pub fn vxlan_ports(&self) -> &[u16] {
        &self.vxlan_ports
    }

    pub fn is_host_address(&self, ip: IpAddr) -> bool {
        self.uplink.ips.contains(&ip)
    }

    pub fn port_name(&self, p: PortId) -> &str {
        match p {
            PortId::Endpoint(s) => self.port(s).map_or("?", |p| p.name()),
            PortId::Uplink => &self.uplink.name,
        }
    }

    pub fn port_by_name(&self, name: &str) -> Option<PortId> {
        if name == self.uplink.name {
            return Some(PortId::Uplink);
        }
        self.by_name.get(name).map(|&s| PortId::Endpoint(s))
    }

    /// The gateway address of an endpoint's network (where ICMP errors come from).
    pub fn gateway_of(&self, p: PortId) -> Option<IpAddr> {
        match p {
            PortId::Endpoint(s) => self.network_of(s)?.gateway,
            PortId::Uplink => None,
        }
    }

    /// The ingress port of a frame (DESIGN §4): the port named by the capture, else the
    /// endpoint whose MAC is the source MAC, else — for frames without a real link layer
    /// (zero source MAC: raw IP captures) — the endpoint owning the source IP, else the
    /// uplink.
    pub fn ingress_of(&self, named: Option<&str>, src_mac: Mac, src_ip: Option<IpAddr>) -> PortId {
        if let Some(p) = named.and_then(|n| self.port_by_name(n)) {
            return p;
        }
        if let Some(s) = self.slot_of_mac(&src_mac) {
            return PortId::Endpoint(s);
        }
        if src_mac == Mac::ZERO
            && let Some(s) = src_ip.and_then(|ip| self.slot_of_ip(&ip))
        {
            return PortId::Endpoint(s);
        }
        PortId::Uplink
    }

    /// The names (layer, group, rule) of a decision, as verdicts print them.
    pub fn decision_names(
        &self,
        (port, d): (PortId, Decision),
    ) -> Option<strata_rules::decision::DecisionNames> {
        let PortId::Endpoint(s) = port else {
            return None;
        };
        let layer = &self.port(s)?.layers.get(usize::from(d.layer))?.layer;
        Some(strata_rules::decision::DecisionNames::of(
            layer, d.dir, d.by,
        ))
    }
}

/// Slots for the ports of `policy`: a port keeps the slot its name had in `previous`;
/// the others take the lowest slots free in both.
fn assign_slots(policy: &Policy, previous: Option<&CompiledPolicy>) -> Vec<usize> {
    let kept: Vec<Option<usize>> = policy
        .ports
        .iter()
        .map(|p| previous.and_then(|prev| prev.by_name.get(&p.name).copied()))
        .collect();
    let mut taken: std::collections::HashSet<usize> = kept.iter().flatten().copied().collect();
    // A slot that a removed port held stays free in this snapshot, so that state left in
    // it is recognised as another incarnation's, never inherited by a newcomer's name.
    if let Some(prev) = previous {
        taken.extend(prev.order.iter().copied());
    }
    let mut next = 0;
    kept.into_iter()
        .map(|k| {
            k.unwrap_or_else(|| {
                while taken.contains(&next) {
                    next += 1;
                }
                taken.insert(next);
                next
            })
        })
        .collect()
}
