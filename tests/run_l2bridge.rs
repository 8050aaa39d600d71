//! L2Bridge through `strata run`: a container's frames leave the uplink with the host's
//! MAC in place of the container's, tagged with the network's VLAN, as an AF_PACKET
//! capture on the outside host sees them (the tag from the kernel's auxiliary data, as
//! the receiving side strips it into metadata). The outside host has no VLAN interface
//! (not every kernel here has 802.1Q), so the capture is the observer.

mod netlab;

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use netlab::{Lab, in_ns, ping, prerequisites, skip};

const HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x10, 0x01];
const POLICY: &str = r#"
[host]
mac = "02:00:00:00:10:01"
addresses = ["198.19.16.10"]
interface = "uplink"

[[network]]
name = "l2b"
driver = "l2bridge"
subnets = ["198.18.20.0/24"]
gateway = "198.18.20.1"
vlan = 100

[[endpoint]]
name = "c"
network = "l2b"
mac = "00:15:5d:20:00:0b"
ipv4 = "198.18.20.11"
interface = "c"
"#;

/// What the capture saw of one frame: source MAC, VLAN ID (from auxdata), IPv4 source.
#[derive(Debug)]
struct Seen {
    src_mac: [u8; 6],
    vlan: Option<u16>,
    src_ip: [u8; 4],
}

/// Captures on `ifname` (in the calling thread's namespace) for `limit`, at most 200
/// frames: the IPv4 frames it sees.
fn capture(ifname: &str, limit: Duration) -> Vec<Seen> {
    let all = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket(2); the result is checked.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(all)) };
    assert!(raw >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let name = CString::new(ifname).expect("name");
    // SAFETY: a NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    // SAFETY: sockaddr_ll is plain data; all-zero is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = all;
    sll.sll_ifindex = index as i32;
    let one: libc::c_int = 1;
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 200_000,
    };
    // SAFETY: valid pointers to values of the sizes given.
    unsafe {
        assert_eq!(
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32
            ),
            0
        );
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_AUXDATA,
            (&one as *const libc::c_int).cast(),
            4,
        );
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        );
    }
    let mut seen = Vec::new();
    let deadline = Instant::now() + limit;
    for _ in 0..200 {
        if Instant::now() > deadline {
            break;
        }
        let mut buf = [0u8; 2048];
        let mut control = [0u64; 16];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: msghdr is plain data; all-zero is valid.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        // SAFETY: `msg` points to live buffers of the sizes it says.
        let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, 0) };
        if n < 34 {
            continue;
        }
        let mut vlan = None;
        // SAFETY: walking the control messages the kernel wrote into `control`, with the
        // libc macros, within `msg_controllen`.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_PACKET && (*c).cmsg_type == libc::PACKET_AUXDATA {
                    let aux = std::ptr::read_unaligned(
                        libc::CMSG_DATA(c) as *const libc::tpacket_auxdata
                    );
                    if aux.tp_status & libc::TP_STATUS_VLAN_VALID != 0 {
                        vlan = Some(aux.tp_vlan_tci & 0x0fff);
                    }
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        if buf[12..14] != [0x08, 0x00] {
            continue;
        }
        seen.push(Seen {
            src_mac: buf[6..12].try_into().expect("6 bytes"),
            vlan,
            src_ip: buf[26..30].try_into().expect("4 bytes"),
        });
    }
    seen
}

#[test]
fn l2bridge_rewrites_the_mac_and_tags_the_uplink() {
    if let Err(why) = prerequisites() {
        return skip("run_l2bridge", &why);
    }
    let mut lab = Lab::new("l2b");
    let host = lab.ns("host");
    let c = lab.container(
        &host,
        "c",
        "c",
        "00:15:5d:20:00:0b",
        &["198.18.20.11/24"],
        Some("198.18.20.1"),
    );
    let ext = lab.ns("ext");
    lab.veth(&host, "uplink", &ext, "eth0");
    lab.strata(&host, POLICY, 1);

    let cap_ns = ext.clone();
    let capturing =
        std::thread::spawn(move || in_ns(&cap_ns, || capture("eth0", Duration::from_secs(3))));
    std::thread::sleep(Duration::from_millis(300));
    // Through the gateway (Strata answers its ARP) to a host beyond the uplink; nobody
    // answers there, the capture is what is checked.
    ping(&c, "198.18.21.30", 3);
    let seen = capturing.join().expect("capture thread");
    let from_c: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.src_ip == [198, 18, 20, 11])
        .collect();
    assert!(
        !from_c.is_empty(),
        "the capture saw the container's packets: {seen:?}"
    );
    for s in from_c {
        assert_eq!(
            s.src_mac, HOST_MAC,
            "L2Bridge: the host's MAC, not the container's: {s:?}"
        );
        assert_eq!(s.vlan, Some(100), "tagged with the network's VLAN: {s:?}");
    }
}
