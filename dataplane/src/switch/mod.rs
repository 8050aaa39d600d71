//! The switch: the paths of DESIGN §2 for one frame — the sender's layers outbound,
//! delivery, the receiver's layers inbound; traffic from the uplink crosses only the
//! receiver's layers. [`Switch`] is a short-lived view pairing the immutable snapshot with
//! the worker's state for one frame.
//!
//! - [`classify`]: what a frame is to the switch (IP, ARP, VXLAN, neither);
//! - `delivery`: where a packet goes after the sender's layers, per network driver;
//! - `overlay`: VXLAN encapsulation to remote hosts and decapsulation from them;
//! - `arp`: proxy ARP, the switch's own answers; `nd` and `echo`: IPv6 neighbour
//!   discovery and ICMP echo answered for the addresses the switch owns;
//! - `resolve`: the uplink's neighbours (ARP/ND), for the overlay and routed traffic;
//! - `source`: source validation — nobody poses as an endpoint it is not.
//!
//! Each frame has at most one output port: flooding is not modelled.

mod arp;
pub mod classify;
mod delivery;
pub mod echo;
pub mod nd;
mod overlay;
pub mod resolve;
mod source;

use strata_rules::model::Direction;

use crate::drop::DropReason;
use crate::flow::{FlowKey, PacketMeta};
use crate::policy::{CompiledPolicy, Decision, PortId};
use crate::port::{PortPath, Traversal};
use crate::state::EngineState;
use crate::state::path::Leg;
use crate::state::uft::Delivery;
use crate::transpose::Transposition;
use crate::verdict::{Answer, Verdict};

pub use arp::arp_reply;
pub use classify::{FrameInfo, VxlanInner};

/// Where delivery sends a packet, and what it rewrites on the way.
enum Route {
    Endpoint(usize, Transposition),
    Uplink(Transposition),
    Drop(DropReason),
    /// Too big once encapsulated: the largest inner packet that fits.
    TooBig {
        mtu: u16,
    },
}

/// The snapshot and the worker's state, for one frame.
pub struct Switch<'a> {
    pub policy: &'a CompiledPolicy,
    pub state: &'a mut EngineState,
}

impl Switch<'_> {
    /// Decides one frame entering at `ingress` at packet time `ts_ns` (counted in the
    /// engine's totals).
    pub fn decide(&mut self, ingress: PortId, frame: &FrameInfo, ts_ns: u64) -> Verdict {
        self.state.clock = self.state.clock.max(ts_ns);
        let now = self.state.clock;
        let direction = match ingress {
            PortId::Endpoint(_) => Direction::Out,
            PortId::Uplink => Direction::In,
        };
        if let Some(reason) = self.spoofed(ingress, frame) {
            let v = Verdict::drop(ingress, direction, reason);
            self.state.stats.count(v.drop);
            return v;
        }
        let v = match frame {
            FrameInfo::Malformed => Verdict::drop(ingress, direction, DropReason::Parse),
            FrameInfo::Unsupported => Verdict::drop(ingress, direction, DropReason::Unsupported),
            FrameInfo::Arp { dst_mac, arp } => self.arp(ingress, direction, *dst_mac, arp),
            FrameInfo::Ip(m) => match self
                .echo(ingress, direction, m)
                .or_else(|| self.solicitation(ingress, direction, m))
            {
                Some(answer) => answer,
                None => self.ip(ingress, direction, m, now),
            },
            FrameInfo::Vxlan { vni, outer, inner } => match ingress {
                PortId::Uplink => self.vxlan(direction, *vni, outer, inner, now),
                // An endpoint sending VXLAN is just sending UDP.
                PortId::Endpoint(_) => self.ip(ingress, direction, outer, now),
            },
        };
        self.state.stats.count(v.drop);
        v
    }

    fn ip(
        &mut self,
        ingress: PortId,
        direction: Direction,
        first: &PacketMeta,
        now: u64,
    ) -> Verdict {
        let mut decided = None;
        let mut rewrite = Transposition::NONE;
        let mut icmp_inner = None;
        let mut m = *first;
        let mut remembered = Delivery::Unknown;
        if let PortId::Endpoint(p) = ingress {
            let t = self.traverse(p, Direction::Out, &m, now);
            remembered = t.delivery;
            decided = t.decided.map(|d| (ingress, d));
            if let Some(r) = t.drop {
                return Verdict {
                    decided,
                    ..Verdict::drop(ingress, direction, r)
                };
            }
            rewrite = t.rewrite;
            icmp_inner = t.icmp_inner;
            m = rewritten(&m, &t.rewrite);
        }
        let route = match ingress {
            PortId::Endpoint(p) => match self.remembered(p, remembered) {
                Some(r) => r,
                None => {
                    let (r, d) = self.route_from_endpoint(p, &m, now);
                    if d != Delivery::Unknown {
                        self.remember(p, first, d);
                    }
                    r
                }
            },
            PortId::Uplink => self.route_from_uplink(&m, now),
        };
        let (q, delivery) = match route {
            // Delivery decided, not a layer.
            Route::Drop(r) => return Verdict::drop(ingress, direction, r),
            Route::TooBig { mtu } => {
                return Verdict {
                    answer: Some(Answer::TooBig { mtu }),
                    ..Verdict::drop(ingress, direction, DropReason::TooBig)
                };
            }
            Route::Uplink(t) => {
                return Verdict {
                    decided,
                    rewrite: rewrite.then(&t),
                    icmp_inner,
                    ..Verdict::forward(ingress, direction, PortId::Uplink)
                };
            }
            Route::Endpoint(q, t) => (q, t),
        };
        let arriving = rewritten(&m, &delivery);
        let mut v = self.deliver(
            ingress,
            direction,
            q,
            rewrite.then(&delivery),
            arriving,
            decided,
            now,
        );
        v.icmp_inner = match (icmp_inner, v.icmp_inner) {
            (Some(a), Some(b)) => Some(a.then(&b)),
            (a, b) => b.or(a),
        };
        v
    }

    /// Remembers where endpoint `p`'s outbound flow of `m` was delivered.
    fn remember(&mut self, p: usize, m: &PacketMeta, d: Delivery) {
        let topology = self.policy.topology;
        if let Some(Some(st)) = self.state.ports.get_mut(p) {
            st.flows
                .remember_delivery(&FlowKey::of(Direction::Out, m), d, topology);
        }
    }

    /// One port's traversal. When a SNAT finds its ports exhausted, a bounded sweep of
    /// the ports' connections (round robin: the pools are the host's) gives back the ports
    /// of expired ones, and the packet is tried once more: a flood against a full pool
    /// costs each packet the same bounded work, never a walk over every connection.
    fn traverse(&mut self, p: usize, dir: Direction, m: &PacketMeta, now: u64) -> Traversal {
        let t = self.traverse_once(p, dir, m, now);
        if t.drop != Some(DropReason::NatPortsExhausted) {
            return t;
        }
        let st = &mut *self.state;
        let (mut freed, mut budget) = (0, crate::state::conntrack::SWEEP_WHEN_FULL);
        for _ in 0..st.ports.len() {
            if budget == 0 {
                break;
            }
            st.sweep_port = (st.sweep_port + 1) % st.ports.len().max(1);
            if let Some(Some(port)) = st.ports.get_mut(st.sweep_port) {
                let share = budget.min(port.conns.len().max(1));
                freed += port.sweep_some(now, share, &mut st.nat);
                budget -= share;
            }
        }
        if freed == 0 {
            return t;
        }
        self.traverse_once(p, dir, m, now)
    }

    fn traverse_once(&mut self, p: usize, dir: Direction, m: &PacketMeta, now: u64) -> Traversal {
        let policy = self.policy;
        let st = &mut *self.state;
        let (Some(port), Some(Some(state))) = (policy.port(p), st.ports.get_mut(p)) else {
            return Traversal::drop(DropReason::NoRoute, None);
        };
        let mut path = PortPath {
            port,
            state,
            slot: p,
            topology: policy.topology,
        };
        let t = path.traverse(dir, m, now, &mut st.nat);
        // Note the traversal for the path table (the port's note is reset by its next
        // traversal: its hits are taken, not copied).
        let version = path.state.version;
        let last = &mut path.state.last;
        st.legs_cacheable &= last.cacheable;
        st.legs.push(Leg {
            slot: p,
            incarnation: port.incarnation,
            generation: port.generation,
            version,
            dir,
            conn: last.conn,
            hits: std::mem::take(&mut last.hits),
            dropped: t.drop.is_some(),
        });
        t
    }

    /// The receiver's layers, inbound.
    #[allow(clippy::too_many_arguments)]
    fn deliver(
        &mut self,
        ingress: PortId,
        direction: Direction,
        q: usize,
        rewrite: Transposition,
        m: PacketMeta,
        mut decided: Option<(PortId, Decision)>,
        now: u64,
    ) -> Verdict {
        let t = self.traverse(q, Direction::In, &m, now);
        let egress = PortId::Endpoint(q);
        if let Some(r) = t.drop {
            // A drop names what dropped it: the receiver's decision, if any (an RST
            // refused for its sequence number has none), never the sender's allow.
            return Verdict {
                decided: t.decided.map(|d| (egress, d)),
                ..Verdict::drop(ingress, direction, r)
            };
        }
        if let Some(d) = t.decided {
            decided = Some((egress, d));
        }
        Verdict {
            decided,
            rewrite: rewrite.then(&t.rewrite),
            icmp_inner: t.icmp_inner,
            ..Verdict::forward(ingress, direction, egress)
        }
    }
}

/// What a packet looks like after `t` (to the next stage's policy).
fn rewritten(m: &PacketMeta, t: &Transposition) -> PacketMeta {
    if t.is_identity() {
        return *m;
    }
    let (fields, icmp_id) = t.apply_fields(&m.fields, m.icmp_id);
    PacketMeta {
        fields,
        icmp_id,
        ..*m
    }
}
