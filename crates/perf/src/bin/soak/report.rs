//! The broker's memory and descriptors over the run, sampled every few seconds.
use std::sync::{Arc, Mutex};

#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Seconds since the traffic started.
    pub at: f64,
    pub epoch: u32,
    pub rss_kib: u64,
    pub fds: u64,
}

#[derive(Clone, Default)]
pub struct Series(Arc<Mutex<Vec<Sample>>>);

fn mib(kib: f64) -> f64 {
    kib / 1024.0
}

impl Series {
    pub fn push(&self, s: Sample) {
        self.0.lock().expect("series lock").push(s);
    }

    pub fn last(&self) -> Option<Sample> {
        self.0.lock().expect("series lock").last().copied()
    }

    /// Mean RSS in MiB over samples taken in `from..=to` seconds (0 without any).
    pub fn rss_mean(&self, from: f64, to: f64) -> f64 {
        let v = self.0.lock().expect("series lock");
        let w: Vec<u64> = v.iter().filter(|s| s.at >= from && s.at <= to).map(|s| s.rss_kib).collect();
        if w.is_empty() {
            0.0
        } else {
            mib(w.iter().sum::<u64>() as f64 / w.len() as f64)
        }
    }

    pub fn rss_max(&self) -> f64 {
        mib(self.0.lock().expect("series lock").iter().map(|s| s.rss_kib).max().unwrap_or(0) as f64)
    }

    /// The largest RSS (MiB) of each minute of the run, for judging whether it is flat.
    pub fn rss_per_minute(&self) -> Vec<f64> {
        let v = self.0.lock().expect("series lock");
        let mut out: Vec<f64> = Vec::new();
        for s in v.iter() {
            let m = (s.at / 60.0) as usize;
            if out.len() <= m {
                out.resize(m + 1, 0.0);
            }
            out[m] = out[m].max(mib(s.rss_kib as f64));
        }
        out
    }

    /// Per broker process, in start order: its first, largest and last RSS sample (MiB).
    pub fn rss_per_start(&self) -> Vec<[f64; 3]> {
        let v = self.0.lock().expect("series lock");
        let mut out: Vec<Option<[f64; 3]>> = Vec::new();
        for s in v.iter() {
            let i = s.epoch.saturating_sub(1) as usize;
            if out.len() <= i {
                out.resize(i + 1, None);
            }
            let m = mib(s.rss_kib as f64);
            let e = out[i].get_or_insert([m, m, m]);
            e[1] = e[1].max(m);
            e[2] = m;
        }
        out.into_iter().map(|e| e.unwrap_or_default()).collect()
    }

    /// The windows "first minute" and "last minute" of a run of `secs`: a minute each, or a
    /// third of a shorter run, so that they never overlap.
    pub fn windows(secs: f64) -> ((f64, f64), (f64, f64)) {
        let w = 60f64.min(secs / 3.0);
        ((0.0, w), (secs - w, secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_means() {
        assert_eq!(Series::windows(1800.0), ((0.0, 60.0), (1740.0, 1800.0)));
        assert_eq!(Series::windows(30.0), ((0.0, 10.0), (20.0, 30.0)));
        let s = Series::default();
        for (at, rss) in [(1.0, 1024), (5.0, 3072), (25.0, 2048), (70.0, 4096)] {
            s.push(Sample { at, epoch: 1, rss_kib: rss, fds: 10 });
        }
        assert_eq!(s.rss_mean(0.0, 10.0), 2.0);
        assert_eq!(s.rss_mean(20.0, 30.0), 2.0);
        assert_eq!(s.rss_mean(100.0, 200.0), 0.0);
        assert_eq!(s.rss_max(), 4.0);
        assert_eq!(s.rss_per_minute(), vec![3.0, 4.0]);
        s.push(Sample { at: 80.0, epoch: 3, rss_kib: 1024, fds: 10 });
        assert_eq!(s.rss_per_start(), vec![[1.0, 4.0, 4.0], [0.0; 3], [1.0; 3]]);
    }
}
