//! Arbitrary bytes as a capture, replayed through the bundled example policy (NAT, port
//! mappings, overlay) by the worker loop over a capture device — what `strata replay`
//! runs: the whole packet path (parse, VXLAN and ICMP-error handling, connections, NAT,
//! delivery, byte rewrites) must never panic, and must give one verdict per record.
#![no_main]

use std::sync::OnceLock;
use std::sync::atomic::AtomicBool;

use libfuzzer_sys::fuzz_target;
use strata_dataplane::Engine;
use strata_dataplane::capture::CaptureReader;
use strata_dataplane::device::capture::CaptureDevice;
use strata_dataplane::worker::Worker;
use strata_rules::Policy;

fn policy() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| {
        strata_rules::policy::load(include_str!("../../examples/policy.toml"), "policy.toml")
            .expect("the example policy is valid")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(reader) = CaptureReader::from_bytes(data.to_vec()) else {
        return;
    };
    let records = CaptureReader::from_bytes(data.to_vec())
        .map(|r| r.take_while(|f| f.is_ok()).count())
        .unwrap_or(0);
    let mut worker = Worker::new(Engine::for_policy(policy()));
    let mut device = CaptureDevice::new(reader, None);
    if worker.run(&mut [&mut device], &mut (), &AtomicBool::new(false)).is_ok() {
        assert_eq!(worker.engine().stats().packets as usize, records);
    }
});
