//! The broker-wide budget for message bodies held in memory by queues.
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes of ready messages all queues hold in memory. Past `limit`, queues page new
/// messages to the store even if their own window has room.
#[derive(Debug)]
pub struct MemoryBudget {
    used: AtomicUsize,
    limit: usize,
}

impl MemoryBudget {
    pub fn new(limit: usize) -> Self {
        MemoryBudget { used: AtomicUsize::new(0), limit }
    }

    pub fn add(&self, n: usize) {
        self.used.fetch_add(n, Ordering::Relaxed);
    }

    pub fn sub(&self, n: usize) {
        let _ = self.used.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| Some(u.saturating_sub(n)));
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn is_over(&self) -> bool {
        self.used() > self.limit
    }
}
