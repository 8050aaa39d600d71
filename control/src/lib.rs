//! `strata-control`: the control plane — it compiles policy away from the packet path
//! and publishes it to the workers (DESIGN §5).
//!
//! - [`publish`]: compile a policy against the running snapshot and swap it in.
pub mod publish;
