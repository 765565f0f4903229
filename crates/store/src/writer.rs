//! The writer thread: applies store operations in submission order and makes each group
//! durable with one commit of the message log and, when metadata changed, one sled flush
//! (group commit), then tells whoever waits.
use crate::reader::ReadRequest;
use crate::record::Entry;
use std::sync::mpsc::{Receiver, Sender, SyncSender};
use std::sync::Arc;
use warren_broker::{DurableListener, LoadDone, Loaded, Message};
use warren_log::Log;

/// Decides, from a metadata key, whether `MetaPurge` removes it.
pub type KeyFilter = Box<dyn Fn(&[u8]) -> bool + Send>;

pub enum Op {
    /// Message `seq` of a queue: persistent ones survive restarts, paged transient ones are
    /// dropped at the next start.
    Put {
        queue_id: u64,
        seq: u64,
        message: Arc<Message>,
        persistent: bool,
    },
    Remove {
        queue_id: u64,
        seqs: Vec<u64>,
    },
    RemoveFrom {
        queue_id: u64,
        from: u64,
    },
    /// Every message of the queue up to `seq` has been delivered.
    Delivered {
        queue_id: u64,
        seq: u64,
    },
    /// A metadata key written (Some) or removed (None). With `flush`, `done` is told after
    /// the sled flush; without, as soon as it is applied (see [`META_FLUSH`]).
    Meta {
        key: Vec<u8>,
        value: Option<Vec<u8>>,
        flush: bool,
        done: SyncSender<Result<(), String>>,
    },
    /// Remove every metadata key under `prefix` for which `pred` holds (bindings of a
    /// deleted queue or exchange), before the flush that `done` waits for.
    MetaPurge {
        prefix: Vec<u8>,
        pred: KeyFilter,
        done: SyncSender<Result<(), String>>,
    },
    Notify {
        listener: Arc<dyn DurableListener>,
        channel: u16,
        token: u64,
        /// The settlements submitted before must be on disk too (a transaction's commit).
        settlements: bool,
    },
    /// A page-in: the writer takes the locations from the log's index and hands the read
    /// to the reader thread, so a slow disk never holds up the group commits.
    Load {
        queue_id: u64,
        from: u64,
        max: usize,
        done: LoadDone,
    },
    /// Finish this group, flush, and stop.
    Shutdown,
    /// Fault injection (tests): from the next group on, fail every group while `on`.
    SetFailure {
        on: bool,
        done: SyncSender<()>,
    },
}

pub struct Writer {
    pub fail_writes: Arc<std::sync::atomic::AtomicBool>,
    pub db: sled::Db,
    pub meta: sled::Tree,
    pub log: Log<Entry>,
    pub reader: Sender<ReadRequest>,
    pub health: Arc<parking_lot::Mutex<Option<crate::HealthListener>>>,
    /// When metadata was first applied without being flushed since.
    pub meta_unflushed: Option<std::time::Instant>,
}

/// Operations taken per group; a bigger group shares one sync among more publishes.
const MAX_GROUP: usize = 8192;

/// Settlements are synced when a transaction needs them, and otherwise at most this long
/// after they were written, so that acks are not redelivered after a crash long after.
const SETTLEMENT_SYNC: std::time::Duration = std::time::Duration::from_millis(200);

/// Metadata applied without a flush (declarations, answered once applied) is flushed at most
/// this long after, and always before anything later is confirmed durable: a confirm that
/// follows a declaration in the writer's order flushes it first. This is what RabbitMQ's
/// Mnesia gives a declaration (its transaction log is not synced per transaction), without
/// letting a confirmed message outlive the queue it was confirmed into.
const META_FLUSH: std::time::Duration = std::time::Duration::from_millis(50);

/// How often the writer looks for a mostly settled log segment to compact. A segment is
/// compacted only if nothing in it was settled over a whole interval (see `warren_log`'s
/// compaction), so this is also how long a segment must have been left alone.
const COMPACT_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// After a failed write, how often the writer tries again on its own.
const WRITE_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

enum Waiter {
    Listener(Arc<dyn DurableListener>, u16, u64),
    Done(SyncSender<Result<(), String>>),
}

impl Writer {
    pub fn run(mut self, rx: Receiver<Op>) {
        let mut group = Vec::with_capacity(MAX_GROUP);
        let mut waiters = Vec::new();
        let mut settlements_synced = std::time::Instant::now();
        let mut last_healthy = true;
        let mut compact_checked = std::time::Instant::now();
        loop {
            // Wake without work to retry what a failed write left (the disk may have room
            // again), to sync settlements that have waited long enough, or to flush metadata.
            let wake = if !last_healthy && self.log.has_unwritten() {
                Some(WRITE_RETRY)
            } else if self.log.settlements_unsynced() {
                Some(SETTLEMENT_SYNC.saturating_sub(settlements_synced.elapsed()))
            } else {
                None
            };
            let wake = match self.meta_unflushed {
                Some(since) if last_healthy => {
                    Some(META_FLUSH.saturating_sub(since.elapsed()).min(wake.unwrap_or(META_FLUSH)))
                }
                // A flush that failed is retried at the retry pace, not in a spin.
                Some(_) => Some(wake.unwrap_or(WRITE_RETRY)),
                None => wake,
            };
            let wake = if last_healthy && self.log.may_compact() {
                let due = COMPACT_CHECK.saturating_sub(compact_checked.elapsed());
                Some(wake.map_or(due, |w| w.min(due)))
            } else {
                wake
            };
            let first = if let Some(wake) = wake {
                match rx.recv_timeout(wake) {
                    Ok(op) => Some(op),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match rx.recv() {
                    Ok(op) => Some(op),
                    Err(_) => break,
                }
            };
            group.extend(first);
            while !group.is_empty() && group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(op) => group.push(op),
                    Err(_) => break,
                }
            }
            let mut failed: Option<String> = None;
            let mut settle = settlements_synced.elapsed() >= SETTLEMENT_SYNC;
            let stop = group.iter().any(|op| matches!(op, Op::Shutdown));
            for op in group.drain(..) {
                settle |= matches!(op, Op::Notify { settlements: true, .. } | Op::Shutdown);
                let applied = self.apply(op, &mut waiters, last_healthy);
                note_failure(&mut failed, "store write failed", applied);
            }
            let committed = self.log.commit_group(settle).map_err(|e| e.to_string());
            note_failure(&mut failed, "message log commit failed", committed);
            if settle {
                settlements_synced = std::time::Instant::now();
            }
            // Flush when someone waits on it (a confirm, a deletion) or when it is due.
            let flush_due = self.meta_unflushed.is_some_and(|since| since.elapsed() >= META_FLUSH);
            if self.meta_unflushed.is_some() && (!waiters.is_empty() || flush_due || stop) {
                let flushed = self.db.flush().map(drop).map_err(|e| e.to_string());
                if flushed.is_ok() {
                    self.meta_unflushed = None;
                }
                note_failure(&mut failed, "metadata flush failed", flushed);
            }
            let healthy = failed.is_none();
            if healthy != last_healthy {
                last_healthy = healthy;
                if healthy {
                    tracing::warn!("the store writes again");
                } else {
                    tracing::error!("the store cannot write: raising the disk alarm until it can");
                }
                if let Some(tell) = &*self.health.lock() {
                    tell(healthy);
                }
            }
            coalesce(&mut waiters);
            for w in waiters.drain(..) {
                match w {
                    Waiter::Listener(l, ch, token) => l.durable(ch, token, failed.is_none()),
                    Waiter::Done(tx) => {
                        let _ = tx.send(failed.clone().map_or(Ok(()), Err));
                    }
                }
            }
            if stop {
                break;
            }
            // After the group's waiters are answered: copying never delays a confirm.
            if last_healthy && compact_checked.elapsed() >= COMPACT_CHECK {
                compact_checked = std::time::Instant::now();
                if let Err(e) = self.log.compact() {
                    // The records stay where they were; the next group's write starts a new
                    // segment, and a disk that fails for good raises the alarm through it.
                    tracing::error!(error = %e, "message log compaction failed");
                }
            }
        }
        let _ = self.log.commit();
        let _ = self.db.flush();
    }

    /// Applies one operation. `healthy`: the last group wrote; while it did not, metadata
    /// changes wait for the flush, so that a broken disk is reported to whoever declares.
    fn apply(&mut self, op: Op, waiters: &mut Vec<Waiter>, healthy: bool) -> Result<(), String> {
        match op {
            Op::Put { queue_id, seq, message, persistent } => {
                self.log.put(queue_id, seq, persistent, Entry::Message(message));
            }
            Op::Remove { queue_id, seqs } => {
                for seq in seqs {
                    self.log.settle(queue_id, seq);
                }
            }
            Op::RemoveFrom { queue_id, from: 0 } => self.log.drop_queue(queue_id),
            Op::RemoveFrom { queue_id, from } => self.log.settle_from(queue_id, from),
            Op::Delivered { queue_id, seq } => self.log.mark(queue_id, seq),
            Op::Meta { key, value, flush, done } => {
                self.meta_unflushed.get_or_insert_with(std::time::Instant::now);
                let applied = if self.fail_writes.load(std::sync::atomic::Ordering::SeqCst) {
                    Err("injected write failure".to_string())
                } else {
                    match value {
                        Some(v) => self.meta.insert(key, v).map(drop),
                        None => self.meta.remove(key).map(drop),
                    }
                    .map_err(|e| e.to_string())
                };
                if flush || !healthy {
                    waiters.push(Waiter::Done(done));
                } else {
                    let _ = done.send(applied.clone());
                }
                applied?;
            }
            Op::MetaPurge { prefix, pred, done } => {
                self.meta_unflushed.get_or_insert_with(std::time::Instant::now);
                waiters.push(Waiter::Done(done));
                if self.fail_writes.load(std::sync::atomic::Ordering::SeqCst) {
                    return Err("injected write failure".into());
                }
                let ks: Vec<sled::IVec> =
                    self.meta.scan_prefix(&prefix).keys().collect::<Result<_, _>>().map_err(|e| e.to_string())?;
                for k in ks.into_iter().filter(|k| pred(k)) {
                    self.meta.remove(k).map_err(|e| e.to_string())?;
                }
            }
            Op::Notify { listener, channel, token, .. } => waiters.push(Waiter::Listener(listener, channel, token)),
            Op::Shutdown => {}
            Op::SetFailure { on, done } => {
                self.fail_writes.store(on, std::sync::atomic::Ordering::SeqCst);
                self.log.inject_write_failures(on);
                let _ = done.send(());
            }
            Op::Load { queue_id, from, max, done } => {
                let (job, written) = self.log.take(queue_id, from, max);
                if let Err(back) = self.reader.send(ReadRequest { job, done }) {
                    // The reader only stops with the process; answer rather than drop.
                    (back.0.done)(Loaded { next_from: from, ..Loaded::default() });
                }
                written.map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }
}

/// Logs a failed step of a group and keeps the first failure, which every waiter of the group
/// is then told about.
fn note_failure(failed: &mut Option<String>, what: &str, result: Result<(), String>) {
    if let Err(e) = result {
        tracing::error!(error = %e, "{what}");
        failed.get_or_insert(e);
    }
}

/// Keeps one notification per (listener, channel): the highest token. Tokens of one channel
/// only grow, so the last one covers the others, and a group commit then costs each
/// publishing channel one event (one `basic.ack(multiple)`), not one per message.
fn coalesce(waiters: &mut Vec<Waiter>) {
    let mut last: Vec<(*const (), u16, usize)> = Vec::new();
    for (i, w) in waiters.iter().enumerate() {
        if let Waiter::Listener(l, ch, _) = w {
            let key = Arc::as_ptr(l) as *const ();
            match last.iter_mut().find(|(p, c, _)| *p == key && c == ch) {
                Some(entry) => entry.2 = i,
                None => last.push((key, *ch, i)),
            }
        }
    }
    let keep: std::collections::HashSet<usize> = last.iter().map(|(_, _, i)| *i).collect();
    let mut i = 0;
    waiters.retain(|w| {
        let k = !matches!(w, Waiter::Listener(..)) || keep.contains(&i);
        i += 1;
        k
    });
}
