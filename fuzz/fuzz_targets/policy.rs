//! Arbitrary bytes as a policy file (TOML or HNS JSON), compiled and run: `checks::policy`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::policy(data));
