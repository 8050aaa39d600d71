//! The engine call (DESIGN §5): one frame in — with where it entered — and out come its
//! verdict and what leaves: the frame rewritten once with the flow's composite
//! transposition, or the switch's own answer (proxy ARP, ICMP "too big"). Parsing,
//! ingress, the switch, the byte rewrite and every counter happen here and nowhere else;
//! replay, the benchmarks and the service all call [`Engine::process`].
//!
//! An engine owns its state (flows, connections, NAT bindings, counters) and reads one
//! immutable policy snapshot, replaced between frames by [`Engine::install`].
//!
//! ```
//! use strata_dataplane::engine::{Engine, Ingress, Rx};
//! # let policy = strata_rules::policy::load(include_str!("../../examples/policy.toml"), "p").unwrap();
//! let mut engine = Engine::for_policy(&policy);
//! # let frame = strata_dataplane::packet::testutil::ipv4_udp_frame();
//! let out = engine.process(Rx::frame(&frame, 1_000));
//! println!("{:?} -> {:?}", out.verdict.drop, out.output.map(|o| o.port));
//! ```

use std::sync::Arc;

use strata_rules::model::{Direction, Mac, Policy};

use crate::DropReason;
use crate::flow::FlowKey;
use crate::packet::{self, Fragment, FrameKind, Parsed};
use crate::policy::Decision;
use crate::policy::{CompileOptions, CompiledPolicy, PortId};
use crate::state::fragments::DatagramKey;
use crate::state::path::{PathKey, PathShape, Recorded};
use crate::state::uft::FlowPins;
use crate::state::{EngineState, Limits, SwitchStats};
use crate::switch::{FrameInfo, Switch};
use crate::transpose::bytes::{self, DEFAULT_HEADROOM, PacketBuf};
use crate::verdict::{Answer, Verdict, VerdictRecord};
use strata_rules::conn::tcp_flags;

/// Paths beyond which the flow state no longer fits the caches (80 bytes a path, and
/// as much again of connection state: ~2 MB at 16k paths).
const WARM_ABOVE_PATHS: usize = 16 * 1024;

/// The direction a frame entering at `ingress` travels.
fn direction_of(ingress: PortId) -> Direction {
    match ingress {
        PortId::Endpoint(_) => Direction::Out,
        PortId::Uplink => Direction::In,
    }
}

/// The datagram a fragment belongs to.
fn datagram(ingress: PortId, p: &Parsed) -> DatagramKey {
    DatagramKey {
        ingress,
        src: p.fields.src_ip,
        dst: p.fields.dst_ip,
        protocol: p.fields.protocol,
        id: p.frag.id,
    }
}

/// Where a frame entered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ingress<'a> {
    /// A device attached to this port received it.
    Port(PortId),
    /// A capture says it was seen on the interface of this name: the port of that name,
    /// else as `Auto`.
    Named(&'a str),
    /// The endpoint whose MAC is the source MAC, else (a capture without a link layer)
    /// the endpoint owning the source IP, else the uplink (DESIGN §4).
    Auto,
}

/// A received frame.
#[derive(Clone, Copy, Debug)]
pub struct Rx<'a> {
    pub data: &'a [u8],
    /// Its length on the wire; more than `data.len()` when a capture cut it short.
    pub orig_len: u32,
    /// Packet time, nanoseconds.
    pub ts_ns: u64,
    pub ingress: Ingress<'a>,
    /// The record could not be made an Ethernet frame (a capture's link type).
    pub link_error: bool,
}

impl<'a> Rx<'a> {
    /// A whole Ethernet frame at `ts_ns`, its ingress found from its addresses.
    pub fn frame(data: &'a [u8], ts_ns: u64) -> Rx<'a> {
        Rx {
            data,
            orig_len: data.len() as u32,
            ts_ns,
            ingress: Ingress::Auto,
            link_error: false,
        }
    }
}

/// Whether an output is the frame itself or the switch's answer to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputKind {
    Forwarded,
    /// A proxy ARP reply or an ICMP "too big", sent back to the ingress port.
    Answer,
}

/// A frame leaving a port.
#[derive(Clone, Copy, Debug)]
pub struct Output<'a> {
    pub port: PortId,
    pub frame: &'a [u8],
    /// Its length on the wire (a rewrite of a capture-truncated frame keeps the cut).
    pub orig_len: u32,
    pub kind: OutputKind,
}

/// What the engine made of one frame.
#[derive(Clone, Copy, Debug)]
pub struct Outcome<'a> {
    pub verdict: Verdict,
    pub output: Option<Output<'a>>,
}

/// The packet path with its state and the policy snapshot it reads.
pub struct Engine {
    policy: Arc<CompiledPolicy>,
    state: EngineState,
    /// One rewrite buffer, reused: no allocation per packet once it has grown.
    buf: PacketBuf,
    /// The switch's answer to the current frame.
    answer: Vec<u8>,
}

impl Engine {
    pub fn new(policy: Arc<CompiledPolicy>, limits: Limits) -> Engine {
        let mut state = EngineState::new(limits);
        state.reconcile(None, &policy);
        Engine {
            policy,
            state,
            buf: PacketBuf::with_headroom(&[], DEFAULT_HEADROOM),
            answer: Vec::with_capacity(128),
        }
    }

    /// Makes this engine the host's router on the uplink (`route_on_uplink`): Strata
    /// routes what leaves the uplink addressed to the host's MAC (the service, where
    /// Strata is the host); replay keeps the host's MAC, as WinNAT hands such frames to
    /// the Windows host's stack (`EngineState::host`).
    pub fn route_as_host(&mut self) {
        self.state.host = true;
    }

    /// An engine for `policy` with the default compile options and table sizes.
    pub fn for_policy(policy: &Policy) -> Engine {
        let compiled = CompiledPolicy::compile(policy, None, CompileOptions::default());
        Engine::new(Arc::new(compiled), Limits::default())
    }

    /// Replaces the policy snapshot; the state follows (`EngineState::reconcile`).
    pub fn install(&mut self, next: Arc<CompiledPolicy>) {
        if Arc::ptr_eq(&next, &self.policy) {
            return;
        }
        self.state.reconcile(Some(&self.policy), &next);
        self.policy = next;
    }

    /// Compiles `policy` against the current snapshot (ports keep their slots, unchanged
    /// ports their flows) and installs it.
    pub fn set_policy(&mut self, policy: &Policy) {
        let next = CompiledPolicy::compile(policy, Some(&self.policy), self.policy.options());
        self.install(Arc::new(next));
    }

    pub fn policy(&self) -> &Arc<CompiledPolicy> {
        &self.policy
    }

    pub fn state(&self) -> &EngineState {
        &self.state
    }

    pub fn stats(&self) -> &SwitchStats {
        &self.state.stats
    }

    /// Makes this engine one of several workers: it hands out only its share of every
    /// NAT pool, so that a reply's port names it (`state::ownership`).
    pub fn share_nat(&mut self, share: crate::state::ownership::Share) {
        self.state.nat.pools.set_share(share);
    }

    /// Zeroes every counter (ports, rules, totals); flows and connections stay.
    pub fn reset_counters(&mut self) {
        for p in self.state.ports.iter_mut().flatten() {
            p.counters.reset();
        }
        self.state.stats = SwitchStats::default();
    }

    /// The verdict record (DESIGN §4) of the `index`th frame's verdict.
    pub fn record(&self, index: u64, v: &Verdict) -> VerdictRecord {
        VerdictRecord::of(index, &self.policy, v)
    }

    /// Processes one frame: parse, ingress, the switch, the rewrite of its bytes.
    pub fn process<'a>(&'a mut self, rx: Rx<'a>) -> Outcome<'a> {
        let parsed = packet::parse_captured(rx.data, rx.orig_len);
        self.process_parsed(rx, &parsed)
    }

    /// [`process`](Self::process) for a frame the caller has parsed already (with
    /// `packet::parse_captured` over the same bytes): a worker that must know a frame's
    /// owner before processing it parses once.
    pub fn process_parsed<'a>(
        &'a mut self,
        rx: Rx<'a>,
        parsed: &Result<Parsed, packet::ParseError>,
    ) -> Outcome<'a> {
        if rx.link_error {
            let verdict = self.decide(PortId::Uplink, &FrameInfo::Unsupported, rx.ts_ns);
            return Outcome {
                verdict,
                output: None,
            };
        }
        let ingress = self.ingress(&rx, parsed);
        let Ok(p) = parsed else {
            let verdict = self.decide(ingress, &FrameInfo::Malformed, rx.ts_ns);
            return Outcome {
                verdict,
                output: None,
            };
        };
        if ingress == PortId::Uplink {
            crate::switch::resolve::learn(&self.policy, &mut self.state, rx.data, p);
        }
        // A whole packet of a flow (not an ICMP error, not a fragment, not VXLAN for this
        // host): the path table may answer for it, and learns its path otherwise.
        let path = self.whole_flow_packet(p).then(|| {
            PathKey::new(
                FlowKey::of_fields(direction_of(ingress), &p.fields, p.icmp_id),
                ingress,
            )
        });
        const CONNECTION_FLAGS: u8 = tcp_flags::SYN | tcp_flags::FIN | tcp_flags::RST;
        if let Some(key) = &path
            && p.tcp_flags & CONNECTION_FLAGS == 0
            && let Some(mut verdict) = self.replay(key, ingress, p, rx.ts_ns)
        {
            let output = verdict
                .egress
                .and_then(|e| self.rewrite(&mut verdict, e, &rx, p));
            return Outcome { verdict, output };
        }
        let info = FrameInfo::from_frame(rx.data, parsed, self.policy.vxlan_ports());
        let ip = matches!(info, FrameInfo::Ip(_));
        self.state.legs.clear();
        self.state.legs_cacheable = true;
        let mut verdict = match p.fragment {
            Fragment::NonFirst if ip => self.follow(ingress, p, rx.ts_ns),
            _ => self.decide(ingress, &info, rx.ts_ns),
        };
        if let Some(key) = path {
            self.learn_path(key, p, &verdict);
        }
        if ip && p.fragment == Fragment::First {
            let now = self.state.clock;
            self.state
                .fragments
                .first(datagram(ingress, p), &verdict, &p.frag, now);
        }
        let output = match (verdict.answer, verdict.egress) {
            (Some(answer), _) => self.answer(&verdict, answer, rx.data, p),
            (None, Some(egress)) => self.rewrite(&mut verdict, egress, &rx, p),
            (None, None) => None,
        };
        Outcome { verdict, output }
    }

    /// The switching decision for a frame already classified, without its bytes: what
    /// [`process`](Self::process) does between parsing and rewriting (for tests that
    /// describe packets by their fields).
    pub fn decide(&mut self, ingress: PortId, frame: &FrameInfo, ts_ns: u64) -> Verdict {
        let mut sw = Switch {
            policy: &self.policy,
            state: &mut self.state,
        };
        sw.decide(ingress, frame, ts_ns)
    }

    /// Whether the flow state is too big for the CPU caches to keep (more than ~2 MB
    /// of paths): then the worker [`warm`](Self::warm)s each batch before processing it.
    pub fn tables_outgrow_caches(&self) -> bool {
        self.state.paths.len() > WARM_ABOVE_PATHS
    }

    /// Brings a frame's flow state into the cache: its path entry and the connections
    /// the path keeps alive, looked up and read but not changed (a later packet of the
    /// batch may change them; processing looks them up again, now from the cache). For
    /// a frame received at a known port; others are not warmed.
    pub fn warm(&self, port: Option<PortId>, parsed: &Result<Parsed, packet::ParseError>) {
        let (Some(ingress), Ok(p)) = (port, parsed) else {
            return;
        };
        if !self.whole_flow_packet(p) {
            return;
        }
        let key = PathKey::new(
            FlowKey::of_fields(direction_of(ingress), &p.fields, p.icmp_id),
            ingress,
        );
        let Some((e, shape)) = self.state.paths.get(&key) else {
            return;
        };
        for (i, leg) in shape.legs.iter().enumerate() {
            if let (Some((c, _)), Some(Some(ps))) =
                (e.conn(shape, i), self.state.ports.get(leg.slot))
            {
                std::hint::black_box(ps.conns.get(c).map(|c| c.last_seen));
            }
        }
    }

    /// Whether a parsed frame is a whole IP packet of a flow, as the path table keeps
    /// them: not a fragment, not an ICMP error (it follows another connection), not
    /// VXLAN to one of this host's VXLAN ports (decapsulated, not forwarded).
    fn whole_flow_packet(&self, p: &Parsed) -> bool {
        let f = &p.fields;
        matches!(p.kind, FrameKind::Ip)
            && p.fragment == Fragment::None
            && !f
                .icmp
                .is_some_and(|(t, _)| bytes::is_icmp_error(p.ip_version, t))
            && !(f.protocol == strata_rules::model::proto::UDP
                && self.policy.vxlan_ports().contains(&f.dst_port))
    }

    /// Answers a packet from the path table, if its path still holds (see
    /// `state::path`): every port it crossed counts it and keeps its connection alive as
    /// its own fast path would.
    fn replay(
        &mut self,
        key: &PathKey,
        ingress: PortId,
        p: &Parsed,
        ts_ns: u64,
    ) -> Option<Verdict> {
        let policy = &self.policy;
        let st = &mut self.state;
        let (e, shape) = st.paths.get(key)?;
        let pins = FlowPins::of(&p.fields);
        if shape.pins != pins
            || shape.topology != policy.topology
            || shape.underlay != st.underlay_epoch
        {
            return None;
        }
        let now = st.clock.max(ts_ns);
        for (i, leg) in shape.legs.iter().enumerate() {
            let port = policy.port(leg.slot)?;
            let ps = st.ports.get_mut(leg.slot)?.as_mut()?;
            let holds = port.incarnation == leg.incarnation
                && port.generation == leg.generation
                && ps.incarnation == leg.incarnation
                && ps.version == leg.version
                && e.conn(shape, i).is_none_or(|(c, _)| {
                    ps.conns
                        .live(c, now)
                        .is_some_and(|c| c.generation == leg.generation)
                });
            if !holds {
                // An expired connection found on the way gives its NAT port back.
                ps.release(&mut st.nat);
                return None;
            }
        }
        st.clock = now;
        let ip_len = u64::from(p.ip_len());
        for (i, leg) in shape.legs.iter().enumerate() {
            let Some(Some(ps)) = st.ports.get_mut(leg.slot) else {
                continue;
            };
            let c = &mut ps.counters;
            match leg.dir {
                Direction::Out => {
                    c.packets_out += 1;
                    c.bytes_out += ip_len;
                }
                Direction::In => {
                    c.packets_in += 1;
                    c.bytes_in += ip_len;
                }
            }
            c.fast_path += 1;
            if leg.dropped {
                c.dropped += 1;
            }
            c.count_hits(leg.hits.iter().map(|&w| Decision::unpack(w)));
            if let Some((conn, orig)) = e.conn(shape, i) {
                ps.conns.touch(conn, p.tcp_flags, &p.tcp_seq, orig, now);
            }
        }
        let verdict = Verdict {
            ingress,
            direction: direction_of(ingress),
            egress: shape.egress,
            drop: shape.drop,
            decided: shape.decided,
            rewrite: e.rewrite(shape),
            answer: None,
            icmp_inner: None,
        };
        st.stats.count(verdict.drop);
        Some(verdict)
    }

    /// Records the path a packet took, if every port traversal on it may be replayed and
    /// nothing else depended on state: drops are recorded only when a port dropped it.
    fn learn_path(&mut self, key: PathKey, p: &Parsed, v: &Verdict) {
        let st = &mut self.state;
        let port_dropped = st.legs.last().is_some_and(|l| l.dropped);
        if !st.legs_cacheable
            || st.legs.is_empty()
            || v.answer.is_some()
            || v.icmp_inner.is_some()
            || (v.drop.is_some() && !port_dropped)
        {
            return;
        }
        let recorded = Recorded {
            outcome: PathShape {
                pins: FlowPins::of(&p.fields),
                topology: self.policy.topology,
                underlay: st.underlay_epoch,
                egress: v.egress,
                drop: v.drop,
                decided: v.decided,
                rewrite: v.rewrite,
                legs: smallvec::SmallVec::new(),
            },
            legs: &st.legs,
        };
        st.paths.insert(key, recorded);
    }

    /// A later fragment: the verdict of its datagram's first, if it may follow it.
    fn follow(&mut self, ingress: PortId, p: &Parsed, ts_ns: u64) -> Verdict {
        let st = &mut self.state;
        st.clock = st.clock.max(ts_ns);
        let verdict = st
            .fragments
            .follow(&datagram(ingress, p), &p.frag, st.clock)
            .unwrap_or_else(|| Verdict::drop(ingress, direction_of(ingress), DropReason::Fragment));
        st.stats.count(verdict.drop);
        verdict
    }

    fn ingress(&self, rx: &Rx<'_>, parsed: &Result<Parsed, packet::ParseError>) -> PortId {
        let named = match rx.ingress {
            Ingress::Port(p) => return p,
            Ingress::Named(n) => Some(n),
            Ingress::Auto => None,
        };
        let (mac, ip) = match parsed {
            Ok(p) => (
                p.fields.src_mac,
                matches!(p.kind, FrameKind::Ip).then_some(p.fields.src_ip),
            ),
            Err(_) => {
                let mac = rx
                    .data
                    .get(6..12)
                    .and_then(|b| <[u8; 6]>::try_from(b).ok())
                    .map_or(Mac::ZERO, Mac);
                (mac, None)
            }
        };
        self.policy.ingress_of(named, mac, ip)
    }

    /// The switch's own answer, sent back where the frame came from.
    fn answer<'a>(
        &'a mut self,
        v: &Verdict,
        answer: Answer,
        frame: &[u8],
        p: &Parsed,
    ) -> Option<Output<'a>> {
        self.answer.clear();
        match answer {
            Answer::Arp(mac) => {
                let FrameKind::Arp(request) = p.kind else {
                    return None;
                };
                self.answer
                    .extend_from_slice(&crate::switch::arp_reply(&request, mac));
            }
            Answer::TooBig { mtu } => {
                let gateway = self.policy.gateway_of(v.ingress)?;
                let icmp = bytes::icmp_too_big(frame, p, mtu, self.policy.uplink.mac, gateway)?;
                self.answer.extend_from_slice(&icmp);
            }
            Answer::Echo(mac) => {
                self.answer
                    .extend_from_slice(&crate::switch::echo::echo_reply(frame, p, mac)?);
            }
            Answer::Neighbour => {
                use crate::switch::nd;
                let target = nd::target_of(frame, p)?;
                let (mac, router) = nd::owner(&self.policy, v.ingress, target)?;
                self.answer
                    .extend_from_slice(&nd::advertisement(frame, p, target, mac, router)?);
            }
        }
        Some(Output {
            port: v.ingress,
            frame: &self.answer,
            orig_len: self.answer.len() as u32,
            kind: OutputKind::Answer,
        })
    }

    /// Whether a frame leaving the uplink is addressed to the host's own MAC: routed
    /// traffic of a NAT or L2Bridge network, which the host's stack routes on Windows.
    fn routed_by_host(&self, frame: &[u8]) -> bool {
        self.state.host && frame.get(..6) == Some(&self.policy.uplink.mac.0[..])
    }

    /// Routes the frame in the rewrite buffer on the uplink's segment, as the host's
    /// stack would: its destination MAC becomes its destination's, resolved by ARP/ND
    /// (broadcast until it is; `switch::resolve`).
    fn route_on_uplink(&mut self) {
        let Ok(p) = packet::parse(self.buf.as_slice()) else {
            return;
        };
        if !matches!(p.kind, FrameKind::Ip) {
            return;
        }
        let mac = crate::switch::resolve::next_hop(&mut self.state, p.fields.dst_ip);
        if let Some(dst) = self.buf.as_mut_slice().get_mut(..6) {
            dst.copy_from_slice(&mac.0);
        }
    }

    /// The requests (ARP, neighbour solicitations) that resolve the uplink neighbours
    /// the switch still needs; the worker sends them out of the uplink now and then.
    pub fn solicit(&self, out: &mut Vec<Vec<u8>>) {
        crate::switch::resolve::requests(&self.policy, &self.state, out);
    }

    /// The frame with the flow's rewrite applied once. A frame whose headers do not hold
    /// what the rewrite must change (cut short by a capture) is dropped as `parse`.
    fn rewrite<'a>(
        &'a mut self,
        v: &mut Verdict,
        egress: PortId,
        rx: &Rx<'a>,
        p: &Parsed,
    ) -> Option<Output<'a>> {
        if v.rewrite.is_identity() && v.icmp_inner.is_none() {
            if egress == PortId::Uplink && self.routed_by_host(rx.data) {
                self.buf.load(rx.data, DEFAULT_HEADROOM);
                self.route_on_uplink();
                return Some(Output {
                    port: egress,
                    frame: self.buf.as_slice(),
                    orig_len: rx.orig_len.max(self.buf.len() as u32),
                    kind: OutputKind::Forwarded,
                });
            }
            return Some(Output {
                port: egress,
                frame: rx.data,
                orig_len: rx.orig_len,
                kind: OutputKind::Forwarded,
            });
        }
        self.buf.load(rx.data, DEFAULT_HEADROOM);
        let quote = match v.icmp_inner {
            Some(q) => bytes::translate_icmp_error(&mut self.buf, p, q.src, q.dst),
            None => Ok(()),
        };
        if quote
            .and_then(|()| bytes::apply(&v.rewrite, &mut self.buf, p))
            .is_err()
        {
            let stats = &mut self.state.stats;
            stats.forwarded -= 1;
            if let Some(n) = stats.dropped.get_mut(DropReason::Parse.index()) {
                *n += 1;
            }
            v.egress = None;
            v.drop = Some(DropReason::Parse);
            return None;
        }
        if egress == PortId::Uplink && self.routed_by_host(self.buf.as_slice()) {
            self.route_on_uplink();
        }
        // A rewrite may grow or shrink the frame (encap, VLAN): the cut stays as long.
        let delta = self.buf.len() as i64 - rx.data.len() as i64;
        let orig_len = (i64::from(rx.orig_len) + delta).max(self.buf.len() as i64);
        Some(Output {
            port: egress,
            frame: self.buf.as_slice(),
            orig_len: u32::try_from(orig_len).unwrap_or(u32::MAX),
            kind: OutputKind::Forwarded,
        })
    }
}
