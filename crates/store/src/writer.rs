//! The writer thread: applies store operations in submission order and makes each group
//! durable with one flush (group commit), then tells whoever waits.
use crate::keys;
use crate::record;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;
use warren_broker::{DurableListener, StoredMessage};

/// Decides, from a metadata key, whether `MetaPurge` removes it.
pub type KeyFilter = Box<dyn Fn(&[u8]) -> bool + Send>;

pub enum Op {
    /// A message entry; `persistent` picks the tree (persistent entries survive restarts,
    /// paged transient ones do not).
    Put {
        key: [u8; 16],
        value: Vec<u8>,
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
    /// A metadata key written (Some) or removed (None); `done` is told after the flush.
    Meta {
        key: Vec<u8>,
        value: Option<Vec<u8>>,
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
    },
    Load {
        queue_id: u64,
        from: u64,
        max: usize,
        reply: SyncSender<Vec<StoredMessage>>,
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
    pub persistent: sled::Tree,
    pub paged: sled::Tree,
}

/// Operations taken per group; a bigger group shares one flush among more publishes.
const MAX_GROUP: usize = 8192;

enum Waiter {
    Listener(Arc<dyn DurableListener>, u16, u64),
    Done(SyncSender<Result<(), String>>),
}

impl Writer {
    pub fn run(self, rx: Receiver<Op>) {
        let mut group = Vec::with_capacity(MAX_GROUP);
        let mut waiters = Vec::new();
        while let Ok(first) = rx.recv() {
            group.push(first);
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(op) => group.push(op),
                    Err(_) => break,
                }
            }
            let mut failed: Option<String> = None;
            let mut dirty = false;
            let stop = group.iter().any(|op| matches!(op, Op::Shutdown));
            for op in group.drain(..) {
                match self.apply(op, &mut waiters, &mut dirty) {
                    Ok(()) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "store write failed");
                        failed.get_or_insert(e.to_string());
                    }
                }
            }
            if (dirty || !waiters.is_empty()) && self.fail_writes.load(std::sync::atomic::Ordering::SeqCst) {
                failed.get_or_insert_with(|| "injected write failure".into());
            }
            if dirty || !waiters.is_empty() {
                if let Err(e) = self.db.flush() {
                    tracing::error!(error = %e, "store flush failed");
                    failed.get_or_insert(e.to_string());
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
        }
        let _ = self.db.flush();
    }

    fn apply(&self, op: Op, waiters: &mut Vec<Waiter>, dirty: &mut bool) -> sled::Result<()> {
        match op {
            Op::Put { key, value, persistent } => {
                *dirty |= persistent;
                let tree = if persistent { &self.persistent } else { &self.paged };
                tree.insert(key, value)?;
            }
            Op::Remove { queue_id, seqs } => {
                // Only persistent entries are ever settled through the store: paged transient
                // entries are deleted as they are read back in.
                *dirty = true;
                let mut batch = sled::Batch::default();
                for s in seqs {
                    batch.remove(&keys::entry(queue_id, s));
                }
                self.persistent.apply_batch(batch)?;
            }
            Op::RemoveFrom { queue_id, from } => {
                *dirty = true;
                for tree in [&self.persistent, &self.paged] {
                    let range = keys::entry(queue_id, from)..=keys::entry(queue_id, u64::MAX);
                    let ks: Vec<sled::IVec> = tree.range(range).keys().collect::<Result<_, _>>()?;
                    for k in ks {
                        tree.remove(k)?;
                    }
                }
                if from == 0 {
                    self.meta.remove(keys::delivered(queue_id))?;
                }
            }
            Op::Meta { key, value, done } => {
                *dirty = true;
                match value {
                    Some(v) => {
                        self.meta.insert(key, v)?;
                    }
                    None => {
                        self.meta.remove(key)?;
                    }
                }
                waiters.push(Waiter::Done(done));
            }
            Op::MetaPurge { prefix, pred, done } => {
                *dirty = true;
                let ks: Vec<sled::IVec> = self.meta.scan_prefix(&prefix).keys().collect::<Result<_, _>>()?;
                for k in ks.into_iter().filter(|k| pred(k)) {
                    self.meta.remove(k)?;
                }
                waiters.push(Waiter::Done(done));
            }
            Op::Notify { listener, channel, token } => waiters.push(Waiter::Listener(listener, channel, token)),
            Op::Shutdown => {}
            Op::SetFailure { on, done } => {
                self.fail_writes.store(on, std::sync::atomic::Ordering::SeqCst);
                let _ = done.send(());
            }
            Op::Load { queue_id, from, max, reply } => {
                let (loaded, paged_keys) = self.load(queue_id, from, max);
                let _ = reply.send(loaded);
                // Transient entries now live in memory only; nothing needs them on disk
                // (and removing them needs no flush: they would be dropped at restart anyway).
                let mut batch = sled::Batch::default();
                for k in paged_keys {
                    batch.remove(k);
                }
                self.paged.apply_batch(batch)?;
            }
        }
        Ok(())
    }

    /// Merges the two trees' entries for the queue, in sequence order. A record that does
    /// not decode is logged and skipped, never fatal.
    fn load(&self, queue_id: u64, from: u64, max: usize) -> (Vec<StoredMessage>, Vec<sled::IVec>) {
        let range = || keys::entry(queue_id, from)..=keys::entry(queue_id, u64::MAX);
        let mut a = self.persistent.range(range()).peekable();
        let mut b = self.paged.range(range()).peekable();
        let mut out = Vec::with_capacity(max.min(4096));
        let mut paged_keys = Vec::new();
        while out.len() < max {
            let pick_a = match (a.peek(), b.peek()) {
                (Some(Ok((ka, _))), Some(Ok((kb, _)))) => ka <= kb,
                (Some(_), _) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let next = if pick_a { a.next() } else { b.next() };
            let Some(Ok((k, v))) = next else { continue };
            let Some((_, seq)) = keys::parse_entry(&k) else { continue };
            if !pick_a {
                paged_keys.push(k.clone());
            }
            match record::decode(&v) {
                Some(m) => out.push(StoredMessage { seq, message: Arc::new(m), persistent: pick_a }),
                None => tracing::error!(queue_id, seq, "corrupt message record skipped"),
            }
        }
        (out, paged_keys)
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
