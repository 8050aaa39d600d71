//! The end-to-end tests' lab: real hosts in network namespaces this process creates,
//! joined by veth pairs, with `strata run` started inside one of them. Everything is
//! removed when the [`Lab`] is dropped, also when a test fails.
//!
//! Names are unique per test and process (`s11-PID-TAG-ROLE`), because other test runs
//! share the machine; interfaces live only inside the lab's namespaces, and the root
//! namespace gets no address. Every wait is bounded in time.
#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why these tests cannot run here, if they cannot: root, iproute2, ping, ethtool.
pub fn prerequisites() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err("needs root (network namespaces, veth, AF_PACKET)".into());
    }
    for (tool, arg, package) in [
        ("ip", "-V", "iproute2"),
        ("ping", "-V", "iputils-ping"),
        ("ethtool", "--version", "ethtool"),
    ] {
        let ok = Command::new(tool)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err(format!("`{tool}` not found (install {package})"));
        }
    }
    Ok(())
}

/// Skips the test with a message, or fails it when `CI` is set.
pub fn skip(test: &str, why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: {why} (CI is set, so this is a failure: CI runs these tests as root with \
         iproute2, iputils-ping and ethtool)"
    );
    eprintln!("{test}: SKIPPED: {why}");
}

/// Runs a command; panics with its output when it fails.
pub fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", args.join(" ")));
    assert!(
        out.status.success(),
        "{}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running `strata run`, its log gathered as it comes.
pub struct Strata {
    child: Child,
    log: Arc<Mutex<String>>,
    pub config: PathBuf,
}

impl Strata {
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// SIGTERM, then at most 5 s to exit.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        // SAFETY: signals a child this process started and has not reaped.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Strata {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The lab: namespaces, Strata processes and a scratch directory, all removed on drop.
pub struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    pub stratas: Vec<Strata>,
    dir: PathBuf,
}

impl Lab {
    pub fn new(tag: &str) -> Lab {
        let prefix = format!("s11-{}-{tag}", std::process::id());
        let dir = std::env::temp_dir().join(&prefix);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Lab {
            prefix,
            namespaces: Vec::new(),
            stratas: Vec::new(),
            dir,
        }
    }

    /// A new namespace for `role`, with loopback up.
    pub fn ns(&mut self, role: &str) -> String {
        let name = format!("{}-{role}", self.prefix);
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        sh(&["ip", "netns", "add", &name]);
        self.namespaces.push(name.clone());
        self.ip(&name, "link set lo up");
        name
    }

    /// `ip ARGS` inside `ns`.
    pub fn ip(&self, ns: &str, args: &str) {
        let mut v = vec!["ip", "-n", ns];
        v.extend(args.split_whitespace());
        sh(&v);
    }

    /// A command inside `ns`.
    pub fn exec(&self, ns: &str, args: &[&str]) {
        let mut v = vec!["ip", "netns", "exec", ns];
        v.extend(args);
        sh(&v);
    }

    /// A veth pair: `a_if` in `a`, `b_if` in `b`, both up; `a`'s side without IPv6 (a
    /// switch port has no address of its own).
    pub fn veth(&self, a: &str, a_if: &str, b: &str, b_if: &str) {
        self.ip(
            a,
            &format!("link add {a_if} type veth peer name {b_if} netns {b}"),
        );
        self.exec(
            a,
            &[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{a_if}.disable_ipv6=1"),
            ],
        );
        self.ip(a, &format!("link set dev {a_if} up"));
        self.ip(b, &format!("link set dev {b_if} up"));
        // Frames the ring could not hold whole (GSO/TSO super-packets) cannot be
        // forwarded: segment in the senders' stacks.
        for (ns, i) in [(a, a_if), (b, b_if)] {
            self.exec(
                ns,
                &["ethtool", "-K", i, "tso", "off", "gso", "off", "gro", "off"],
            );
        }
    }

    /// A container `role` attached to `host`'s interface `host_if`: eth0 with `mac`, the
    /// addresses (CIDR) and a default route via `gateway`.
    pub fn container(
        &mut self,
        host: &str,
        host_if: &str,
        role: &str,
        mac: &str,
        addrs: &[&str],
        gateway: Option<&str>,
    ) -> String {
        let ns = self.ns(role);
        self.veth(host, host_if, &ns, "eth0");
        self.ip(&ns, &format!("link set dev eth0 address {mac}"));
        for a in addrs {
            let nodad = if a.contains(':') { " nodad" } else { "" };
            self.ip(&ns, &format!("addr add {a} dev eth0{nodad}"));
        }
        if let Some(gw) = gateway {
            self.ip(&ns, &format!("route add default via {gw}"));
        }
        ns
    }

    /// Writes `policy` and starts `strata run` on it inside `ns`; returns once it says
    /// it is running (at most 10 s), or panics with its log.
    pub fn strata(&mut self, ns: &str, policy: &str, workers: usize) -> &mut Strata {
        let config = self.dir.join(format!("policy-{}.toml", self.stratas.len()));
        std::fs::write(&config, policy).expect("write policy");
        let strata = start(ns, &config, workers);
        self.stratas.push(strata);
        self.stratas.last_mut().expect("just pushed")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Starts `strata run --config CONFIG --workers N` in `ns` and waits until it runs.
pub fn start(ns: &str, config: &std::path::Path, workers: usize) -> Strata {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_strata"), "run"])
        .arg("--config")
        .arg(config)
        .arg("--control")
        .arg(config.with_extension("sock"))
        .args(["--workers", &workers.to_string(), "--interval", "1"])
        // Tables sized at start, bounded well above what a test carries.
        .args(["--flows", "4096", "--preallocate"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start strata run");
    let log = Arc::new(Mutex::new(String::new()));
    let (ready_tx, ready_rx) = mpsc::channel();
    if let Some(err) = child.stderr.take() {
        let log = Arc::clone(&log);
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
    let mut strata = Strata {
        child,
        log,
        config: config.to_path_buf(),
    };
    if ready_rx.recv_timeout(Duration::from_secs(10)).is_err() {
        let status = strata.stop();
        panic!("strata run did not start ({status:?}):\n{}", strata.log());
    }
    strata
}

/// Runs `f` on a thread inside namespace `ns` (sockets it opens stay there).
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        let file = File::open(format!("/run/netns/{ns}")).expect("open namespace");
        // SAFETY: a valid namespace descriptor; only this thread switches.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("namespace thread")
}

/// `ping -c COUNT` from `ns`: whether at least one reply came.
pub fn ping(ns: &str, addr: &str, count: u32) -> bool {
    Command::new("ip")
        .args(["netns", "exec", ns, "ping", "-n", "-q", "-c"])
        .arg(count.to_string())
        .args(["-i", "0.2", "-W", "1", addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A server in `server_ns` listening on `listen` for one TCP connection: it answers
/// `ack:` and what it read. Returns the client's address as the server saw it, or why
/// the exchange failed (connect or read timeouts: 2 s).
pub fn tcp(
    server_ns: &str,
    listen: &str,
    client_ns: &str,
    connect: &str,
) -> Result<SocketAddr, String> {
    let listen: SocketAddr = listen.parse().expect("listen address");
    let connect: SocketAddr = connect.parse().expect("connect address");
    let (tx, rx) = mpsc::channel();
    let sns = server_ns.to_string();
    let server = std::thread::spawn(move || {
        in_ns(&sns, move || -> Result<SocketAddr, String> {
            let l = TcpListener::bind(listen).map_err(|e| format!("bind {listen}: {e}"))?;
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            let _ = tx.send(());
            let deadline = Instant::now() + Duration::from_secs(3);
            loop {
                match l.accept() {
                    Ok((mut s, peer)) => {
                        s.set_nonblocking(false).map_err(|e| e.to_string())?;
                        s.set_read_timeout(Some(Duration::from_secs(2)))
                            .map_err(|e| e.to_string())?;
                        let mut buf = [0u8; 64];
                        let n = s.read(&mut buf).map_err(|e| format!("server read: {e}"))?;
                        let mut reply = b"ack:".to_vec();
                        reply.extend_from_slice(&buf[..n]);
                        s.write_all(&reply)
                            .map_err(|e| format!("server write: {e}"))?;
                        return Ok(peer);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if Instant::now() > deadline {
                            return Err("no connection reached the server".into());
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) => return Err(format!("accept: {e}")),
                }
            }
        })
    });
    rx.recv_timeout(Duration::from_secs(3))
        .map_err(|_| "server did not start".to_string())?;
    let client = in_ns(client_ns, move || -> Result<(), String> {
        let mut s = TcpStream::connect_timeout(&connect, Duration::from_secs(2))
            .map_err(|e| format!("connect {connect}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        s.write_all(b"hello")
            .map_err(|e| format!("client write: {e}"))?;
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).map_err(|e| format!("client read: {e}"))?;
        if &buf[..n] != b"ack:hello" {
            return Err(format!("client got {:?}", &buf[..n]));
        }
        Ok(())
    });
    let seen = server.join().expect("server thread");
    client?;
    seen
}

/// One UDP exchange: the client sends (up to 5 tries, 400 ms apart) until the server in
/// `server_ns` answers. Returns the client's address as the server saw it.
pub fn udp(
    server_ns: &str,
    listen: &str,
    client_ns: &str,
    connect: &str,
) -> Result<SocketAddr, String> {
    let listen: SocketAddr = listen.parse().expect("listen address");
    let connect: SocketAddr = connect.parse().expect("connect address");
    let (tx, rx) = mpsc::channel();
    let sns = server_ns.to_string();
    let server = std::thread::spawn(move || {
        in_ns(&sns, move || -> Result<SocketAddr, String> {
            let s = UdpSocket::bind(listen).map_err(|e| format!("bind {listen}: {e}"))?;
            s.set_read_timeout(Some(Duration::from_millis(2500)))
                .map_err(|e| e.to_string())?;
            let _ = tx.send(());
            let mut buf = [0u8; 64];
            let (n, peer) = s
                .recv_from(&mut buf)
                .map_err(|e| format!("no datagram reached the server: {e}"))?;
            let mut reply = b"ack:".to_vec();
            reply.extend_from_slice(&buf[..n]);
            s.send_to(&reply, peer).map_err(|e| e.to_string())?;
            Ok(peer)
        })
    });
    rx.recv_timeout(Duration::from_secs(3))
        .map_err(|_| "server did not start".to_string())?;
    let client = in_ns(client_ns, move || -> Result<(), String> {
        let any: SocketAddr = if connect.is_ipv4() {
            "0.0.0.0:0".parse().expect("any")
        } else {
            "[::]:0".parse().expect("any")
        };
        let s = UdpSocket::bind(any).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_millis(400)))
            .map_err(|e| e.to_string())?;
        for _ in 0..5 {
            s.send_to(b"hello", connect).map_err(|e| e.to_string())?;
            let mut buf = [0u8; 64];
            if let Ok((n, _)) = s.recv_from(&mut buf) {
                return if &buf[..n] == b"ack:hello" {
                    Ok(())
                } else {
                    Err(format!("client got {:?}", &buf[..n]))
                };
            }
        }
        Err("no reply".into())
    });
    let seen = server.join().expect("server thread");
    client?;
    seen
}

/// Whether a raw IP packet of `protocol` sent from `from_ns` to `to` reaches a raw
/// socket of that protocol in `to_ns` within a second (3 tries): for protocols without
/// sockets of their own (GRE, SCTP).
pub fn raw_reaches(from_ns: &str, to_ns: &str, to: &str, protocol: i32) -> bool {
    let to: std::net::Ipv4Addr = to.parse().expect("IPv4 address");
    let (tx, rx) = mpsc::channel();
    let tns = to_ns.to_string();
    let receiver = std::thread::spawn(move || {
        in_ns(&tns, move || -> bool {
            // SAFETY: plain socket(2); the result is checked.
            let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, protocol) };
            assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 300_000,
            };
            // SAFETY: a valid timeval of the size given.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    (&tv as *const libc::timeval).cast(),
                    std::mem::size_of::<libc::timeval>() as u32,
                );
            }
            let _ = tx.send(());
            let deadline = Instant::now() + Duration::from_millis(1500);
            let mut buf = [0u8; 2048];
            let mut got = false;
            while Instant::now() < deadline && !got {
                // SAFETY: `buf` is valid for writes of its length.
                let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
                got = n > 20 && buf[20..n as usize].starts_with(b"strata-raw");
            }
            // SAFETY: closes the descriptor opened above.
            unsafe { libc::close(fd) };
            got
        })
    });
    let _ = rx.recv_timeout(Duration::from_secs(2));
    in_ns(from_ns, move || {
        // SAFETY: plain socket(2); the result is checked.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, protocol) };
        assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
        // SAFETY: sockaddr_in is plain data; all-zero is valid.
        let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        sa.sin_family = libc::AF_INET as u16;
        sa.sin_addr.s_addr = u32::from(to).to_be();
        for _ in 0..3 {
            let payload = b"strata-raw-payload";
            // SAFETY: valid buffer and address of the sizes given.
            unsafe {
                libc::sendto(
                    fd,
                    payload.as_ptr().cast(),
                    payload.len(),
                    0,
                    (&sa as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as u32,
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        // SAFETY: closes the descriptor opened above.
        unsafe { libc::close(fd) };
    });
    receiver.join().expect("receiver thread")
}

impl Drop for Lab {
    fn drop(&mut self) {
        for s in &mut self.stratas {
            s.stop();
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
