//! The packet path end to end, per packet: parse → ingress → the sender's port (flow
//! table hit: the fast path) → delivery → verdict, on DPDK testpmd's peer workload
//! (`strata_control::workload`), so the two can be compared side by side.
//!
//! `cargo bench --bench pipeline` (or `strata bench pipeline --flows N` for one line).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use strata_control::workload;
use strata_dataplane::Switch;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline");
    for n in [1u32, 1024, 65536] {
        let frames = workload::frames(n);
        let mut sw = Switch::new(workload::policy());
        g.throughput(Throughput::Elements(u64::from(n)));
        g.bench_function(format!("udp64/flows={n}"), |b| {
            b.iter(|| workload::pass(&mut sw, &frames))
        });
        assert_eq!(
            sw.stats.dropped_total(),
            0,
            "every bench frame is forwarded"
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
