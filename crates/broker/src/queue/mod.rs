//! Queues: FIFO storage of ready messages, round-robin dispatch to consumers with credit,
//! and the flow gate that pushes back on publishers when consumers fall behind.
mod consumer;
mod handle;
mod ready;

pub use consumer::{ConnectionId, Consumer, ConsumerSpec, Credit, Delivery, DeliverySink};
pub use handle::QueueHandle;

use crate::error::BrokerError;
use crate::message::Message;
use amq_protocol::types::FieldTable;
use parking_lot::Mutex;
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
}

/// The properties a queue was declared with.
#[derive(Debug, Clone)]
pub struct QueueMeta {
    pub name: Arc<str>,
    pub vhost: Arc<str>,
    pub durable: bool,
    /// Connection that declared the queue exclusive, if it did.
    pub exclusive_owner: Option<ConnectionId>,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

/// What removing a consumer left behind.
#[derive(Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    NotFound,
    Removed,
    /// The last consumer of an auto-delete queue went: the caller deletes the queue.
    RemovedLastOfAutoDelete,
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
}

/// A queue on this node. Reached through a [`QueueHandle`].
pub struct Queue {
    pub meta: QueueMeta,
    state: Mutex<State>,
    flow_threshold: usize,
    flow_blocked: AtomicBool,
    flow_released: tokio::sync::Notify,
    deleted: AtomicBool,
    /// Lets dispatch hand out handles to this queue without the caller passing one in.
    me: Weak<Queue>,
}

impl Queue {
    pub fn create(meta: QueueMeta, flow_threshold: usize) -> QueueHandle {
        QueueHandle::new(Arc::new_cyclic(|me| Queue {
            me: me.clone(),
            meta,
            state: Mutex::new(State {
                ready: Ready::default(),
                consumers: Vec::new(),
                next_consumer: 0,
                unacked: 0,
                next_seq: 1,
                had_consumer: false,
                deleted: false,
            }),
            flow_threshold: flow_threshold.max(2),
            flow_blocked: AtomicBool::new(false),
            flow_released: tokio::sync::Notify::new(),
            deleted: AtomicBool::new(false),
        }))
    }

    pub fn name(&self) -> &str {
        &self.meta.name
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Appends a message and hands out what consumers can take. Returns false if the queue
    /// was deleted meanwhile (the message was not taken).
    pub fn publish(&self, message: Arc<Message>) -> bool {
        let mut st = self.state.lock();
        if st.deleted {
            return false;
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        st.ready.push_back(QueuedMessage {
            seq,
            message,
            redelivered: false,
        });
        self.dispatch(&mut st);
        true
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
            return Err(BrokerError::not_found(
                "queue",
                &self.meta.name,
                &self.meta.vhost,
            ));
        }
        if st.consumers.iter().any(|c| c.exclusive)
            || (consumer.exclusive && !st.consumers.is_empty())
        {
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
    pub fn remove_consumer(
        &self,
        connection: ConnectionId,
        channel: u16,
        tag: &str,
    ) -> CancelOutcome {
        let mut st = self.state.lock();
        let Some(i) = st
            .consumers
            .iter()
            .position(|c| c.connection == connection && c.channel == channel && &*c.tag == tag)
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

    /// basic.get: the next ready message, and how many remain after it.
    pub fn get(&self, no_ack: bool) -> Option<(QueuedMessage, u32)> {
        let mut st = self.state.lock();
        let m = st.ready.pop_front()?;
        if !no_ack {
            st.unacked += 1;
        }
        let left = st.ready.len() as u32;
        self.update_flow(&st);
        Some((m, left))
    }

    /// `n` delivered messages were acked (or rejected without requeue): forget them, and
    /// dispatch again, since their consumers got credit back.
    pub fn settle(&self, n: usize) {
        let mut st = self.state.lock();
        st.unacked = st.unacked.saturating_sub(n);
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
        st.ready.clear();
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

    /// Marks the queue deleted: no more publishes or consumers. Returns the number of ready
    /// messages it held and tells every consumer's connection that the consumer is gone.
    pub(crate) fn mark_deleted(&self) -> u32 {
        let (count, consumers) = {
            let mut st = self.state.lock();
            st.deleted = true;
            self.deleted.store(true, Ordering::Release);
            let count = st.ready.len() as u32;
            st.ready.clear();
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

    /// Hands ready messages to consumers round-robin while any has credit.
    fn dispatch(&self, st: &mut State) {
        while !st.ready.is_empty() && !st.consumers.is_empty() {
            let Some(ci) = Self::next_with_credit(st) else {
                break;
            };
            let consumer = st.consumers[ci].clone();
            let Some(message) = st.ready.pop_front() else {
                break;
            };
            if !consumer.no_ack {
                st.unacked += 1;
            }
            // `self` is alive (we are in its method), so its Arc is too.
            let Some(queue) = self.me.upgrade().map(QueueHandle::new) else {
                break;
            };
            consumer.sink.deliver(Delivery {
                consumer: consumer.clone(),
                queue,
                message,
            });
        }
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
    /// over the threshold: a queue with no consumers fills freely (later paged to disk), and
    /// a queue whose consumers keep up never blocks anyone.
    fn update_flow(&self, st: &State) {
        let len = st.ready.len();
        let blocked = self.flow_blocked.load(Ordering::Relaxed);
        if !blocked && !st.consumers.is_empty() && len > self.flow_threshold {
            self.flow_blocked.store(true, Ordering::Release);
        } else if blocked && (st.consumers.is_empty() || len <= self.flow_threshold / 2) {
            self.flow_blocked.store(false, Ordering::Release);
            self.flow_released.notify_waiters();
        }
    }
}
