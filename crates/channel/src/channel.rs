//! One AMQP channel: its state and the dispatch of every channel-level method.
use crate::content::Pending;
use crate::context::{ConnCtx, Io};
use crate::unacked::UnackedList;
use amq_protocol::protocol::{access, basic, channel, confirm, exchange, queue, tx, AMQPClass};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;
use warren_broker::exchange::Exchange;
use warren_broker::{BindSpec, BrokerError, Consumer, Credit, ExchangeDeclare, QueueDeclare, QueueHandle};
use warren_codec::{encode_method, AmqpError, Method, ReplyCode};

/// Publisher-confirm and transaction state (mutually exclusive, as in RabbitMQ).
pub(crate) enum Mode {
    Plain,
    Confirm(crate::confirm::Confirms),
    Tx(crate::tx::TxBuffer),
}

pub struct Channel {
    pub id: u16,
    pub(crate) pending: Option<Pending>,
    pub(crate) mode: Mode,
    pub(crate) consumers: HashMap<Arc<str>, (Arc<Consumer>, QueueHandle)>,
    pub(crate) unacked: UnackedList,
    pub(crate) next_delivery_tag: u64,
    /// basic.qos global=true: shared by all consumers of the channel.
    pub(crate) channel_credit: Arc<Credit>,
    /// basic.qos global=false: the prefetch given to consumers created from now on.
    pub(crate) consumer_prefetch: u32,
    /// The queue most recently declared on this channel: RabbitMQ lets an empty queue name
    /// stand for it in later methods.
    pub(crate) last_queue: Option<String>,
    /// The exchange of the previous publish, so a stream of publishes to one exchange costs
    /// no map lookup.
    pub(crate) exchange_cache: Option<(Bytes, Arc<Exchange>)>,
    /// The queue the default exchange last routed to and its name (the routing key), so a
    /// stream of publishes to one queue costs no UTF-8 check, hash or map lookup each.
    pub(crate) default_route_cache: Option<(Bytes, QueueHandle)>,
    /// Reused routing result buffer: routing allocates nothing in the steady state.
    pub(crate) route_buf: Vec<QueueHandle>,
    /// Consumer-timeout ticks seen by this channel: the clock deliveries are stamped with.
    pub(crate) timeout_ticks: u32,
}

/// exchange.bind / exchange.unbind arguments as the routing engine takes them.
fn exchange_bind_spec(
    source: amq_protocol::types::ShortString,
    destination: amq_protocol::types::ShortString,
    routing_key: amq_protocol::types::ShortString,
    arguments: amq_protocol::types::FieldTable,
) -> BindSpec {
    BindSpec {
        source: source.to_string(),
        dest: destination.to_string(),
        dest_is_exchange: true,
        routing_key: routing_key.to_string(),
        arguments,
    }
}

pub(crate) fn reply(io: &mut Io, ch: u16, m: AMQPClass) {
    encode_method(io.out.tail(), ch, &m);
}

impl Channel {
    pub fn new(id: u16) -> Self {
        Channel {
            id,
            pending: None,
            mode: Mode::Plain,
            consumers: HashMap::new(),
            unacked: UnackedList::default(),
            next_delivery_tag: 1,
            channel_credit: Arc::new(Credit::new(0)),
            consumer_prefetch: 0,
            last_queue: None,
            exchange_cache: None,
            default_route_cache: None,
            route_buf: Vec::new(),
            timeout_ticks: 0,
        }
    }

    /// Resolves RabbitMQ's empty-name shortcut for "the queue last declared on this channel".
    pub(crate) fn queue_name(&self, name: &str, ctx: &ConnCtx) -> Result<String, AmqpError> {
        if !name.is_empty() {
            return Ok(name.to_string());
        }
        self.last_queue.clone().ok_or_else(|| {
            let _ = ctx;
            AmqpError::new(ReplyCode::NotFound, "no previously declared queue")
        })
    }

    /// Finds a queue this connection may use: 404 if missing, 405 if another connection's
    /// exclusive queue.
    pub(crate) fn find_queue(&self, ctx: &ConnCtx, name: &str) -> Result<QueueHandle, AmqpError> {
        let name = self.queue_name(name, ctx)?;
        let q = ctx.vhost.queue(&name).ok_or_else(|| BrokerError::not_found("queue", &name, &ctx.vhost.name))?;
        ctx.broker.check_exclusive(&q, ctx.id)?;
        Ok(q)
    }

    /// Handles a method frame on this (open) channel.
    pub fn handle_method(&mut self, ctx: &ConnCtx, method: Method, io: &mut Io) -> Result<(), AmqpError> {
        let (class_id, method_id) = method.class_method();
        if let Some(p) = &self.pending {
            // RabbitMQ names the publish whose content was cut short as the failing method.
            let what = if p.expects_header() { "content header" } else { "content body" };
            return Err(AmqpError::new(
                ReplyCode::UnexpectedFrame,
                format!("expected {what} for class 60, got non {what} frame instead"),
            )
            .on(60, 40));
        }
        let m = match method {
            Method::Publish(p) => {
                self.pending = Some(Pending::new(p));
                return Ok(());
            }
            Method::Other(m) => m,
        };
        self.dispatch(ctx, m, io).map_err(|e| if e.class_id == 0 { e.on(class_id, method_id) } else { e })
    }

    fn dispatch(&mut self, ctx: &ConnCtx, m: AMQPClass, io: &mut Io) -> Result<(), AmqpError> {
        let ch = self.id;
        match m {
            AMQPClass::Basic(b) => self.basic(ctx, b, io)?,
            AMQPClass::Queue(q) => self.queue_method(ctx, q, io)?,
            AMQPClass::Exchange(e) => self.exchange_method(ctx, e, io)?,
            AMQPClass::Confirm(confirm::AMQPMethod::Select(s)) => {
                self.confirm_select()?;
                if !s.nowait {
                    reply(io, ch, AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(confirm::SelectOk {})));
                }
            }
            AMQPClass::Tx(t) => self.tx_method(ctx, t, io)?,
            AMQPClass::Channel(channel::AMQPMethod::Flow(f)) => {
                // RabbitMQ does not let clients stop the server's deliveries this way.
                if !f.active {
                    return Err(AmqpError::new(ReplyCode::NotImplemented, "active=false"));
                }
                reply(io, ch, AMQPClass::Channel(channel::AMQPMethod::FlowOk(channel::FlowOk { active: true })));
            }
            AMQPClass::Channel(channel::AMQPMethod::FlowOk(_)) => {}
            AMQPClass::Access(access::AMQPMethod::Request(_)) => {
                reply(io, ch, AMQPClass::Access(access::AMQPMethod::RequestOk(access::RequestOk {})));
            }
            _ => return Err(AmqpError::new(ReplyCode::CommandInvalid, "unimplemented method")),
        }
        Ok(())
    }

    fn basic(&mut self, ctx: &ConnCtx, b: basic::AMQPMethod, io: &mut Io) -> Result<(), AmqpError> {
        use basic::AMQPMethod as B;
        match b {
            B::Qos(q) => self.qos(q.prefetch_count, q.global, io),
            B::Consume(c) => self.consume(ctx, c, io),
            B::Cancel(c) => self.cancel(ctx, c.consumer_tag.as_str(), c.nowait, io),
            B::Get(g) => self.get(ctx, g.queue.as_str(), g.no_ack, io),
            B::Ack(a) => self.settle(ctx, a.delivery_tag, a.multiple, crate::ack::Settle::Ack),
            B::Reject(r) => self.settle(ctx, r.delivery_tag, false, crate::ack::Settle::reject(r.requeue)),
            B::Nack(n) => self.settle(ctx, n.delivery_tag, n.multiple, crate::ack::Settle::reject(n.requeue)),
            B::Recover(r) => {
                self.recover(r.requeue)?;
                reply(io, self.id, AMQPClass::Basic(B::RecoverOk(basic::RecoverOk {})));
                Ok(())
            }
            B::RecoverAsync(r) => self.recover(r.requeue),
            _ => Err(AmqpError::new(ReplyCode::CommandInvalid, "unimplemented method")),
        }
    }

    fn queue_method(&mut self, ctx: &ConnCtx, m: queue::AMQPMethod, io: &mut Io) -> Result<(), AmqpError> {
        use queue::AMQPMethod as Q;
        let ch = self.id;
        let (broker, vhost) = (&ctx.broker, &ctx.vhost);
        match m {
            Q::Declare(d) => {
                let name = if d.passive { self.queue_name(d.queue.as_str(), ctx)? } else { d.queue.to_string() };
                let decl = QueueDeclare {
                    name,
                    passive: d.passive,
                    durable: d.durable,
                    exclusive: d.exclusive,
                    auto_delete: d.auto_delete,
                    arguments: d.arguments,
                };
                let r = broker.declare_queue(vhost, ctx.id, &decl)?;
                let name = r.queue.name().to_string();
                self.last_queue = Some(name.clone());
                if !d.nowait {
                    let ok = queue::DeclareOk {
                        queue: name.into(),
                        message_count: r.message_count,
                        consumer_count: r.consumer_count,
                    };
                    reply(io, ch, AMQPClass::Queue(Q::DeclareOk(ok)));
                }
            }
            Q::Bind(b) => {
                let spec = self.queue_bind_spec(
                    ctx,
                    b.queue.as_str(),
                    b.exchange.as_str(),
                    b.routing_key.as_str(),
                    b.arguments,
                )?;
                broker.bind(vhost, ctx.id, &spec)?;
                if !b.nowait {
                    reply(io, ch, AMQPClass::Queue(Q::BindOk(queue::BindOk {})));
                }
            }
            Q::Unbind(b) => {
                let spec = self.queue_bind_spec(
                    ctx,
                    b.queue.as_str(),
                    b.exchange.as_str(),
                    b.routing_key.as_str(),
                    b.arguments,
                )?;
                broker.unbind(vhost, ctx.id, &spec)?;
                reply(io, ch, AMQPClass::Queue(Q::UnbindOk(queue::UnbindOk {})));
            }
            Q::Purge(p) => {
                let q = self.find_queue(ctx, p.queue.as_str())?;
                let n = q.purge();
                if !p.nowait {
                    reply(io, ch, AMQPClass::Queue(Q::PurgeOk(queue::PurgeOk { message_count: n })));
                }
            }
            Q::Delete(d) => {
                let name = self.queue_name(d.queue.as_str(), ctx)?;
                let n = broker.delete_queue(vhost, ctx.id, &name, d.if_unused, d.if_empty)?;
                if !d.nowait {
                    reply(io, ch, AMQPClass::Queue(Q::DeleteOk(queue::DeleteOk { message_count: n })));
                }
            }
            _ => return Err(AmqpError::new(ReplyCode::CommandInvalid, "unimplemented method")),
        }
        Ok(())
    }

    fn queue_bind_spec(
        &self,
        ctx: &ConnCtx,
        queue: &str,
        exchange: &str,
        routing_key: &str,
        arguments: amq_protocol::types::FieldTable,
    ) -> Result<BindSpec, AmqpError> {
        let dest = self.queue_name(queue, ctx)?;
        // RabbitMQ: an empty queue name and an empty routing key both mean the last queue.
        let routing_key = if queue.is_empty() && routing_key.is_empty() { dest.clone() } else { routing_key.into() };
        Ok(BindSpec { source: exchange.into(), dest, dest_is_exchange: false, routing_key, arguments })
    }

    fn exchange_method(&mut self, ctx: &ConnCtx, m: exchange::AMQPMethod, io: &mut Io) -> Result<(), AmqpError> {
        use exchange::AMQPMethod as E;
        let ch = self.id;
        let (broker, vhost) = (&ctx.broker, &ctx.vhost);
        match m {
            E::Declare(d) => {
                let decl = ExchangeDeclare {
                    name: d.exchange.to_string(),
                    kind: d.kind.to_string(),
                    passive: d.passive,
                    durable: d.durable,
                    auto_delete: d.auto_delete,
                    internal: d.internal,
                    arguments: d.arguments,
                };
                broker.declare_exchange(vhost, &decl)?;
                if !d.nowait {
                    reply(io, ch, AMQPClass::Exchange(E::DeclareOk(exchange::DeclareOk {})));
                }
            }
            E::Delete(d) => {
                broker.delete_exchange(vhost, d.exchange.as_str(), d.if_unused)?;
                self.exchange_cache = None;
                if !d.nowait {
                    reply(io, ch, AMQPClass::Exchange(E::DeleteOk(exchange::DeleteOk {})));
                }
            }
            E::Bind(b) => {
                let spec = exchange_bind_spec(b.source, b.destination, b.routing_key, b.arguments);
                broker.bind(vhost, ctx.id, &spec)?;
                if !b.nowait {
                    reply(io, ch, AMQPClass::Exchange(E::BindOk(exchange::BindOk {})));
                }
            }
            E::Unbind(b) => {
                let spec = exchange_bind_spec(b.source, b.destination, b.routing_key, b.arguments);
                broker.unbind(vhost, ctx.id, &spec)?;
                if !b.nowait {
                    reply(io, ch, AMQPClass::Exchange(E::UnbindOk(exchange::UnbindOk {})));
                }
            }
            _ => return Err(AmqpError::new(ReplyCode::CommandInvalid, "unimplemented method")),
        }
        Ok(())
    }

    fn tx_method(&mut self, ctx: &ConnCtx, m: tx::AMQPMethod, io: &mut Io) -> Result<(), AmqpError> {
        use tx::AMQPMethod as T;
        let ch = self.id;
        match m {
            T::Select(_) => {
                self.tx_select()?;
                reply(io, ch, AMQPClass::Tx(T::SelectOk(tx::SelectOk {})));
            }
            T::Commit(_) => {
                if self.tx_commit(ctx, io)? {
                    ctx.notify_settled(ch, crate::tx::TX_COMMIT_TOKEN);
                } else {
                    reply(io, ch, AMQPClass::Tx(T::CommitOk(tx::CommitOk {})));
                }
            }
            T::Rollback(_) => {
                self.tx_rollback()?;
                reply(io, ch, AMQPClass::Tx(T::RollbackOk(tx::RollbackOk {})));
            }
            _ => return Err(AmqpError::new(ReplyCode::CommandInvalid, "unimplemented method")),
        }
        Ok(())
    }
}
