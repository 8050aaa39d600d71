//! `strata-rules`: the policy side of Strata, with no I/O.
//!
//! - [`conn`]: what a connection is (its key, TCP states, timeouts, reply rewrite): the
//!   definitions the reference evaluator and the engine share.
//! - [`decision`]: which rule or default decided a layer, and its printed names.
//! - [`maglev`]: Maglev consistent hashing, the load balancer's choice of backend.
//! - [`model`]: the object model of DESIGN §2 (ports, layers, groups, rules, conditions,
//!   actions, defaults).
//! - [`reference`](mod@reference): the reference evaluator, the executable spec of DESIGN §2. Slow and
//!   obviously correct; every fast path is tested against it. A leaf: only tests and
//!   tools use it, the engine never does.
//! - [`source`]: which source addresses an endpoint, or the uplink, may send from.
//! - [`classifier`]: compiled classifiers that select a group's best rule quickly;
//!   [`classbench`] reads ClassBench rule sets and traces for them.
//! - [`policy`]: the TOML policy file (networks, endpoints, HNS-style policies, custom
//!   layers), its validation and its compilation into a [`model::Policy`].

pub mod classbench;
pub mod classifier;
pub mod conn;
pub mod decision;
pub mod maglev;
pub mod model;
pub mod policy;
pub mod reference;
pub mod source;

pub use model::*;
