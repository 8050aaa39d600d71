//! `strata-dataplane`: the packet path, and the devices and loop that drive it.
//!
//! - [`packet`]: zero-copy parsing of untrusted frames into offsets and rule fields;
//! - [`capture`]: reading pcap/pcapng captures (any common link type, as Ethernet) and
//!   writing pcapng with per-port interfaces and per-packet comments;
//! - [`flow`]: what a frame means to policy ([`flow::PacketMeta`]) and flow keys;
//! - [`policy`]: the compiled policy, an immutable snapshot shared by the workers
//!   (compiled layers, the MAC/IP table), and where snapshots are published;
//! - [`state`]: what a worker owns and changes — flows (the unified flow table),
//!   connections, NAT bindings, counters;
//! - [`port`]: one port's fast path and slow path;
//! - [`switch`]: ingress, delivery per network driver, overlay, proxy ARP;
//! - [`transpose`]: header transpositions and their byte-level application;
//! - [`engine`]: the engine call — a frame in, its verdict and outputs out;
//! - [`device`] and [`worker`]: where frames come from and go to, and the loop;
//! - [`verdict`], [`report`], [`drop`](mod@drop): what happened, for people.
//!
//! The packet's trip: `device` → `worker` → `engine` (parse, ingress) → `switch` →
//! `port` (sender's layers) → delivery → `port` (receiver's layers) → `transpose` (the
//! bytes) → `worker` → `device`.

// Panic-freedom by construction on the packet path: nothing a frame, a capture or a
// policy controls may reach an `unwrap`, an `expect`, a `panic!` or an unchecked index.
// Each exception is allowed where it stands, with its reason.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod capture;
pub mod device;
pub mod drop;
pub mod engine;
pub mod flow;
pub mod huge;
pub mod packet;
pub mod policy;
pub mod port;
pub mod report;
pub mod state;
pub mod switch;
pub mod transpose;
pub mod verdict;
pub mod worker;

pub use drop::DropReason;
pub use engine::{Engine, Ingress, Outcome, Output, Rx};
pub use flow::{FlowKey, PacketMeta};
pub use policy::{CompiledPolicy, PortId, Published};
pub use switch::FrameInfo;
pub use verdict::{Verdict, VerdictRecord};
