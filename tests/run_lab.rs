//! `strata lab up` builds the bundled example as a real host and Strata carries its
//! traffic (a container to another, to the outside through SNAT, across the overlay to
//! a Linux VXLAN host); `strata lab down` removes it all.

mod netlab;

use std::process::Command;

use netlab::{ping, prerequisites, skip};

fn lab(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("lab")
        .args(args)
        .output()
        .expect("run strata lab");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Takes the lab down even when an assertion fails.
struct Down(String);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = lab(&["down", "--name", &self.0]);
    }
}

#[test]
fn lab_up_carries_the_examples_traffic_and_down_removes_it() {
    if let Err(why) = prerequisites() {
        return skip("run_lab", &why);
    }
    let name = format!("s11-{}-lab", std::process::id());
    let down = Down(name.clone());
    let (ok, out) = lab(&["up", "--name", &name]);
    assert!(ok, "strata lab up failed:\n{out}");
    assert!(out.contains("ping"), "it says what to try:\n{out}");
    let ns = |r: &str| format!("{name}-{r}");
    assert!(ping(&ns("client"), "198.18.1.10", 3), "client -> web");
    assert!(ping(&ns("web"), "198.19.0.100", 3), "web -> outside");
    assert!(
        ping(&ns("api"), "198.18.3.1", 3),
        "api -> remote overlay host"
    );
    drop(down);
    let list = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    assert!(
        !String::from_utf8_lossy(&list.stdout).contains(&name),
        "strata lab down removed the namespaces"
    );
}
