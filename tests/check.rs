//! `strata check FILE`: exit 0 with a summary for a good policy; exit 1, with every error
//! pointing at its line, for a broken or unreadable one.

use std::path::PathBuf;
use std::process::{Command, Output};

fn temp_policy(name: &str, text: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("strata-check-{}-{name}.toml", std::process::id()));
    std::fs::write(&path, text).expect("write temp policy");
    path
}

fn check(path: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("check")
        .arg(path)
        .output()
        .expect("run strata")
}

const GOOD: &str = r#"
[[network]]
name = "nat"
subnets = ["198.18.1.0/24"]

[[endpoint]]
name = "web"
network = "nat"
mac = "00:15:5d:01:01:0a"
ipv4 = "198.18.1.10"

[[endpoint.acl]]
action = "block"
direction = "out"
protocols = ["tcp"]
remote_ports = [23]

# A NAT network translates to the host's IPv4 address.
[host]
addresses = ["198.19.0.10"]
"#;

#[test]
fn good_policy_passes() {
    let path = temp_policy("good", GOOD);
    let out = check(&path);
    let _ = std::fs::remove_file(&path);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(": ok (1 networks, 1 endpoints, 3 rules)"),
        "{stdout}"
    );
}

#[test]
fn bundled_example_passes() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/policy.toml");
    let out = check(&path);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ok (2 networks, 4 endpoints, 12 rules)")
    );
}

#[test]
fn hns_json_example_passes() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/policy.hns.json");
    let out = check(&path);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ok (2 networks, 4 endpoints, 12 rules)")
    );
}

#[test]
fn broken_policy_fails_with_lines() {
    // Line 10: the address is outside the network; line 16: a port out of range.
    let broken = GOOD
        .replace("198.18.1.10", "198.18.9.10")
        .replace("remote_ports = [23]", "remote_ports = [65536]");
    let path = temp_policy("broken", &broken);
    let out = check(&path);
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = path.display().to_string();
    assert!(
        stderr.contains(&format!(
            "{file}:10:8: endpoint \"web\": ipv4 198.18.9.10 is outside"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{file}:16:17: endpoint \"web\" acl #1: remote_ports: port 65536"
        )),
        "{stderr}"
    );
}

#[test]
fn syntax_error_and_unreadable_file() {
    let path = temp_policy("syntax", "[[network]]\nname = \"nat\n");
    let out = check(&path);
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:2:", path.display())),
        "{stderr}"
    );

    let missing = std::env::temp_dir().join("strata-check-does-not-exist.toml");
    let out = check(&missing);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read policy file") && stderr.contains("does-not-exist"),
        "{stderr}"
    );
}
