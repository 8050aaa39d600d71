//! `strata run`'s life: it refuses to start, with exit 1 and a message saying why, when
//! an interface is missing, the policy is invalid or it lacks privileges; it stops
//! cleanly on SIGTERM; started again, it runs the policy file as it is now, and new
//! connections work at once.

mod netlab;

use std::process::{Command, Stdio};

use netlab::{Lab, prerequisites, skip, start, tcp};

fn policy(blocked_port: u16) -> String {
    format!(
        r#"
[host]
mac = "02:00:00:00:10:01"
addresses = ["198.19.16.10"]

[[network]]
name = "nat"
driver = "nat"
subnets = ["198.18.16.0/24"]
gateway = "198.18.16.1"

[[endpoint]]
name = "a"
network = "nat"
mac = "00:15:5d:10:00:0a"
ipv4 = "198.18.16.10"
interface = "ep-a"

[[endpoint]]
name = "b"
network = "nat"
mac = "00:15:5d:10:00:0b"
ipv4 = "198.18.16.11"
interface = "ep-b"

[[endpoint.acl]]
id = "block"
action = "block"
direction = "in"
protocols = ["tcp"]
local_ports = ["{blocked_port}"]
priority = 100
"#
    )
}

/// Runs `strata run` in `ns` as given (plus `prefix`, e.g. to drop privileges); returns
/// its exit code and stderr. Bounded: a run that does not exit within 10 s is killed.
fn run_once(ns: &str, prefix: &[&str], config: &std::path::Path) -> (Option<i32>, String) {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).args(prefix);
    cmd.arg(env!("CARGO_BIN_EXE_strata"))
        .arg("run")
        .arg("--config")
        .arg(config)
        .arg("--control")
        .arg(config.with_extension("sock"));
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run strata");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while child.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("strata output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_starts_exit_1_saying_why() {
    if let Err(why) = prerequisites() {
        return skip("run_lifecycle bad starts", &why);
    }
    let mut lab = Lab::new("bad");
    let host = lab.ns("host");
    lab.container(
        &host,
        "ep-a",
        "ca",
        "00:15:5d:10:00:0a",
        &["198.18.16.10/24"],
        None,
    );

    // Interface `ep-b` does not exist in this host.
    let missing = lab.path("missing.toml");
    std::fs::write(&missing, policy(5432)).expect("write");
    let (code, err) = run_once(&host, &[], &missing);
    assert_eq!(code, Some(1), "missing interface: {err}");
    assert!(
        err.contains("interface `ep-b` not found"),
        "says which interface: {err}"
    );

    let invalid = lab.path("invalid.toml");
    std::fs::write(&invalid, "[host]\nmac = \"not-a-mac\"\n").expect("write");
    let (code, err) = run_once(&host, &[], &invalid);
    assert_eq!(code, Some(1), "invalid policy: {err}");
    assert!(
        err.contains("invalid policy") && err.contains("not-a-mac"),
        "says what is wrong: {err}"
    );

    // Only interface `ep-a`: fine for root, refused to an unprivileged user.
    let only_a = lab.path("only-a.toml");
    let text = policy(5432).replace("interface = \"ep-b\"", "");
    std::fs::write(&only_a, text).expect("write");
    let unprivileged = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
    ];
    let (code, err) = run_once(&host, &unprivileged, &only_a);
    assert_eq!(code, Some(1), "unprivileged: {err}");
    assert!(err.contains("CAP_NET_RAW"), "says which privilege: {err}");
}

#[test]
fn stop_and_start_reloads_the_file_and_new_connections_work_at_once() {
    if let Err(why) = prerequisites() {
        return skip("run_lifecycle stop and start", &why);
    }
    let mut lab = Lab::new("life");
    let host = lab.ns("host");
    let a = lab.container(
        &host,
        "ep-a",
        "ca",
        "00:15:5d:10:00:0a",
        &["198.18.16.10/24"],
        Some("198.18.16.1"),
    );
    let b = lab.container(
        &host,
        "ep-b",
        "cb",
        "00:15:5d:10:00:0b",
        &["198.18.16.11/24"],
        Some("198.18.16.1"),
    );
    lab.strata(&host, &policy(5432), 1);
    let config = lab.stratas[0].config.clone();
    assert!(
        tcp(&b, "198.18.16.11:5432", &a, "198.18.16.11:5432").is_err(),
        "5432 blocked"
    );
    tcp(&b, "198.18.16.11:7000", &a, "198.18.16.11:7000").expect("7000 open");

    let status = lab.stratas[0].stop();
    assert!(
        status.is_some_and(|s| s.success()),
        "SIGTERM: exit 0 within 5 s, got {status:?}\n{}",
        lab.stratas[0].log()
    );
    std::fs::write(&config, policy(7000)).expect("rewrite policy");
    let again = start(&host, &config, 1);
    lab.stratas.push(again);
    // At once: no wait between the start and the first connection.
    tcp(&b, "198.18.16.11:5432", &a, "198.18.16.11:5432").expect("5432 open after the reload");
    assert!(
        tcp(&b, "198.18.16.11:7000", &a, "198.18.16.11:7000").is_err(),
        "7000 blocked now"
    );
}

/// `--flows` bounds the tables; zero is refused before anything starts (no privilege
/// or interface needed to say so).
#[test]
fn a_table_size_of_zero_is_refused() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "run",
            "--config",
            "examples/policy.toml",
            "--flows",
            "0",
            "--preallocate",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("strata runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--flows"), "names the option: {err}");
}

/// Tables sized at start must fit the machine: refused with the figures before anything
/// starts, never an allocation failure in a worker.
#[test]
fn a_preallocation_beyond_the_memory_is_refused() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["run", "--config", "examples/policy.toml"])
        .args(["--flows", "67108864", "--workers", "64", "--preallocate"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("strata runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--preallocate") && err.contains("GB"), "{err}");
}
