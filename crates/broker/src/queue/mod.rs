//! Queues: FIFO storage of ready messages, round-robin dispatch to consumers with credit,
//! paging to the store past a memory window, and the flow gate that pushes back on
//! publishers when consumers fall behind.
mod consumer;
#[cfg(test)]
mod flow_tests;
mod handle;
mod memory;
mod ready;

pub use consumer::{ConnectionId, Consumer, ConsumerSpec, Credit, Delivery, DeliverySink};
pub use handle::QueueHandle;
pub use memory::MemoryBudget;

use crate::error::BrokerError;
use crate::message::Message;
use crate::store::{Loaded, MessageStore};
use amq_protocol::types::FieldTable;
use parking_lot::{Condvar, Mutex};
use ready::Ready;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

/// A message in a queue. `seq` orders the queue: requeued messages go back to the place
/// their sequence number gives them, as RabbitMQ's classic queues do.
#[derive(Clone)]
pub struct QueuedMessage {
    pub seq: u64,
    pub message: Arc<Message>,
    pub redelivered: bool,
    /// The store holds an entry for it (persistent in a durable queue, or paged back in):
    /// settling it must remove that entry.
    pub stored: bool,
}

/// The properties a queue was declared with.
#[derive(Debug, Clone)]
pub struct QueueMeta {
    /// Stable number naming the queue in the store.
    pub id: u64,
    pub name: Arc<str>,
    pub vhost: Arc<str>,
    pub durable: bool,
    /// Connection that declared the queue exclusive, if it did.
    pub exclusive_owner: Option<ConnectionId>,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

/// How a queue keeps its messages: the store (if any) and the memory it may use.
#[derive(Clone)]
pub struct QueueStorage {
    pub store: Option<Arc<dyn MessageStore>>,
    /// Bytes of ready messages a queue keeps in memory before paging the rest out.
    pub memory_window: usize,
    pub budget: Arc<MemoryBudget>,
    pub flow_threshold: usize,
}

/// What recovery found on disk for a queue.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecoveredState {
    pub count: usize,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Messages up to this seq had been delivered before the restart.
    pub delivered_upto: u64,
}

/// What removing a consumer left behind.
#[derive(Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    NotFound,
    Removed,
    /// The last consumer of an auto-delete queue went: the caller deletes the queue.
    RemovedLastOfAutoDelete,
}

/// What a publish did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The queue took the message (false if it was deleted meanwhile).
    pub accepted: bool,
    /// The message was written to the store as persistent: a confirm must wait for the flush.
    pub needs_sync: bool,
}

struct State {
    ready: Ready,
    consumers: Vec<Arc<Consumer>>,
    /// Round-robin position in `consumers`.
    next_consumer: usize,
    unacked: usize,
    next_seq: u64,
    had_consumer: bool,
    deleted: bool,
    /// Highest stored seq known to have been delivered.
    delivered_upto: u64,
    /// `delivered_upto` moved since the store was last told.
    delivered_dirty: bool,
    /// Recovered messages up to this seq come back marked redelivered.
    recovered_delivered: u64,
    /// A page-in is in flight (at most one per queue).
    loading: bool,
    /// Bumped when the paged tail is dropped (purge, delete), so that a page-in that was in
    /// flight then is discarded when it lands.
    load_gen: u64,
}

/// Under broker-wide memory pressure, a queue with consumers and more than this many bytes
/// ready holds its publishers back. Small, so that a thousand queues each a little behind
/// cannot fill the budget between them (each would stay under any per-queue share).
const GLOBAL_GATE_MIN_BYTES: usize = 64 << 10;

/// Messages loaded from the store per read when the in-memory part runs low.
const PAGE_IN_BATCH: usize = 2048;

/// How long basic.get waits for a page-in before answering get-empty (a store that cannot
/// read must not hang the channel).
const GET_PAGE_IN_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// A queue on this node. Reached through a [`QueueHandle`].
pub struct Queue {
    pub meta: QueueMeta,
    state: Mutex<State>,
    storage: QueueStorage,
    flow_blocked: AtomicBool,
    flow_released: tokio::sync::Notify,
    /// Signalled when a page-in lands, for basic.get waiting on one.
    paged_in: Condvar,
    deleted: AtomicBool,
    /// Lets dispatch hand out handles to this queue without the caller passing one in.
    me: Weak<Queue>,
}

impl Queue {
    pub fn create(meta: QueueMeta, storage: QueueStorage, recovered: Option<RecoveredState>) -> QueueHandle {
        let mut ready = Ready::default();
        let mut next_seq = 1;
        let mut recovered_delivered = 0;
        if let Some(r) = recovered {
            if r.count > 0 {
                ready.disk_count = r.count;
                ready.disk_from = r.first_seq;
            }
            // Past every seq the store has seen, settled or not, so that no new message
            // shares a number with an old record or falls under the recovered delivered mark.
            next_seq = r.last_seq.max(r.delivered_upto) + 1;
            recovered_delivered = r.delivered_upto;
        }
        QueueHandle::new(Arc::new_cyclic(|me| Queue {
            me: me.clone(),
            meta,
            state: Mutex::new(State {
                ready,
                consumers: Vec::new(),
                next_consumer: 0,
                unacked: 0,
                next_seq,
                had_consumer: false,
                deleted: false,
                delivered_upto: recovered_delivered,
                delivered_dirty: false,
                recovered_delivered,
                loading: false,
                load_gen: 0,
            }),
            storage,
            flow_blocked: AtomicBool::new(false),
            flow_released: tokio::sync::Notify::new(),
            paged_in: Condvar::new(),
            deleted: AtomicBool::new(false),
        }))
    }

    pub fn name(&self) -> &str {
        &self.meta.name
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Appends a message and hands out what consumers can take.
    pub fn publish(&self, message: Arc<Message>) -> Published {
        let mut st = self.state.lock();
        if st.deleted {
            return Published { accepted: false, needs_sync: false };
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        let persist = self.meta.durable && self.meta.exclusive_owner.is_none() && message.is_persistent();
        let mut needs_sync = false;
        if let Some(store) = &self.storage.store {
            let size = message.memory_size();
            let over = st.ready.disk_count > 0
                || st.ready.mem_bytes + size > self.storage.memory_window
                || self.storage.budget.is_over();
            if persist || over {
                store.put(self.meta.id, seq, &message, persist);
                needs_sync = persist;
            }
            if over {
                st.ready.push_paged(seq);
                self.dispatch(&mut st);
                return Published { accepted: true, needs_sync };
            }
        }
        self.storage.budget.add(message.memory_size());
        st.ready.push_back(QueuedMessage { seq, message, redelivered: false, stored: persist });
        self.dispatch(&mut st);
        Published { accepted: true, needs_sync }
    }

    /// True while publishers to this queue should stop reading from their sockets.
    pub fn is_flow_blocked(&self) -> bool {
        self.flow_blocked.load(Ordering::Acquire)
    }

    /// Resolves when the flow gate opens (or immediately if it is open).
    pub async fn flow_released(&self) {
        let notified = self.flow_released.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.is_flow_blocked() {
            notified.await;
        }
    }

    /// Adds a consumer. RabbitMQ's rules: an exclusive consumer needs a queue with no other
    /// consumer, and nobody joins a queue that has an exclusive consumer (403 both ways).
    pub fn add_consumer(&self, consumer: Arc<Consumer>) -> Result<(), BrokerError> {
        let mut st = self.state.lock();
        if st.deleted {
            return Err(BrokerError::not_found("queue", &self.meta.name, &self.meta.vhost));
        }
        if st.consumers.iter().any(|c| c.exclusive) || (consumer.exclusive && !st.consumers.is_empty()) {
            return Err(BrokerError::AccessRefused(format!(
                "queue '{}' in vhost '{}' in exclusive use",
                self.meta.name, self.meta.vhost
            )));
        }
        st.consumers.push(consumer);
        st.had_consumer = true;
        self.dispatch(&mut st);
        Ok(())
    }

    /// Removes the consumer with this tag on this channel of this connection.
    pub fn remove_consumer(&self, connection: ConnectionId, channel: u16, tag: &str) -> CancelOutcome {
        let mut st = self.state.lock();
        let Some(i) =
            st.consumers.iter().position(|c| c.connection == connection && c.channel == channel && &*c.tag == tag)
        else {
            return CancelOutcome::NotFound;
        };
        st.consumers.remove(i).deactivate();
        if st.next_consumer > i {
            st.next_consumer -= 1;
        }
        if st.consumers.is_empty() {
            self.update_flow(&st);
            if self.meta.auto_delete && st.had_consumer && !st.deleted {
                return CancelOutcome::RemovedLastOfAutoDelete;
            }
        }
        CancelOutcome::Removed
    }

    /// basic.get: the next ready message, and how many remain after it. When everything
    /// ready is paged out, waits for the page-in (the wait releases the queue lock), since
    /// get-empty would be a lie.
    pub fn get(&self, no_ack: bool) -> Option<(QueuedMessage, u32)> {
        let mut st = self.state.lock();
        if st.ready.in_memory() == 0 && st.ready.disk_count > 0 {
            self.start_page_in(&mut st);
            st = crate::blocking::off_worker(|| {
                let deadline = std::time::Instant::now() + GET_PAGE_IN_WAIT;
                while st.ready.in_memory() == 0 && st.loading && !st.deleted {
                    if self.paged_in.wait_until(&mut st, deadline).timed_out() {
                        break;
                    }
                }
                st
            });
        }
        let m = self.take_front(&mut st)?;
        if no_ack {
            self.forget(&[&m]);
        } else {
            st.unacked += 1;
        }
        self.note_delivered(&mut st, &m);
        self.flush_delivered(&mut st);
        let left = st.ready.len() as u32;
        self.update_flow(&st);
        Some((m, left))
    }

    /// Delivered messages were acked (or rejected without requeue): forget them, and
    /// dispatch again, since their consumers got credit back.
    pub fn settle(&self, messages: &[QueuedMessage]) {
        let mut st = self.state.lock();
        st.unacked = st.unacked.saturating_sub(messages.len());
        self.forget(&messages.iter().collect::<Vec<_>>());
        self.dispatch(&mut st);
    }

    /// A delivery that never reached its client (its consumer went away while the delivery
    /// sat in the connection's mailbox) goes back unchanged: it was not delivered, so it is
    /// not marked redelivered.
    pub fn return_undelivered(&self, m: QueuedMessage, counted_unacked: bool) {
        let mut st = self.state.lock();
        if counted_unacked {
            st.unacked = st.unacked.saturating_sub(1);
        }
        if !st.deleted {
            self.storage.budget.add(m.message.memory_size());
            st.ready.insert_by_seq(m);
            self.dispatch(&mut st);
        }
    }

    /// Puts unacked messages back at the positions their sequence numbers give them,
    /// marked redelivered, and dispatches them again.
    pub fn requeue(&self, messages: impl IntoIterator<Item = QueuedMessage>) {
        let mut st = self.state.lock();
        let mut n = 0;
        for mut m in messages {
            n += 1;
            if st.deleted {
                continue;
            }
            m.redelivered = true;
            self.storage.budget.add(m.message.memory_size());
            st.ready.insert_by_seq(m);
        }
        st.unacked = st.unacked.saturating_sub(n);
        self.dispatch(&mut st);
    }

    /// Retries dispatch: called when consumers got credit back or a connection drained.
    pub fn kick(&self) {
        let mut st = self.state.lock();
        self.dispatch(&mut st);
    }

    /// queue.purge: drops every ready message, returns how many.
    pub fn purge(&self) -> u32 {
        let mut st = self.state.lock();
        let n = st.ready.len() as u32;
        self.drop_ready(&mut st);
        self.update_flow(&st);
        n
    }

    /// Ready messages (what queue.declare-ok reports as message_count).
    pub fn message_count(&self) -> u32 {
        self.state.lock().ready.len() as u32
    }

    pub fn consumer_count(&self) -> u32 {
        self.state.lock().consumers.len() as u32
    }

    pub fn unacked_count(&self) -> usize {
        self.state.lock().unacked
    }

    /// Ready messages held in memory (the rest are paged out).
    pub fn in_memory_count(&self) -> usize {
        self.state.lock().ready.in_memory()
    }

    /// Marks the queue deleted: no more publishes or consumers. Returns the number of ready
    /// messages it held and tells every consumer's connection that the consumer is gone.
    pub(crate) fn mark_deleted(&self) -> u32 {
        let (count, consumers) = {
            let mut st = self.state.lock();
            st.deleted = true;
            self.deleted.store(true, Ordering::Release);
            let count = st.ready.len() as u32;
            self.drop_ready(&mut st);
            if let Some(store) = &self.storage.store {
                // Unacked entries too: a deleted queue's messages are gone for good.
                store.remove_from(self.meta.id, 0);
            }
            (count, std::mem::take(&mut st.consumers))
        };
        self.flow_blocked.store(false, Ordering::Release);
        self.flow_released.notify_waiters();
        for c in consumers {
            c.deactivate();
            c.sink.cancelled(&c);
        }
        count
    }

    /// Drops all ready messages, with their store entries.
    fn drop_ready(&self, st: &mut State) {
        st.load_gen += 1;
        st.loading = false;
        self.paged_in.notify_all();
        let disk_from = st.ready.disk_from;
        let had_disk = st.ready.disk_count > 0;
        let dropped = st.ready.clear();
        let bytes: usize = dropped.iter().map(|m| m.message.memory_size()).sum();
        self.storage.budget.sub(bytes);
        self.forget(&dropped.iter().collect::<Vec<_>>());
        if let (true, Some(store)) = (had_disk, &self.storage.store) {
            store.remove_from(self.meta.id, disk_from);
        }
    }

    /// Removes the store entries of messages that are done.
    fn forget(&self, messages: &[&QueuedMessage]) {
        if let Some(store) = &self.storage.store {
            let seqs: Vec<u64> = messages.iter().filter(|m| m.stored).map(|m| m.seq).collect();
            if !seqs.is_empty() {
                store.remove(self.meta.id, &seqs);
            }
        }
    }

    /// Notes that a stored message was delivered; [`Queue::flush_delivered`] tells the store.
    fn note_delivered(&self, st: &mut State, m: &QueuedMessage) {
        if m.stored && m.seq > st.delivered_upto {
            st.delivered_upto = m.seq;
            st.delivered_dirty = true;
        }
    }

    /// Writes the "delivered up to" mark once per dispatch pass rather than per message.
    fn flush_delivered(&self, st: &mut State) {
        if std::mem::take(&mut st.delivered_dirty) {
            if let Some(store) = &self.storage.store {
                store.set_delivered(self.meta.id, st.delivered_upto);
            }
        }
    }

    /// The next ready message in memory. Starts a page-in when memory runs low (before it
    /// runs dry, so a consumer that caught up rarely waits on a read); when nothing is in
    /// memory, returns None and the page-in's arrival dispatches again.
    fn take_front(&self, st: &mut State) -> Option<QueuedMessage> {
        if st.ready.in_memory() <= PAGE_IN_BATCH / 4 && st.ready.disk_count > 0 {
            self.start_page_in(st);
        }
        let m = st.ready.pop_front()?;
        self.storage.budget.sub(m.message.memory_size());
        Some(m)
    }

    /// Asks the store for the next batch of the paged tail; [`Queue::paged_in`] receives it.
    fn start_page_in(&self, st: &mut State) {
        let Some(store) = &self.storage.store else { return };
        if st.loading || st.ready.disk_count == 0 {
            return;
        }
        st.loading = true;
        let (me, generation) = (self.me.clone(), st.load_gen);
        let want = PAGE_IN_BATCH.min(st.ready.disk_count);
        store.load(
            self.meta.id,
            st.ready.disk_from,
            want,
            Box::new(move |loaded| {
                if let Some(q) = me.upgrade() {
                    q.land_page_in(generation, loaded);
                }
            }),
        );
    }

    /// A page-in arrived (on the store's reader thread): append it and dispatch.
    fn land_page_in(&self, generation: u64, loaded: Loaded) {
        let mut st = self.state.lock();
        if generation != st.load_gen || st.deleted {
            // The paged tail was purged while this was read: its entries are gone already.
            return;
        }
        st.loading = false;
        self.paged_in.notify_all();
        if loaded.covered == 0 {
            // The store lost the tail (write failure, corruption): do not spin on it.
            tracing::error!(queue = %self.meta.name, missing = st.ready.disk_count, "paged messages not found in the store");
            st.ready.disk_count = 0;
            self.update_flow(&st);
            return;
        }
        let recovered = st.recovered_delivered;
        let items: Vec<QueuedMessage> = loaded
            .messages
            .into_iter()
            .map(|m| QueuedMessage {
                seq: m.seq,
                message: m.message,
                redelivered: m.seq <= recovered,
                stored: m.persistent,
            })
            .collect();
        let bytes: usize = items.iter().map(|m| m.message.memory_size()).sum();
        self.storage.budget.add(bytes);
        let covered = loaded.covered.min(st.ready.disk_count);
        st.ready.extend_loaded(items, loaded.next_from, covered);
        self.dispatch(&mut st);
    }

    /// Hands ready messages to consumers round-robin while any has credit.
    fn dispatch(&self, st: &mut State) {
        let mut done: Vec<u64> = Vec::new();
        // Upgraded once per call and cloned per delivery. It only fails while the queue is
        // being dropped, when there is nobody left to deliver to.
        if let Some(me) = self.me.upgrade() {
            while !st.ready.is_empty() && !st.consumers.is_empty() {
                let Some(ci) = Self::next_with_credit(st) else { break };
                let Some(message) = self.take_front(st) else {
                    st.consumers[ci].settle(1);
                    break;
                };
                if st.consumers[ci].no_ack {
                    if message.stored {
                        done.push(message.seq);
                    }
                } else {
                    st.unacked += 1;
                }
                self.note_delivered(st, &message);
                let consumer = &st.consumers[ci];
                let queue = QueueHandle::new(me.clone());
                consumer.sink.deliver(Delivery { consumer: consumer.clone(), queue, message });
            }
        }
        if let (false, Some(store)) = (done.is_empty(), &self.storage.store) {
            store.remove(self.meta.id, &done);
        }
        self.flush_delivered(st);
        self.update_flow(st);
    }

    /// The next consumer, in round-robin order, that may take a delivery; takes its credit.
    fn next_with_credit(st: &mut State) -> Option<usize> {
        let n = st.consumers.len();
        for k in 0..n {
            let i = (st.next_consumer + k) % n;
            let c = &st.consumers[i];
            if !c.sink.is_congested() && c.try_take_credit() {
                st.next_consumer = (i + 1) % n;
                return Some(i);
            }
        }
        None
    }

    /// Opens or closes the flow gate. Closed only while consumers exist and the backlog is
    /// over the threshold — in messages, or half the memory window, so that publishers are
    /// slowed to the consumers' pace before the queue would start paging. A queue with no
    /// consumers fills freely (paging to disk), and a queue whose consumers keep up never
    /// blocks anyone.
    fn update_flow(&self, st: &State) {
        let len = st.ready.len();
        let mem = st.ready.mem_bytes;
        let window = self.storage.memory_window;
        let threshold = self.storage.flow_threshold.max(2);
        let blocked = self.flow_blocked.load(Ordering::Relaxed);
        // Broker-wide pressure too: many queues each under their own bounds can still fill the
        // global budget, and past it every new message is paged to disk. A queue whose consumers
        // are behind is better served by slowing its publishers than by paging what they will
        // read in a moment (RabbitMQ's memory alarm does the same, for all publishers). From an
        // eighth of the budget: at half, 1,000 queues each a little behind still paged.
        let (used, limit) = (self.storage.budget.used(), self.storage.budget.limit());
        let global_over = used > limit / 8 && mem > GLOBAL_GATE_MIN_BYTES;
        let global_under = used <= limit / 16 || mem <= GLOBAL_GATE_MIN_BYTES / 2;
        let over = len > threshold || mem > window / 2 || global_over;
        let under = len <= threshold / 2 && mem <= window / 4 && global_under;
        if !blocked && !st.consumers.is_empty() && over {
            self.flow_blocked.store(true, Ordering::Release);
        } else if blocked && (st.consumers.is_empty() || under) {
            self.flow_blocked.store(false, Ordering::Release);
            self.flow_released.notify_waiters();
        }
    }
}
