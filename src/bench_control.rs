//! `strata bench control`: what publishing costs (issue 10's goals) — compiling and
//! publishing a policy with 1k, 10k and 100k rules; the time from the start of a one-rule
//! change until the packet path judges by it; the longest pause a worker sees at a swap.
//!
//! The policy is the pipeline workload's (one endpoint sending 64-byte UDP) plus an
//! endpoint `big` whose ACL layer holds N generated rules. A worker runs the real loop
//! over a memory device on its own thread while the main thread publishes; an observer
//! stamps every frame, so a swap's pause is the gap between the last frame judged by the
//! old snapshot and the first judged by the new one.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use strata_control::publish::Publisher;
use strata_dataplane::device::memory::MemoryDevice;
use strata_dataplane::engine::{Engine, Outcome};
use strata_dataplane::policy::{CompileOptions, CompiledPolicy};
use strata_dataplane::state::Limits;
use strata_dataplane::worker::{Observer, Worker, WorkerError};
use strata_rules::model::{Action, Conditions, IpPrefix, Policy, PortRange, Rule, proto};

use crate::Failure;
use crate::bench::workload;

/// `count` ACL-like rules (TCP/UDP, source and destination prefixes, port ranges), the
/// same for a given count.
fn rules(count: usize, salt: u32) -> Vec<Rule> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..count)
        .map(|i| {
            let r = next();
            let prefix = |a: u64, len: u8| {
                let ip = IpAddr::V4(Ipv4Addr::from(0xc612_0000 | (a as u32 & 0x1_ffff)));
                IpPrefix::new(ip, len).unwrap_or(IpPrefix::host(ip))
            };
            let lo = (r >> 40) as u16 % 60000;
            Rule {
                id: format!("r{i}"),
                priority: 100 + (i as u32 % 1000) + salt * u32::from(i == 0),
                conditions: Conditions {
                    protocol: vec![if r & 1 == 0 { proto::TCP } else { proto::UDP }],
                    src_ip: vec![prefix(r >> 8, 16 + (r >> 30) as u8 % 17)],
                    dst_ip: vec![prefix(r >> 20, 24 + (r >> 34) as u8 % 9)],
                    dst_port: vec![PortRange {
                        lo,
                        hi: lo.saturating_add((r >> 56) as u16 % 64),
                    }],
                    ..Conditions::default()
                },
                action: if r & 2 == 0 {
                    Action::Allow
                } else {
                    Action::Block
                },
                terminating: false,
                stateful: true,
            }
        })
        .collect()
}

/// The workload's policy plus endpoint `big` with `n` rules in its inbound ACL group;
/// `salt` changes one of them (rule 0's priority).
fn policy(n: usize, salt: u32) -> Policy {
    let mut p = workload::policy(workload::Mode::Hit);
    let Some(mut big) = p.ports.first().cloned() else {
        return p;
    };
    big.name = "big".into();
    big.mac = strata_rules::model::Mac([2, 0, 0, 0, 0, 0x0b]);
    big.ips = vec![IpAddr::V4(Ipv4Addr::new(198, 18, 255, 2))];
    if let Some(g) = big
        .layers
        .first_mut()
        .and_then(|l| l.groups.iter_mut().find(|g| g.name == "acl-in"))
    {
        g.rules = rules(n, salt);
    }
    p.ports.push(big);
    p
}

/// The workload's sending endpoint with one of its ACL rules changed by `salt`.
fn small_change(mut p: Policy, salt: u32) -> Policy {
    if let Some(r) = p
        .ports
        .first_mut()
        .and_then(|ep| ep.layers.first_mut())
        .and_then(|l| l.groups.iter_mut().find(|g| !g.rules.is_empty()))
        .and_then(|g| g.rules.first_mut())
    {
        r.priority = 100 + salt;
    }
    p
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Stamps frames: which snapshot was seen last and when it was first seen, and the gaps
/// between frames.
struct Probe {
    base: Instant,
    last_ns: u64,
    last_serial: u64,
    seen_serial: Arc<AtomicU64>,
    seen_at: Arc<AtomicU64>,
    swap_gap: Arc<AtomicU64>,
    steady_gap: Arc<AtomicU64>,
}

impl Observer for Probe {
    fn observe(&mut self, _: u64, _: &Outcome<'_>, p: &CompiledPolicy) -> Result<(), WorkerError> {
        let now = self.base.elapsed().as_nanos() as u64;
        let gap = now.saturating_sub(self.last_ns);
        if p.serial != self.last_serial {
            if self.last_ns != 0 {
                self.swap_gap.fetch_max(gap, Ordering::Relaxed);
            }
            self.seen_at.store(now, Ordering::Relaxed);
            self.seen_serial.store(p.serial, Ordering::Release);
            self.last_serial = p.serial;
        } else {
            self.steady_gap.fetch_max(gap, Ordering::Relaxed);
        }
        self.last_ns = now;
        Ok(())
    }
}

struct Visibility {
    /// Compile and publish alone, on the main thread.
    publish_median_us: f64,
    median_us: f64,
    max_us: f64,
    pause_max_us: f64,
    steady_max_us: f64,
}

/// Publishes `changes` alternately, `rounds` times, with a worker running; how long each
/// took to reach the worker, and the worker's pauses.
fn visibility(changes: [Policy; 2], changed: &[String], rounds: usize) -> Visibility {
    let publisher = Publisher::new(&changes[1], CompileOptions::default());
    let base = Instant::now();
    let seen_serial = Arc::new(AtomicU64::new(0));
    let seen_at = Arc::new(AtomicU64::new(0));
    let swap_gap = Arc::new(AtomicU64::new(0));
    let steady_gap = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let (published, stop) = (publisher.published(), Arc::clone(&stop));
        let mut probe = Probe {
            base,
            last_ns: 0,
            last_serial: 0,
            seen_serial: Arc::clone(&seen_serial),
            seen_at: Arc::clone(&seen_at),
            swap_gap: Arc::clone(&swap_gap),
            steady_gap: Arc::clone(&steady_gap),
        };
        std::thread::spawn(move || {
            let engine = Engine::new(published.load(), Limits::default());
            let mut w = Worker::new(engine).follow(published);
            let mut dev = MemoryDevice::new(workload::frames(1024), None, u64::MAX);
            let _ = w.run(&mut [&mut dev], &mut probe, &stop);
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let mut took = Vec::new();
    let mut publish = Vec::new();
    for i in 0..rounds {
        let next = &changes[i % 2];
        let start = base.elapsed().as_nanos() as u64;
        publish.push(publisher.apply_changed(next, Some(changed)).as_secs_f64() * 1e6);
        let target = publisher.current().serial;
        let deadline = Instant::now() + Duration::from_secs(5);
        while seen_serial.load(Ordering::Acquire) != target && Instant::now() < deadline {
            std::thread::yield_now();
        }
        if seen_serial.load(Ordering::Acquire) == target {
            let seen = seen_at.load(Ordering::Relaxed);
            took.push(seen.saturating_sub(start) as f64 / 1e3);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let _ = worker.join();
    let max_us = took.iter().copied().fold(0.0, f64::max);
    Visibility {
        publish_median_us: median(&mut publish),
        median_us: median(&mut took),
        max_us,
        pause_max_us: swap_gap.load(Ordering::Relaxed) as f64 / 1e3,
        steady_max_us: steady_gap.load(Ordering::Relaxed) as f64 / 1e3,
    }
}

/// The worker's own cost of taking a snapshot: `Engine::install` (reconciling its state)
/// timed alone, the engine warmed with the workload's flows; the longest of `rounds`.
fn install_time(changes: [Policy; 2], rounds: usize) -> f64 {
    let publisher = Publisher::new(&changes[1], CompileOptions::default());
    let mut engine = Engine::new(publisher.current(), Limits::default());
    let frames = workload::frames(1024);
    let mut longest = Duration::ZERO;
    for i in 0..rounds {
        for (t, f) in frames.iter().enumerate() {
            let _ = engine.process(strata_dataplane::engine::Rx::frame(
                f,
                1 + (i * 2000 + t) as u64,
            ));
        }
        publisher.apply(&changes[i % 2]);
        let next = publisher.current();
        let start = Instant::now();
        engine.install(next);
        longest = longest.max(start.elapsed());
    }
    longest.as_secs_f64() * 1e6
}

/// The whole path of `strata ctl rule add` / `rule remove` on the workload's endpoint,
/// with `n` ACLs on another endpoint of the policy (all from TOML): validation of the
/// fragment beside the policy's files, the edit, compile and publish. Median and max, µs.
fn controller_edit(n: usize, rounds: usize) -> Result<(f64, f64), Failure> {
    use strata_control::api::{Control, Controller};
    use strata_control::edit::{Edit, PolicyState};
    use strata_control::local::LocalDataplane;
    use strata_control::protocol::Document;

    let mut text = workload::policy_text(workload::Mode::Hit);
    text.push_str(
        "[[endpoint]]\nname = \"big\"\nnetwork = \"t\"\nmac = \"02:00:00:00:00:0b\"\nipv4 = \"198.18.255.2\"\n",
    );
    for (i, r) in rules(n, 0).iter().enumerate() {
        let proto = if r.conditions.protocol.first() == Some(&proto::TCP) {
            "tcp"
        } else {
            "udp"
        };
        let ports = r.conditions.dst_port.first().map_or(PortRange::ANY, |p| *p);
        let remote = r
            .conditions
            .src_ip
            .first()
            .map(|p| p.to_string())
            .unwrap_or_default();
        text.push_str(&format!(
            "[[endpoint.acl]]\nid = \"r{i}\"\naction = \"{}\"\ndirection = \"in\"\nprotocols = [\"{proto}\"]\n\
             local_ports = [\"{}-{}\"]\nremote_addresses = [\"{remote}\"]\npriority = {}\n",
            if r.action == Action::Allow { "allow" } else { "block" },
            ports.lo,
            ports.hi,
            r.priority
        ));
    }
    let state = PolicyState::new(Document::new("bench.toml", text))
        .map_err(|e| Failure::Runtime(format!("bench policy: {e}")))?;
    let dp = LocalDataplane::start(state.current(), CompileOptions::default(), Box::new(()));
    let c = Controller::new(dp, state);
    let acl = "[[acl]]\nid = \"bench\"\naction = \"block\"\ndirection = \"in\"\nprotocols = [\"tcp\"]\nlocal_ports = [\"2323\"]\n";
    let mut took = Vec::new();
    for i in 0..rounds * 2 {
        let edit = if i % 2 == 0 {
            Edit::RuleAdd {
                port: "ep".into(),
                document: Document::new("bench-acl.toml", acl),
            }
        } else {
            Edit::RuleRemove {
                port: "ep".into(),
                rule: "bench".into(),
                layer: None,
                group: None,
            }
        };
        let start = Instant::now();
        c.edit(edit)
            .map_err(|e| Failure::Runtime(format!("bench edit: {}", e.0.message)))?;
        took.push(start.elapsed().as_secs_f64() * 1e6);
    }
    let max = took.iter().copied().fold(0.0, f64::max);
    // What a copy of the whole policy model costs (`strata run`'s service keeps one per
    // publish).
    let start = Instant::now();
    let copy = c.policy();
    println!(
        "copy of the policy model ({} rules): {:.0} us",
        copy.ports
            .iter()
            .flat_map(|p| &p.layers)
            .flat_map(|l| &l.groups)
            .map(|g| g.rules.len())
            .sum::<usize>(),
        start.elapsed().as_secs_f64() * 1e6
    );
    Ok((median(&mut took), max))
}

pub fn run(sizes: &[usize], rounds: usize) -> Result<(), Failure> {
    if sizes.is_empty() || rounds == 0 {
        return Err(Failure::Input(
            "--rules and --rounds must not be empty or 0".into(),
        ));
    }
    println!("compile and publish: one rule of the N-rule port changed (median of {rounds})");
    for &n in sizes {
        let publisher = Publisher::new(&policy(n, 0), CompileOptions::default());
        let mut times: Vec<f64> = (1..=rounds)
            .map(|i| publisher.apply(&policy(n, i as u32 % 2)).as_secs_f64() * 1e3)
            .collect();
        let max = times.iter().copied().fold(0.0, f64::max);
        println!(
            "rules={n} publish_ms={:.2} max_ms={max:.2}",
            median(&mut times)
        );
    }
    let n = sizes
        .iter()
        .copied()
        .find(|&n| n == 10_000)
        .unwrap_or(sizes[0]);
    let base = policy(n, 0);
    // As the controller publishes an edit: told which port changed.
    let small = visibility(
        [small_change(base.clone(), 1), small_change(base.clone(), 2)],
        &["ep".to_string()],
        rounds * 4,
    );
    println!(
        "rule change visible (a port with 2 rules; {n} rules elsewhere): median_us={:.1} max_us={:.1} (of which compile+publish median_us={:.1})",
        small.median_us, small.max_us, small.publish_median_us
    );
    let big = visibility(
        [policy(n, 1), policy(n, 2)],
        &["big".to_string()],
        rounds * 4,
    );
    println!(
        "rule change visible (the port with {n} rules): median_us={:.1} max_us={:.1} (of which compile+publish median_us={:.1})",
        big.median_us, big.max_us, big.publish_median_us
    );
    println!(
        "worker pause at a swap: max_us={:.1} (small change), max_us={:.1} ({n}-rule port); steady max gap between frames: {:.1} us",
        small.pause_max_us,
        big.pause_max_us,
        small.steady_max_us.max(big.steady_max_us)
    );
    let (edit_median, edit_max) = controller_edit(n, rounds)?;
    println!(
        "strata ctl rule add/remove on a 2-rule port ({n} ACLs elsewhere), validate+edit+compile+publish: median_us={edit_median:.1} max_us={edit_max:.1}"
    );
    let (small_us, big_us) = (
        install_time(
            [small_change(base.clone(), 1), small_change(base.clone(), 2)],
            rounds * 4,
        ),
        install_time([policy(n, 1), policy(n, 2)], rounds * 4),
    );
    println!(
        "snapshot install in the worker (Engine::install, warm state, no other thread): max_us={small_us:.1} (small change), max_us={big_us:.1} ({n}-rule port)"
    );
    Ok(())
}
