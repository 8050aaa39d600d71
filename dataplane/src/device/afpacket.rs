//! Linux AF_PACKET device: one host interface (a container veth's host side, or the
//! uplink NIC) attached through memory-mapped TPACKET_V3 rings. Receiving walks the
//! blocks the kernel has retired (a block is handed over when full or after
//! `RETIRE_MS`), copying each frame into the worker's batch; sending fills frame slots
//! of the TX ring and hands all of a round's slots to the kernel with one `send(2)`
//! ([`Device::flush`]).
//!
//! Received frames are made what they were on the wire before the engine sees them: a
//! checksum left partial by offload (`TP_STATUS_CSUMNOTREADY`) is completed, a VLAN tag
//! stripped into metadata is put back ([`super::offload`]). Frames the ring cut short
//! (a GSO super-packet larger than a block) cannot be forwarded and are counted as
//! `truncated` (disable GSO/TSO on the interfaces, as `strata lab` does).
//!
//! Every `unsafe` block of the service lives in this file, each with its invariant.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};

use super::mapping::{interface_of, port_of_interface};
use super::{Batch, Device, DeviceCounters, DeviceError, Received, Transmit, offload};
use crate::policy::{CompiledPolicy, PortId};

/// How long the kernel keeps a partly filled receive block before handing it over: the
/// latency a quiet interface adds.
const RETIRE_MS: u32 = 1;
/// Bytes of receive ring. Blocks are small (a page, or the largest frame), because a
/// block reaches us only when full or when the retire timer fires (`RETIRE_MS`, rounded
/// up to the kernel's tick: 4 ms at HZ=250): small blocks fill fast, so a sparse stream
/// (TCP's ACKs) is not held back by the timer.
const RX_RING: usize = 4 << 20;
/// Frame slots of the TX ring (each `tx_frame` bytes).
const TX_FRAMES: usize = 512;
/// Where a frame's data starts in a TX slot: `TPACKET_ALIGN(sizeof(tpacket3_hdr))`
/// (the kernel's `tp_hdrlen - sizeof(sockaddr_ll)` when `PACKET_TX_HAS_OFF` is not set).
const TX_DATA: usize = 48;
/// Bytes of the sockaddr_ll the kernel puts after each received frame's header.
const SLL_OFFSET: usize = 48;

/// How frames are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxPath {
    /// The memory-mapped TX ring: slots filled in place, one `send(2)` per round; the
    /// kernel sends slots as page fragments (zero copy to a NIC; a veth delivering to a
    /// local namespace must copy them into fresh pages).
    Ring,
    /// Frames gathered in one buffer and sent by one `sendmmsg(2)` per round (up to
    /// `BATCH_TX` frames): one copy into a linear buffer, cheaper into a veth.
    Batch,
}

impl TxPath {
    /// `STRATA_AFPACKET_TX=ring|batch` overrides `default`.
    pub fn from_env(default: TxPath) -> TxPath {
        match std::env::var("STRATA_AFPACKET_TX").as_deref() {
            Ok("ring") => TxPath::Ring,
            Ok("batch") => TxPath::Batch,
            _ => default,
        }
    }
}

/// Frames gathered for one `sendmmsg` at most.
const BATCH_TX: usize = 64;

/// Frames gathered for the next `sendmmsg`: their bytes end to end, and each one's end.
#[derive(Default)]
struct Gathered {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

/// How the device shares an interface with the other workers' devices on it.
#[derive(Clone, Copy, Debug)]
pub struct Fanout {
    /// The group id: one per interface, the same for every worker.
    pub group: u16,
}

/// An open AF_PACKET attachment to one interface.
pub struct AfPacketDevice {
    name: String,
    fd: OwnedFd,
    ring: Mapping,
    /// Size and number of the receive blocks, and the index of the one we read next.
    rx_block_size: usize,
    rx_blocks: usize,
    rx_block: usize,
    /// Where we are in the current receive block: (packets left, offset of the next).
    rx_pos: Option<(u32, usize)>,
    tx_base: usize,
    tx_frame: usize,
    tx_next: usize,
    tx_pending: bool,
    /// `Some` when sending by `sendmmsg` (no TX ring).
    gathered: Option<Gathered>,
    /// The port whose interface this is, under the current snapshot.
    port: Option<PortId>,
    counters: DeviceCounters,
}

/// The mmap'ed rings: RX blocks first, then TX frame slots.
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is owned by one device, which one worker thread uses at a time;
// the kernel is the only other party, and it synchronises through the status words.
unsafe impl Send for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned; nothing refers to the
        // mapping after the device is dropped.
        unsafe {
            libc::munmap(self.ptr.cast(), self.len);
        }
    }
}

/// Why an interface could not be attached, said for people.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("interface `{0}` not found")]
    NoInterface(String),
    #[error("opening an AF_PACKET socket on `{0}` needs CAP_NET_RAW (run as root)")]
    Privileges(String),
    #[error("interface `{name}`: {what}: {err}")]
    Io {
        name: String,
        what: &'static str,
        err: io::Error,
    },
}

fn setsockopt<T>(fd: RawFd, level: i32, opt: i32, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live T of the size passed; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The index of interface `name` in this network namespace.
pub fn interface_index(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (index != 0).then_some(index)
}

/// The MTU of interface `name`, through the socket `fd`.
fn interface_mtu(fd: RawFd, name: &str) -> Option<usize> {
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= req.ifr_name.len() {
        return None;
    }
    for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFMTU reads the name and writes `ifru_mtu` of this ifreq only.
    let rc = unsafe { libc::ioctl(fd, libc::SIOCGIFMTU, &mut req) };
    if rc != 0 {
        return None;
    }
    // SAFETY: after a successful SIOCGIFMTU the union holds the MTU.
    Some(unsafe { req.ifr_ifru.ifru_mtu } as usize)
}

impl AfPacketDevice {
    /// Attaches to interface `name`: TPACKET_V3 rings, promiscuous, ignoring what is
    /// sent on it (by us or anyone), joined to `fanout` when several workers share it.
    pub fn open(
        name: &str,
        fanout: Option<Fanout>,
        tx_path: TxPath,
    ) -> Result<AfPacketDevice, OpenError> {
        let io_err = |what: &'static str| {
            let err = io::Error::last_os_error();
            OpenError::Io {
                name: name.to_string(),
                what,
                err,
            }
        };
        let with = |what: &'static str| {
            move |err: io::Error| OpenError::Io {
                name: name.to_string(),
                what,
                err,
            }
        };
        let index = interface_index(name).ok_or_else(|| OpenError::NoInterface(name.into()))?;
        // Protocol 0 until bound: nothing is queued before the rings exist.
        // SAFETY: plain socket(2); the result is checked.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            let err = io::Error::last_os_error();
            return Err(match err.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => OpenError::Privileges(name.into()),
                _ => OpenError::Io {
                    name: name.into(),
                    what: "socket",
                    err,
                },
            });
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let s = fd.as_raw_fd();
        let version = libc::tpacket_versions::TPACKET_V3 as libc::c_int;
        setsockopt(s, libc::SOL_PACKET, libc::PACKET_VERSION, &version)
            .map_err(with("PACKET_VERSION"))?;
        let mtu = interface_mtu(s, name).unwrap_or(1500);
        // A slot holds the largest frame the interface carries, tags and encapsulation
        // included (the uplink sends what the engine grew).
        let tx_frame = (TX_DATA + mtu + 14 + 8 + 70).next_power_of_two().max(2048);
        let rx_block = (mtu + 14 + 8 + 128).next_power_of_two().max(4096);
        let rx_blocks = (RX_RING / rx_block).max(64);
        let rx_req = libc::tpacket_req3 {
            tp_block_size: rx_block as u32,
            tp_block_nr: rx_blocks as u32,
            tp_frame_size: 2048,
            tp_frame_nr: (rx_block / 2048 * rx_blocks) as u32,
            tp_retire_blk_tov: RETIRE_MS,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setsockopt(s, libc::SOL_PACKET, libc::PACKET_RX_RING, &rx_req)
            .map_err(with("PACKET_RX_RING"))?;
        let tx_block = tx_frame.max(1 << 16);
        let tx_req = libc::tpacket_req3 {
            tp_block_size: tx_block as u32,
            tp_block_nr: (TX_FRAMES * tx_frame).div_ceil(tx_block) as u32,
            tp_frame_size: tx_frame as u32,
            tp_frame_nr: ((TX_FRAMES * tx_frame).div_ceil(tx_block) * (tx_block / tx_frame)) as u32,
            tp_retire_blk_tov: 0,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        let tx_len = match tx_path {
            TxPath::Ring => {
                setsockopt(s, libc::SOL_PACKET, libc::PACKET_TX_RING, &tx_req)
                    .map_err(with("PACKET_TX_RING"))?;
                tx_req.tp_block_size as usize * tx_req.tp_block_nr as usize
            }
            TxPath::Batch => 0,
        };
        let rx_len = rx_req.tp_block_size as usize * rx_req.tp_block_nr as usize;
        let len = rx_len + tx_len;
        // SAFETY: a fresh shared mapping of the socket's rings, of the size the kernel
        // set up above; checked for MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_LOCKED | libc::MAP_POPULATE,
                s,
                0,
            )
        };
        let ptr = if ptr == libc::MAP_FAILED {
            // MAP_LOCKED fails under a low RLIMIT_MEMLOCK: try without it.
            // SAFETY: as above.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | libc::MAP_POPULATE,
                    s,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                return Err(io_err("mmap"));
            }
            p
        } else {
            ptr
        };
        let ring = Mapping {
            ptr: ptr.cast(),
            len,
        };
        let all = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = all;
        sll.sll_ifindex = index as i32;
        // SAFETY: `sll` is a valid sockaddr_ll of the size given.
        let rc = unsafe {
            libc::bind(
                s,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io_err("bind"));
        }
        // Frames for other MACs (the switch's gateway MAC, other containers') must
        // reach us from a NIC that filters by MAC; undone when the socket closes.
        let mreq = libc::packet_mreq {
            mr_ifindex: index as i32,
            mr_type: libc::PACKET_MR_PROMISC as u16,
            mr_alen: 0,
            mr_address: [0; 8],
        };
        setsockopt(s, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)
            .map_err(with("PACKET_ADD_MEMBERSHIP"))?;
        // What is sent on the interface (by this worker or another) is not input.
        let one: libc::c_int = 1;
        setsockopt(s, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &one)
            .map_err(with("PACKET_IGNORE_OUTGOING"))?;
        // Straight to the driver: the switch is the queueing discipline.
        setsockopt(s, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, &one)
            .map_err(with("PACKET_QDISC_BYPASS"))?;
        if let Some(f) = fanout {
            let arg: u32 = u32::from(f.group) | (libc::PACKET_FANOUT_HASH << 16);
            setsockopt(s, libc::SOL_PACKET, libc::PACKET_FANOUT, &arg)
                .map_err(with("PACKET_FANOUT"))?;
        }
        Ok(AfPacketDevice {
            name: name.to_string(),
            fd,
            ring,
            rx_block_size: rx_block,
            rx_blocks,
            rx_block: 0,
            rx_pos: None,
            tx_base: rx_len,
            tx_frame,
            tx_next: 0,
            tx_pending: false,
            gathered: (tx_path == TxPath::Batch).then(|| Gathered {
                bytes: Vec::with_capacity(BATCH_TX * 2048),
                ends: Vec::with_capacity(BATCH_TX),
            }),
            port: None,
            counters: DeviceCounters::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The status word at `offset` of the ring, shared with the kernel.
    fn status(&self, offset: usize) -> &AtomicU32 {
        debug_assert!(offset + 4 <= self.ring.len && offset.is_multiple_of(4));
        // SAFETY: every offset passed is that of a block's or slot's status word, inside
        // the mapping (blocks and slots are laid out within `len`) and 4-byte aligned
        // (blocks are page-aligned, headers 16-byte aligned). The kernel writes it
        // concurrently, so it is only ever accessed atomically.
        unsafe { &*(self.ring.ptr.add(offset) as *const AtomicU32) }
    }

    /// A plain header word of the ring, read once the status word said the kernel is
    /// done with that block (acquire ordering makes its writes visible).
    fn word32(&self, offset: usize) -> u32 {
        if offset + 4 > self.ring.len {
            return 0;
        }
        // SAFETY: in bounds (checked); the block it belongs to is ours until released.
        unsafe { std::ptr::read_unaligned(self.ring.ptr.add(offset) as *const u32) }
    }

    fn word16(&self, offset: usize) -> u16 {
        if offset + 2 > self.ring.len {
            return 0;
        }
        // SAFETY: as for `word32`.
        unsafe { std::ptr::read_unaligned(self.ring.ptr.add(offset) as *const u16) }
    }

    /// The bytes `offset..offset + len` of a block we own; empty if out of bounds.
    fn bytes(&self, offset: usize, len: usize) -> &[u8] {
        if offset
            .checked_add(len)
            .is_none_or(|end| end > self.ring.len)
        {
            return &[];
        }
        // SAFETY: in bounds (checked); the block is ours until we release it, and the
        // slice does not outlive `&self`.
        unsafe { std::slice::from_raw_parts(self.ring.ptr.add(offset), len) }
    }

    /// Copies a received packet (its header at `pkt`) into the batch.
    fn take(&mut self, pkt: usize, batch: &mut Batch) {
        use std::mem::offset_of;
        let h3 = |f: usize| pkt + f;
        let status = self.word32(h3(offset_of!(libc::tpacket3_hdr, tp_status)));
        let snaplen = self.word32(h3(offset_of!(libc::tpacket3_hdr, tp_snaplen))) as usize;
        let len = self.word32(h3(offset_of!(libc::tpacket3_hdr, tp_len)));
        let mac = usize::from(self.word16(h3(offset_of!(libc::tpacket3_hdr, tp_mac))));
        let sec = self.word32(h3(offset_of!(libc::tpacket3_hdr, tp_sec)));
        let nsec = self.word32(h3(offset_of!(libc::tpacket3_hdr, tp_nsec)));
        let hv1 = offset_of!(libc::tpacket3_hdr, hv1);
        let tci = self.word32(h3(hv1 + offset_of!(libc::tpacket_hdr_variant1, tp_vlan_tci)));
        let tpid = self.word16(h3(
            hv1 + offset_of!(libc::tpacket_hdr_variant1, tp_vlan_tpid)
        ));
        let pkttype = self.bytes(
            pkt + SLL_OFFSET + offset_of!(libc::sockaddr_ll, sll_pkttype),
            1,
        );
        if pkttype.first() == Some(&libc::PACKET_OUTGOING) {
            return;
        }
        if snaplen < len as usize {
            self.counters.rx_truncated += 1;
            return;
        }
        let Some(port) = self.port else {
            self.counters.rx_unattached += 1;
            return;
        };
        let data = self.bytes(pkt + mac, snaplen);
        if data.len() != snaplen {
            self.counters.rx_truncated += 1;
            return;
        }
        let Some(slot) = batch.next_slot() else {
            return;
        };
        slot.data.extend_from_slice(data);
        if status & libc::TP_STATUS_VLAN_VALID != 0 {
            let tpid = if status & TP_STATUS_VLAN_TPID_VALID != 0 {
                tpid
            } else {
                0x8100
            };
            offload::insert_vlan(&mut slot.data, tpid, tci as u16);
        }
        if status & libc::TP_STATUS_CSUMNOTREADY != 0 && offload::complete_checksum(&mut slot.data)
        {
            self.counters.checksums_completed += 1;
        }
        slot.orig_len = slot.data.len() as u32;
        slot.ts_ns = u64::from(sec) * 1_000_000_000 + u64::from(nsec);
        slot.port = Some(port);
        self.counters.rx += 1;
    }
}

/// `TP_STATUS_VLAN_TPID_VALID` (not in every libc release).
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;

/// Offset of a block's status word: `tpacket_block_desc.hdr.bh1.block_status`.
const BLOCK_STATUS: usize = std::mem::offset_of!(libc::tpacket_block_desc, hdr);
const BLOCK_NUM_PKTS: usize = BLOCK_STATUS + std::mem::offset_of!(libc::tpacket_hdr_v1, num_pkts);
const BLOCK_FIRST: usize =
    BLOCK_STATUS + std::mem::offset_of!(libc::tpacket_hdr_v1, offset_to_first_pkt);
const FRAME_STATUS: usize = std::mem::offset_of!(libc::tpacket3_hdr, tp_status);
const FRAME_LEN: usize = std::mem::offset_of!(libc::tpacket3_hdr, tp_len);
const FRAME_NEXT: usize = std::mem::offset_of!(libc::tpacket3_hdr, tp_next_offset);

impl Device for AfPacketDevice {
    fn recv(&mut self, batch: &mut Batch) -> Result<Received, DeviceError> {
        while !batch.is_full() {
            let block = self.rx_block * self.rx_block_size;
            let (left, at) = match self.rx_pos {
                Some(pos) => pos,
                None => {
                    // Acquire: the kernel's writes to the block are visible once it says
                    // the block is ours.
                    let st = self.status(block + BLOCK_STATUS).load(Ordering::Acquire);
                    if st & libc::TP_STATUS_USER == 0 {
                        break;
                    }
                    let n = self.word32(block + BLOCK_NUM_PKTS);
                    let first = self.word32(block + BLOCK_FIRST) as usize;
                    (n, block + first)
                }
            };
            if left == 0 || at >= block + self.rx_block_size {
                // Done with this block: give it back (release: our reads come first).
                self.status(block + BLOCK_STATUS)
                    .store(libc::TP_STATUS_KERNEL, Ordering::Release);
                self.rx_pos = None;
                self.rx_block = (self.rx_block + 1) % self.rx_blocks;
                continue;
            }
            self.take(at, batch);
            let next = self.word32(at + FRAME_NEXT) as usize;
            self.rx_pos = Some(if next == 0 {
                (0, at)
            } else {
                (left - 1, at + next)
            });
        }
        Ok(if batch.is_empty() {
            Received::Idle
        } else {
            Received::Frames
        })
    }

    fn send(&mut self, tx: &Transmit<'_>) -> Result<(), DeviceError> {
        if let Some(g) = self.gathered.as_mut() {
            g.bytes.extend_from_slice(tx.frame);
            g.ends.push(g.bytes.len());
            self.tx_pending = true;
            if g.ends.len() == BATCH_TX {
                self.flush()?;
            }
            return Ok(());
        }
        if tx.frame.len() + TX_DATA > self.tx_frame {
            self.counters.tx_dropped += 1;
            return Ok(());
        }
        let slot = self.tx_base + self.tx_next * self.tx_frame;
        let mut st = self.status(slot + FRAME_STATUS).load(Ordering::Acquire);
        if st != libc::TP_STATUS_AVAILABLE && st & libc::TP_STATUS_WRONG_FORMAT == 0 {
            // The ring is full of frames the kernel has not sent: push them out.
            self.flush()?;
            st = self.status(slot + FRAME_STATUS).load(Ordering::Acquire);
        }
        if st & libc::TP_STATUS_WRONG_FORMAT != 0 {
            self.counters.tx_dropped += 1;
        } else if st != libc::TP_STATUS_AVAILABLE {
            self.counters.tx_dropped += 1;
            return Ok(());
        }
        // SAFETY: the slot lies in the TX part of the mapping (`tx_next < TX_FRAMES`
        // slots of `tx_frame` bytes, all within the ring set up in `open`), its status
        // is AVAILABLE so the kernel does not touch it until we set SEND_REQUEST below,
        // and the frame fits (checked above).
        unsafe {
            let base = self.ring.ptr.add(slot);
            std::ptr::copy_nonoverlapping(tx.frame.as_ptr(), base.add(TX_DATA), tx.frame.len());
            std::ptr::write_unaligned(base.add(FRAME_LEN) as *mut u32, tx.frame.len() as u32);
            std::ptr::write_unaligned(base.add(FRAME_NEXT) as *mut u32, 0);
        }
        // Release: the frame's bytes are written before the kernel may read them.
        self.status(slot + FRAME_STATUS)
            .store(libc::TP_STATUS_SEND_REQUEST, Ordering::Release);
        self.tx_next = (self.tx_next + 1) % TX_FRAMES;
        self.tx_pending = true;
        self.counters.tx += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DeviceError> {
        if !self.tx_pending {
            return Ok(());
        }
        self.tx_pending = false;
        if let Some(g) = self.gathered.as_mut() {
            let (sent, failed) = send_gathered(self.fd.as_raw_fd(), g);
            self.counters.tx += sent;
            self.counters.tx_errors += failed;
            g.bytes.clear();
            g.ends.clear();
            return Ok(());
        }
        // SAFETY: a send(2) with no buffer: it asks the kernel to transmit the slots
        // marked SEND_REQUEST.
        let rc =
            unsafe { libc::send(self.fd.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT) };
        if rc < 0 {
            // The interface went down, or its queue is full: what was not sent is lost,
            // as on a wire; the worker carries on.
            self.counters.tx_errors += 1;
        }
        Ok(())
    }

    fn carries(&self, port: PortId, policy: &CompiledPolicy) -> bool {
        interface_of(port, policy) == Some(self.name.as_str())
    }

    fn attach(&mut self, policy: &CompiledPolicy) {
        self.port = port_of_interface(&self.name, policy);
    }

    fn ready_fd(&self) -> Option<i32> {
        Some(self.fd.as_raw_fd())
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn counters(&mut self) -> DeviceCounters {
        // The kernel's count of frames the full ring could not take (reading resets it).
        // SAFETY: tpacket_stats_v3 is plain data; all-zero is a valid value.
        let mut st: libc::tpacket_stats_v3 = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: `st` and `len` are valid for writes of the sizes given.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats_v3).cast(),
                &mut len,
            )
        };
        if rc == 0 {
            self.counters.rx_ring_full += u64::from(st.tp_drops);
        }
        self.counters
    }
}

/// Sends the gathered frames with `sendmmsg(2)`; returns (sent, not sent).
fn send_gathered(fd: RawFd, g: &mut Gathered) -> (u64, u64) {
    let mut iovs: smallvec::SmallVec<[libc::iovec; BATCH_TX]> = smallvec::SmallVec::new();
    let mut start = 0;
    for &end in &g.ends {
        let Some(frame) = g.bytes.get(start..end) else {
            break;
        };
        iovs.push(libc::iovec {
            // The kernel only reads through it (sendmmsg), as `*mut` is the C type.
            iov_base: frame.as_ptr() as *mut libc::c_void,
            iov_len: frame.len(),
        });
        start = end;
    }
    let mut msgs: smallvec::SmallVec<[libc::mmsghdr; BATCH_TX]> = iovs
        .iter_mut()
        .map(|iov| {
            // SAFETY: msghdr is plain data; all-zero is a valid value (no name, no
            // control data).
            let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
            hdr.msg_iov = iov;
            hdr.msg_iovlen = 1;
            libc::mmsghdr {
                msg_hdr: hdr,
                msg_len: 0,
            }
        })
        .collect();
    let total = msgs.len();
    let mut done = 0;
    while let Some(rest) = msgs.get_mut(done..).filter(|r| !r.is_empty()) {
        // SAFETY: `rest` holds valid mmsghdrs whose iovecs point into `g.bytes`, which
        // outlives the call and is not touched during it.
        let rc =
            unsafe { libc::sendmmsg(fd, rest.as_mut_ptr(), rest.len() as u32, libc::MSG_DONTWAIT) };
        if rc <= 0 {
            break;
        }
        done += rc as usize;
    }
    (done as u64, (total - done) as u64)
}

/// Sleeps until one of `fds` is readable or `timeout` passes (an idle worker's wait).
pub fn wait_readable(fds: &[RawFd], timeout: std::time::Duration) {
    let mut polls: smallvec::SmallVec<[libc::pollfd; 16]> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: `polls` is a valid array of `len` pollfd structs for the call's duration.
    unsafe {
        libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, ms);
    }
}

/// An eventfd: how one worker wakes another that sleeps in poll(2) (handovers).
pub struct EventFd(OwnedFd);

impl EventFd {
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: plain eventfd(2); the result is checked.
        let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(raw) }))
    }

    /// Makes the descriptor readable.
    pub fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes the 8 bytes of `one`, as eventfd(2) requires; a full counter
        // (EAGAIN) is already readable, which is all a signal is for.
        unsafe {
            libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8);
        }
    }

    /// Makes it unreadable again.
    pub fn clear(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into `v`; EAGAIN (nothing signalled) leaves it alone.
        unsafe {
            libc::read(self.0.as_raw_fd(), (&mut v as *mut u64).cast(), 8);
        }
    }

    pub fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}
