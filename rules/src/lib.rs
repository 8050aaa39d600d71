//! `strata-rules`: the policy side of Strata, with no I/O.
//!
//! - [`maglev`]: Maglev consistent hashing, the load balancer's choice of backend.
//! - [`model`]: the object model of DESIGN §2 (ports, layers, groups, rules, conditions,
//!   actions, defaults).
//! - [`reference`]: the reference evaluator, the executable spec of DESIGN §2. Slow and
//!   obviously correct; every fast path is tested against it.
//! - [`classifier`]: compiled classifiers that select a group's best rule quickly;
//!   [`classbench`] reads ClassBench rule sets and traces for them.
//! - [`policy`]: the TOML policy file (networks, endpoints, HNS-style policies, custom
//!   layers), its validation and its compilation into a [`model::Policy`].

pub mod classbench;
pub mod classifier;
pub mod maglev;
pub mod model;
pub mod policy;
pub mod reference;

pub use model::*;
