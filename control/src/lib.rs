//! `strata-control`: the control plane — it compiles policy away from the packet path
//! and publishes it to the workers (DESIGN §5).
//!
//! - [`publish`]: compile a policy against the running snapshot and swap it in;
//! - [`service`]: the host dataplane service — workers over the host's interfaces, and
//!   the handle the control plane drives it with.
pub mod publish;
pub mod service;
