//! Arbitrary bytes as a capture replayed through the bundled policy: `checks::replay`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::replay(data));
