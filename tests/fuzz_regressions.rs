//! Every input under `fuzz/regressions/<target>/` — crashes the fuzzers found, and inputs
//! worth keeping — replayed through the same check its fuzz target runs
//! (`fuzz/checks.rs`), so that what was fixed stays fixed without cargo-fuzz or nightly.
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

#[path = "../fuzz/checks.rs"]
mod checks;

fn regressions() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions")
}

/// The inputs of one target's folder, sorted by name.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a readable folder entry").path())
        .filter(|p| p.is_file())
        .filter(|p| p.file_name().is_some_and(|n| n != "README.md"))
        .collect();
    files.sort();
    files
}

/// Runs `check` on every file of `dir`; returns the ones it panicked on, with the
/// panic's message.
fn failures(check: checks::Check, dir: &Path) -> Vec<String> {
    let mut failed = Vec::new();
    for file in inputs(dir) {
        let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        if let Err(e) = panic::catch_unwind(AssertUnwindSafe(|| check(&data))) {
            let msg = e
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| e.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            failed.push(format!("{}: {msg}", file.display()));
        }
    }
    failed
}

fn replay_target(name: &str) {
    let (_, check) = checks::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .expect("a known target");
    let dir = regressions().join(name);
    let n = inputs(&dir).len();
    assert!(n > 0, "no regression inputs in {}", dir.display());
    let failed = failures(*check, &dir);
    assert!(
        failed.is_empty(),
        "{} of {n} inputs fail:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[test]
fn parse_frame() {
    replay_target("parse_frame");
}

#[test]
fn read_capture() {
    replay_target("read_capture");
}

#[test]
fn transpose() {
    replay_target("transpose");
}

#[test]
fn replay() {
    replay_target("replay");
}

#[test]
fn policy() {
    replay_target("policy");
}

/// Each folder under `regressions/` is a target's, and each target has a test above.
#[test]
fn every_folder_is_a_target() {
    let mut folders: Vec<String> = std::fs::read_dir(regressions())
        .expect("fuzz/regressions")
        .map(|e| e.expect("a readable folder entry"))
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    let mut targets: Vec<String> = checks::TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    targets.sort();
    assert_eq!(folders, targets);
}

/// The harness catches a check that panics, names the input and keeps the message.
#[test]
fn a_panicking_check_is_reported() {
    let dir = std::env::temp_dir().join(format!("strata-fuzz-harness-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("boom"), b"\x01boom").unwrap();
    std::fs::write(dir.join("fine"), b"\x00fine").unwrap();
    fn check(data: &[u8]) {
        assert!(data[0] == 0, "deliberate: first byte {}", data[0]);
    }
    let failed = failures(check, &dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].contains("boom"), "{failed:?}");
    assert!(failed[0].contains("deliberate: first byte 1"), "{failed:?}");
}
