//! `strata-dataplane`: the packet path.
//!
//! - [`packet`]: zero-copy parsing of untrusted frames into offsets and rule fields;
//! - [`capture`]: reading pcap/pcapng captures (any common link type, as Ethernet) and
//!   writing pcapng with per-port interfaces and per-packet comments;
//! - [`flow`]: what a frame means to policy ([`flow::PacketMeta`]) and flow keys;
//! - [`layer`]: compiled layers (the slow path's evaluation);
//! - [`nat`]: NAT port pools (which external port a new SNAT connection gets);
//! - [`conntrack`]: recorded connections, TCP states and timeouts;
//! - [`uft`]: the unified flow table, each flow's cached decision;
//! - [`port`]: one port's fast path and slow path, and its counters;
//! - [`switch`]: ports, the MAC/IP table, ingress, delivery, proxy ARP;
//! - [`drop`](mod@drop): every drop's named reason.

pub mod capture;
pub mod conntrack;
pub mod drop;
pub mod flow;
pub mod layer;
pub mod nat;
pub mod packet;
pub mod port;
pub mod switch;
pub mod transpose;
pub mod uft;

pub use drop::DropReason;
pub use flow::{FlowKey, PacketMeta};
pub use switch::{FrameInfo, PortId, Switch, Verdict};
