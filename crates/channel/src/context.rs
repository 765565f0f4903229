//! What a channel needs from the connection it lives on.
use std::sync::Arc;
use warren_broker::{Broker, ConnectionId, DeliverySink, DurableListener, MessageStore, QueueHandle, VHost};
use warren_codec::OutBuf;

/// Connection-wide facts, fixed once the connection is open.
pub struct ConnCtx {
    pub id: ConnectionId,
    pub user: String,
    pub broker: Arc<Broker>,
    pub vhost: Arc<VHost>,
    /// Negotiated frame_max: body frames of deliveries are split to fit it.
    pub frame_max: u32,
    pub max_message_size: u64,
    /// The client advertised consumer_cancel_notify: tell it when the broker cancels a consumer.
    pub cancel_notify: bool,
    /// The connection's mailbox, through which queues hand deliveries to its consumers.
    pub sink: Arc<dyn DeliverySink>,
    /// The store, and the mailbox as the listener it reports flushes to (None: no store).
    pub durable: Option<(Arc<dyn MessageStore>, Arc<dyn DurableListener>)>,
}

impl ConnCtx {
    /// Asks the store to report (to this connection's mailbox) when everything written so
    /// far is on disk.
    pub fn notify_durable(&self, channel: u16, token: u64) {
        if let Some((store, listener)) = &self.durable {
            store.notify_durable(listener.clone(), channel, token);
        }
    }

    /// As [`ConnCtx::notify_durable`], settlements included (a transaction's commit).
    pub fn notify_settled(&self, channel: u16, token: u64) {
        if let Some((store, listener)) = &self.durable {
            store.notify_settled(listener.clone(), channel, token);
        }
    }
}

/// Where a channel writes what it has to say during one pass of the connection loop.
pub struct Io<'a> {
    /// Encoded frames for the socket.
    pub out: &'a mut OutBuf,
    /// Queues that published messages went to and that asked publishers to pause: the
    /// connection stops reading until they drain (TCP back-pressure).
    pub blocked: &'a mut Vec<QueueHandle>,
}
