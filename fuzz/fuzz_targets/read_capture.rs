//! Arbitrary bytes as a capture file: reading must end (with frames and at most one
//! error, last) and never panic; every frame must parse or fail cleanly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_dataplane::capture::CaptureReader;
use strata_dataplane::packet;

fuzz_target!(|data: &[u8]| {
    let Ok(reader) = CaptureReader::from_bytes(data.to_vec()) else {
        return;
    };
    let mut errored = false;
    for r in reader {
        assert!(!errored, "a frame after the error");
        match r {
            Ok(f) => {
                if f.is_ethernet() {
                    let _ = packet::parse_captured(&f.data, f.orig_len);
                }
            }
            Err(e) => {
                let _ = e.to_string();
                errored = true;
            }
        }
    }
});
