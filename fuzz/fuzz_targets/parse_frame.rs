//! Arbitrary bytes as an Ethernet frame: the parser must never panic, and every offset
//! it reports must lie within the frame (`testutil::check_invariants`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_dataplane::packet::{self, testutil};

fuzz_target!(|data: &[u8]| {
    // The first byte doubles as how much the "capture" cut, to exercise snapped parsing.
    let orig = data.len() as u32 + u32::from(data.first().copied().unwrap_or(0));
    for r in [packet::parse(data), packet::parse_captured(data, orig)] {
        if let Ok(p) = r {
            testutil::check_invariants(data, &p);
        }
    }
});
