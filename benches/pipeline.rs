//! The packet path end to end, per packet: the worker loop over a memory device, the
//! engine call on each frame — parse → ingress → the sender's port (flow table hit: the
//! fast path) → delivery → verdict and output — on DPDK testpmd's peer workload
//! (`workload.rs`), so the two can be compared side by side.
//!
//! `cargo bench --bench pipeline` (or `strata bench pipeline --flows N` for one line).

#[path = "workload.rs"]
mod workload;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline");
    for n in [1u32, 1024, 65536] {
        let mut b = workload::Bench::new(n);
        g.throughput(Throughput::Elements(u64::from(n)));
        g.bench_function(format!("udp64/flows={n}"), |it| it.iter(|| b.pass(1)));
        let stats = b.worker.engine().stats();
        assert_eq!(stats.dropped_total(), 0, "every bench frame is forwarded");
        assert_eq!(b.device.sent, stats.forwarded, "every forward leaves");
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
