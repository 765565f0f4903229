//! Giving memory back to the operating system after a backlog drains.
//!
//! glibc's allocator keeps freed heap pages mapped: after a queue of a million messages is
//! consumed, the process would go on holding their pages (RSS stays at its peak) until some
//! later allocation happens to reuse them. RabbitMQ returns memory as its garbage collector
//! runs; we ask glibc to return free pages (`malloc_trim`) once the bytes held by queues have
//! fallen well below their last peak.
//!
//! It also sets glibc's thresholds for large blocks at start ([`tune_allocator`]).
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

/// Blocks below this come from the allocator's heaps instead of a fresh mmap each.
pub const MMAP_THRESHOLD: usize = 32 << 20;
/// Free memory at the top of a heap glibc keeps instead of handing back on every free.
pub const TRIM_THRESHOLD: usize = 256 << 20;

/// Keeps large blocks (message bodies of hundreds of KiB, read buffers) in glibc's heaps.
///
/// By default glibc serves blocks from 128 KiB up with mmap and, between threads' heaps,
/// trims freed memory eagerly, so a stream of 1 MiB messages mapped, zeroed and unmapped
/// every body: 58% of the broker's samples were in the kernel's `clear_page_erms`, and 1 MiB
/// throughput swung between 349 and 583 msg/s. With these thresholds it held 1,110–1,153
/// (docs/performance.md, change 11). Memory that queues free is still handed back by
/// [`trim_after_drains`]; the thresholds only stop glibc doing it on every free.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn tune_allocator() {
    // SAFETY: mallopt only sets allocator parameters; called once at start, before the
    // runtime's threads allocate anything large.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune_allocator() {}

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

    /// After tuning, a 1 MiB block comes from the heap, not from its own mmap.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn large_blocks_stay_in_the_heap_after_tuning() {
        // SAFETY: mallinfo2 only reads the allocator's counters.
        let mapped = || unsafe { libc::mallinfo2() }.hblks;
        tune_allocator();
        let before = mapped();
        let block = vec![1u8; 1 << 20];
        assert_eq!(mapped(), before, "a 1 MiB block was mmapped");
        drop(std::hint::black_box(block));
    }

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
