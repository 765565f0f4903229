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
    let mut drains = DrainWatch::default();
    let mut rests = RestWatch::default();
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let used = broker.memory_used();
        let drained = drains.observe(used);
        let rested = rests.observe(process_cpu());
        if drained.is_some() || rested {
            // A pass over the whole heap can take milliseconds: keep it off the runtime's workers.
            let _ = tokio::task::spawn_blocking(release_free_pages).await;
            tracing::debug!(drained_from = ?drained, rested, now = used, "returned free heap pages to the OS");
        }
    }
}

/// A second of CPU below this is the broker at rest.
const REST_CPU: Duration = Duration::from_millis(20);
/// A second of CPU above this is the broker at work.
const WORK_CPU: Duration = Duration::from_millis(100);

/// Notices the broker coming to rest after work, once per stretch of work.
///
/// [`tune_allocator`] lets glibc keep freed memory for reuse; after a burst of traffic that
/// left no queue behind (so [`DrainWatch`] saw nothing), this is when it goes back. Idle RSS
/// after the compare scenarios: 18 MB before the tuning, 62 MB with it, 45 MB with this too;
/// after a stream of 1 MiB messages, 795 MB without this and 83 MB with it. Trimming while
/// traffic flows would only make the next messages fault pages in again.
#[derive(Default)]
struct RestWatch {
    last_cpu: Option<Duration>,
    worked: bool,
}

impl RestWatch {
    /// True when the process's CPU time, sampled each [`CHECK_EVERY`], shows rest after work.
    fn observe(&mut self, cpu: Duration) -> bool {
        let Some(last) = self.last_cpu.replace(cpu) else { return false };
        let spent = cpu.saturating_sub(last);
        if spent > WORK_CPU {
            self.worked = true;
        }
        spent < REST_CPU && std::mem::take(&mut self.worked)
    }
}

/// User and system CPU time of the whole process so far.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn process_cpu() -> Duration {
    // SAFETY: getrusage fills the struct it is given and nothing else.
    let usage = unsafe {
        let mut u = std::mem::zeroed::<libc::rusage>();
        if libc::getrusage(libc::RUSAGE_SELF, &mut u) != 0 {
            return Duration::ZERO;
        }
        u
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Where there is no glibc heap to trim, nothing needs the figure.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn process_cpu() -> Duration {
    Duration::ZERO
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
    fn trims_once_when_work_gives_way_to_rest() {
        let mut w = RestWatch::default();
        let ms = Duration::from_millis;
        assert!(!w.observe(ms(1_000)), "the first sample only sets the baseline");
        assert!(!w.observe(ms(1_005)), "rest without work before it");
        assert!(!w.observe(ms(1_900)), "working");
        assert!(!w.observe(ms(2_700)), "still working");
        assert!(!w.observe(ms(2_760)), "light load is neither work nor rest");
        assert!(w.observe(ms(2_770)), "rest after work");
        assert!(!w.observe(ms(2_775)), "once per stretch of work");
        assert!(!w.observe(ms(3_000)), "working again");
        assert!(w.observe(ms(3_001)));
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
