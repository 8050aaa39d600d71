//! The benchmark workloads do what they claim: every frame is forwarded the way its mode
//! says (plain, SNATed, encapsulated; for `new`, each a new connection), and after the
//! first pass the flow table answers (the fast path is what `hit`, `snat` and `vxlan`
//! measure).

#[path = "../benches/workload.rs"]
mod workload;

use strata_dataplane::packet;
use workload::{Bench, Mode};

#[test]
fn every_workload_frame_is_forwarded_as_its_mode_says() {
    for mode in [Mode::Hit, Mode::Snat, Mode::Vxlan, Mode::New] {
        assert_eq!(
            workload::policy(mode).ports.len(),
            1,
            "{mode:?}: the policy loads"
        );
        let mut b = Bench::of(mode, 1024, 0, 1);
        if mode == Mode::New {
            b.pass(1);
        }
        b.pass(1);
        let stats = b.worker.engine().stats();
        assert_eq!(stats.dropped_total(), 0, "{mode:?}: {stats:?}");
        assert_eq!(stats.forwarded, 2048, "{mode:?}");
        assert_eq!(b.device.sent, 2048, "{mode:?}");
        let report = b.worker.engine().report();
        let counters = &report.ports[0].counters;
        match mode {
            // The second pass of the same frames hits the table.
            Mode::New => assert_eq!(report.connections, 1024, "one connection per frame"),
            _ => assert_eq!(
                (counters.fast_path, counters.slow_path),
                (1024, 1024),
                "{mode:?}"
            ),
        }
        assert!(b.bytes_per_flow() > 0.0);
    }
}

#[test]
fn the_rewriting_modes_rewrite() {
    use strata_dataplane::engine::{Engine, Rx};
    let frame = &workload::frames_of(Mode::Snat, 1, 0, 1)[0];
    let mut e = Engine::for_policy(&workload::policy(Mode::Snat));
    let out = e
        .process(Rx::frame(frame, 1))
        .output
        .map(|o| o.frame.to_vec())
        .expect("forwarded");
    let p = packet::parse(&out).expect("parses");
    assert_eq!(
        p.fields.src_ip.to_string(),
        "198.19.255.254",
        "SNATed to the host"
    );

    let frame = &workload::frames_of(Mode::Vxlan, 1, 0, 1)[0];
    let mut e = Engine::for_policy(&workload::policy(Mode::Vxlan));
    let out = e
        .process(Rx::frame(frame, 1))
        .output
        .map(|o| o.frame.to_vec())
        .expect("forwarded");
    assert_eq!(
        out.len(),
        frame.len() + 50,
        "VXLAN-encapsulated: 50 bytes more"
    );
    let outer = packet::parse(&out).expect("parses");
    assert_eq!(outer.fields.dst_ip.to_string(), "198.19.255.253");
    assert_eq!(outer.fields.dst_port, 4789);
}

#[test]
fn the_full_mode_refuses_every_new_flow_and_keeps_its_table() {
    let mut b = Bench::of(Mode::Full, 5000, 0, 1);
    assert_eq!(
        b.worker.engine().report().connections,
        workload::FULL_TABLE,
        "filled"
    );
    b.pass(1);
    let stats = b.worker.engine().stats();
    let full = strata_dataplane::DropReason::ConnectionTableFull.index();
    assert_eq!(stats.dropped[full], 5000, "{stats:?}");
    assert_eq!(b.worker.engine().report().connections, workload::FULL_TABLE);
}
