//! Arbitrary bytes as a pcap/pcapng file: `checks::read_capture`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::read_capture(data));
