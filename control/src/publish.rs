//! Publishing policy: a whole policy is compiled against the running snapshot (so ports
//! keep their slots, and unchanged ports their compiled layers and generation) and
//! published as one immutable snapshot; workers install it at their next batch, so no
//! packet is judged by a mixture of two policies.

use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_dataplane::policy::{CompileOptions, CompiledPolicy, Published};
use strata_rules::model::Policy;

/// Owns the published snapshot; hands workers a handle on it.
pub struct Publisher {
    published: Published,
    options: CompileOptions,
}

impl Publisher {
    /// Compiles and publishes the first policy.
    pub fn new(policy: &Policy, options: CompileOptions) -> Publisher {
        Publisher {
            published: Published::new(CompiledPolicy::compile(policy, None, options)),
            options,
        }
    }

    /// Publishes into `published` from now on (the service made the first snapshot),
    /// compiling with the options it was compiled with.
    pub fn following(published: Published) -> Publisher {
        let options = published.load().options();
        Publisher { published, options }
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
        let started = Instant::now();
        let current = self.published.load();
        let next = CompiledPolicy::compile(policy, Some(&current), self.options);
        self.published.publish(next);
        started.elapsed()
    }
}
