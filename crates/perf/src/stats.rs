//! Counters and latency histograms shared by the roles, the live progress line and the
//! final summary.
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Latencies are kept in microseconds, 1 µs to 60 s, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

pub fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

#[derive(Default)]
pub struct Counters {
    pub published: AtomicU64,
    pub confirmed: AtomicU64,
    pub nacked: AtomicU64,
    pub consumed: AtomicU64,
}

impl Counters {
    pub fn snapshot(&self) -> [u64; 4] {
        [&self.published, &self.confirmed, &self.nacked, &self.consumed].map(|c| c.load(Relaxed))
    }
}

pub struct Stats {
    pub counters: Counters,
    /// Consumers that have subscribed to all their queues (producers wait for them).
    pub subscribed: AtomicU64,
    /// Since the last progress line.
    interval: Mutex<Histogram<u64>>,
    total: Mutex<Histogram<u64>>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            counters: Counters::default(),
            subscribed: AtomicU64::new(0),
            interval: Mutex::new(histogram()),
            total: Mutex::new(histogram()),
        }
    }
}

impl Stats {
    /// Moves a consumer's local samples into the shared histograms (consumers batch them so
    /// the lock is taken every few thousand messages, not per message).
    pub fn merge(&self, local: &mut Histogram<u64>) {
        if local.is_empty() {
            return;
        }
        let _ = self.interval.lock().expect("not poisoned").add(&*local);
        let _ = self.total.lock().expect("not poisoned").add(&*local);
        local.reset();
    }

    pub fn take_interval(&self) -> Histogram<u64> {
        let mut h = self.interval.lock().expect("not poisoned");
        let out = h.clone();
        h.reset();
        out
    }

    pub fn total(&self) -> Histogram<u64> {
        self.total.lock().expect("not poisoned").clone()
    }
}

/// Messages per second, as an integer.
pub fn rate(count: u64, over: Duration) -> u64 {
    let s = over.as_secs_f64();
    if s <= 0.0 {
        0
    } else {
        (count as f64 / s).round() as u64
    }
}

/// One progress line: counts since the previous one, latency over that second.
pub fn progress_line(elapsed: Duration, delta: [u64; 4], over: Duration, lat: &Histogram<u64>) -> String {
    let [p, c, _, d] = delta.map(|n| rate(n, over));
    let l = |q: f64| if lat.is_empty() { 0 } else { lat.value_at_quantile(q) };
    format!(
        "{:>5.1}s  published {p:>9}/s  confirmed {c:>9}/s  consumed {d:>9}/s  latency p50 {:>6} µs  p99 {:>6} µs",
        elapsed.as_secs_f64(),
        l(0.5),
        l(0.99)
    )
}

/// The final figures.
pub struct Summary {
    pub producers: usize,
    pub consumers: usize,
    pub size: usize,
    pub counts: [u64; 4],
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
}

impl Summary {
    /// p50, p75, p95, p99, p99.9 and max latency in µs (zeros when nothing was measured).
    fn latencies(&self) -> [u64; 6] {
        if self.latency.is_empty() {
            return [0; 6];
        }
        let q = |x| self.latency.value_at_quantile(x);
        [q(0.5), q(0.75), q(0.95), q(0.99), q(0.999), self.latency.max()]
    }

    /// Published, confirmed and consumed per second.
    fn rates(&self) -> [u64; 3] {
        let [p, c, _, d] = self.counts;
        [p, c, d].map(|x| rate(x, self.elapsed))
    }

    /// The machine-readable line.
    pub fn result_line(&self) -> String {
        let [p, c, n, d] = self.counts;
        let [pr, cr, dr] = self.rates();
        let [l50, l75, l95, l99, l999, max] = self.latencies();
        format!(
            "RESULT producers={} consumers={} size={} seconds={:.2} published={p} confirmed={c} nacked={n} consumed={d} \
             publish_rate={pr} confirm_rate={cr} consume_rate={dr} p50_us={l50} p75_us={l75} p95_us={l95} \
             p99_us={l99} p999_us={l999} max_us={max}",
            self.producers,
            self.consumers,
            self.size,
            self.elapsed.as_secs_f64(),
        )
    }

    pub fn human(&self) -> String {
        let [p, c, n, d] = self.counts;
        let [pr, cr, dr] = self.rates();
        let [l50, l75, l95, l99, l999, max] = self.latencies();
        format!(
            "{} producer(s), {} consumer(s), {} B messages, {:.1} s\n  published {p} ({pr}/s), confirmed {c} ({cr}/s), \
             nacked {n}, consumed {d} ({dr}/s)\n  latency µs: p50 {l50}  p75 {l75}  p95 {l95}  p99 {l99}  p99.9 {l999}  max {max}",
            self.producers,
            self.consumers,
            self.size,
            self.elapsed.as_secs_f64(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_percentiles() {
        assert_eq!(rate(1500, Duration::from_millis(500)), 3000);
        assert_eq!(rate(10, Duration::ZERO), 0);
        let stats = Stats::default();
        let mut local = histogram();
        for us in 1..=1000 {
            local.record(us).unwrap();
        }
        stats.merge(&mut local);
        assert!(local.is_empty(), "merged samples leave the consumer");
        let s = Summary {
            producers: 1,
            consumers: 2,
            size: 16,
            counts: [2000, 1990, 0, 1000],
            elapsed: Duration::from_secs(2),
            latency: stats.total(),
        };
        let line = s.result_line();
        for want in [
            "published=2000",
            "publish_rate=1000",
            "confirm_rate=995",
            "consume_rate=500",
            "p50_us=500",
            "p99_us=990",
            "max_us=1000",
        ] {
            assert!(line.contains(want), "{want} in {line}");
        }
        assert_eq!(stats.take_interval().len(), 1000);
        assert!(stats.take_interval().is_empty(), "the interval restarts after each progress line");
        assert_eq!(stats.total().len(), 1000, "the total does not");
    }
}
