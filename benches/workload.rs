//! The packet-path benchmark workloads, shared by `strata bench pipeline` and the
//! criterion bench `benches/pipeline.rs` (both include this file). The frames are DPDK
//! testpmd's kind (`../shared/bench/peer-dpdk-testpmd`, built by its `mk-udp64-pcap.py`):
//! 64-byte Ethernet/IPv4/UDP, N distinct flows, sent by one container endpoint from its
//! own address, flow i to UDP port 53 of a destination that varies with i from source
//! port 1024 + i mod 60000. What runs is what users run: the dataplane's worker loop over
//! a memory device (the frames again and again, as testpmd sends its pcap), the engine
//! call on every frame.
//!
//! Modes:
//! - `hit`: a flow-table hit, plain allow (a transparent network, a few ACL rules that
//!   do not match, the profile's default decides);
//! - `snat`: a hit that is SNATed to the host address on its way out (a NAT network):
//!   addresses, port and checksums rewritten in every frame;
//! - `vxlan`: a hit that is VXLAN-encapsulated to a remote host (an overlay network);
//! - `new`: every frame a new connection, through three layers (an ACL layer of 10,000
//!   rules and two custom layers): the slow path, counted in connections per second;
//! - `full`: the same frames against a connection table already full of live
//!   connections (1,000): every frame a new flow refused (`connection-table-full`), the
//!   flood case — its rate is to be compared with `new`'s.
//!
//! With several workers each owns a disjoint share of the flows (as the service's
//! ownership rule gives them) and runs on its own thread.

// Each includer uses a part: the bench binaries measure, the test checks.
#![allow(dead_code)]

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use std::sync::Arc;

use strata_dataplane::CompiledPolicy;
use strata_dataplane::device::memory::MemoryDevice;
use strata_dataplane::engine::Engine;
use strata_dataplane::policy::{CompileOptions, PortId};
use strata_dataplane::state::Limits;
use strata_dataplane::worker::Worker;
use strata_rules::Policy;

/// What a benchmark run exercises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Hit,
    Snat,
    Vxlan,
    New,
    Full,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Hit => "hit",
            Mode::Snat => "snat",
            Mode::Vxlan => "vxlan",
            Mode::New => "new",
            Mode::Full => "full",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        [Mode::Hit, Mode::Snat, Mode::Vxlan, Mode::New, Mode::Full]
            .into_iter()
            .find(|m| m.name() == s)
    }

    /// The most flows the mode can carry: SNAT has one host address, whose 64,512
    /// ports per protocol bound its concurrent connections.
    pub fn max_flows(self) -> u32 {
        match self {
            Mode::Snat => 60_000,
            _ => 1 << 24,
        }
    }
}

/// The connection table of `full` mode, full before the measured frames arrive.
pub const FULL_TABLE: usize = 1000;

/// The endpoint that sends, and the host (its gateway) it sends through.
const EP_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const HOST_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];

const HEADER: &str = "[host]\nmac = \"02:00:00:00:00:02\"\naddresses = [\"198.19.255.254\"]\n";

/// The policy of a mode.
pub fn policy_text(mode: Mode) -> String {
    match mode {
        Mode::Hit => format!(
            "{HEADER}[[network]]\nname = \"t\"\ndriver = \"transparent\"\nsubnets = [\"198.18.0.0/16\"]\n\
             [[endpoint]]\nname = \"ep\"\nnetwork = \"t\"\nmac = \"02:00:00:00:00:01\"\nipv4 = \"198.18.255.1\"\n\
             [[endpoint.acl]]\naction = \"block\"\ndirection = \"out\"\nprotocols = [\"tcp\"]\nremote_ports = [\"23\"]\n\
             [[endpoint.acl]]\naction = \"block\"\ndirection = \"out\"\nprotocols = [\"udp\"]\n\
             remote_addresses = [\"198.18.0.0/16\"]\nremote_ports = [\"9999\"]\n"
        ),
        Mode::Snat => format!(
            "{HEADER}[[network]]\nname = \"n\"\ndriver = \"nat\"\nsubnets = [\"198.18.0.0/16\"]\ngateway = \"198.18.0.1\"\n\
             [[endpoint]]\nname = \"ep\"\nnetwork = \"n\"\nmac = \"02:00:00:00:00:01\"\nipv4 = \"198.18.255.1\"\n"
        ),
        Mode::Vxlan => format!(
            "{HEADER}[[network]]\nname = \"o\"\ndriver = \"overlay\"\nsubnets = [\"198.18.0.0/17\"]\n\
             gateway = \"198.18.0.1\"\nvni = 4096\n\
             [[network.remote_subnet_route]]\nprefix = \"198.18.128.0/17\"\nprovider_address = \"198.19.255.253\"\n\
             [[endpoint]]\nname = \"ep\"\nnetwork = \"o\"\nmac = \"02:00:00:00:00:01\"\nipv4 = \"198.18.127.1\"\n"
        ),
        Mode::New | Mode::Full => {
            let mut t = format!(
                "{HEADER}[[network]]\nname = \"t\"\ndriver = \"transparent\"\nsubnets = [\"198.18.0.0/16\"]\n\
                 [[endpoint]]\nname = \"ep\"\nnetwork = \"t\"\nmac = \"02:00:00:00:00:01\"\nipv4 = \"198.18.255.1\"\n"
            );
            // 10,000 ACL rules the traffic (UDP to port 53) does not match.
            for j in 0..10_000u32 {
                t.push_str(&format!(
                    "[[endpoint.acl]]\nid = \"r{j}\"\naction = \"block\"\ndirection = \"out\"\nprotocols = [\"udp\"]\n\
                     remote_ports = [\"{}\"]\npriority = {}\n",
                    20_000 + j % 40_000,
                    100 + j
                ));
            }
            for layer in ["tiers", "marks"] {
                t.push_str(&format!(
                    "[[endpoint.layer]]\nname = \"{layer}\"\n[[endpoint.layer.group]]\nname = \"g\"\n\
                     [[endpoint.layer.group.rule]]\nid = \"no-telnet\"\naction = \"block\"\nprotocols = [\"tcp\"]\ndst_ports = [23]\n\
                     [[endpoint.layer.group.rule]]\nid = \"udp\"\naction = \"allow\"\nstateful = true\nprotocols = [\"udp\"]\n"
                ));
            }
            t
        }
    }
}

pub fn policy(mode: Mode) -> Policy {
    // The texts above are valid; a failure here is a bug in this file.
    strata_rules::policy::load(&policy_text(mode), "workload.toml").unwrap_or_default()
}

/// Flow i's destination: outside for `hit` and `snat`, a remote customer address of the
/// overlay for `vxlan`.
fn destination(mode: Mode, i: u32) -> u32 {
    match mode {
        Mode::Vxlan => 0xC612_8000 | (i.wrapping_mul(7) & 0x7FFF), // 198.18.128.0/17
        _ => 0xC613_0000 | (i.wrapping_mul(7) & 0xFFFF),           // 198.19.0.0/16
    }
}

/// One 64-byte frame: the endpoint at `src` to `dst`, UDP `sport` → 53.
fn udp64(src: u32, dst: u32, sport: u16, ident: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&HOST_MAC);
    f.extend_from_slice(&EP_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = vec![0x45, 0, 0, 46];
    ip.extend_from_slice(&ident.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 64, 17, 0, 0]);
    ip.extend_from_slice(&src.to_be_bytes());
    ip.extend_from_slice(&dst.to_be_bytes());
    let mut sum: u32 = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&[0, 53, 0, 26, 0, 0]);
    f.extend_from_slice(&[0; 18]);
    f
}

/// The frames of flows `first..first + n` (step `step`: a worker's share).
pub fn frames_of(mode: Mode, n: u32, first: u32, step: u32) -> Vec<Vec<u8>> {
    (0..n)
        .map(|k| first + k * step.max(1))
        .map(|i| {
            // For `new`, every frame is its own flow: the source port and the
            // destination together never repeat within 2^24 frames.
            let (dst, sport) = match mode {
                Mode::New | Mode::Full => (0xC613_0000 | (i >> 8), 1024 + (i & 0xff) as u16),
                _ => (destination(mode, i), 1024 + (i % 60_000) as u16),
            };
            // The endpoint's own address: 198.18.255.1, on the overlay 198.18.127.1.
            let src = if mode == Mode::Vxlan {
                0xC612_7F01
            } else {
                0xC612_FF01
            };
            udp64(src, dst, sport, i as u16)
        })
        .collect()
}

/// The `hit` frames of `n` flows (the default workload).
pub fn frames(n: u32) -> Vec<Vec<u8>> {
    frames_of(Mode::Hit, n, 0, 1)
}

/// A worker whose device is a workload's frames in memory.
pub struct Bench {
    pub worker: Worker,
    pub device: MemoryDevice,
}

impl Bench {
    /// The `mode` workload with its share of `flows` flows (worker `w` of `workers`), the
    /// flow table warmed by one pass (`new` stays cold: every pass is new flows).
    pub fn of(mode: Mode, flows: u32, w: u32, workers: u32) -> Bench {
        let workers = workers.max(1);
        let share = flows.max(1).div_ceil(workers);
        // Every table sized at start for the flows the run carries (`Limits::reserve`,
        // `strata run --preallocate`): no growth inside the measurement.
        let limits = Limits {
            connections: if mode == Mode::Full {
                FULL_TABLE
            } else {
                Limits::default().connections
            },
            reserve: share as usize,
            ..Limits::default()
        };
        let compiled = CompiledPolicy::compile(&policy(mode), None, CompileOptions::default());
        let engine = Engine::new(Arc::new(compiled), limits);
        let mut b = Bench {
            worker: Worker::new(engine),
            // The endpoint's own device, as the service gives each port one: the frames
            // enter at its port (slot 0, the workload's one endpoint).
            device: MemoryDevice::new(
                frames_of(mode, share, w, workers),
                Some(PortId::Endpoint(0)),
                0,
            ),
        };
        match mode {
            Mode::New => {}
            Mode::Full => {
                // Fill the table with live connections (other flows than the measured).
                let fill = frames_of(Mode::Full, FULL_TABLE as u32, 1 << 23, 1);
                let mut filler = MemoryDevice::new(fill, None, 1);
                let never = AtomicBool::new(false);
                let _ = b.worker.run(&mut [&mut filler], &mut (), &never);
            }
            _ => b.pass(1),
        }
        b
    }

    /// The `hit` workload of `flows` flows, warmed.
    pub fn new(flows: u32) -> Bench {
        Bench::of(Mode::Hit, flows, 0, 1)
    }

    /// Sends every frame `rounds` times through the worker loop.
    pub fn pass(&mut self, rounds: u64) {
        self.device.rewind(rounds);
        let never = AtomicBool::new(false);
        // A memory device cannot fail, and `()` observes nothing.
        let _ = self.worker.run(&mut [&mut self.device], &mut (), &never);
    }

    /// Bytes of flow and connection state per flow the engine holds.
    pub fn bytes_per_flow(&self) -> f64 {
        let flows = self.device_frames().max(1) as f64;
        self.worker.engine().state().flow_state_bytes() as f64 / flows
    }

    fn device_frames(&self) -> usize {
        self.device.len()
    }
}

/// A measurement: packets (or, for `new`, connections) per second, and the flow state.
pub struct Measured {
    pub pps: f64,
    pub bytes_per_flow: f64,
}

/// The best of `rounds` rounds of at least `round` each: packets per second over all
/// workers together (each on its own thread), after a warm-up pass.
pub fn measure(mode: Mode, flows: u32, workers: u32, rounds: u32, round: Duration) -> Measured {
    let workers = workers.max(1);
    let results: Vec<Measured> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| s.spawn(move || measure_one(mode, flows, w, workers, rounds, round)))
            .collect();
        // A worker that panicked is a failed measurement, not a slower one.
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    Measured {
        pps: results.iter().map(|m| m.pps).sum(),
        bytes_per_flow: results.iter().map(|m| m.bytes_per_flow).sum::<f64>()
            / results.len().max(1) as f64,
    }
}

fn measure_one(
    mode: Mode,
    flows: u32,
    w: u32,
    workers: u32,
    rounds: u32,
    round: Duration,
) -> Measured {
    if matches!(mode, Mode::New | Mode::Full) {
        // Every round a fresh engine and a pass of new flows: connections per second.
        let mut best = Measured {
            pps: 0.0,
            bytes_per_flow: 0.0,
        };
        for _ in 0..rounds.max(1) {
            let mut b = Bench::of(mode, flows, w, workers);
            let n = b.device_frames() as f64;
            let start = Instant::now();
            b.pass(1);
            let pps = n / start.elapsed().as_secs_f64();
            if pps > best.pps {
                best = Measured {
                    pps,
                    bytes_per_flow: b.bytes_per_flow(),
                };
            }
        }
        return best;
    }
    let mut b = Bench::of(mode, flows, w, workers);
    let n = b.device_frames() as u64;
    // Read the clock every ~4096 packets, not every pass (one pass may be one packet).
    let passes = (4096 / n.max(1)).max(1);
    let mut best = 0f64;
    for _ in 0..rounds.max(1) {
        let (start, mut sent) = (Instant::now(), 0u64);
        while start.elapsed() < round {
            b.pass(passes);
            sent += passes * n;
        }
        best = best.max(sent as f64 / start.elapsed().as_secs_f64());
    }
    Measured {
        pps: best,
        bytes_per_flow: b.bytes_per_flow(),
    }
}
