//! Interop with a real Linux kernel VXLAN device, both ways:
//! (a) a frame the kernel's `vxlan` device emits decapsulates in Strata and reaches the
//!     overlay endpoint it is addressed to;
//! (b) the VXLAN frame Strata builds for that endpoint's reply is accepted by the kernel
//!     device: the kernel's `ping` gets its echo reply.
//!
//! Topology (all inside two namespaces this test creates; nothing in the root namespace):
//!
//! ```text
//!  netns K (the remote host, kernel)              netns S (Strata's uplink)
//!  ping 198.18.2.10 -> vxlan0 (VNI 4096,          vs: raw frames captured and injected
//!  198.18.3.1/24) -> vk 198.19.0.20   <== veth ==>    by this process (AF_PACKET)
//! ```
//!
//! The kernel's echo request is captured on `vs` and replayed through `strata replay`
//! with an overlay policy (host 198.19.0.10, endpoint `api` 198.18.2.10, remote subnet
//! 198.18.3.0/24 at provider address 198.19.0.20). The reply `api` would send is replayed
//! too, and the VXLAN frame Strata puts on the uplink is injected back on `vs`.
//!
//! Needs root, iproute2 and `ping` (iputils-ping). Without them the test is skipped with a
//! message, unless `CI` is set, where it fails.

use std::ffi::CString;
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use strata_dataplane::capture::{CaptureReader, PcapngWriter};
use strata_dataplane::packet::{FrameKind, Parsed, parse};

const VNI: u32 = 4096;
const VXLAN_PORT: u16 = 4789;
/// Strata's host (uplink) MAC and provider address.
const HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const HOST_PA: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 10);
/// The kernel side: its provider address, and its overlay address and MAC on `vxlan0`.
const KERNEL_PA: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 20);
const KERNEL_CA: Ipv4Addr = Ipv4Addr::new(198, 18, 3, 1);
const KERNEL_MAC: [u8; 6] = [0x00, 0x15, 0x5d, 0x03, 0x03, 0x01];
/// The kernel host's underlay NIC: a MAC of its own, which Strata learns from the VXLAN
/// that host sends.
const KERNEL_NIC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x14];
/// The `api` container endpoint behind Strata.
const API_MAC: [u8; 6] = [0x00, 0x15, 0x5d, 0x02, 0x02, 0x0a];
const API_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 10);

const POLICY: &str = r#"
[host]
mac = "02:00:00:00:00:01"
addresses = ["198.19.0.10"]

[[network]]
name = "overlay"
driver = "overlay"
subnets = ["198.18.2.0/24"]
gateway = "198.18.2.1"
vni = 4096

[[network.remote_subnet_route]]
prefix = "198.18.3.0/24"
provider_address = "198.19.0.20"
mac = "00:15:5d:03:03:01"

[[endpoint]]
name = "api"
network = "overlay"
mac = "00:15:5d:02:02:0a"
ipv4 = "198.18.2.10"
isolation = "hyperv"
"#;

#[test]
fn kernel_vxlan_decapsulates_in_strata_and_accepts_its_encapsulation() {
    if let Err(why) = prerequisites() {
        assert!(
            std::env::var_os("CI").is_none(),
            "vxlan_kernel: {why} (CI is set, so this is a failure; CI must run this test as \
             root with iproute2 and iputils-ping installed)"
        );
        eprintln!("vxlan_kernel: SKIPPED: {why}");
        return;
    }
    let pid = std::process::id();
    let ns = Namespaces::new(format!("stvk{pid}"), format!("stvs{pid}"));
    let (k, s) = (ns.k.as_str(), ns.s.as_str());

    // The veth pair is created inside K with its peer moved straight into S, so the root
    // namespace never sees either end.
    ip(k, &format!("link add vk type veth peer name vs netns {s}"));
    // The kernel's underlay NIC has its own MAC: Strata must address its VXLAN frames to
    // it (learned from the kernel's own VXLAN), as IP drops frames for another MAC.
    let kmac = mac_str(&KERNEL_MAC);
    ip(
        k,
        &format!("link set vk address {}", mac_str(&KERNEL_NIC_MAC)),
    );
    ip(k, &format!("addr add {KERNEL_PA}/24 dev vk"));
    ip(k, "link set lo up");
    ip(k, "link set vk up");
    ip(s, "link set vs promisc on up");
    ip(
        k,
        &format!(
            "link add vxlan0 type vxlan id {VNI} dstport {VXLAN_PORT} local {KERNEL_PA} \
             remote {HOST_PA} dev vk"
        ),
    );
    ip(k, &format!("link set vxlan0 address {kmac}"));
    ip(k, &format!("addr add {KERNEL_CA}/24 dev vxlan0"));
    ip(k, "link set vxlan0 up");
    ip(k, "route add 198.18.2.0/24 dev vxlan0");
    // Static neighbours: the kernel sends at once, with no ARP for Strata to answer.
    // `replace`, not `add`: the kernel may already hold an incomplete entry.
    ip(
        k,
        &format!(
            "neigh replace {HOST_PA} lladdr {} dev vk",
            mac_str(&HOST_MAC)
        ),
    );
    ip(
        k,
        &format!(
            "neigh replace {API_IP} lladdr {} dev vxlan0",
            mac_str(&API_MAC)
        ),
    );

    let sock = PacketSocket::open_in(s, "vs");
    let rx_before = vxlan0_rx_packets(k);

    // (a) The kernel encapsulates an echo request towards Strata's provider address.
    let mut ping = Reaped(
        Command::new("ip")
            .args(["netns", "exec", k, "ping", "-n", "-c", "1", "-W", "10"])
            .arg(API_IP.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ping in K"),
    );
    let request = sock
        .recv_matching(50, Duration::from_secs(5), is_echo_request_over_vxlan)
        .expect("no VXLAN (UDP 4789) echo request from the kernel on vs within 5 s / 50 frames");

    // Independently of Strata: the kernel's frame is well-formed VXLAN around our ping.
    let outer = parse(&request).expect("the kernel's VXLAN frame parses");
    let (vni, inner) = vxlan_payload(&request, &outer);
    assert_eq!(vni, VNI, "VNI the kernel used");
    let inner_parsed = parse(inner).expect("the kernel's inner frame parses");
    assert_eq!(
        inner_parsed.fields.dst_mac.0, API_MAC,
        "inner destination MAC"
    );
    assert_eq!(inner_parsed.fields.src_ip, KERNEL_CA);
    assert_eq!(inner_parsed.fields.dst_ip, API_IP);
    assert_eq!(
        inner_parsed.fields.icmp,
        Some((8, 0)),
        "an ICMP echo request"
    );

    let dir = TempDir::new(pid);
    let policy = dir.path("policy.toml");
    std::fs::write(&policy, POLICY).expect("write policy");

    // Strata decapsulates it and delivers the inner frame to `api`.
    let capture1 = dir.path("from-kernel.pcapng");
    write_pcapng(&capture1, &[("uplink", &request)]);
    let run1 = replay(&dir, "1", &capture1, &policy);
    let v = &run1.verdicts[0];
    assert_eq!(
        (v["verdict"].as_str(), v["out_port"].as_str()),
        (Some("forward"), Some("api")),
        "verdict for the kernel's VXLAN frame: {v}\n{}",
        run1.log
    );
    let delivered = run1
        .frames_on("api")
        .next()
        .unwrap_or_else(|| panic!("no frame left port api\n{}", run1.log));
    assert_eq!(
        delivered, inner,
        "api must receive exactly the kernel's inner frame (decapsulated)"
    );

    // (b) `api` answers; Strata must encapsulate the reply to the kernel's provider address.
    let reply = echo_reply(&delivered);
    let capture2 = dir.path("with-reply.pcapng");
    write_pcapng(&capture2, &[("uplink", &request), ("api", &reply)]);
    let run2 = replay(&dir, "2", &capture2, &policy);
    let v = &run2.verdicts[1];
    assert_eq!(
        (v["verdict"].as_str(), v["out_port"].as_str()),
        (Some("forward"), Some("uplink")),
        "verdict for api's echo reply: {v}\n{}",
        run2.log
    );
    let encapsulated = run2
        .frames_on("uplink")
        .last()
        .unwrap_or_else(|| panic!("no frame left the uplink\n{}", run2.log));
    let outer = parse(&encapsulated).unwrap_or_else(|e| {
        panic!(
            "Strata's uplink frame does not parse ({e:?}): {}",
            hex(&encapsulated)
        )
    });
    eprintln!(
        "vxlan_kernel: Strata emitted outer {} -> {}, {} -> {} proto {} ports {} -> {}",
        mac_str(&outer.fields.src_mac.0),
        mac_str(&outer.fields.dst_mac.0),
        outer.fields.src_ip,
        outer.fields.dst_ip,
        outer.fields.protocol,
        outer.fields.src_port,
        outer.fields.dst_port
    );
    assert!(
        is_vxlan(&outer),
        "Strata's uplink frame is not UDP to port {VXLAN_PORT}: {}",
        hex(&encapsulated)
    );
    assert_eq!(
        outer.fields.src_ip, HOST_PA,
        "outer source (provider address)"
    );
    assert_eq!(outer.fields.dst_ip, KERNEL_PA, "outer destination");
    assert_eq!(outer.fields.src_mac.0, HOST_MAC, "outer source MAC");
    assert_eq!(
        outer.fields.dst_mac.0, KERNEL_NIC_MAC,
        "outer destination MAC: the kernel's underlay NIC, learned from its VXLAN"
    );
    assert!(
        ipv4_header_ok(&encapsulated, &outer),
        "outer IPv4 header checksum is wrong: {}",
        hex(&encapsulated)
    );
    let (vni, inner) = vxlan_payload(&encapsulated, &outer);
    assert_eq!(vni, VNI, "VNI Strata used");
    let inner_parsed = parse(inner).expect("Strata's inner frame parses");
    assert_eq!(
        inner_parsed.fields.dst_mac.0, KERNEL_MAC,
        "inner destination MAC (the route's)"
    );
    assert_eq!(
        (inner_parsed.fields.src_ip, inner_parsed.fields.dst_ip),
        (API_IP.into(), KERNEL_CA.into()),
        "inner addresses"
    );

    // The kernel takes it: vxlan0 decapsulates and ping gets its reply.
    sock.send(&encapsulated);
    let out = ping.wait_output(Duration::from_secs(15));
    let rx_after = vxlan0_rx_packets(k);
    assert!(
        out.status.success(),
        "the kernel did not accept Strata's VXLAN frame: ping failed ({}); vxlan0 rx packets \
         {rx_before} -> {rx_after}\nframe: {}\nping: {}{}",
        out.status,
        hex(&encapsulated),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        rx_after > rx_before,
        "vxlan0 rx packets did not grow: {rx_before} -> {rx_after}"
    );
}

/// Why the test cannot run here, if it cannot.
fn prerequisites() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err("needs root (network namespaces, veth, vxlan, AF_PACKET)".into());
    }
    for (tool, arg, package) in [("ip", "-V", "iproute2"), ("ping", "-V", "iputils-ping")] {
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

/// Runs `ip ARGS` (split at whitespace) inside namespace `ns`; panics with its stderr on
/// failure.
fn ip(ns: &str, args: &str) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "ip"])
        .args(args.split_whitespace())
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip netns exec {ns} ip {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn vxlan0_rx_packets(ns: &str) -> u64 {
    let out = Command::new("ip")
        .args([
            "netns", "exec", ns, "ip", "-s", "-j", "link", "show", "vxlan0",
        ])
        .output()
        .expect("run ip -s -j link show");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "ip -j output: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    v[0]["stats64"]["rx"]["packets"]
        .as_u64()
        .unwrap_or_else(|| panic!("no rx packets in {v}"))
}

/// The two namespaces; dropping this deletes them (and the veth pair with them), also
/// when the test panics.
struct Namespaces {
    k: String,
    s: String,
}

impl Namespaces {
    fn new(k: String, s: String) -> Namespaces {
        // Leftovers of an earlier run with the same pid would make `add` fail.
        let ns = Namespaces { k, s };
        ns.delete();
        for name in [&ns.k, &ns.s] {
            let out = Command::new("ip")
                .args(["netns", "add", name])
                .output()
                .expect("run ip netns add");
            assert!(
                out.status.success(),
                "ip netns add {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        ns
    }

    fn delete(&self) {
        for name in [&self.k, &self.s] {
            let _ = Command::new("ip")
                .args(["netns", "del", name])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        self.delete();
    }
}

/// A child process killed and reaped if the test ends before it does.
struct Reaped(Child);

impl Reaped {
    /// Waits at most `limit` for the child to exit, then kills it; returns its output.
    fn wait_output(&mut self, limit: Duration) -> std::process::Output {
        let deadline = Instant::now() + limit;
        while self.0.try_wait().expect("wait for child").is_none() {
            if Instant::now() > deadline {
                let _ = self.0.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let status = self.0.wait().expect("reap child");
        let read = |r: Option<&mut dyn std::io::Read>| {
            let mut buf = Vec::new();
            if let Some(r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        };
        let stdout = read(self.0.stdout.as_mut().map(|r| r as &mut dyn std::io::Read));
        let stderr = read(self.0.stderr.as_mut().map(|r| r as &mut dyn std::io::Read));
        std::process::Output {
            status,
            stdout,
            stderr,
        }
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// An AF_PACKET socket bound to one interface of a namespace.
struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    /// Opens the socket from a thread that has entered namespace `ns` (a socket stays in
    /// the namespace it was created in, so the test's own thread never switches).
    fn open_in(ns: &str, ifname: &str) -> PacketSocket {
        let what = format!("AF_PACKET socket on {ifname} in {ns}");
        let (ns, ifname) = (ns.to_owned(), ifname.to_owned());
        std::thread::spawn(move || -> Result<PacketSocket, String> {
            let f = File::open(format!("/run/netns/{ns}")).map_err(|e| format!("open: {e}"))?;
            // SAFETY: a valid namespace fd; this thread is ours and ends right after.
            if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(format!("setns: {}", std::io::Error::last_os_error()));
            }
            let all = (libc::ETH_P_ALL as u16).to_be();
            // SAFETY: plain socket(2) call; the result is checked.
            let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(all)) };
            if raw < 0 {
                return Err(format!("socket: {}", std::io::Error::last_os_error()));
            }
            // SAFETY: `raw` is a fresh descriptor that nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            let cname = CString::new(ifname.clone()).expect("interface name");
            // SAFETY: a NUL-terminated string.
            let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
            if index == 0 {
                return Err(format!("no interface {ifname} in {ns}"));
            }
            // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = all;
            sll.sll_ifindex = index as i32;
            // SAFETY: `sll` is a valid sockaddr_ll of the size given.
            let rc = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&sll as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            if rc != 0 {
                return Err(format!("bind: {}", std::io::Error::last_os_error()));
            }
            // Every read is bounded: at most 1 s per recv.
            let tv = libc::timeval {
                tv_sec: 1,
                tv_usec: 0,
            };
            // SAFETY: `tv` is a valid timeval of the size given.
            let rc = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    (&tv as *const libc::timeval).cast(),
                    std::mem::size_of::<libc::timeval>() as libc::socklen_t,
                )
            };
            if rc != 0 {
                return Err(format!("SO_RCVTIMEO: {}", std::io::Error::last_os_error()));
            }
            Ok(PacketSocket { fd })
        })
        .join()
        .expect("namespace thread")
        .unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    /// The first frame that `want` accepts, reading at most `max_frames` frames for at
    /// most `limit`.
    fn recv_matching(
        &self,
        max_frames: usize,
        limit: Duration,
        want: impl Fn(&[u8]) -> bool,
    ) -> Option<Vec<u8>> {
        let deadline = Instant::now() + limit;
        let mut buf = vec![0u8; 65536];
        for _ in 0..max_frames {
            if Instant::now() > deadline {
                break;
            }
            // SAFETY: `buf` is valid for writes of its length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                match e.kind() {
                    std::io::ErrorKind::WouldBlock
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::Interrupted => continue,
                    _ => panic!("recv on vs: {e}"),
                }
            }
            let frame = &buf[..n as usize];
            if want(frame) {
                return Some(frame.to_vec());
            }
        }
        None
    }

    fn send(&self, frame: &[u8]) {
        // SAFETY: `frame` is valid for reads of its length.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(
            n,
            frame.len() as isize,
            "send on vs: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn is_vxlan(p: &Parsed) -> bool {
    p.fields.protocol == 17 && p.fields.dst_port == VXLAN_PORT
}

/// A VXLAN frame to Strata's provider address carrying an ICMP echo request. The kernel's
/// vxlan0 also floods its own IPv6 chatter (MLD reports) to the remote: skipped.
fn is_echo_request_over_vxlan(frame: &[u8]) -> bool {
    let Ok(outer) = parse(frame) else {
        return false;
    };
    if !is_vxlan(&outer) || outer.fields.dst_ip != HOST_PA {
        return false;
    }
    let start = outer.payload_offset as usize + 8;
    frame
        .get(start..)
        .and_then(|inner| parse(inner).ok())
        .is_some_and(|p| p.fields.icmp == Some((8, 0)))
}

/// The VNI and the inner frame of a parsed VXLAN frame; asserts the header's flags.
fn vxlan_payload<'a>(frame: &'a [u8], outer: &Parsed) -> (u32, &'a [u8]) {
    let start = outer.payload_offset as usize;
    let end = (outer.l3_end as usize).min(frame.len());
    let v = frame
        .get(start..start + 8)
        .unwrap_or_else(|| panic!("VXLAN header cut short: {}", hex(frame)));
    assert_eq!(v[0] & 0x08, 0x08, "VXLAN I flag (VNI valid)");
    let vni = u32::from_be_bytes([0, v[4], v[5], v[6]]);
    (vni, &frame[start + 8..end])
}

/// The echo reply `api` sends to the echo request it received: MACs swapped towards its
/// gateway (the host MAC), addresses swapped, type 0, same identifier, sequence and data.
fn echo_reply(request: &[u8]) -> Vec<u8> {
    let p = parse(request).expect("delivered frame parses");
    assert!(matches!(p.kind, FrameKind::Ip) && p.ip_version == 4);
    assert_eq!(p.fields.icmp, Some((8, 0)), "api received an echo request");
    let l3 = p.l3_offset as usize;
    let l4 = p.l4_offset.expect("ICMP header") as usize;
    let end = p.l3_end as usize;
    let mut f = request[..end].to_vec();
    f[0..6].copy_from_slice(&HOST_MAC);
    f[6..12].copy_from_slice(&API_MAC);
    let (src, dst) = (l3 + 12, l3 + 16);
    let (a, b) = (f[src..src + 4].to_vec(), f[dst..dst + 4].to_vec());
    f[src..src + 4].copy_from_slice(&b);
    f[dst..dst + 4].copy_from_slice(&a);
    f[l3 + 8] = 64; // TTL
    f[l3 + 10..l3 + 12].fill(0);
    let c = checksum(&f[l3..l4]);
    f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
    f[l4] = 0; // echo reply
    f[l4 + 2..l4 + 4].fill(0);
    let c = checksum(&f[l4..end]);
    f[l4 + 2..l4 + 4].copy_from_slice(&c.to_be_bytes());
    f
}

fn ipv4_header_ok(frame: &[u8], p: &Parsed) -> bool {
    let l3 = p.l3_offset as usize;
    let ihl = usize::from(frame[l3] & 0x0f) * 4;
    checksum(&frame[l3..l3 + ihl]) == 0
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn write_pcapng(path: &Path, frames: &[(&str, &[u8])]) {
    let mut w = PcapngWriter::new(File::create(path).expect("create capture"));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64;
    for (i, (iface, frame)) in frames.iter().enumerate() {
        let id = w.interface(iface);
        w.write(id, now + i as u64 * 1000, frame, frame.len() as u32, None)
            .expect("write capture");
    }
    w.finish().expect("finish capture");
}

struct Replay {
    verdicts: Vec<serde_json::Value>,
    out: PathBuf,
    /// The command line and its output, for failure messages.
    log: String,
}

impl Replay {
    fn frames_on(&self, port: &str) -> impl Iterator<Item = Vec<u8>> {
        let port = port.to_owned();
        CaptureReader::open(&self.out)
            .expect("open --out pcapng")
            .map(|f| f.expect("read --out pcapng"))
            .filter(move |f| f.interface.as_deref() == Some(port.as_str()))
            .map(|f| f.data)
    }
}

fn replay(dir: &TempDir, tag: &str, capture: &Path, policy: &Path) -> Replay {
    let (verdicts, out) = (
        dir.path(&format!("verdicts{tag}.jsonl")),
        dir.path(&format!("out{tag}.pcapng")),
    );
    let args = [
        "replay".as_ref(),
        capture.as_os_str(),
        "--policy".as_ref(),
        policy.as_os_str(),
        "--verdicts".as_ref(),
        verdicts.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ];
    let run = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .output()
        .expect("run strata");
    let log = format!(
        "strata {}\n{}{}",
        args.map(|a| a.to_string_lossy().into_owned()).join(" "),
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success(), "strata replay failed:\n{log}");
    let text = std::fs::read_to_string(&verdicts).expect("read verdicts");
    let verdicts = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("verdict {l}: {e}")))
        .collect();
    Replay { verdicts, out, log }
}

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(pid: u32) -> TempDir {
        let d = std::env::temp_dir().join(format!("strata-vxlan-kernel-{pid}"));
        std::fs::create_dir_all(&d).expect("temp dir");
        TempDir(d)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mac_str(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
