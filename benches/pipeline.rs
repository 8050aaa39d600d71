//! The packet path end to end, per packet: the worker loop over a memory device, the
//! engine call on each frame — parse → ingress → the sender's port (flow table hit: the
//! fast path) → delivery → verdict and output, with the rewrite of each mode — on DPDK
//! testpmd's kind of workload (`workload.rs`), so the two can be compared side by side.
//!
//! `cargo bench --bench pipeline` (or `strata bench pipeline --mode M --flows N` for one
//! line).

/// As `strata` runs: big tables on transparent huge pages.
#[global_allocator]
static ALLOC: strata_dataplane::huge::HugePageAlloc = strata_dataplane::huge::HugePageAlloc;

#[path = "workload.rs"]
mod workload;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use workload::{Bench, Mode};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline");
    for (mode, n) in [
        (Mode::Hit, 1u32),
        (Mode::Hit, 1024),
        (Mode::Hit, 65536),
        (Mode::Snat, 1024),
        (Mode::Vxlan, 1024),
    ] {
        let mut b = Bench::of(mode, n, 0, 1);
        g.throughput(Throughput::Elements(u64::from(n)));
        g.bench_function(format!("{}/flows={n}", mode.name()), |it| {
            it.iter(|| b.pass(1))
        });
        let stats = b.worker.engine().stats();
        assert_eq!(stats.dropped_total(), 0, "every bench frame is forwarded");
        assert_eq!(b.device.sent, stats.forwarded, "every forward leaves");
    }
    // New connections: each iteration a fresh engine and 10,000 new flows.
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("new/flows=10000", |it| {
        it.iter_batched(
            || Bench::of(Mode::New, 10_000, 0, 1),
            |mut b| b.pass(1),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
