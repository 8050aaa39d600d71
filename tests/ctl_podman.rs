//! Real containers on Strata (../shared/lab/podman.md): podman runs two busybox
//! containers on a CNI network whose plugin is `strata-cni`, attached to a `strata run`
//! in the host namespace whose uplink is a veth to an "outside" namespace. The containers
//! reach each other and the outside (SNAT) through Strata; an ACL added with `strata ctl`
//! blocks the next packet and its removal lets the next one through; `podman rm`
//! detaches the endpoint and removes its veth.
//!
//! Needs root, podman, runc and a static busybox: skipped with a message without them,
//! a failure when `CI` is set. Addresses: 198.18.32.0/24 (containers), 198.19.32.0/24
//! (outside); names `s10-PID-*`; everything is removed at the end, also on failure.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn skip(why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "ctl_podman: {why} (CI is set, so this is a failure: .ci/run installs podman, runc, \
         containernetworking-plugins and busybox-static)"
    );
    eprintln!("ctl_podman: SKIPPED: {why}");
}

fn prerequisites() -> Result<(), String> {
    if unsafe { libc::geteuid() } != 0 {
        return Err("needs root".into());
    }
    for (tool, arg) in [("podman", "--version"), ("runc", "--version"), ("ip", "-V")] {
        let ok = Command::new(tool)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err(format!("`{tool}` not found"));
        }
    }
    if !Path::new("/usr/lib/cni/host-local").exists() {
        return Err("/usr/lib/cni/host-local not found (containernetworking-plugins)".into());
    }
    if busybox().is_none() {
        return Err("no static busybox (busybox-static)".into());
    }
    Ok(())
}

fn busybox() -> Option<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn run(program: &str, args: &[&str]) -> (bool, String) {
    match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) => (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ),
        Err(e) => (false, e.to_string()),
    }
}

fn sh(program: &str, args: &[&str]) -> String {
    let (ok, out) = run(program, args);
    assert!(ok, "{program} {}: {out}", args.join(" "));
    out
}

/// Everything the test made, removed on drop.
struct Lab {
    tag: String,
    dir: tempfile::TempDir,
    strata: Option<Child>,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Lab {
    fn name(&self, role: &str) -> String {
        format!("{}-{role}", self.tag)
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn podman(&self, args: &[&str]) -> (bool, String) {
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINERS_CONF", self.path("containers.conf"))
            .arg("--root")
            .arg(self.path("storage"))
            .arg("--runroot")
            .arg(self.path("runroot"))
            .arg("--tmpdir")
            .arg(self.path("libpod"))
            .args(args)
            .stdin(Stdio::null());
        match cmd.output() {
            Ok(o) => (
                o.status.success(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ),
            ),
            Err(e) => (false, e.to_string()),
        }
    }

    fn ctl(&self, args: &[&str]) -> (bool, String) {
        let sock = self.path("strata.sock");
        let mut all = vec!["ctl", "--socket", sock.to_str().unwrap_or_default()];
        all.extend_from_slice(args);
        run(env!("CARGO_BIN_EXE_strata"), &all)
    }

    fn ports(&self) -> Vec<serde_json::Value> {
        let (ok, out) = self.ctl(&["ports", "--json"]);
        assert!(ok, "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        v["ok"]["ports"].as_array().cloned().unwrap_or_default()
    }

    fn ping(&self, from: &str, to: &str) -> bool {
        let c = self.name(from);
        self.podman(&["exec", &c, "ping", "-c", "1", "-W", "2", to])
            .0
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in ["c1", "c2"] {
            let _ = self.podman(&["rm", "-f", "-t", "0", &self.name(c)]);
        }
        if let Some(mut s) = self.strata.take() {
            unsafe { libc::kill(s.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while s.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = s.kill();
            let _ = s.wait();
        }
        let _ = run("ip", &["link", "del", &self.name("up")]);
        let _ = run("ip", &["netns", "del", &self.name("ext")]);
        if std::thread::panicking() {
            eprintln!(
                "strata run log:\n{}",
                self.log.lock().map(|l| l.clone()).unwrap_or_default()
            );
        }
    }
}

#[test]
fn podman_containers_on_strata_cni() {
    if let Err(why) = prerequisites() {
        return skip(&why);
    }
    let mut lab = Lab {
        tag: format!("s10-{}", std::process::id()),
        dir: tempfile::tempdir().expect("temp dir"),
        strata: None,
        log: Default::default(),
    };
    // The outside: a namespace at the end of the uplink veth.
    let (up, upx, ext) = (lab.name("up"), lab.name("upx"), lab.name("ext"));
    sh("ip", &["netns", "add", &ext]);
    sh(
        "ip",
        &["link", "add", &up, "type", "veth", "peer", "name", &upx],
    );
    sh("ip", &["link", "set", &upx, "netns", &ext]);
    sh(
        "ip",
        &["-n", &ext, "addr", "add", "198.19.32.1/24", "dev", &upx],
    );
    sh("ip", &["-n", &ext, "link", "set", &upx, "up"]);
    sh("ip", &["-n", &ext, "link", "set", "lo", "up"]);
    sh("ip", &["link", "set", &up, "up"]);
    for (ns, i) in [(None, up.as_str()), (Some(ext.as_str()), upx.as_str())] {
        let args = ["-K", i, "tso", "off", "gso", "off", "gro", "off"];
        let _ = match ns {
            Some(ns) => run(
                "ip",
                &[&["netns", "exec", ns, "ethtool"][..], &args].concat(),
            ),
            None => run("ethtool", &args),
        };
    }
    let mac = {
        let out = sh("ip", &["-j", "link", "show", &up]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j");
        v[0]["address"].as_str().expect("uplink MAC").to_string()
    };

    // Strata, with no endpoint yet: CNI attaches them.
    let policy = format!(
        "[host]\nname = \"uplink\"\nmac = \"{mac}\"\naddresses = [\"198.19.32.10\"]\n\
         interface = \"{up}\"\n\n[[network]]\nname = \"nat\"\ndriver = \"nat\"\n\
         subnets = [\"198.18.32.0/24\"]\ngateway = \"198.18.32.1\"\n"
    );
    std::fs::write(lab.path("policy.toml"), policy).expect("policy");
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("run")
        .arg("--config")
        .arg(lab.path("policy.toml"))
        .arg("--control")
        .arg(lab.path("strata.sock"))
        .args(["--interval", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("strata run");
    let (ready_tx, ready_rx) = mpsc::channel();
    if let Some(err) = child.stderr.take() {
        let log = std::sync::Arc::clone(&lab.log);
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if line.contains("running;") {
                    let _ = ready_tx.send(());
                }
                if let Ok(mut l) = log.lock() {
                    l.push_str(&line);
                    l.push('\n');
                }
            }
        });
    }
    lab.strata = Some(child);
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("strata run is ready");

    // podman, privately configured, with a CNI network of strata-cni.
    let bin = lab.path("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    std::fs::copy(env!("CARGO_BIN_EXE_strata-cni"), bin.join("strata-cni")).expect("plugin");
    let net_d = lab.path("net.d");
    std::fs::create_dir_all(&net_d).expect("net.d");
    let net = lab.tag.clone();
    let conflist = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": net,
        "plugins": [{
            "type": "strata-cni",
            "socket": lab.path("strata.sock"),
            "network": "nat",
            "ipam": {
                "type": "host-local",
                "dataDir": lab.path("ipam"),
                "ranges": [[{"subnet": "198.18.32.0/24", "rangeStart": "198.18.32.10",
                             "rangeEnd": "198.18.32.50", "gateway": "198.18.32.1"}]],
                "routes": [{"dst": "0.0.0.0/0"}]
            }
        }]
    });
    std::fs::write(net_d.join(format!("{net}.conflist")), conflist.to_string()).expect("conflist");
    std::fs::write(
        lab.path("containers.conf"),
        format!(
            "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n\
             [engine]\nruntime = \"runc\"\nevents_logger = \"none\"\ncgroup_manager = \"cgroupfs\"\n\
             [network]\nnetwork_backend = \"cni\"\nnetwork_config_dir = \"{}\"\n\
             cni_plugin_dirs = [\"{}\", \"/usr/lib/cni\"]\n",
            net_d.display(),
            bin.display()
        ),
    )
    .expect("containers.conf");
    let rootfs = lab.path("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).expect("rootfs");
    let bb = busybox().expect("busybox");
    std::fs::copy(&bb, rootfs.join("bin/busybox")).expect("busybox copy");
    for applet in sh(bb.to_str().unwrap_or_default(), &["--list"]).lines() {
        if applet != "busybox" && !applet.is_empty() {
            let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
        }
    }
    for c in ["c1", "c2"] {
        let (ok, out) = lab.podman(&[
            "run",
            "-d",
            "--name",
            &lab.name(c),
            "--network",
            &net,
            "--cap-add",
            "NET_RAW",
            "--rootfs",
            rootfs.to_str().unwrap_or_default(),
            "/bin/sh",
            "-c",
            "sleep 300",
        ]);
        assert!(ok, "podman run {c}: {out}");
    }

    // Both attached, with their addresses.
    let ports = lab.ports();
    assert_eq!(ports.len(), 2, "{ports:?}");
    let ip_of = |i: usize| ports[i]["ips"][0].as_str().unwrap_or_default().to_string();
    let (ip1, ip2) = (ip_of(0), ip_of(1));
    assert!(ip1.starts_with("198.18.32.") && ip2.starts_with("198.18.32."));
    let name2 = ports[1]["name"].as_str().unwrap_or_default().to_string();
    let veth2 = ports[1]["interface"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let inspect = lab.podman(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
        &lab.name("c2"),
    ]);
    assert!(
        inspect.1.contains(&ip2),
        "podman sees the CNI result: {}",
        inspect.1
    );

    // Container to container, and to the outside (SNAT to 198.19.32.10).
    assert!(lab.ping("c1", &ip2), "c1 -> c2\n{}", lab.ctl(&["stats"]).1);
    assert!(lab.ping("c2", &ip1), "c2 -> c1");
    assert!(
        lab.ping("c1", "198.19.32.1"),
        "c1 -> outside\n{}",
        lab.ctl(&["stats"]).1
    );
    let (_, flows) = lab.ctl(&["flows"]);
    assert!(
        flows.contains("198.19.32.10"),
        "the SNAT shows in flows:\n{flows}"
    );

    // An ACL through strata ctl: the very next packet is blocked; removed, it passes.
    let acl = lab.path("no-ping.toml");
    std::fs::write(
        &acl,
        "[[acl]]\nid = \"no-ping\"\naction = \"block\"\ndirection = \"in\"\nprotocols = [\"icmp\"]\npriority = 10\n",
    )
    .expect("acl");
    let (ok, out) = lab.ctl(&["rule", "add", &name2, acl.to_str().unwrap_or_default()]);
    assert!(ok, "{out}");
    assert!(!lab.ping("c1", &ip2), "blocked at once by the new ACL");
    let (_, layers) = lab.ctl(&["layers", &name2]);
    let row = layers
        .lines()
        .find(|l| l.contains("no-ping"))
        .unwrap_or_default();
    assert!(row.contains("block"), "{layers}");
    assert!(lab.ping("c2", &ip1), "c2's outbound is untouched");
    let (ok, out) = lab.ctl(&["rule", "remove", &name2, "no-ping"]);
    assert!(ok, "{out}");
    assert!(lab.ping("c1", &ip2), "passes again once removed");

    // CHECK, as a runtime other than podman 4.3 would send it: c1 is in order; a
    // container the service does not know is an error object.
    let conf = conflist["plugins"][0].clone();
    let mut conf = conf.as_object().cloned().unwrap_or_default();
    conf.insert("cniVersion".into(), "1.0.0".into());
    conf.insert("name".into(), net.clone().into());
    let conf = serde_json::Value::Object(conf).to_string();
    let (_, ids) = lab.podman(&[
        "inspect",
        "-f",
        "{{.Id}} {{.NetworkSettings.SandboxKey}}",
        &lab.name("c1"),
        &lab.name("c2"),
    ]);
    let ids: Vec<(String, String)> = ids
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(ids.len(), 2, "podman inspect: {ids:?}");
    let plugin = |command: &str, id: &str, netns: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_strata-cni"))
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", "/usr/lib/cni")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("strata-cni");
        if let Some(mut i) = child.stdin.take() {
            let _ = std::io::Write::write_all(&mut i, conf.as_bytes());
        }
        let out = child.wait_with_output().expect("strata-cni output");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let (ok, out) = plugin("CHECK", &ids[0].0, &ids[0].1);
    assert!(ok, "CHECK c1: {out}");
    let (ok, out) = plugin("CHECK", "0123456789abcdef", &ids[0].1);
    assert!(
        !ok && out.contains("\"code\":103"),
        "CHECK of a stranger: {out}"
    );

    // podman rm: DEL detaches the endpoint and removes its veth.
    let (ok, out) = lab.podman(&["rm", "-f", "-t", "0", &lab.name("c2")]);
    assert!(ok, "{out}");
    let ports = lab.ports();
    assert_eq!(ports.len(), 1, "{ports:?}");
    assert!(!run("ip", &["link", "show", &veth2]).0, "{veth2} is gone");
    // DEL again: nothing left to do, and that is a success.
    let (ok, out) = plugin("DEL", &ids[1].0, "");
    assert!(ok, "a second DEL: {out}");
    assert_eq!(lab.ports().len(), 1);
}
