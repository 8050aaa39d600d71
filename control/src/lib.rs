//! `strata-control`: the control plane — it validates and compiles policy away from the
//! packet path, publishes it to the workers, and lets operators see and change what runs
//! (DESIGN §4, §5).
//!
//! - [`publish`]: compile a policy against the running snapshot and swap it in;
//! - [`edit`]: the running policy (a base document and edits: endpoints, ACLs) and its
//!   validation;
//! - [`api`]: the operations of the control socket and the [`api::Controller`] that
//!   implements them over a [`api::Dataplane`];
//! - [`protocol`]: the line-delimited JSON requests and replies (`docs/control.md`);
//! - [`socket`]: the Unix control socket server, and its client;
//! - [`inspect`]: ports, layers, connections and totals for people;
//! - [`watch`]: the policy file watched and reloaded;
//! - [`metrics`]: Prometheus text on an opt-in address;
//! - [`local`]: an in-process dataplane (one worker over frames in memory);
//! - [`service`]: the host dataplane service — workers over the host's interfaces, and
//!   the handle the control plane drives it with.
pub mod api;
pub mod edit;
pub mod inspect;
pub mod local;
pub mod metrics;
pub mod protocol;
pub mod publish;
pub mod service;
#[cfg(unix)]
pub mod socket;
pub mod watch;
