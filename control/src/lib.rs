//! `strata-control`: runs the dataplane for users.
//!
//! - [`replay`]: a capture through a switch, with verdicts and a commented pcapng out;
//! - [`workload`]: the packet-path benchmark workload (testpmd's, for side-by-side runs).
pub mod replay;
pub mod workload;
