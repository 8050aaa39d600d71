//! Publishing policy: a whole policy is compiled against the running snapshot (so ports
//! keep their slots, and unchanged ports their compiled layers and generation) and
//! published as one immutable snapshot; workers install it at their next batch, so no
//! packet is judged by a mixture of two policies.
//!
//! The publisher keeps the last few snapshots it replaced: a worker installing a new one
//! then never holds the last reference to the old one, so freeing the old compiled layers
//! (a large classifier takes milliseconds) happens here, on the control thread, not in a
//! worker's pause between two batches.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use strata_dataplane::policy::{CompileOptions, CompiledPolicy, Published};
use strata_rules::model::Policy;

/// Owns the published snapshot; hands workers a handle on it.
pub struct Publisher {
    published: Published,
    options: CompileOptions,
    /// Snapshots replaced lately, freed here once workers have moved past them.
    retired: Mutex<VecDeque<Arc<CompiledPolicy>>>,
}

/// Replaced snapshots kept: a worker that lags further behind frees its old one itself.
const RETIRED: usize = 4;

impl Publisher {
    /// Compiles and publishes the first policy.
    pub fn new(policy: &Policy, options: CompileOptions) -> Publisher {
        Publisher {
            published: Published::new(CompiledPolicy::compile(policy, None, options)),
            options,
            retired: Mutex::new(VecDeque::new()),
        }
    }

    /// Publishes into `published` from now on (the service made the first snapshot),
    /// compiling with the options it was compiled with.
    pub fn following(published: Published) -> Publisher {
        let options = published.load().options();
        Publisher {
            published,
            options,
            retired: Mutex::new(VecDeque::new()),
        }
    }

    /// The handle workers follow.
    pub fn published(&self) -> Published {
        self.published.clone()
    }

    /// The running snapshot.
    pub fn current(&self) -> Arc<CompiledPolicy> {
        self.published.load()
    }

    /// Compiles `policy` against the running snapshot and publishes it; returns how long
    /// compiling and publishing took.
    pub fn apply(&self, policy: &Policy) -> Duration {
        self.apply_changed(policy, None)
    }

    /// [`apply`](Self::apply), told which ports may have changed (see
    /// `CompiledPolicy::compile_changed`).
    pub fn apply_changed(&self, policy: &Policy, changed: Option<&[String]>) -> Duration {
        let started = Instant::now();
        let next = self.compile(policy, changed);
        self.publish(next, started)
    }

    /// Compiles `policy` against the running snapshot, without publishing it.
    pub fn compile(&self, policy: &Policy, changed: Option<&[String]>) -> CompiledPolicy {
        let current = self.published.load();
        CompiledPolicy::compile_changed(policy, Some(&current), self.options, changed)
    }

    /// Publishes a snapshot made by [`compile`](Self::compile); returns the time since
    /// `started`.
    pub fn publish(&self, next: CompiledPolicy, started: Instant) -> Duration {
        let current = self.published.load();
        self.published.publish(next);
        let took = started.elapsed();
        let mut retired = self.retired.lock().unwrap_or_else(PoisonError::into_inner);
        retired.push_back(current);
        while retired.len() > RETIRED {
            retired.pop_front();
        }
        took
    }
}
