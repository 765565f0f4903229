//! basic.publish: content frames, the checks RabbitMQ makes, routing and enqueueing.
use crate::channel::{Channel, Mode};
use crate::content::Complete;
use crate::context::{ConnCtx, Io};
use bytes::Bytes;
use std::sync::Arc;
use warren_broker::exchange::Exchange;
use warren_broker::{BrokerError, Message, QueueHandle};
use warren_codec::{encode_content, encode_return, AmqpError, ContentHeader, ReplyCode};

impl Channel {
    /// A content header frame arrived on this channel.
    pub fn handle_header(&mut self, ctx: &ConnCtx, header: ContentHeader, io: &mut Io) -> Result<(), AmqpError> {
        let complete = match self.pending.as_mut() {
            Some(p) if p.expects_header() => p.header(header, ctx.max_message_size),
            _ => Err(AmqpError::new(ReplyCode::UnexpectedFrame, "expected method frame, got non method frame instead")),
        };
        self.content_arrived(ctx, complete, io)
    }

    /// A content body frame arrived on this channel.
    pub fn handle_body(&mut self, ctx: &ConnCtx, payload: Bytes, io: &mut Io) -> Result<(), AmqpError> {
        let complete = match self.pending.as_mut() {
            Some(p) if !p.expects_header() => p.body(payload),
            Some(_) => Err(AmqpError::new(
                ReplyCode::UnexpectedFrame,
                "expected content header for class 60, got non content header frame instead",
            )),
            None => {
                Err(AmqpError::new(ReplyCode::UnexpectedFrame, "expected method frame, got non method frame instead"))
            }
        };
        self.content_arrived(ctx, complete, io)
    }

    /// Publishes the pending message once its content is complete; an error drops it.
    fn content_arrived(
        &mut self,
        ctx: &ConnCtx,
        complete: Result<bool, AmqpError>,
        io: &mut Io,
    ) -> Result<(), AmqpError> {
        match complete {
            Ok(false) => Ok(()),
            Ok(true) => {
                let done = self.pending.take().expect("a complete message is pending").finish();
                self.publish(ctx, done, io)
            }
            Err(e) => {
                self.pending = None;
                Err(e)
            }
        }
    }

    /// The exchange a publish names, from the one-entry cache when it is the same as last time.
    fn publish_exchange(&mut self, ctx: &ConnCtx, name: &Bytes) -> Result<Arc<Exchange>, AmqpError> {
        if let Some((n, e)) = &self.exchange_cache {
            if n == name && !e.is_deleted() {
                return Ok(e.clone());
            }
        }
        let s = std::str::from_utf8(name).unwrap_or("");
        let e = ctx.vhost.exchange(s).ok_or_else(|| BrokerError::not_found("exchange", s, &ctx.vhost.name))?;
        self.exchange_cache = Some((name.clone(), e.clone()));
        Ok(e)
    }

    /// The queues `msg` goes to. The default exchange's answer for the previous routing key is
    /// reused while that queue lives: a deleted queue (even one declared again under the same
    /// name, which is a new queue) fails the check and the vhost is asked again.
    fn route(&mut self, ctx: &ConnCtx, exchange: &Arc<Exchange>, msg: &Message, out: &mut Vec<QueueHandle>) {
        if exchange.is_default() {
            if let Some((name, q)) = &self.default_route_cache {
                if *name == msg.routing_key && !q.is_deleted() {
                    out.clear();
                    out.push(q.clone());
                    return;
                }
            }
            ctx.vhost.route(exchange, msg, out);
            self.default_route_cache = out.first().map(|q| (msg.routing_key.clone(), q.clone()));
        } else {
            ctx.vhost.route(exchange, msg, out);
        }
    }

    fn publish(&mut self, ctx: &ConnCtx, c: Complete, io: &mut Io) -> Result<(), AmqpError> {
        let err_on = |e: AmqpError| e.on(60, 40);
        if c.publish.immediate {
            return Err(err_on(AmqpError::new(ReplyCode::NotImplemented, "immediate=true")));
        }
        if let Some(uid) = c.header.user_id() {
            if uid != ctx.user {
                return Err(err_on(AmqpError::new(
                    ReplyCode::PreconditionFailed,
                    format!("user_id property set to '{}' but authenticated user was '{}'", uid.as_str(), ctx.user),
                )));
            }
        }
        let exchange = self.publish_exchange(ctx, &c.publish.exchange).map_err(err_on)?;
        if exchange.meta.internal {
            return Err(err_on(AmqpError::new(
                ReplyCode::AccessRefused,
                format!("cannot publish to internal exchange '{}' in vhost '{}'", exchange.name, ctx.vhost.name),
            )));
        }
        let mandatory = c.publish.mandatory;
        let msg = Arc::new(Message {
            exchange: c.publish.exchange,
            routing_key: c.publish.routing_key,
            header: c.header,
            body: c.body,
        });
        match &mut self.mode {
            Mode::Tx(tx) => tx.publishes.push((exchange, msg, mandatory)),
            Mode::Plain => {
                self.enqueue(ctx, &exchange, msg, mandatory, io);
            }
            Mode::Confirm(_) => {
                let needs_sync = self.enqueue(ctx, &exchange, msg, mandatory, io);
                if let Mode::Confirm(c) = &mut self.mode {
                    let tag = c.publish(needs_sync);
                    if needs_sync {
                        ctx.notify_durable(self.id, tag);
                    }
                }
            }
        }
        Ok(())
    }

    /// Routes a message and puts it on its queues; returns it to the publisher with
    /// 312 NO_ROUTE if it was mandatory and reached no queue. True if some queue wrote it
    /// to the store as persistent (a confirm must wait for the flush).
    pub(crate) fn enqueue(
        &mut self,
        ctx: &ConnCtx,
        exchange: &Arc<Exchange>,
        msg: Arc<Message>,
        mandatory: bool,
        io: &mut Io,
    ) -> bool {
        let mut route = std::mem::take(&mut self.route_buf);
        self.route(ctx, exchange, &msg, &mut route);
        let mut delivered = false;
        let mut needs_sync = false;
        for q in &route {
            let p = q.publish(msg.clone());
            needs_sync |= p.needs_sync;
            if p.accepted {
                delivered = true;
                if q.is_flow_blocked() && !io.blocked.contains(q) {
                    io.blocked.push(q.clone());
                }
            }
        }
        route.clear();
        self.route_buf = route;
        if !delivered && mandatory {
            encode_return(
                io.out.tail(),
                self.id,
                ReplyCode::NoRoute.code(),
                "NO_ROUTE",
                &msg.exchange,
                &msg.routing_key,
            );
            encode_content(io.out, self.id, &msg.header, &msg.body, ctx.frame_max);
        }
        needs_sync
    }
}
