//! basic.qos / consume / cancel / get, and deliveries from queues to the client.
use crate::channel::{reply, Channel};
use crate::context::{ConnCtx, Io};
use crate::unacked::Unacked;
use amq_protocol::protocol::{basic, AMQPClass};
use std::sync::Arc;
use warren_broker::queue::CancelOutcome;
use warren_broker::{Consumer, ConsumerSpec, Delivery, QueueHandle};
use warren_codec::{encode_content, encode_deliver, encode_get_ok, AmqpError, ReplyCode};

impl Channel {
    pub(crate) fn qos(&mut self, prefetch_count: u16, global: bool, io: &mut Io) -> Result<(), AmqpError> {
        if global {
            self.channel_credit.set_limit(prefetch_count as u32);
            self.kick_queues();
        } else {
            self.consumer_prefetch = prefetch_count as u32;
        }
        reply(io, self.id, AMQPClass::Basic(basic::AMQPMethod::QosOk(basic::QosOk {})));
        Ok(())
    }

    pub(crate) fn consume(&mut self, ctx: &ConnCtx, c: basic::Consume, io: &mut Io) -> Result<(), AmqpError> {
        let q = self.find_queue(ctx, c.queue.as_str())?;
        let tag: Arc<str> = if c.consumer_tag.as_str().is_empty() {
            warren_broker::names::generated_consumer_tag().into()
        } else {
            c.consumer_tag.as_str().into()
        };
        if self.consumers.contains_key(&tag) {
            return Err(AmqpError::new(ReplyCode::NotAllowed, format!("attempt to reuse consumer tag '{tag}'")));
        }
        let spec = ConsumerSpec {
            tag: tag.clone(),
            channel: self.id,
            connection: ctx.id,
            no_ack: c.no_ack,
            exclusive: c.exclusive,
            prefetch: self.consumer_prefetch,
        };
        let consumer = Arc::new(Consumer::new(spec, self.channel_credit.clone(), ctx.sink.clone()));
        // consume-ok is written before any delivery: deliveries go through the mailbox,
        // which the connection drains only after this method returns.
        q.add_consumer(consumer.clone())?;
        self.consumers.insert(tag.clone(), (consumer, q));
        if !c.nowait {
            let ok = basic::ConsumeOk { consumer_tag: tag.to_string().into() };
            reply(io, self.id, AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(ok)));
        }
        Ok(())
    }

    pub(crate) fn cancel(&mut self, ctx: &ConnCtx, tag: &str, nowait: bool, io: &mut Io) -> Result<(), AmqpError> {
        if let Some((consumer, q)) = self.consumers.remove(tag) {
            self.remove_from_queue(ctx, &consumer, &q);
        }
        // RabbitMQ answers cancel-ok for unknown tags too.
        if !nowait {
            let ok = basic::CancelOk { consumer_tag: tag.to_string().into() };
            reply(io, self.id, AMQPClass::Basic(basic::AMQPMethod::CancelOk(ok)));
        }
        Ok(())
    }

    fn remove_from_queue(&self, ctx: &ConnCtx, consumer: &Consumer, q: &QueueHandle) {
        consumer.deactivate();
        if q.remove_consumer(ctx.id, self.id, &consumer.tag) == CancelOutcome::RemovedLastOfAutoDelete {
            if let Err(e) = ctx.broker.delete_queue_unchecked(&ctx.vhost, q) {
                tracing::error!(queue = q.name(), error = %e, "auto-delete failed");
            }
        }
    }

    pub(crate) fn get(&mut self, ctx: &ConnCtx, queue: &str, no_ack: bool, io: &mut Io) -> Result<(), AmqpError> {
        let q = self.find_queue(ctx, queue)?;
        let Some((m, left)) = q.get(no_ack) else {
            reply(io, self.id, AMQPClass::Basic(basic::AMQPMethod::GetEmpty(basic::GetEmpty {})));
            return Ok(());
        };
        let tag = self.next_delivery_tag;
        self.next_delivery_tag += 1;
        let msg = &m.message;
        encode_get_ok(io.out.tail(), self.id, tag, m.redelivered, &msg.exchange, &msg.routing_key, left);
        encode_content(io.out, self.id, &msg.header, &msg.body, ctx.frame_max);
        if !no_ack {
            self.unacked.push(Unacked { tag, queue: q, message: m, consumer: None, stamp: self.timeout_ticks });
        }
        Ok(())
    }

    /// Writes a delivery a queue handed to one of this channel's consumers. A delivery for
    /// a consumer that has been cancelled in the meantime goes back to its queue untouched.
    pub fn deliver(&mut self, ctx: &ConnCtx, d: Delivery, io: &mut Io) {
        // Every way a consumer leaves `self.consumers` (basic.cancel, the channel closing, its
        // queue going away) deactivates it first, and a consumer is registered here in the same
        // step that activates it: so "active" is "ours" without hashing its tag per delivery.
        debug_assert!(
            !d.consumer.is_active()
                || self.consumers.get(&d.consumer.tag).is_some_and(|(c, _)| Arc::ptr_eq(c, &d.consumer))
        );
        if !d.consumer.is_active() {
            d.consumer.settle(1);
            d.queue.return_undelivered(d.message, !d.consumer.no_ack);
            return;
        }
        let tag = self.next_delivery_tag;
        self.next_delivery_tag += 1;
        let msg = &d.message.message;
        encode_deliver(
            io.out.tail(),
            self.id,
            &d.consumer.tag,
            tag,
            d.message.redelivered,
            &msg.exchange,
            &msg.routing_key,
        );
        encode_content(io.out, self.id, &msg.header, &msg.body, ctx.frame_max);
        if !d.consumer.no_ack {
            let stamp = self.timeout_ticks;
            self.unacked.push(Unacked { tag, queue: d.queue, message: d.message, consumer: Some(d.consumer), stamp });
        }
    }

    /// The broker cancelled a consumer (its queue was deleted): forget it and, if the client
    /// understands it, send basic.cancel.
    pub fn broker_cancelled(&mut self, ctx: &ConnCtx, consumer: &Arc<Consumer>, io: &mut Io) {
        let ours = self.consumers.get(&consumer.tag).is_some_and(|(c, _)| Arc::ptr_eq(c, consumer));
        if !ours {
            return;
        }
        self.consumers.remove(&consumer.tag);
        if ctx.cancel_notify {
            let m = basic::Cancel { consumer_tag: consumer.tag.to_string().into(), nowait: true };
            reply(io, self.id, AMQPClass::Basic(basic::AMQPMethod::Cancel(m)));
        }
    }

    /// Whether this channel consumes from any queue.
    pub fn has_consumers(&self) -> bool {
        !self.consumers.is_empty()
    }

    /// Retries dispatch on every queue this channel consumes from (credit came back, or the
    /// connection's outbound buffer drained).
    pub fn kick_queues(&self) {
        for (_, q) in self.consumers.values() {
            q.kick();
        }
    }

    /// The channel is going away (closed by either side, or its connection closed):
    /// cancel its consumers and requeue every unacked delivery, marked redelivered.
    pub fn release(&mut self, ctx: &ConnCtx) {
        for (_, (consumer, q)) in std::mem::take(&mut self.consumers) {
            self.remove_from_queue(ctx, &consumer, &q);
        }
        self.pending = None;
        if let crate::channel::Mode::Tx(tx) = &mut self.mode {
            let tx = std::mem::take(tx);
            let back: Vec<Unacked> = tx.settles.into_iter().flat_map(|(e, _)| e).collect();
            self.unacked.restore(back);
        }
        let all = self.unacked.take_all();
        self.apply_settle(all, crate::ack::Settle::Requeue);
    }
}
