//! Consumers, their prefetch credit, and the sink through which a queue hands deliveries
//! to the connection that owns the consumer.
use super::{QueueHandle, QueuedMessage};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

/// Identifies a client connection (exclusive queues and consumers are owned by one).
pub type ConnectionId = u64;

/// Prefetch credit: how many unacknowledged deliveries may be outstanding.
///
/// Shared between the queue that dispatches (takes credit) and the channel that acks
/// (returns it), which live on different tasks; atomics avoid taking the queue lock on ack.
#[derive(Debug, Default)]
pub struct Credit {
    limit: AtomicU32,
    used: AtomicU32,
}

impl Credit {
    pub fn new(limit: u32) -> Self {
        Credit { limit: AtomicU32::new(limit), used: AtomicU32::new(0) }
    }

    /// Takes one unit if the limit allows (0 = unlimited). Atomic so that two queues
    /// dispatching to consumers of the same channel cannot overshoot a global prefetch.
    pub fn try_take(&self) -> bool {
        let limit = self.limit.load(Ordering::Acquire);
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| (limit == 0 || u < limit).then_some(u + 1))
            .is_ok()
    }

    pub fn give_back(&self, n: u32) {
        // Saturating: a consumer cancelled mid-flight may return credit it was never charged.
        let _ = self.used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| Some(u.saturating_sub(n)));
    }

    pub fn set_limit(&self, limit: u32) {
        self.limit.store(limit, Ordering::Release);
    }

    pub fn limit(&self) -> u32 {
        self.limit.load(Ordering::Acquire)
    }

    pub fn used(&self) -> u32 {
        self.used.load(Ordering::Acquire)
    }
}

/// One delivery handed from a queue to a consumer's connection.
pub struct Delivery {
    pub consumer: Arc<Consumer>,
    pub queue: QueueHandle,
    pub message: QueuedMessage,
}

/// Where a queue puts deliveries for a consumer: the owning connection's mailbox.
///
/// Implementations must be cheap and non-blocking: they are called with the queue lock held.
pub trait DeliverySink: Send + Sync {
    fn deliver(&self, delivery: Delivery);
    /// The queue the consumer was on is gone (deleted): tell the client (basic.cancel).
    fn cancelled(&self, consumer: &Arc<Consumer>);
    /// True while the connection's outbound buffer is over its bound; the queue then skips
    /// this consumer, and the connection kicks its queues once it has drained.
    fn is_congested(&self) -> bool;
}

/// A basic.consume subscription.
pub struct Consumer {
    pub tag: Arc<str>,
    pub channel: u16,
    pub connection: ConnectionId,
    pub no_ack: bool,
    pub exclusive: bool,
    /// Per-consumer prefetch (basic.qos global=false), fixed when the consumer was created.
    pub credit: Credit,
    /// Per-channel prefetch (basic.qos global=true), shared by the channel's consumers.
    pub channel_credit: Arc<Credit>,
    pub sink: Arc<dyn DeliverySink>,
    active: AtomicBool,
}

/// What basic.consume asked for.
pub struct ConsumerSpec {
    pub tag: Arc<str>,
    pub channel: u16,
    pub connection: ConnectionId,
    pub no_ack: bool,
    pub exclusive: bool,
    pub prefetch: u32,
}

impl Consumer {
    pub fn new(spec: ConsumerSpec, channel_credit: Arc<Credit>, sink: Arc<dyn DeliverySink>) -> Self {
        Consumer {
            tag: spec.tag,
            channel: spec.channel,
            connection: spec.connection,
            no_ack: spec.no_ack,
            exclusive: spec.exclusive,
            credit: Credit::new(spec.prefetch),
            channel_credit,
            sink,
            active: AtomicBool::new(true),
        }
    }

    /// Takes one delivery's worth of credit, or none. no-ack consumers ignore prefetch
    /// (as in RabbitMQ); only the connection's outbound bound holds them back.
    pub(crate) fn try_take_credit(&self) -> bool {
        if self.no_ack {
            return true;
        }
        if !self.credit.try_take() {
            return false;
        }
        if !self.channel_credit.try_take() {
            self.credit.give_back(1);
            return false;
        }
        true
    }

    /// Returns credit for `n` settled deliveries (ack, reject, nack, requeue).
    pub fn settle(&self, n: u32) {
        if !self.no_ack {
            self.credit.give_back(n);
            self.channel_credit.give_back(n);
        }
    }

    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    pub fn deactivate(&self) {
        self.active.store(false, Ordering::Release);
    }
}
