//! Replays every capture of the shared corpus through the worker loop over a capture
//! device (what `strata replay` runs) (830 real captures from tcpdump's test
//! suite, many deliberately truncated or malformed): no panic, exactly one verdict per
//! record, and a frame gets reason `parse` exactly when the parser rejects it.

use std::cell::RefCell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use std::sync::atomic::AtomicBool;

use strata_dataplane::Engine;
use strata_dataplane::capture::CaptureReader;
use strata_dataplane::device::capture::CaptureDevice;
use strata_dataplane::packet::parse_captured;
use strata_dataplane::verdict::VerdictLog;
use strata_dataplane::worker::Worker;

/// A writer whose bytes the test can read back.
#[derive(Clone, Default)]
struct SharedBuf(Rc<RefCell<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/pcaps")
}

fn policy() -> strata_rules::Policy {
    let text = include_str!("../../examples/policy.toml");
    strata_rules::policy::load(text, "examples/policy.toml").expect("the example policy is valid")
}

/// Replays one file; returns (records, verdict lines, parse drops) or None if the file is
/// not a capture at all.
fn replay_file(path: &Path) -> Option<(usize, Vec<serde_json::Value>, usize)> {
    let reader = CaptureReader::open(path).ok()?;
    // An independent pass: the records and which of them the parser rejects.
    let mut expect_parse = Vec::new();
    for item in CaptureReader::open(path).ok()? {
        let Ok(f) = item else { break };
        expect_parse.push(f.link_error.is_none() && parse_captured(&f.data, f.orig_len).is_err());
    }
    let mut worker = Worker::new(Engine::for_policy(&policy()));
    let sink = SharedBuf::default();
    let mut log = VerdictLog::new(sink.clone());
    let mut device = CaptureDevice::new(reader, None);
    worker
        .run(&mut [&mut device], &mut log, &AtomicBool::new(false))
        .expect("replay of a readable capture");
    assert_eq!(
        worker.engine().stats().packets as usize,
        expect_parse.len(),
        "{}",
        path.display()
    );
    log.finish().expect("flush");
    let bytes = sink.0.borrow().clone();
    let lines: Vec<serde_json::Value> = String::from_utf8(bytes)
        .expect("utf-8 verdicts")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each verdict is JSON"))
        .collect();
    assert_eq!(
        lines.len(),
        expect_parse.len(),
        "{}: one verdict per record",
        path.display()
    );
    let mut parse_drops = 0;
    for (i, (v, want_parse)) in lines.iter().zip(&expect_parse).enumerate() {
        assert_eq!(v["index"], i as u64);
        let is_parse = v["reason"] == "parse";
        assert_eq!(is_parse, *want_parse, "{} record {i}: {v}", path.display());
        assert!(
            v["verdict"] == "forward" || v["reason"].is_string(),
            "drop without reason: {v}"
        );
        parse_drops += is_parse as usize;
    }
    Some((expect_parse.len(), lines, parse_drops))
}

#[test]
fn every_capture_gets_one_verdict_per_frame() {
    let dir = corpus().join("tcpdump");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the shared corpus is missing at {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let (mut ok, mut rejected, mut frames, mut parse_drops) = (0, 0, 0, 0);
    for f in &files {
        match replay_file(f) {
            Some((n, _, p)) => {
                ok += 1;
                frames += n;
                parse_drops += p;
            }
            None => rejected += 1,
        }
    }
    eprintln!(
        "{ok} captures replayed ({frames} frames, {parse_drops} parse drops), {rejected} not captures"
    );
    assert!(ok > 700, "only {ok} captures replayed");
    assert!(
        parse_drops > 10,
        "the corpus has malformed frames; saw {parse_drops} parse drops"
    );
}

#[test]
fn curated_selection_counts_and_malformed_frames() {
    let sel = std::fs::read_to_string(corpus().join("selection.tsv")).expect("selection.tsv");
    for line in sel.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        let (name, count) = (cols[0], cols[3].parse::<usize>().expect("count column"));
        let (n, _, _) = replay_file(&corpus().join("tcpdump").join(name))
            .unwrap_or_else(|| panic!("{name} should be a readable capture"));
        assert_eq!(n, count, "{name}");
    }
    // Captures whose headers are cut short: the frame is dropped as a parse error.
    for name in [
        "tcp_header_heapoverflow.pcap",
        "icmp6_mobileprefix_asan.pcap",
        "ip_ts_opts_asan.pcap",
        "ip6_frag_asan.pcap",
    ] {
        let (_, lines, p) = replay_file(&corpus().join("tcpdump").join(name)).expect(name);
        assert!(p >= 1, "{name}: {lines:?}");
    }
}
