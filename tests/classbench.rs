//! `strata bench classbench` end to end: the per-packet answers on the ClassBench 10k sets
//! equal the reference first-match answers, and bad input exits 1 with a clear message.

use std::path::{Path, PathBuf};
use std::process::Command;

fn data_dir() -> PathBuf {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/bench-data/classbench"
    ));
    assert!(
        dir.is_dir(),
        "ClassBench data not found at {} (the shared bench-data checkout beside this repository)",
        dir.display()
    );
    dir
}

fn strata() -> Command {
    Command::new(env!("CARGO_BIN_EXE_strata"))
}

fn check_set(name: &str) {
    let dir = data_dir();
    let rules = dir.join(name);
    let trace = dir.join(format!("{name}_trace"));
    let expected_path = dir.join(format!("{name}_trace.expected"));
    let out = std::env::temp_dir().join(format!("strata-classbench-{}-{name}", std::process::id()));
    let run = strata()
        .args(["bench", "classbench", "--rules"])
        .arg(&rules)
        .arg("--trace")
        .arg(&trace)
        .arg("--matches")
        .arg(&out)
        .output()
        .expect("run strata");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "strata failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let first = stdout.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("rules=")
            && first.contains(" packets=")
            && first.contains(" build_ms=")
            && first.contains(" mpps="),
        "unexpected summary line: {first}"
    );
    let got = std::fs::read_to_string(&out).expect("read matches");
    let _ = std::fs::remove_file(&out);
    let expected = std::fs::read_to_string(&expected_path).expect("read expected");
    let got: Vec<&str> = got.lines().collect();
    let expected: Vec<&str> = expected.lines().collect();
    assert_eq!(
        got.len(),
        expected.len(),
        "{name}: one answer per trace line"
    );
    let wrong: Vec<usize> = (0..got.len()).filter(|&i| got[i] != expected[i]).collect();
    assert!(
        wrong.is_empty(),
        "{name}: {} of {} answers differ, first at trace line {} (got {}, expected {})",
        wrong.len(),
        got.len(),
        wrong[0] + 1,
        got[wrong[0]],
        expected[wrong[0]]
    );
}

#[test]
fn acl1_10k_matches_reference() {
    check_set("acl1_10k");
}

#[test]
fn fw1_10k_matches_reference() {
    check_set("fw1_10k");
}

#[test]
fn ipc1_10k_matches_reference() {
    check_set("ipc1_10k");
}

fn fails_with(rules: &Path, trace: &Path, needle: &str) {
    let run = strata()
        .args(["bench", "classbench", "--rules"])
        .arg(rules)
        .arg("--trace")
        .arg(trace)
        .output()
        .expect("run strata");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains(needle), "expected `{needle}` in: {stderr}");
}

#[test]
fn bad_input_exits_1_with_the_line() {
    let dir = std::env::temp_dir().join(format!("strata-classbench-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let rules = dir.join("rules");
    let trace = dir.join("trace");
    std::fs::write(
        &rules,
        "@10.0.0.0/8\t0.0.0.0/0\t0 : 65535\t80 : 80\t0x06/0xFF\t0x0000/0x0000\n\
         @10.0.0.0/40\t0.0.0.0/0\t0 : 65535\t80 : 80\t0x06/0xFF\t0x0000/0x0000\n",
    )
    .expect("write");
    std::fs::write(&trace, "167772161\t1\t1\t80\t6\n").expect("write");
    fails_with(&rules, &trace, "line 2");
    fails_with(&dir.join("missing"), &trace, "missing");

    std::fs::write(
        &rules,
        "@10.0.0.0/8\t0.0.0.0/0\t0 : 65535\t80 : 80\t0x06/0xFF\n",
    )
    .expect("write");
    std::fs::write(&trace, "167772161\t1\t1\t80\t6\nnot a packet\n").expect("write");
    fails_with(&rules, &trace, "line 2");
    let _ = std::fs::remove_dir_all(&dir);
}
