//! The connection's mailbox: how queues, running on other tasks, hand it deliveries.
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;
use warren_broker::{Consumer, Delivery, DeliverySink, DurableListener};

pub enum Event {
    Deliver(Delivery),
    Cancelled(Arc<Consumer>),
    /// The store flushed (or failed) up to a confirm tag or a tx commit of a channel.
    Durable {
        channel: u16,
        token: u64,
        ok: bool,
    },
}

/// Deliveries pushed by queues (with their locks held) and drained by the connection task
/// in one swap. Bounded in bytes together with the connection's outbound buffer: past the
/// bound the sink reports congestion and queues keep their messages.
pub struct Mailbox {
    events: Mutex<Vec<Event>>,
    notify: Notify,
    /// Approximate bytes of deliveries in `events`.
    queued_bytes: AtomicUsize,
    /// Bytes the connection has encoded and not yet written (published by the connection).
    out_bytes: AtomicUsize,
    limit: usize,
    /// A queue skipped one of our consumers because we were congested; once drained, the
    /// connection must kick its queues.
    skipped: AtomicBool,
}

/// Frame overhead of a delivery besides its body, for the byte bound.
const DELIVERY_OVERHEAD: usize = 128;

impl Mailbox {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Mailbox {
            events: Mutex::new(Vec::new()),
            notify: Notify::new(),
            queued_bytes: AtomicUsize::new(0),
            out_bytes: AtomicUsize::new(0),
            limit,
            skipped: AtomicBool::new(false),
        })
    }

    fn push(&self, e: Event) {
        let was_empty = {
            let mut ev = self.events.lock();
            let was_empty = ev.is_empty();
            ev.push(e);
            was_empty
        };
        // One wake-up per batch: later pushes find the connection already woken.
        if was_empty {
            self.notify.notify_one();
        }
    }

    /// Takes everything queued so far, into `into` (reused between calls).
    pub fn drain(&self, into: &mut Vec<Event>) {
        std::mem::swap(&mut *self.events.lock(), into);
        self.queued_bytes.store(0, Ordering::Release);
    }

    pub async fn notified(&self) {
        self.notify.notified().await
    }

    pub fn set_out_bytes(&self, n: usize) {
        self.out_bytes.store(n, Ordering::Release);
    }

    /// True (once) if a queue skipped us while congested.
    pub fn take_skipped(&self) -> bool {
        self.skipped.swap(false, Ordering::AcqRel)
    }
}

impl DeliverySink for Mailbox {
    fn deliver(&self, d: Delivery) {
        let size = d.message.message.body.len() + DELIVERY_OVERHEAD;
        self.queued_bytes.fetch_add(size, Ordering::AcqRel);
        self.push(Event::Deliver(d));
    }

    fn cancelled(&self, consumer: &Arc<Consumer>) {
        self.push(Event::Cancelled(consumer.clone()));
    }

    fn is_congested(&self) -> bool {
        let used = self.queued_bytes.load(Ordering::Acquire) + self.out_bytes.load(Ordering::Acquire);
        if used > self.limit {
            if !self.skipped.swap(true, Ordering::AcqRel) {
                // Wake the connection so it notices the skip even if it is otherwise idle.
                self.notify.notify_one();
            }
            return true;
        }
        false
    }
}

impl DurableListener for Mailbox {
    fn durable(&self, channel: u16, token: u64, ok: bool) {
        self.push(Event::Durable { channel, token, ok });
    }
}
