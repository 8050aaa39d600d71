//! `strata-control`: runs the dataplane for users.
//!
//! - [`replay`]: a capture through a switch, with verdicts and a commented pcapng out.
pub mod replay;
