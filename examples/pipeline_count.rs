//! A fixed amount of the pipeline benchmark's work, for counting instructions (which the
//! load on a shared machine does not move, unlike time): `MODE FLOWS PASSES` runs the
//! `strata bench pipeline` workload (`benches/workload.rs`) for that many passes.
//!
//! Instructions per packet, as README's Benchmarks gives them — two runs, the difference
//! divided by the extra packets, so that setup cancels out:
//!
//! ```sh
//! cargo build --release --example pipeline_count
//! for n in 50 150; do valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!   target/release/examples/pipeline_count hit 1024 $n 2>&1 | grep refs; done
//! # (refs at 150 - refs at 50) / (100 * 1024)
//! ```

/// As `strata` runs: big tables on transparent huge pages.
#[global_allocator]
static ALLOC: strata_dataplane::huge::HugePageAlloc = strata_dataplane::huge::HugePageAlloc;

#[path = "../benches/workload.rs"]
mod workload;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: pipeline_count hit|snat|vxlan|new|full FLOWS PASSES";
    let (Some(mode), Some(flows), Some(passes)) = (
        args.get(1).and_then(|m| workload::Mode::parse(m)),
        args.get(2).and_then(|n| n.parse::<u32>().ok()),
        args.get(3).and_then(|n| n.parse::<u64>().ok()),
    ) else {
        eprintln!("{usage}");
        std::process::exit(1);
    };
    let mut b = workload::Bench::of(mode, flows, 0, 1);
    b.pass(passes);
    eprintln!("forwarded {}", b.worker.engine().stats().forwarded);
}
