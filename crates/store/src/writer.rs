//! The writer thread: applies store operations in submission order and makes each group
//! durable with one flush (group commit), then tells whoever waits. A group's messages for a
//! queue become one segment ([`crate::segment`]); settling them updates the segment's bitmap.
use crate::index::{Index, SegInfo};
use crate::segment::{self, Builder};
use crate::spill::Spill;
use crate::{keys, record};
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;
use warren_broker::{DurableListener, Message, StoredMessage};

/// Decides, from a metadata key, whether `MetaPurge` removes it.
pub type KeyFilter = Box<dyn Fn(&[u8]) -> bool + Send>;

pub enum Op {
    /// Message `seq` of a queue: persistent ones go into segments in sled, paged transient ones
    /// into the queue's spill file.
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
    /// Every message of the queue up to `seq` has been delivered. Only the last one per
    /// queue in a group is written.
    Delivered {
        queue_id: u64,
        seq: u64,
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
    pub index: Index,
    /// Where spill files live (emptied at every start).
    pub spill_dir: std::path::PathBuf,
    pub spills: HashMap<u64, Spill>,
}

/// Operations taken per group; a bigger group shares one flush among more publishes.
const MAX_GROUP: usize = 8192;

/// Message bytes after which the writer flushes even in the middle of a group.
///
/// sled 0.34 writes each full 512 KiB log buffer on its own thread pool (at most 128 threads).
/// Those writes need the segment accountant's lock, which the writer can hold while it waits
/// for a file truncation queued on the same pool: once a huge group has queued a hundred
/// buffer writes, that wait never ends (sled issue #1412; we hit it paging 1,000 busy queues).
/// Flushing every few MiB waits for the buffers written so far, so only a handful of
/// writes are ever outstanding and the pool always has a thread for the truncation.
const FLUSH_EVERY_BYTES: usize = 4 << 20;

enum Waiter {
    Listener(Arc<dyn DurableListener>, u16, u64),
    Done(SyncSender<Result<(), String>>),
}

/// What a group has changed but not yet written: segments being filled, segments whose
/// settled bitmaps changed, delivered marks.
#[derive(Default)]
struct Pending {
    /// (queue id, builder); a handful at most, so a Vec beats a map.
    builders: Vec<(u64, Builder)>,
    touched: HashSet<(u64, u64)>,
    delivered: HashMap<u64, u64>,
    /// Something that must survive a restart changed, so the group needs a flush.
    dirty: bool,
    /// Message bytes handed to sled since the last flush.
    unflushed: usize,
}

impl Writer {
    pub fn run(mut self, rx: Receiver<Op>) {
        let mut group = Vec::with_capacity(MAX_GROUP);
        let mut waiters = Vec::new();
        let mut pending = Pending::default();
        while let Ok(first) = rx.recv() {
            group.push(first);
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(op) => group.push(op),
                    Err(_) => break,
                }
            }
            let mut failed: Option<String> = None;
            let stop = group.iter().any(|op| matches!(op, Op::Shutdown));
            for op in group.drain(..) {
                let applied = self.apply(op, &mut waiters, &mut pending);
                note_failure(&mut failed, "store write failed", applied);
                if pending.unflushed >= FLUSH_EVERY_BYTES {
                    pending.unflushed = 0;
                    let flushed = self.write_pending(&mut pending).and_then(|()| self.db.flush().map(drop));
                    note_failure(&mut failed, "store write failed", flushed);
                }
            }
            pending.unflushed = 0;
            let written = self.write_pending(&mut pending);
            note_failure(&mut failed, "store write failed", written);
            let dirty = std::mem::take(&mut pending.dirty);
            if (dirty || !waiters.is_empty()) && self.fail_writes.load(std::sync::atomic::Ordering::SeqCst) {
                failed.get_or_insert_with(|| "injected write failure".into());
            }
            if dirty || !waiters.is_empty() {
                let flushed = self.db.flush().map(drop);
                note_failure(&mut failed, "store flush failed", flushed);
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

    fn apply(&mut self, op: Op, waiters: &mut Vec<Waiter>, p: &mut Pending) -> sled::Result<()> {
        match op {
            Op::Put { queue_id, seq, message, persistent: false } => {
                let spill = match self.spills.entry(queue_id) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => e.insert(Spill::create(&self.spill_dir, queue_id)?),
                };
                spill.append(seq, &message)?;
            }
            Op::Put { queue_id, seq, message, persistent: true } => {
                let i = match p.builders.iter().position(|(q, _)| *q == queue_id) {
                    Some(i) if p.builders[i].1.accepts(seq, &message) => i,
                    found => {
                        // No segment for this queue yet, or it cannot take this message.
                        if let Some(i) = found {
                            let (_, full) = p.builders.swap_remove(i);
                            self.seal(queue_id, full, p)?;
                        }
                        p.builders.push((queue_id, Builder::new(seq)));
                        p.builders.len() - 1
                    }
                };
                p.builders[i].1.push(&message);
                p.unflushed += record::encoded_len(&message);
            }
            Op::Remove { queue_id, seqs } => {
                for seq in seqs {
                    self.settle(queue_id, seq, p);
                }
            }
            Op::RemoveFrom { queue_id, from } => {
                // The index must see this group's segments first.
                self.write_pending(p)?;
                p.dirty = true;
                for first in self.index.firsts_from(queue_id, from) {
                    if first >= from {
                        self.index.remove(queue_id, first);
                        self.persistent.remove(keys::entry(queue_id, first))?;
                        self.persistent.remove(keys::acks(queue_id, first))?;
                    } else {
                        let info = self.index.get_mut(queue_id, first).expect("listed by the index");
                        for offset in (from - first) as u32..info.count {
                            info.removed.set(offset);
                        }
                        p.touched.insert((queue_id, first));
                    }
                }
                // Unread spilled messages are the queue's paged tail, all from `from` on.
                if from == 0 {
                    if let Some(spill) = self.spills.remove(&queue_id) {
                        spill.remove();
                    }
                    p.delivered.remove(&queue_id);
                    self.meta.remove(keys::delivered(queue_id))?;
                } else if let Some(spill) = self.spills.get_mut(&queue_id) {
                    spill.clear()?;
                }
                self.write_pending(p)?;
            }
            Op::Delivered { queue_id, seq } => {
                let mark = p.delivered.entry(queue_id).or_default();
                *mark = (*mark).max(seq);
            }
            Op::Meta { key, value, done } => {
                p.dirty = true;
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
                p.dirty = true;
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
                self.write_pending(p)?;
                let loaded = self.load(queue_id, from, max);
                if let Err(e) = &loaded {
                    tracing::error!(queue_id, error = %e, "reading paged messages back failed");
                }
                let _ = reply.send(loaded.unwrap_or_default());
            }
        }
        Ok(())
    }

    /// Marks message `seq` settled, in the segment being built or in the index.
    fn settle(&mut self, queue_id: u64, seq: u64, p: &mut Pending) {
        if let Some((_, b)) = p.builders.iter_mut().find(|(q, b)| *q == queue_id && b.contains(seq)) {
            // Settled before it was ever written: with luck the whole segment never is.
            let offset = (seq - b.first) as u32;
            b.removed.set(offset);
        } else if let Some((first, info)) = self.index.find_mut(queue_id, seq) {
            if info.removed.set((seq - first) as u32) {
                p.touched.insert((queue_id, first));
            }
        }
    }

    /// Writes a finished segment (unless every message in it is already settled) and
    /// indexes it.
    fn seal(&mut self, queue_id: u64, b: Builder, p: &mut Pending) -> sled::Result<()> {
        let (first, count, removed, value) = b.finish();
        if removed.count() == count {
            return Ok(());
        }
        p.dirty = true;
        self.persistent.insert(keys::entry(queue_id, first), value)?;
        if removed.count() > 0 {
            self.persistent.insert(keys::acks(queue_id, first), removed.to_bytes())?;
        }
        self.index.insert(queue_id, first, SegInfo { count, removed });
        Ok(())
    }

    /// Writes what the group has pending: finished segments, settled bitmaps (or the
    /// deletion of segments with nothing left), delivered marks.
    fn write_pending(&mut self, p: &mut Pending) -> sled::Result<()> {
        for (queue_id, b) in std::mem::take(&mut p.builders) {
            self.seal(queue_id, b, p)?;
        }
        let mut batch = sled::Batch::default();
        for (queue_id, first) in p.touched.drain() {
            let Some(info) = self.index.get(queue_id, first) else { continue };
            p.dirty = true;
            if info.live() == 0 {
                self.index.remove(queue_id, first);
                batch.remove(&keys::entry(queue_id, first));
                batch.remove(&keys::acks(queue_id, first));
            } else {
                batch.insert(&keys::acks(queue_id, first), info.removed.to_bytes());
            }
        }
        self.persistent.apply_batch(batch)?;
        for (queue_id, seq) in p.delivered.drain() {
            p.dirty = true;
            self.meta.insert(keys::delivered(queue_id), &seq.to_be_bytes())?;
        }
        Ok(())
    }

    /// Up to `max` unsettled messages of the queue from `from` on, in sequence order: its
    /// persistent segments and its spill file merged. Spilled messages are consumed as they
    /// are read (from then on they live in memory only). A record that does not decode is
    /// logged and skipped, never fatal.
    fn load(&mut self, queue_id: u64, from: u64, max: usize) -> std::io::Result<Vec<StoredMessage>> {
        let stored = self.load_persistent(queue_id, from, max);
        let spilled = match self.spills.get_mut(&queue_id) {
            Some(s) => s.peek(from, max)?,
            None => Vec::new(),
        };
        let mut out = Vec::with_capacity(max.min(stored.len() + spilled.len()));
        let (mut a, mut b) = (stored.into_iter().peekable(), spilled.into_iter().peekable());
        let mut consumed_to = None;
        while out.len() < max {
            let take_stored = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => x.seq < y.0,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            if take_stored {
                out.extend(a.next());
            } else if let Some((seq, m, end)) = b.next() {
                consumed_to = Some(end);
                out.push(StoredMessage { seq, message: Arc::new(m), persistent: false });
            }
        }
        if let (Some(end), Some(spill)) = (consumed_to, self.spills.get_mut(&queue_id)) {
            spill.consume_to(end)?;
        }
        Ok(out)
    }

    fn load_persistent(&mut self, queue_id: u64, from: u64, max: usize) -> Vec<StoredMessage> {
        let mut out = Vec::new();
        for first in self.index.firsts_from(queue_id, from) {
            if out.len() >= max {
                break;
            }
            let value = match self.persistent.get(keys::entry(queue_id, first)) {
                Ok(Some(v)) => v,
                Ok(None) => {
                    tracing::error!(queue_id, first, "indexed segment missing from the store");
                    continue;
                }
                Err(e) => {
                    tracing::error!(queue_id, first, error = %e, "segment read failed");
                    continue;
                }
            };
            let info = self.index.get(queue_id, first).expect("listed by the index");
            for (offset, rec) in segment::records(&value).enumerate() {
                let (offset, seq) = (offset as u32, first + offset as u64);
                if seq < from || info.removed.get(offset) {
                    continue;
                }
                if out.len() >= max {
                    break;
                }
                match record::decode(rec) {
                    Some(m) => out.push(StoredMessage { seq, message: Arc::new(m), persistent: true }),
                    None => tracing::error!(queue_id, seq, "corrupt message record skipped"),
                }
            }
        }
        out
    }
}

/// Logs a failed step of a group and keeps the first failure, which every waiter of the group
/// is then told about.
fn note_failure(failed: &mut Option<String>, what: &str, result: sled::Result<()>) {
    if let Err(e) = result {
        tracing::error!(error = %e, "{what}");
        failed.get_or_insert(e.to_string());
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
