//! Hundreds of policy updates to `strata run` (two workers) in network namespaces while
//! traffic flows, through the control socket: an ACL blocking UDP port 9000 of `b` is
//! added and removed 200 times. Between two updates, `a` sends a burst to port 9000 and a
//! packet to port 9001. Every packet sent after an update returned and before the next
//! began must get that policy's verdict: the 9000 bursts arrive exactly when the ACL is
//! absent (so a block takes effect on the next packet, and so does its removal), and
//! every 9001 packet arrives (a swap never loses a packet of a flow it does not change).
//!
//! Names `s10-PID-*`, addresses 198.18.33.0/24; skipped without root and tools, a
//! failure under `CI`.

mod netlab;

use std::collections::HashSet;
use std::fs::File;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use netlab::{prerequisites, sh, skip, start};
use strata_control::protocol::{Document, Reply, Request, Success};
use strata_control::socket::Client;

const ROUNDS: usize = 200;
const BURST: usize = 3;

const POLICY: &str = r#"
[host]
mac = "02:00:00:00:33:01"
addresses = ["198.19.33.10"]

[[network]]
name = "nat"
driver = "nat"
subnets = ["198.18.33.0/24"]
gateway = "198.18.33.1"

[[endpoint]]
name = "a"
network = "nat"
mac = "00:15:5d:33:00:0a"
ipv4 = "198.18.33.11"
interface = "ep-a"

[[endpoint]]
name = "b"
network = "nat"
mac = "00:15:5d:33:00:0b"
ipv4 = "198.18.33.12"
interface = "ep-b"
"#;

const ACL: &str = "[[acl]]\nid = \"no-9000\"\naction = \"block\"\ndirection = \"in\"\n\
                   protocols = [\"udp\"]\nlocal_ports = [\"9000\"]\npriority = 10\n";

/// Namespaces made here, deleted on drop.
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip")
                .args(["netns", "del", n])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A thread living in namespace `ns`.
fn spawn_in<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        let file = File::open(format!("/run/netns/{ns}")).expect("namespace");
        // SAFETY: a valid namespace descriptor; only this thread switches.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {ns}");
        f()
    })
}

#[test]
fn hundreds_of_updates_under_traffic_take_effect_on_the_next_packet() {
    if let Err(why) = prerequisites() {
        return skip("ctl_netns", &why);
    }
    let tag = format!("s10-{}", std::process::id());
    let (host, a, b) = (format!("{tag}-h"), format!("{tag}-a"), format!("{tag}-b"));
    let _cleanup = Namespaces(vec![host.clone(), a.clone(), b.clone()]);
    for ns in [&host, &a, &b] {
        sh(&["ip", "netns", "add", ns]);
        sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
    }
    for (ns, port, mac, addr) in [
        (&a, "ep-a", "00:15:5d:33:00:0a", "198.18.33.11/24"),
        (&b, "ep-b", "00:15:5d:33:00:0b", "198.18.33.12/24"),
    ] {
        sh(&[
            "ip", "-n", &host, "link", "add", port, "type", "veth", "peer", "name", "eth0",
            "netns", ns,
        ]);
        sh(&[
            "ip",
            "netns",
            "exec",
            &host,
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{port}.disable_ipv6=1"),
        ]);
        sh(&["ip", "-n", &host, "link", "set", port, "up"]);
        sh(&["ip", "-n", ns, "link", "set", "eth0", "address", mac]);
        sh(&["ip", "-n", ns, "addr", "add", addr, "dev", "eth0"]);
        sh(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
        sh(&[
            "ip",
            "-n",
            ns,
            "route",
            "add",
            "default",
            "via",
            "198.18.33.1",
        ]);
        for (n, i) in [(host.as_str(), port), (ns.as_str(), "eth0")] {
            sh(&[
                "ip", "netns", "exec", n, "ethtool", "-K", i, "tso", "off", "gso", "off", "gro",
                "off",
            ]);
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("policy.toml");
    std::fs::write(&config, POLICY).expect("policy");
    let mut strata = start(&host, &config, 2);
    let socket = config.with_extension("sock");

    // The receiver: every datagram's payload (round, index, port) until told to stop.
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let receiver = spawn_in(&b, move || {
        let s9000 = UdpSocket::bind("198.18.33.12:9000").expect("bind 9000");
        let s9001 = UdpSocket::bind("198.18.33.12:9001").expect("bind 9001");
        for s in [&s9000, &s9001] {
            s.set_nonblocking(true).expect("nonblocking");
        }
        let mut got = HashSet::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut buf = [0u8; 64];
        while Instant::now() < deadline {
            let mut idle = true;
            for s in [&s9000, &s9001] {
                if let Ok(n) = s.recv(&mut buf) {
                    idle = false;
                    got.insert(String::from_utf8_lossy(&buf[..n]).to_string());
                }
            }
            if idle {
                if stop_rx.try_recv().is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        got
    });
    // The sender: one round per message, answered when sent.
    let (round_tx, round_rx) = mpsc::channel::<usize>();
    let (sent_tx, sent_rx) = mpsc::channel::<()>();
    let sender = spawn_in(&a, move || {
        let s = UdpSocket::bind("198.18.33.11:0").expect("bind");
        while let Ok(k) = round_rx.recv() {
            for i in 0..BURST {
                let _ = s.send_to(format!("{k}:{i}:9000").as_bytes(), "198.18.33.12:9000");
            }
            let _ = s.send_to(format!("{k}:0:9001").as_bytes(), "198.18.33.12:9001");
            let _ = sent_tx.send(());
        }
    });

    // Warm up: ARP between a, b and the gateway, and both flows known.
    let mut client = Client::connect(&socket).expect("control socket");
    round_tx.send(usize::MAX).expect("sender");
    sent_rx.recv_timeout(Duration::from_secs(5)).expect("sent");
    std::thread::sleep(Duration::from_millis(300));

    let mut blocked = [false; ROUNDS];
    let mut acl_on = false;
    for (k, b) in blocked.iter_mut().enumerate() {
        *b = acl_on;
        round_tx.send(k).expect("sender");
        sent_rx.recv_timeout(Duration::from_secs(5)).expect("sent");
        // Let the burst cross Strata before the next update begins.
        std::thread::sleep(Duration::from_millis(15));
        let request = if acl_on {
            Request::RuleRemove {
                port: "b".into(),
                rule: "no-9000".into(),
                layer: None,
                group: None,
            }
        } else {
            Request::RuleAdd {
                port: "b".into(),
                document: Document::new("no-9000.toml", ACL),
            }
        };
        match client.call(&request).expect("reply") {
            Reply::Ok {
                ok: Success::Updated(u),
            } => assert_eq!(u.changed_ports, ["b"], "only b changes"),
            other => panic!("update {k}: {other:?}\n{}", strata.log()),
        }
        acl_on = !acl_on;
    }
    std::thread::sleep(Duration::from_millis(300));
    drop(round_tx);
    sender.join().expect("sender thread");
    let _ = stop_tx.send(());
    let got = receiver.join().expect("receiver thread");

    let mut wrong = Vec::new();
    for (k, &was_blocked) in blocked.iter().enumerate() {
        for i in 0..BURST {
            let arrived = got.contains(&format!("{k}:{i}:9000"));
            if arrived == was_blocked {
                wrong.push(format!(
                    "round {k} packet {i}: blocked={was_blocked} arrived={arrived}"
                ));
            }
        }
        if !got.contains(&format!("{k}:0:9001")) {
            wrong.push(format!("round {k}: the 9001 packet was lost"));
        }
    }
    let stats = match client.call(&Request::Stats).expect("stats") {
        Reply::Ok {
            ok: Success::Stats(s),
        } => s,
        other => panic!("{other:?}"),
    };
    assert!(
        wrong.is_empty(),
        "{} packets got the wrong verdict:\n{}\nstats: {stats:?}\nlog:\n{}",
        wrong.len(),
        wrong.join("\n"),
        strata.log()
    );
    assert_eq!(stats.updates.applied, ROUNDS as u64);
    assert_eq!(stats.updates.refused, 0);
    assert_eq!(stats.workers, 2);
    strata.stop();
    assert!(
        !socket.exists(),
        "the socket is removed when the service stops"
    );
}
