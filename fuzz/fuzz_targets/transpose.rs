//! Selector bytes and a frame, rewritten by `transpose::bytes`: `checks::transpose`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::transpose(data));
