//! The message-storage seam: what queues ask of the durability layer.
//!
//! Queues call these with their lock held, so every call only enqueues work for the
//! store's writer thread (which applies it in submission order, then flushes a whole group
//! at once). Even [`MessageStore::load`] only asks: the read happens on the store's reader
//! thread, which hands the messages to a callback, so no queue lock is held across a disk
//! read and no runtime worker waits for one.
use crate::message::Message;
use std::sync::Arc;

/// Learns when everything submitted before a `notify_durable` call is on disk (or failed).
pub trait DurableListener: Send + Sync {
    fn durable(&self, channel: u16, token: u64, ok: bool);
}

/// A message read back from the store.
pub struct StoredMessage {
    pub seq: u64,
    pub message: Arc<Message>,
    /// Still in the store (persistent). Paged transient entries are removed from the store
    /// as they are read back: from then on they live in memory only, like any transient
    /// message, and settling them costs no store write.
    pub persistent: bool,
}

pub trait MessageStore: Send + Sync {
    /// Writes the entry for message `seq` of queue `queue_id`. `persistent` entries survive
    /// a restart; the others are paged-out transient messages, dropped at the next start.
    fn put(&self, queue_id: u64, seq: u64, message: &Arc<Message>, persistent: bool);
    /// Removes persistent entries (acked, rejected, or dropped).
    fn remove(&self, queue_id: u64, seqs: &[u64]);
    /// Removes every entry of the queue with a sequence number from `from_seq` on
    /// (0: the whole queue, on delete; the paged tail, on purge).
    fn remove_from(&self, queue_id: u64, from_seq: u64);
    /// Records that every message of the queue up to `seq` has been delivered at least once,
    /// so that it comes back redelivered after a restart.
    fn set_delivered(&self, queue_id: u64, seq: u64);
    /// Calls `listener.durable(channel, token, ok)` once everything submitted before this
    /// call has been flushed to disk (ok = true) or could not be (ok = false).
    fn notify_durable(&self, listener: Arc<dyn DurableListener>, channel: u16, token: u64);
    /// As [`MessageStore::notify_durable`], and the settlements (acks, rejects) submitted
    /// before the call are on disk too: what a transaction's commit-ok promises. A store that
    /// makes settlements durable as soon as everything else need not tell them apart.
    fn notify_settled(&self, listener: Arc<dyn DurableListener>, channel: u16, token: u64) {
        self.notify_durable(listener, channel, token);
    }
    /// Reads up to `max` entries of the queue with sequence numbers from `from_seq` on, in
    /// order, seeing every write submitted before the call, and calls `done` with them from
    /// another thread. Does not block.
    fn load(&self, queue_id: u64, from_seq: u64, max: usize, done: LoadDone);
}

/// Receives what a [`MessageStore::load`] read.
pub type LoadDone = Box<dyn FnOnce(Loaded) + Send>;

/// The result of a page-in.
#[derive(Default)]
pub struct Loaded {
    pub messages: Vec<StoredMessage>,
    /// How many of the queue's stored entries the read covered: `messages` plus any that
    /// were damaged and are lost.
    pub covered: usize,
    /// Where the next page-in starts.
    pub next_from: u64,
}
