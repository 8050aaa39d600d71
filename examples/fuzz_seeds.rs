//! Seeds for the fuzz targets that take one frame (`parse_frame`, `transpose`), cut from
//! captures with the project's own reader: `fuzz/run-ci` runs it on tcpdump's captures.
//!
//! `cargo run --example fuzz_seeds -- OUT CAPTURE...` writes the first few distinct
//! Ethernet frames of each capture to `OUT/parse_frame/` as they are, and to
//! `OUT/transpose/` behind the target's three selector bytes (which rewrite, a capture
//! cut, a VLAN id/address byte), varied from frame to frame.
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use strata_dataplane::capture::read_all;

/// Frames taken from each capture, at most.
const PER_CAPTURE: usize = 4;
/// `transpose` selectors, in turn: NAT of addresses and ports, encapsulation, decap with a
/// VLAN pop, everything with a VLAN push, decap alone, a MAC rewrite with VLAN push.
const SELECTORS: [u8; 6] = [0x3c, 0x80, 0x41, 0xfe, 0x01, 0xc2];

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(out) = args.next().map(PathBuf::from) else {
        eprintln!("usage: fuzz_seeds OUT CAPTURE...");
        return ExitCode::from(1);
    };
    let frames_dir = out.join("parse_frame");
    let transpose_dir = out.join("transpose");
    for d in [&frames_dir, &transpose_dir] {
        if let Err(e) = std::fs::create_dir_all(d) {
            eprintln!("fuzz_seeds: {}: {e}", d.display());
            return ExitCode::from(2);
        }
    }
    let mut seen = HashSet::new();
    let (mut captures, mut written) = (0, 0);
    for capture in args.map(PathBuf::from) {
        let Ok(bytes) = std::fs::read(&capture) else {
            continue;
        };
        captures += 1;
        let (frames, _) = read_all(bytes);
        let stem = name_of(&capture);
        let distinct = frames
            .into_iter()
            .filter(|f| f.is_ethernet() && !f.data.is_empty())
            .filter(|f| seen.insert(f.data.clone()))
            .take(PER_CAPTURE);
        for (i, f) in distinct.enumerate() {
            let sel = SELECTORS[written % SELECTORS.len()];
            let mut t = vec![sel, 0, (written % 251) as u8];
            t.extend_from_slice(&f.data);
            let name = format!("{stem}-{i}");
            let wrote = std::fs::write(frames_dir.join(&name), &f.data)
                .and_then(|()| std::fs::write(transpose_dir.join(&name), &t));
            if let Err(e) = wrote {
                eprintln!("fuzz_seeds: {}: {e}", out.display());
                return ExitCode::from(2);
            }
            written += 1;
        }
    }
    println!(
        "fuzz_seeds: {written} frames from {captures} captures into {}",
        out.display()
    );
    ExitCode::SUCCESS
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}
