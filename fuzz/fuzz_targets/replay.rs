//! Arbitrary bytes as a capture, replayed through the bundled example policy (NAT, port
//! mappings, overlay): the whole packet path — parse, VXLAN and ICMP-error handling,
//! connections, NAT, delivery, byte rewrites — must never panic, and must give one
//! verdict per record.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use strata_control::replay::{Outputs, replay};
use strata_dataplane::Switch;
use strata_dataplane::capture::CaptureReader;
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
    let mut sw = Switch::new(policy().clone());
    let mut out = Outputs::default();
    if let Ok(summary) = replay(&mut sw, reader, &mut out) {
        assert_eq!(summary.packets as usize, records);
    }
});
