//! The checks behind the alarms: thresholds, the last readings, when each is next due, and
//! the log lines when an alarm starts or ends (worded as RabbitMQ's `vm_memory_monitor`,
//! `rabbit_disk_monitor` and `rabbit_alarm` word them).
//!
//! Sans-IO apart from the [`Probe`]: time is passed in, so the schedule and the transitions
//! are unit-tested with made-up figures.
use super::probe::Probe;
use super::settings::{DiskFreeLimit, MemoryWatermark};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What RabbitMQ assumes when the OS will not say how much memory there is.
const MEMORY_SIZE_FOR_UNKNOWN_OS: u64 = 1 << 30;
/// RabbitMQ's disk monitor re-checks between these bounds, sooner the closer free space is
/// to the limit (rabbit_disk_monitor's DEFAULT_MIN/MAX_DISK_CHECK_INTERVAL)...
const DISK_CHECK_MIN: Duration = Duration::from_millis(100);
const DISK_CHECK_MAX: Duration = Duration::from_millis(10_000);
/// ...assuming the disk can fill at 250 MB/s (its FAST_RATE), in bytes per millisecond.
const DISK_FAST_RATE: u64 = 250 * 1000;
const MIB: u64 = 1 << 20;

pub struct Monitor {
    probe: Box<dyn Probe>,
    data_dir: PathBuf,
    watermark: MemoryWatermark,
    disk_free_limit: DiskFreeLimit,
    memory_interval: Duration,
    pub total_memory: u64,
    pub memory_limit: u64,
    pub disk_limit: u64,
    pub memory_used: Option<u64>,
    pub disk_free: Option<u64>,
    pub memory_alarm: bool,
    pub disk_alarm: bool,
    next_memory: Instant,
    next_disk: Instant,
    /// A figure that could not be read is reported once, not on every check.
    unreadable_reported: (bool, bool),
}

impl Monitor {
    /// Sets the thresholds (logging them, as RabbitMQ does at boot) and takes the first readings.
    pub fn new(
        probe: Box<dyn Probe>,
        data_dir: PathBuf,
        watermark: MemoryWatermark,
        disk_free_limit: DiskFreeLimit,
        memory_interval: Duration,
        now: Instant,
    ) -> Monitor {
        let mut m = Monitor {
            probe,
            data_dir,
            watermark,
            disk_free_limit,
            memory_interval,
            total_memory: 0,
            memory_limit: 0,
            disk_limit: 0,
            memory_used: None,
            disk_free: None,
            memory_alarm: false,
            disk_alarm: false,
            next_memory: now,
            next_disk: now,
            unreadable_reported: (false, false),
        };
        m.set_watermark(watermark, now);
        m.set_disk_free_limit(disk_free_limit, now);
        m
    }

    /// `rabbitmqctl set_vm_memory_high_watermark`: total memory is read again, and memory
    /// checked at once.
    pub fn set_watermark(&mut self, watermark: MemoryWatermark, now: Instant) {
        self.watermark = watermark;
        self.total_memory = self.probe.total_memory().unwrap_or_else(|| {
            tracing::warn!(
                assumed = MEMORY_SIZE_FOR_UNKNOWN_OS,
                "Unknown total memory size for this system; assuming memory size is 1024 MiB"
            );
            MEMORY_SIZE_FOR_UNKNOWN_OS
        });
        self.memory_limit = watermark.limit(self.total_memory);
        tracing::info!(
            "Memory high watermark set to {} MiB ({} bytes) of {} MiB ({} bytes) total",
            self.memory_limit / MIB,
            self.memory_limit,
            self.total_memory / MIB,
            self.total_memory
        );
        self.check_memory(now);
    }

    /// `rabbitmqctl set_disk_free_limit`: disk checked at once.
    pub fn set_disk_free_limit(&mut self, limit: DiskFreeLimit, now: Instant) {
        self.disk_free_limit = limit;
        self.disk_limit = limit.limit(self.total_memory);
        tracing::info!("Disk free limit set to {}MB", self.disk_limit / 1_000_000);
        self.check_disk(now);
    }

    pub fn watermark(&self) -> MemoryWatermark {
        self.watermark
    }

    pub fn disk_free_limit(&self) -> DiskFreeLimit {
        self.disk_free_limit
    }

    /// How long until the next check is due.
    pub fn next_due(&self, now: Instant) -> Duration {
        self.next_memory.min(self.next_disk).saturating_duration_since(now)
    }

    /// Runs the checks that are due.
    pub fn check_due(&mut self, now: Instant) {
        if now >= self.next_memory {
            self.check_memory(now);
        }
        if now >= self.next_disk {
            self.check_disk(now);
        }
    }

    fn check_memory(&mut self, now: Instant) {
        self.next_memory = now + self.memory_interval;
        self.memory_used = self.probe.used_memory();
        let Some(used) = self.memory_used else {
            if !std::mem::replace(&mut self.unreadable_reported.0, true) {
                tracing::warn!("cannot read the broker's resident memory; the memory alarm is not checked");
            }
            return;
        };
        let alarm = used > self.memory_limit;
        if alarm == self.memory_alarm {
            return;
        }
        self.memory_alarm = alarm;
        let allowed = self.memory_limit;
        if alarm {
            tracing::info!("vm_memory_high_watermark set. Memory used:{used} allowed:{allowed}");
            tracing::warn!(
                used,
                allowed,
                "memory resource limit alarm set. *** Publishers will be blocked until this alarm clears ***"
            );
        } else {
            tracing::info!("vm_memory_high_watermark clear. Memory used:{used} allowed:{allowed}");
            tracing::warn!(used, allowed, "memory resource limit alarm cleared");
        }
    }

    fn check_disk(&mut self, now: Instant) {
        self.disk_free = self.probe.disk_free(&self.data_dir);
        let Some(free) = self.disk_free else {
            self.next_disk = now + DISK_CHECK_MAX;
            if !std::mem::replace(&mut self.unreadable_reported.1, true) {
                tracing::warn!(dir = %self.data_dir.display(),
                    "cannot read the free disk space of the data directory; the disk alarm is not checked");
            }
            return;
        };
        let limit = self.disk_limit;
        let alarm = free < limit;
        self.next_disk = now + disk_check_interval(alarm, free, limit);
        if alarm == self.disk_alarm {
            return;
        }
        self.disk_alarm = alarm;
        if alarm {
            tracing::info!("Free disk space is insufficient. Free bytes: {free}. Limit: {limit}");
            tracing::warn!(
                free,
                limit,
                "disk resource limit alarm set. *** Publishers will be blocked until this alarm clears ***"
            );
        } else {
            tracing::info!("Free disk space is sufficient. Free bytes: {free}. Limit: {limit}");
            tracing::warn!(free, limit, "disk resource limit alarm cleared");
        }
    }
}

/// RabbitMQ's schedule: while in alarm, the longest interval; otherwise the time the disk
/// would take to fill the gap at [`DISK_FAST_RATE`], twice over, within the bounds.
pub fn disk_check_interval(alarm: bool, free: u64, limit: u64) -> Duration {
    if alarm {
        return DISK_CHECK_MAX;
    }
    let ideal = Duration::from_millis(2 * free.saturating_sub(limit) / DISK_FAST_RATE);
    ideal.clamp(DISK_CHECK_MIN, DISK_CHECK_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    /// Figures the test sets; u64::MAX stands for "cannot be read".
    #[derive(Default)]
    struct Fake {
        total: AtomicU64,
        used: AtomicU64,
        free: AtomicU64,
    }

    struct FakeProbe(Arc<Fake>);

    fn read(a: &AtomicU64) -> Option<u64> {
        Some(a.load(Ordering::Relaxed)).filter(|&v| v != u64::MAX)
    }

    impl Probe for FakeProbe {
        fn total_memory(&self) -> Option<u64> {
            read(&self.0.total)
        }
        fn used_memory(&self) -> Option<u64> {
            read(&self.0.used)
        }
        fn disk_free(&self, _dir: &Path) -> Option<u64> {
            read(&self.0.free)
        }
    }

    const GB: u64 = 1_000_000_000;

    fn monitor(total: u64, used: u64, free: u64) -> (Monitor, Arc<Fake>, Instant) {
        let fake = Arc::new(Fake::default());
        fake.total.store(total, Ordering::Relaxed);
        fake.used.store(used, Ordering::Relaxed);
        fake.free.store(free, Ordering::Relaxed);
        let now = Instant::now();
        let m = Monitor::new(
            Box::new(FakeProbe(fake.clone())),
            PathBuf::from("data"),
            MemoryWatermark::default(),
            DiskFreeLimit::default(),
            Duration::from_millis(2500),
            now,
        );
        (m, fake, now)
    }

    #[test]
    fn memory_alarm_sets_above_the_watermark_and_clears_below() {
        let (mut m, fake, now) = monitor(10 * GB, GB, 100 * GB);
        assert_eq!(m.memory_limit, 4 * GB);
        assert!(!m.memory_alarm);
        fake.used.store(4 * GB + 1, Ordering::Relaxed);
        m.check_due(now + Duration::from_millis(2499));
        assert!(!m.memory_alarm, "checked before its interval");
        m.check_due(now + Duration::from_millis(2500));
        assert!(m.memory_alarm);
        fake.used.store(4 * GB, Ordering::Relaxed);
        m.check_due(now + Duration::from_millis(5000));
        assert!(!m.memory_alarm, "at the watermark is not above it");
    }

    #[test]
    fn a_new_watermark_is_checked_at_once() {
        let (mut m, _fake, now) = monitor(10 * GB, GB, 100 * GB);
        m.set_watermark(MemoryWatermark::Absolute(1), now);
        assert!(m.memory_alarm);
        assert_eq!(m.memory_limit, 1);
        m.set_watermark(MemoryWatermark::Absolute(u64::MAX), now);
        assert!(!m.memory_alarm);
        assert_eq!(m.memory_limit, 10 * GB, "capped at total memory");
        m.set_watermark(MemoryWatermark::Relative(0.0), now);
        assert!(m.memory_alarm, "0.0 blocks all publishing");
    }

    #[test]
    fn disk_alarm_follows_the_limit() {
        let (mut m, fake, now) = monitor(8 * GB, GB, 60_000_000);
        assert!(!m.disk_alarm);
        m.set_disk_free_limit(DiskFreeLimit::Absolute(60_000_001), now);
        assert!(m.disk_alarm, "free below the limit");
        m.set_disk_free_limit(DiskFreeLimit::Relative(0.001), now);
        assert_eq!(m.disk_limit, 8_000_000);
        assert!(!m.disk_alarm);
        fake.free.store(7_999_999, Ordering::Relaxed);
        m.check_due(now + DISK_CHECK_MAX);
        assert!(m.disk_alarm);
    }

    #[test]
    fn unreadable_figures_raise_nothing() {
        let (mut m, fake, now) = monitor(u64::MAX, u64::MAX, u64::MAX);
        assert_eq!(m.total_memory, MEMORY_SIZE_FOR_UNKNOWN_OS);
        assert!(!m.memory_alarm && !m.disk_alarm);
        fake.used.store(2 * MEMORY_SIZE_FOR_UNKNOWN_OS, Ordering::Relaxed);
        m.check_due(now + DISK_CHECK_MAX);
        assert!(m.memory_alarm, "memory is checked again once it can be read");
        assert_eq!(m.disk_free, None);
    }

    #[test]
    fn disk_checks_come_sooner_near_the_limit() {
        assert_eq!(disk_check_interval(true, 0, 50_000_000), DISK_CHECK_MAX);
        assert_eq!(disk_check_interval(false, 100 * GB, 50_000_000), DISK_CHECK_MAX);
        // 125 MB above the limit: filled in 0.5 s at 250 MB/s, checked after twice that.
        assert_eq!(disk_check_interval(false, 175_000_000, 50_000_000), Duration::from_millis(1000));
        assert_eq!(disk_check_interval(false, 50_000_001, 50_000_000), DISK_CHECK_MIN);
    }

    #[test]
    fn the_next_check_is_the_earlier_of_the_two() {
        let (m, _fake, now) = monitor(10 * GB, GB, 100 * GB);
        assert_eq!(m.next_due(now), Duration::from_millis(2500));
        let (m, _fake, now) = monitor(10 * GB, GB, 175_000_000 + 50_000_000 - 125_000_000);
        assert_eq!(m.next_due(now), Duration::from_millis(400));
    }
}
