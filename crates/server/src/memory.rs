//! Giving memory back to the operating system after a backlog drains.
//!
//! glibc's allocator keeps freed heap pages mapped: after a queue of a million messages is
//! consumed, the process would go on holding their pages (RSS stays at its peak) until some
//! later allocation happens to reuse them. RabbitMQ returns memory as its garbage collector
//! runs; we ask glibc to return free pages (`malloc_trim`) once the bytes held by queues have
//! fallen well below their last peak.
use std::sync::Arc;
use std::time::Duration;
use warren_broker::Broker;

/// How far queue memory must fall below its peak before trimming is worth a pass over the heap.
const TRIM_AFTER_FREEING: usize = 8 << 20;
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Runs for the life of the server.
pub async fn trim_after_drains(broker: Arc<Broker>) {
    let mut watch = DrainWatch::default();
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let used = broker.memory_used();
        if let Some(peak) = watch.observe(used) {
            // A pass over the whole heap can take milliseconds: keep it off the runtime's workers.
            let _ = tokio::task::spawn_blocking(release_free_pages).await;
            tracing::debug!(freed_from = peak, now = used, "returned free heap pages to the OS");
        }
    }
}

/// Tracks the peak of queue memory since the last trim.
#[derive(Default)]
struct DrainWatch {
    peak: usize,
}

impl DrainWatch {
    /// Some(peak) when `used` has fallen far enough below the peak to trim (and resets it).
    fn observe(&mut self, used: usize) -> Option<usize> {
        self.peak = self.peak.max(used);
        if self.peak - used < TRIM_AFTER_FREEING {
            return None;
        }
        Some(std::mem::replace(&mut self.peak, used))
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_pages() {
    // SAFETY: malloc_trim only walks the allocator's own free lists; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_pages() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_once_per_drain_of_enough_memory() {
        let mut w = DrainWatch::default();
        let mb = 1 << 20;
        assert_eq!(w.observe(20 * mb), None, "growing is no reason");
        assert_eq!(w.observe(15 * mb), None, "5 MiB freed is too little");
        assert_eq!(w.observe(2 * mb), Some(20 * mb));
        assert_eq!(w.observe(0), None, "the peak restarted from 2 MiB");
        assert_eq!(w.observe(30 * mb), None);
        assert_eq!(w.observe(21 * mb), Some(30 * mb));
    }
}
