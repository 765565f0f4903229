//! Resource alarms: RabbitMQ's memory high watermark and disk free limit.
//!
//! A [`Monitor`] checks the broker's resident memory every `memory_monitor_interval` and the
//! data directory's free space on RabbitMQ's adaptive schedule, on one task
//! ([`Alarms::run`]). Which alarms are on is one atomic byte: a connection reads it once per
//! read pass, and one that publishes while it is non-zero stops reading its socket (see
//! `connection/throttle.rs`) until [`Alarms::cleared`] wakes it. Consumers are never blocked,
//! so acks keep flowing and memory can drain.
//!
//! [`AlarmHandle`] changes the thresholds at run time (`rabbitmqctl set_vm_memory_high_watermark`
//! and `set_disk_free_limit`); like RabbitMQ's, the change is checked before the call returns.
mod monitor;
mod probe;
pub mod settings;

use crate::config::{Config, ConfigError};
use monitor::Monitor;
use parking_lot::Mutex;
pub use settings::{DiskFreeLimit, MemoryWatermark};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

const MEMORY: u8 = 1;
const DISK: u8 = 2;

/// The broker's alarm state, shared by the monitor task, every connection and the handle.
pub struct Alarms {
    /// `MEMORY | DISK` bits of the alarms that are on: the only thing connections read.
    raised: AtomicU8,
    /// Woken whenever `raised` changes, for the connections waiting on it.
    changed: Notify,
    /// Woken when a threshold changes, so the monitor task reschedules.
    rescheduled: Notify,
    /// Thresholds and readings (never touched on the publish path).
    monitor: Mutex<Monitor>,
    /// The store's last write group failed: the disk alarm is on whatever the free space.
    store_failing: std::sync::atomic::AtomicBool,
}

impl Alarms {
    /// Sets the thresholds from the config and takes the first readings.
    pub fn new(config: &Config) -> Arc<Alarms> {
        let monitor = Monitor::new(
            Box::new(probe::System),
            config.data_dir.clone(),
            config.vm_memory_high_watermark,
            config.disk_free_limit,
            Duration::from_millis(config.memory_monitor_interval),
            Instant::now(),
        );
        let alarms = Arc::new(Alarms {
            raised: AtomicU8::new(0),
            changed: Notify::new(),
            rescheduled: Notify::new(),
            monitor: Mutex::new(monitor),
            store_failing: Default::default(),
        });
        alarms.publish(&alarms.monitor.lock());
        alarms
    }

    /// Whether any alarm is on: one relaxed load, for the read path.
    #[inline]
    pub fn any(&self) -> bool {
        self.raised.load(Ordering::Relaxed) != 0
    }

    /// The `connection.blocked` reason for the alarms now on, in RabbitMQ's words; None when
    /// no alarm is on.
    pub fn reason(&self) -> Option<&'static str> {
        reason(self.raised.load(Ordering::Acquire))
    }

    /// Resolves once no alarm is on (at once if none is).
    pub async fn cleared(&self) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the check, so a clear between the two is not missed.
            changed.as_mut().enable();
            if self.raised.load(Ordering::Acquire) == 0 {
                return;
            }
            changed.await;
        }
    }

    /// Checks on schedule for the life of the server.
    ///
    /// A check is a file read and a statvfs: microseconds, so it runs on the worker rather
    /// than paying for a blocking-pool hop.
    pub async fn run(self: Arc<Self>) {
        loop {
            let wait = self.monitor.lock().next_due(Instant::now());
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.rescheduled.notified() => {}
            }
            let mut m = self.monitor.lock();
            m.check_due(Instant::now());
            self.publish(&m);
        }
    }

    /// The store could not write (false) or writes again (true). A disk that fails writes is
    /// out of space as far as publishers are concerned, so this drives the disk alarm too.
    pub fn store_health(&self, healthy: bool) {
        self.store_failing.store(!healthy, Ordering::Release);
        self.publish(&self.monitor.lock());
    }

    /// Makes the monitor's verdict the one connections see, waking them if it changed.
    fn publish(&self, m: &Monitor) {
        let disk = m.disk_alarm || self.store_failing.load(Ordering::Acquire);
        let bits = if m.memory_alarm { MEMORY } else { 0 } | if disk { DISK } else { 0 };
        if self.raised.swap(bits, Ordering::AcqRel) != bits {
            self.changed.notify_waiters();
        }
    }

    fn update(&self, f: impl FnOnce(&mut Monitor, Instant)) {
        let mut m = self.monitor.lock();
        f(&mut m, Instant::now());
        self.publish(&m);
        drop(m);
        self.rescheduled.notify_one();
    }
}

/// RabbitMQ's `blocked_by_message`: "low on " and the resources joined by " & ". With both
/// on, RabbitMQ joins them in its set's order, which it does not fix; we name memory first.
fn reason(bits: u8) -> Option<&'static str> {
    match bits {
        0 => None,
        MEMORY => Some("low on memory"),
        DISK => Some("low on disk"),
        _ => Some("low on memory & disk"),
    }
}

/// The alarm figures at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmStatus {
    pub memory_alarm: bool,
    /// Free space under the limit, or the store failing to write.
    pub disk_alarm: bool,
    /// The store's last write group failed (a full or broken disk).
    pub store_write_failing: bool,
    /// Memory available to the broker (machine or cgroup), bytes.
    pub total_memory: u64,
    /// The watermark in bytes.
    pub memory_limit: u64,
    /// Resident memory at the last check.
    pub memory_used: Option<u64>,
    /// The disk free limit in bytes.
    pub disk_free_limit: u64,
    /// Free space of `data_dir` at the last check.
    pub disk_free: Option<u64>,
}

/// Reads and changes the alarm thresholds of a running server (for in-process tools, tests and
/// later `warrenctl`).
#[derive(Clone)]
pub struct AlarmHandle(pub(crate) Arc<Alarms>);

impl AlarmHandle {
    /// As `rabbitmqctl set_vm_memory_high_watermark`: takes effect (alarm set or cleared)
    /// before it returns.
    pub fn set_vm_memory_high_watermark(&self, watermark: MemoryWatermark) -> Result<(), ConfigError> {
        watermark.check().map_err(ConfigError::Invalid)?;
        self.0.update(|m, now| m.set_watermark(watermark, now));
        Ok(())
    }

    /// As `rabbitmqctl set_disk_free_limit`: takes effect before it returns.
    pub fn set_disk_free_limit(&self, limit: DiskFreeLimit) -> Result<(), ConfigError> {
        limit.check().map_err(ConfigError::Invalid)?;
        self.0.update(|m, now| m.set_disk_free_limit(limit, now));
        Ok(())
    }

    pub fn vm_memory_high_watermark(&self) -> MemoryWatermark {
        self.0.monitor.lock().watermark()
    }

    pub fn disk_free_limit(&self) -> DiskFreeLimit {
        self.0.monitor.lock().disk_free_limit()
    }

    pub fn status(&self) -> AlarmStatus {
        let m = self.0.monitor.lock();
        let store_write_failing = self.0.store_failing.load(Ordering::Acquire);
        AlarmStatus {
            memory_alarm: m.memory_alarm,
            disk_alarm: m.disk_alarm || store_write_failing,
            store_write_failing,
            total_memory: m.total_memory,
            memory_limit: m.memory_limit,
            memory_used: m.memory_used,
            disk_free_limit: m.disk_limit,
            disk_free: m.disk_free,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_rabbitmqs() {
        assert_eq!(reason(0), None);
        assert_eq!(reason(MEMORY), Some("low on memory"));
        assert_eq!(reason(DISK), Some("low on disk"));
        assert_eq!(reason(MEMORY | DISK), Some("low on memory & disk"));
    }

    #[tokio::test]
    async fn handle_changes_wake_waiters_and_bad_values_are_refused() {
        let config = Config::for_tests();
        // The server opens the store (creating data_dir) before its alarms.
        std::fs::create_dir_all(&config.data_dir).unwrap();
        let alarms = Alarms::new(&config);
        let handle = AlarmHandle(alarms.clone());
        assert!(!alarms.any(), "the defaults raise no alarm on the test machine: {:?}", handle.status());
        handle.set_vm_memory_high_watermark(MemoryWatermark::Absolute(1)).unwrap();
        handle.set_disk_free_limit(DiskFreeLimit::Absolute(u64::MAX)).unwrap();
        assert!(alarms.any());
        assert_eq!(alarms.reason(), Some("low on memory & disk"));
        let waiter = tokio::spawn({
            let alarms = alarms.clone();
            async move { alarms.cleared().await }
        });
        handle.set_vm_memory_high_watermark(MemoryWatermark::Relative(1.0)).unwrap();
        assert_eq!(alarms.reason(), Some("low on disk"));
        assert!(!waiter.is_finished());
        handle.set_disk_free_limit(DiskFreeLimit::Absolute(0)).unwrap();
        tokio::time::timeout(Duration::from_secs(10), waiter).await.expect("woken").unwrap();
        assert!(!alarms.any());
        assert!(handle.set_vm_memory_high_watermark(MemoryWatermark::Relative(2.0)).is_err());
        assert!(handle.set_disk_free_limit(DiskFreeLimit::Relative(-1.0)).is_err());
        assert_eq!(handle.vm_memory_high_watermark(), MemoryWatermark::Relative(1.0));
        let _ = std::fs::remove_dir(&config.data_dir);
    }
}
