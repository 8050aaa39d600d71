//! `strata lab up|down`: the bundled example (`examples/policy.toml`) built as a real
//! host in network namespaces, switched by `strata run`, so that one can see Strata
//! carry real traffic in a minute:
//!
//! ```text
//!  web 198.18.1.10 ─┐                                   ┌─ ext 198.19.0.100 (outside)
//!  db  198.18.1.11 ─┤  host: strata run                 │
//!  client .1.12 ────┤  (no addresses; Strata owns       ├─ remote 198.19.0.20: a Linux
//!  api 198.18.2.10 ─┘   198.19.0.10 and the gateways) ──┘  VXLAN host, 198.18.3.1
//!                        uplink ── net (the physical segment: a plain bridge)
//! ```
//!
//! Namespaces are named `PREFIX-ROLE` (`strata-lab-web`...); `--name` picks another
//! prefix (tests use one per run). Needs root, iproute2 and ethtool.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::Failure;

const EXAMPLE: &str = include_str!("../examples/policy.toml");

#[derive(clap::Subcommand)]
pub enum LabCommand {
    /// Build the lab and start Strata in it; prints what to try.
    Up {
        /// Namespace prefix.
        #[arg(long, default_value = "strata-lab")]
        name: String,
        /// Worker threads of the lab's Strata.
        #[arg(long, default_value_t = 1)]
        workers: usize,
    },
    /// Stop Strata and remove the lab.
    Down {
        #[arg(long, default_value = "strata-lab")]
        name: String,
    },
}

/// The example's containers: (name, MAC, address/prefix, gateway).
const CONTAINERS: [(&str, &str, &str, &str); 4] = [
    ("web", "00:15:5d:01:01:0a", "198.18.1.10/24", "198.18.1.1"),
    ("db", "00:15:5d:01:01:0b", "198.18.1.11/24", "198.18.1.1"),
    (
        "client",
        "00:15:5d:01:01:0c",
        "198.18.1.12/24",
        "198.18.1.1",
    ),
    ("api", "00:15:5d:02:02:0a", "198.18.2.10/24", "198.18.2.1"),
];
/// The remote overlay host's VXLAN MAC: the inner destination of what `api` sends it.
const REMOTE_VXLAN_MAC: &str = "02:00:00:00:03:01";

pub fn run(c: LabCommand) -> Result<(), Failure> {
    match c {
        LabCommand::Up { name, workers } => up(&name, workers),
        LabCommand::Down { name } => down(&name),
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

/// The example policy with the lab's interfaces named (and the remote host's MAC).
pub fn lab_policy() -> String {
    let mut out = String::new();
    let mut endpoint = false;
    for line in EXAMPLE.lines() {
        out.push_str(line);
        out.push('\n');
        let t = line.trim();
        if t.starts_with('[') {
            endpoint = t == "[[endpoint]]";
        }
        if t == "[host]" {
            out.push_str("interface = \"uplink\"\n");
        }
        if endpoint && let Some(n) = t.strip_prefix("name = ") {
            out.push_str(&format!("interface = {n}\n"));
        }
        if t == "provider_address = \"198.19.0.20\"" {
            out.push_str(&format!("mac = \"{REMOTE_VXLAN_MAC}\"\n"));
        }
    }
    out
}

fn state_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(name)
}

/// Runs `args`; a failure is a runtime failure naming the command.
fn sh(args: &[&str]) -> Result<(), Failure> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| Failure::Runtime(format!("{}: {e}", args[0])))?;
    if !out.status.success() {
        return Err(Failure::Runtime(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

struct Lab<'a> {
    prefix: &'a str,
}

impl Lab<'_> {
    fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    fn ip(&self, role: &str, args: &str) -> Result<(), Failure> {
        let ns = self.ns(role);
        let mut v = vec!["ip", "-n", &ns];
        v.extend(args.split_whitespace());
        sh(&v)
    }

    fn exec(&self, role: &str, args: &[&str]) -> Result<(), Failure> {
        let ns = self.ns(role);
        let mut v = vec!["ip", "netns", "exec", &ns];
        v.extend(args);
        sh(&v)
    }

    fn add(&self, role: &str) -> Result<(), Failure> {
        sh(&["ip", "netns", "add", &self.ns(role)])?;
        self.ip(role, "link set dev lo up")
    }

    /// A veth pair `a:a_if` — `b:b_if`, up, offloads that would hand Strata frames
    /// larger than the wire off, and no IPv6 on `a`'s side when `a` is Strata's host.
    fn veth(&self, a: &str, a_if: &str, b: &str, b_if: &str) -> Result<(), Failure> {
        self.ip(
            a,
            &format!(
                "link add {a_if} type veth peer name {b_if} netns {}",
                self.ns(b)
            ),
        )?;
        if a == "host" {
            self.exec(
                a,
                &[
                    "sysctl",
                    "-qw",
                    &format!("net.ipv6.conf.{a_if}.disable_ipv6=1"),
                ],
            )?;
        }
        for (ns, i) in [(a, a_if), (b, b_if)] {
            self.ip(ns, &format!("link set dev {i} up"))?;
            self.exec(
                ns,
                &["ethtool", "-K", i, "tso", "off", "gso", "off", "gro", "off"],
            )?;
        }
        Ok(())
    }
}

fn up(prefix: &str, workers: usize) -> Result<(), Failure> {
    if !is_root() {
        return Err(Failure::Input(
            "strata lab needs root (network namespaces, veth pairs, AF_PACKET)".into(),
        ));
    }
    for (tool, package) in [("ip", "iproute2"), ("ethtool", "ethtool")] {
        let found = Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            return Err(Failure::Input(format!(
                "strata lab needs `{tool}` (apt-get install {package})"
            )));
        }
    }
    let lab = Lab { prefix };
    // A lab left over from an earlier `up` goes first.
    let _ = down_quietly(prefix);
    let built = build(&lab);
    if let Err(e) = built {
        let _ = down_quietly(prefix);
        return Err(e);
    }
    let dir = state_dir(prefix);
    std::fs::create_dir_all(&dir)
        .map_err(|e| Failure::Runtime(format!("{}: {e}", dir.display())))?;
    let config = dir.join("policy.toml");
    std::fs::write(&config, lab_policy())
        .map_err(|e| Failure::Runtime(format!("{}: {e}", config.display())))?;
    let www = dir.join("www");
    let _ = std::fs::create_dir_all(&www);
    let _ = std::fs::write(www.join("index.html"), "Hello from web, through Strata\n");
    let log = dir.join("strata.log");
    if let Err(e) = start(&lab, &config, &log, workers, &dir) {
        let _ = down_quietly(prefix);
        return Err(e);
    }
    let n = |r: &str| lab.ns(r);
    println!(
        "Strata is switching the example host (log: {log}; policy: {config}).\n\
         \n\
         Try:\n\
         \x20 ip netns exec {client} ping -c 3 198.18.1.10          # client -> web, same NAT network\n\
         \x20 ip netns exec {web} ping -c 3 198.18.1.1              # the gateway (Strata answers)\n\
         \x20 ip netns exec {web} ping -c 3 198.19.0.100            # to the outside, SNAT to 198.19.0.10\n\
         \x20 ip netns exec {api} ping -c 3 198.18.3.1              # overlay: VXLAN to the remote host\n\
         \x20 ip netns exec {web} busybox httpd -p 80 -h {www}   # a web server in web...\n\
         \x20 ip netns exec {ext} busybox wget -qO- http://198.19.0.10:8080/ | head   # ...through the port mapping\n\
         \x20 ip netns exec {db} iperf3 -s -1 -p 5432 &            # db accepts only web on 5432:\n\
         \x20 ip netns exec {web} iperf3 -c 198.18.1.11 -p 5432 -t 3     # TCP through Strata\n\
         \x20 ip netns exec {client} iperf3 -c 198.18.1.11 -p 5432 -t 3  # blocked by db's ACL\n\
         \x20 ip netns exec {db} iperf3 -s -1 -p 9000 &             # UDP between containers:\n\
         \x20 ip netns exec {client} iperf3 -u -c 198.18.1.11 -p 9000 -t 2\n\
         \x20 ip netns exec {ext} iperf3 -s -1 -p 9001 &            # UDP to the outside (SNAT):\n\
         \x20 ip netns exec {web} iperf3 -u -c 198.19.0.100 -p 9001 -t 2\n\
         \x20 tail -f {log}                                          # a summary line every 10 s\n\
         \x20 strata ctl --socket {sock} ports                  # ports, counters (also: layers db, flows, stats)\n\
         \n\
         Stop and clean up: strata lab down{down}",
        client = n("client"),
        web = n("web"),
        api = n("api"),
        ext = n("ext"),
        db = n("db"),
        log = log.display(),
        www = www.display(),
        sock = dir.join("strata.sock").display(),
        config = config.display(),
        down = if prefix == "strata-lab" {
            String::new()
        } else {
            format!(" --name {prefix}")
        },
    );
    Ok(())
}

fn build(lab: &Lab<'_>) -> Result<(), Failure> {
    for role in ["host", "net", "ext", "remote"] {
        lab.add(role)?;
    }
    lab.ip("net", "link add br0 type bridge")?;
    lab.ip("net", "link set dev br0 up")?;
    for (role, port) in [("host", "phost"), ("ext", "pext"), ("remote", "premote")] {
        let ifname = if role == "host" { "uplink" } else { "eth0" };
        lab.veth("net", port, role, ifname)?;
        lab.ip("net", &format!("link set dev {port} master br0"))?;
    }
    lab.ip("ext", "addr add 198.19.0.100/24 dev eth0")?;
    for (name, mac, addr, gw) in CONTAINERS {
        lab.add(name)?;
        lab.veth("host", name, name, "eth0")?;
        lab.ip(name, &format!("link set dev eth0 address {mac}"))?;
        lab.ip(name, &format!("addr add {addr} dev eth0"))?;
        lab.ip(name, &format!("route add default via {gw}"))?;
    }
    // Room for the 50 bytes of VXLAN on the overlay.
    lab.ip("api", "link set dev eth0 mtu 1450")?;
    // The remote overlay host: a Linux VXLAN device for VNI 4096, 198.18.3.0/24.
    lab.ip("remote", "addr add 198.19.0.20/24 dev eth0")?;
    lab.ip(
        "remote",
        "link add vxlan0 type vxlan id 4096 dstport 4789 local 198.19.0.20 dev eth0 nolearning",
    )?;
    lab.ip(
        "remote",
        &format!("link set dev vxlan0 address {REMOTE_VXLAN_MAC}"),
    )?;
    lab.ip("remote", "addr add 198.18.3.1/24 dev vxlan0")?;
    lab.ip("remote", "link set dev vxlan0 up")?;
    lab.ip("remote", "route add 198.18.2.0/24 dev vxlan0")?;
    lab.ip(
        "remote",
        "neigh replace 198.18.2.10 lladdr 00:15:5d:02:02:0a dev vxlan0",
    )?;
    lab.exec(
        "remote",
        &[
            "bridge",
            "fdb",
            "append",
            "00:15:5d:02:02:0a",
            "dev",
            "vxlan0",
            "dst",
            "198.19.0.10",
        ],
    )?;
    Ok(())
}

/// Starts `strata run` in the lab's host, detached, and waits until it runs.
fn start(
    lab: &Lab<'_>,
    config: &Path,
    log: &Path,
    workers: usize,
    dir: &Path,
) -> Result<(), Failure> {
    let exe = std::env::current_exe()
        .map_err(|e| Failure::Runtime(format!("finding the strata binary: {e}")))?;
    let out = std::fs::File::create(log)
        .map_err(|e| Failure::Runtime(format!("{}: {e}", log.display())))?;
    let err = out
        .try_clone()
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    let child = Command::new("setsid")
        .args(["ip", "netns", "exec", &lab.ns("host")])
        .arg(&exe)
        .arg("run")
        .arg("--config")
        .arg(config)
        .arg("--control")
        .arg(dir.join("strata.sock"))
        .args(["--workers", &workers.to_string()])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| Failure::Runtime(format!("starting strata run: {e}")))?;
    std::fs::write(dir.join("pid"), child.id().to_string())
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("running;") {
            return Ok(());
        }
        if text.contains("strata: ") {
            return Err(Failure::Runtime(format!("strata run failed:\n{text}")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(Failure::Runtime(format!(
        "strata run did not start within 10 s; see {}",
        log.display()
    )))
}

fn down(prefix: &str) -> Result<(), Failure> {
    if !is_root() {
        return Err(Failure::Input("strata lab needs root".into()));
    }
    let removed = down_quietly(prefix);
    println!("lab {prefix}: removed {removed} namespaces");
    Ok(())
}

/// Stops the lab's Strata and deletes its namespaces; returns how many.
fn down_quietly(prefix: &str) -> usize {
    let dir = state_dir(prefix);
    if let Ok(pid) = std::fs::read_to_string(dir.join("pid")) {
        // `setsid` made Strata the leader of its own process group: signal it whole.
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", pid.trim())])
            .stderr(Stdio::null())
            .status();
        std::thread::sleep(Duration::from_millis(300));
    }
    let roles = ["host", "net", "ext", "remote", "web", "db", "client", "api"];
    let mut n = 0;
    for r in roles {
        let ok = Command::new("ip")
            .args(["netns", "del", &format!("{prefix}-{r}")])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        n += usize::from(ok);
    }
    let _ = std::fs::remove_dir_all(&dir);
    n
}
