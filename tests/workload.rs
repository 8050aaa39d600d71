//! The benchmark workload does what it claims: every frame is forwarded to the uplink,
//! and after the first pass the flow table answers (the fast path is what is measured).

#[path = "../benches/workload.rs"]
mod workload;

#[test]
fn every_workload_frame_is_forwarded_to_the_uplink_by_the_fast_path() {
    assert_eq!(
        workload::policy().ports.len(),
        1,
        "the workload policy loads"
    );
    let mut b = workload::Bench::new(1024);
    b.pass(1);
    let stats = b.worker.engine().stats();
    assert_eq!(stats.forwarded, 2048);
    assert_eq!(stats.dropped_total(), 0);
    assert_eq!(b.device.sent, 2048);
    let report = b.worker.engine().report();
    assert_eq!(
        report.ports[0].counters.fast_path, 1024,
        "the second pass hits the flow table"
    );
    assert_eq!(report.ports[0].counters.slow_path, 1024);
}
