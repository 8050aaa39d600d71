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

// ---- several files, HNS documents, import-hns, bad input ----

const WILD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/hns-wild/orig/");

fn strata(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .output()
        .expect("run strata")
}

/// What `strata check` says of every shared document given alone: 16 of 18 understood;
/// the two others refused for reasons the README's compatibility table lists.
#[test]
fn every_shared_document_alone() {
    let readme = include_str!("../README.md");
    let table = &readme[readme
        .find("## HNS compatibility")
        .expect("the compatibility section")..];
    let mut understood = 0;
    for entry in std::fs::read_dir(WILD).expect("../shared/hns-wild/orig") {
        let path = entry.expect("entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let out = strata(&["check", path.to_str().unwrap()]);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        match name.as_str() {
            "wcn_l2bridge_dualstack_template.json" => {
                assert_eq!(out.status.code(), Some(1));
                assert!(
                    stderr.contains("template placeholder `{{TYPE}}` is not filled in"),
                    "{stderr}"
                );
                assert!(
                    table.contains("`{{...}}` placeholders"),
                    "README table: placeholders"
                );
            }
            "sdn_hns_psm1_elb_policylist.json" => {
                assert_eq!(out.status.code(), Some(1));
                assert!(
                    stderr.contains(
                        "is not among the files given: HNS links policies to endpoints by GUID"
                    ),
                    "{stderr}"
                );
                assert!(
                    table.contains("endpoint it references"),
                    "README table: references"
                );
            }
            _ => {
                assert_eq!(out.status.code(), Some(0), "{name}: {stderr}");
                assert!(
                    stdout.contains(": ok (1 networks")
                        || stdout.contains("endpoint template of host"),
                    "{name}: {stdout}"
                );
                understood += 1;
            }
        }
    }
    assert_eq!(understood, 16);
}

#[test]
fn several_files_make_one_policy_with_warnings_at_their_lines() {
    let dir = std::env::temp_dir().join(format!("strata-check-multi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let host = dir.join("host.toml");
    std::fs::write(
        &host,
        "[host]\naddresses = [\"198.19.0.10\"]\n[[network]]\nname = \"cbr0\"\ndriver = \"l2bridge\"\n\
         subnets = [\"198.18.1.0/24\"]\n[[endpoint]]\nname = \"pod\"\nnetwork = \"cbr0\"\n\
         mac = \"00:15:5d:01:01:0a\"\nipv4 = \"198.18.1.10\"\n",
    )
    .unwrap();
    let cni = format!("{WILD}sdn_flannel_l2bridge_cni.json");
    let out = strata(&["check", host.to_str().unwrap(), &cni]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains(&format!(
            "{} + {cni}: ok (1 networks, 1 endpoints, 5 rules)",
            host.display()
        )),
        "{stdout}"
    );
    assert!(stdout.contains("endpoint template of network \"cbr0\": ACLs 0, OutBoundNATs 1, routes 2; endpoints that get it: 1"), "{stdout}");
    assert!(
        stderr.contains(&format!(
            "{cni}:7:22: CNI configuration \"cbr0\": warning: `dns` is not used"
        )),
        "{stderr}"
    );

    // import-hns prints TOML that checks alone to the same counts.
    let out = strata(&["import-hns", host.to_str().unwrap(), &cni]);
    assert_eq!(out.status.code(), Some(0));
    let imported = dir.join("imported.toml");
    std::fs::write(&imported, &out.stdout).unwrap();
    let again = strata(&["check", imported.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("ok (1 networks, 1 endpoints, 5 rules)")
    );

    // An error in one file names that file; import-hns refuses likewise.
    let template = format!("{WILD}wcn_l2bridge_dualstack_template.json");
    for cmd in ["check", "import-hns"] {
        let out = strata(&[cmd, host.to_str().unwrap(), &template]);
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!(
                "{template}:3:13: template: template placeholder `{{{{NAME}}}}`"
            )),
            "{stderr}"
        );
        assert!(out.stdout.is_empty());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unbounded_and_undecodable_input_is_refused() {
    let out = strata(&["check", "/dev/zero"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(
        "/dev/zero: the policy is larger than 16 MiB (all files together): refused unread"
    ));

    let path = temp_policy("utf8", "[host]\nname = \"up\u{1}link\"\n");
    std::fs::write(&path, b"[host]\nname = \"up\xfflink\"\n").unwrap();
    let out = check(&path);
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:2:11: file: invalid UTF-8 (byte 0xff)",
            path.display()
        )),
        "{stderr}"
    );
}

/// The README's CNI example prints what the README says.
#[test]
fn readme_cni_example() {
    let readme = include_str!("../README.md");
    let section = &readme[readme
        .find("$ cat host.toml\n")
        .expect("the README example")..];
    let host = &section["$ cat host.toml\n".len()..section.find("$ cat cni.conf").unwrap()];
    let rest = &section[section.find("$ cat cni.conf\n").unwrap() + "$ cat cni.conf\n".len()..];
    let cni = &rest[..rest.find("$ strata check").unwrap()];
    let marker = "$ strata check host.toml cni.conf\n";
    let output = &rest[rest.find(marker).unwrap() + marker.len()..];
    let output = &output[..output.find("```").unwrap()];
    let dir = std::env::temp_dir().join(format!("strata-readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("host.toml"), host).unwrap();
    std::fs::write(dir.join("cni.conf"), cni).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .current_dir(&dir)
        .args(["check", "host.toml", "cni.conf"])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        output,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
