//! Where snapshots are published and workers read them: read-copy-update over an
//! `ArcSwap`. The control plane compiles a whole new snapshot away from the packet path
//! and swaps it in; a worker loads the current one once per batch, without a lock, and
//! keeps judging the batch by the snapshot it loaded.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::CompiledPolicy;

/// The current snapshot, shared by the control plane and the workers.
#[derive(Clone)]
pub struct Published(Arc<ArcSwap<CompiledPolicy>>);

impl Published {
    pub fn new(first: CompiledPolicy) -> Published {
        Published(Arc::new(ArcSwap::from_pointee(first)))
    }

    /// The current snapshot.
    pub fn load(&self) -> Arc<CompiledPolicy> {
        self.0.load_full()
    }

    /// Makes `next` current; workers install it at their next batch.
    pub fn publish(&self, next: CompiledPolicy) {
        self.0.store(Arc::new(next));
    }
}
