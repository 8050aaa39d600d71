//! Arbitrary bytes as an Ethernet frame: `checks::parse_frame`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::parse_frame(data));
