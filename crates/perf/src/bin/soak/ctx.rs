//! What every client task shares: the ledger, the counters, and the gate that says which broker
//! process is up.
use crate::ledger::Ledger;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tokio::sync::watch;

/// Which broker process clients may use. `epoch` counts the starts; while `up` is false the
/// broker is being killed or started and clients wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gate {
    pub epoch: u32,
    pub up: bool,
}

pub struct Ctx {
    pub ledger: Mutex<Ledger>,
    pub stats: Stats,
    pub gate: watch::Receiver<Gate>,
    /// The relay's `amqp://` URI.
    pub uri: String,
    pub durable: Vec<String>,
    pub transient: Vec<String>,
    /// A durable queue nobody consumes until the end, and how many more persistent messages
    /// it should get: a standing backlog that has to survive every broker kill.
    pub backlog: String,
    pub backlog_left: AtomicU64,
    /// Messages per second per publisher.
    pub rate: f64,
    /// Largest message body.
    pub max_size: usize,
}

impl Ctx {
    /// True if the next persistent message goes to the backlog queue.
    pub fn take_backlog(&self) -> bool {
        self.backlog_left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok()
    }

    pub fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().expect("ledger lock")
    }
}

/// Counters the progress lines and the RESULT line print.
#[derive(Default)]
pub struct Stats {
    pub transient_published: AtomicU64,
    pub transient_confirmed: AtomicU64,
    /// basic.nack from the broker for a publish.
    pub publish_nacked: AtomicU64,
    pub consumed: AtomicU64,
    pub acks: AtomicU64,
    pub requeues: AtomicU64,
    pub rejects: AtomicU64,
    pub commits: AtomicU64,
    /// Bodies that did not match the pattern their id gives.
    pub corrupt: AtomicU64,
    /// Client connections opened (the first of each slot, and every reconnect).
    pub sessions: AtomicU64,
    /// Sessions that ended in an error (a kill, the broker going away...).
    pub session_errors: AtomicU64,
    pub client_kills: AtomicU64,
    /// Sessions the broker ended with a reply code (channel.close or connection.close).
    pub protocol_errors: AtomicU64,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
