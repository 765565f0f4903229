//! A virtual host: its exchanges and queues, looked up by name.
use crate::exchange::{route, Exchange, ExchangeKind, ExchangeMeta};
use crate::message::Message;
use crate::queue::QueueHandle;
use amq_protocol::types::FieldTable;
use dashmap::DashMap;
use std::sync::Arc;

pub struct VHost {
    pub name: Arc<str>,
    pub(crate) exchanges: DashMap<String, Arc<Exchange>>,
    pub(crate) queues: DashMap<String, QueueHandle>,
}

/// The exchanges every vhost has, as RabbitMQ pre-declares them.
const STANDARD_EXCHANGES: &[(&str, ExchangeKind, bool)] = &[
    ("", ExchangeKind::Direct, false),
    ("amq.direct", ExchangeKind::Direct, false),
    ("amq.fanout", ExchangeKind::Fanout, false),
    ("amq.topic", ExchangeKind::Topic, false),
    ("amq.headers", ExchangeKind::Headers, false),
    ("amq.match", ExchangeKind::Headers, false),
    ("amq.rabbitmq.trace", ExchangeKind::Topic, true),
];

impl VHost {
    pub(crate) fn new(name: &str) -> Arc<Self> {
        let vhost = VHost { name: name.into(), exchanges: DashMap::new(), queues: DashMap::new() };
        for &(ename, kind, internal) in STANDARD_EXCHANGES {
            let meta = ExchangeMeta {
                name: ename.into(),
                vhost: vhost.name.clone(),
                kind,
                durable: true,
                auto_delete: false,
                internal,
                arguments: FieldTable::default(),
            };
            vhost.exchanges.insert(ename.to_string(), Exchange::new(meta));
        }
        Arc::new(vhost)
    }

    pub fn exchange(&self, name: &str) -> Option<Arc<Exchange>> {
        self.exchanges.get(name).map(|e| e.clone())
    }

    pub fn queue(&self, name: &str) -> Option<QueueHandle> {
        self.queues.get(name).map(|q| q.clone())
    }

    pub fn queues(&self) -> Vec<QueueHandle> {
        self.queues.iter().map(|q| q.clone()).collect()
    }

    pub fn exchanges(&self) -> Vec<Arc<Exchange>> {
        self.exchanges.iter().map(|e| e.clone()).collect()
    }

    /// The queues a message published to `exchange` goes to. The default exchange routes
    /// to the queue named by the routing key; every other exchange uses its bindings.
    pub fn route(&self, exchange: &Arc<Exchange>, msg: &Message, out: &mut Vec<QueueHandle>) {
        if exchange.is_default() {
            out.clear();
            if let Some(q) = self.queue(msg.routing_key_str()) {
                out.push(q);
            }
        } else {
            route(exchange, msg, out);
        }
    }
}
