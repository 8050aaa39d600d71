//! Arbitrary bytes as an Ethernet frame: the parser must never panic, and every offset
//! it reports must lie where the frame says.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_dataplane::packet::{self, FrameKind};

fuzz_target!(|data: &[u8]| {
    // The first two bytes double as an "original length" to exercise snapped parsing.
    let orig = data.len() as u32 + u32::from(data.first().copied().unwrap_or(0));
    for r in [packet::parse(data), packet::parse_captured(data, orig)] {
        let Ok(p) = r else { continue };
        assert!(p.l3_offset as usize <= data.len());
        if let Some(l4) = p.l4_offset {
            assert!(l4 as usize <= data.len());
            assert!(p.payload_offset >= l4);
        }
        if let Some((s, d)) = p.port_offsets() {
            assert!(s + 2 <= data.len() && d + 2 <= data.len());
        }
        if let Some((off, len)) = p.dst_ip_offset() {
            assert!(off + len <= data.len());
        }
        if matches!(p.kind, FrameKind::Ip) && !p.truncated {
            assert!(p.l3_end as usize <= data.len());
        }
    }
});
