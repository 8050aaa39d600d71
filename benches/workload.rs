//! The packet-path benchmark workload, shared by `strata bench pipeline` and the
//! criterion bench `benches/pipeline.rs` (both include this file): DPDK testpmd's peer
//! workload (`../shared/bench/peer-dpdk-testpmd`, built by its `mk-udp64-pcap.py`) —
//! 64-byte Ethernet/IPv4/UDP frames of N distinct flows — sent by one container endpoint
//! whose ACL layer holds a few rules that do not match, so its profile's default decides.
//!
//! What runs is what users run: the dataplane's worker loop over a memory device (the
//! frames, again and again, as testpmd sends its pcap), the engine call on every frame.

// Each includer uses a part: the bench binaries measure, the test checks.
#![allow(dead_code)]

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use strata_dataplane::device::memory::MemoryDevice;
use strata_dataplane::engine::Engine;
use strata_dataplane::worker::Worker;
use strata_rules::Policy;
/// One transparent network; the frames' source MAC is endpoint `ep`.
pub const POLICY: &str = r#"
[host]
mac = "02:00:00:00:00:02"
addresses = ["198.19.255.254"]

[[network]]
name = "t"
driver = "transparent"
subnets = ["198.18.0.0/16"]

[[endpoint]]
name = "ep"
network = "t"
mac = "02:00:00:00:00:01"
ipv4 = "198.18.255.1"

[[endpoint.acl]]
action = "block"
direction = "out"
protocols = ["tcp"]
remote_ports = ["23"]

[[endpoint.acl]]
action = "block"
direction = "out"
protocols = ["udp"]
remote_addresses = ["198.18.0.0/16"]
remote_ports = ["9999"]
"#;

pub fn policy() -> Policy {
    // The constant above is valid; a failure here is a bug in this file.
    strata_rules::policy::load(POLICY, "workload.toml").unwrap_or_default()
}

/// Frames shaped like mk-udp64-pcap.py's (64-byte Ethernet/IPv4/UDP): flow i is
/// 198.18.255.1 (the endpoint, which may send only from its own address) → 198.19.(7i),
/// UDP 1024+i → 53.
pub fn frames(n: u32) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
            let src = 0xC612_FF01u32; // 198.18.255.1, the endpoint's address
            let dst = 0xC613_0000u32 | ((i.wrapping_mul(7)) & 0xFFFF);
            let mut ip = vec![0x45, 0, 0, 46];
            ip.extend_from_slice(&(i as u16).to_be_bytes());
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
            f.extend_from_slice(&(1024 + (i % 60000) as u16).to_be_bytes());
            f.extend_from_slice(&[0, 53, 0, 26, 0, 0]);
            f.extend_from_slice(&[0; 18]);
            f
        })
        .collect()
}

/// A worker whose device is the workload's frames in memory.
pub struct Bench {
    pub worker: Worker,
    pub device: MemoryDevice,
}

impl Bench {
    /// The workload of `flows` flows, with the flow table warmed by one pass.
    pub fn new(flows: u32) -> Bench {
        let engine = Engine::for_policy(&policy());
        let mut b = Bench {
            worker: Worker::new(engine),
            device: MemoryDevice::new(frames(flows.max(1)), None, 0),
        };
        b.pass(1);
        b
    }

    /// Sends every frame `rounds` times through the worker loop.
    pub fn pass(&mut self, rounds: u64) {
        self.device.rewind(rounds);
        let never = AtomicBool::new(false);
        // A memory device cannot fail, and `()` observes nothing.
        let _ = self.worker.run(&mut [&mut self.device], &mut (), &never);
    }
}

/// Packets per second over repeated passes (after a warm-up pass that fills the flow
/// table), the best of `rounds` rounds of at least `round` each.
pub fn measure(flows: u32, rounds: u32, round: Duration) -> f64 {
    let mut b = Bench::new(flows);
    let n = u64::from(flows.max(1));
    // Read the clock every ~4096 packets, not every pass (one pass may be one packet).
    let passes = (4096 / n).max(1);
    let mut best = 0f64;
    for _ in 0..rounds.max(1) {
        let (start, mut sent) = (Instant::now(), 0u64);
        while start.elapsed() < round {
            b.pass(passes);
            sent += passes * n;
        }
        best = best.max(sent as f64 / start.elapsed().as_secs_f64());
    }
    best
}
