//! The flow gate: when a queue with consumers makes its publishers wait.
use super::{Consumer, ConsumerSpec, Credit, Delivery, DeliverySink, QueueHandle};
use crate::{Broker, BrokerSettings, InMemoryOnly, Message, QueueDeclare};
use amq_protocol::protocol::BasicProperties;
use bytes::Bytes;
use std::sync::Arc;
use warren_codec::ContentHeader;

/// A consumer's connection that takes deliveries and never acks them.
struct Holds;
impl DeliverySink for Holds {
    fn deliver(&self, _: Delivery) {}
    fn cancelled(&self, _: &Arc<Consumer>) {}
    fn is_congested(&self) -> bool {
        false
    }
}

fn message(size: usize) -> Arc<Message> {
    Arc::new(Message {
        exchange: Bytes::new(),
        routing_key: Bytes::from_static(b"q"),
        header: ContentHeader::new(60, size as u64, BasicProperties::default()),
        body: Bytes::from(vec![0; size]),
    })
}

fn queue_with_consumer(broker: &Broker, name: &str) -> QueueHandle {
    let vhost = broker.vhost("/").unwrap_or_else(|| broker.add_vhost("/").unwrap());
    let q = broker.declare_queue(&vhost, 1, &QueueDeclare { name: name.into(), ..Default::default() }).unwrap().queue;
    let spec =
        ConsumerSpec { tag: name.into(), channel: 1, connection: 1, no_ack: false, exclusive: false, prefetch: 1 };
    q.add_consumer(Arc::new(Consumer::new(spec, Arc::new(Credit::new(0)), Arc::new(Holds)))).unwrap();
    q
}

#[test]
fn publishers_wait_when_the_broker_wide_budget_fills_not_only_their_queue() {
    // Each queue alone stays far below its own bounds (1 MiB window, a million messages)...
    let settings =
        BrokerSettings { queue_flow_threshold: 1_000_000, queue_memory_window: 1 << 20, memory_limit: 4 << 20 };
    let broker = Broker::new(settings, Box::new(InMemoryOnly), None);
    let queues: Vec<QueueHandle> = (0..8).map(|i| queue_with_consumer(&broker, &format!("q{i}"))).collect();
    let fill = |q: &QueueHandle| {
        for _ in 0..8 {
            q.publish(message(10_000));
        }
    };
    for q in &queues[..4] {
        fill(q);
    }
    // Four queues past 64 KiB each, but the broker under an eighth of its 4 MiB budget.
    assert!(broker.memory_used() < (4 << 20) / 8);
    assert!(queues.iter().all(|q| !q.is_flow_blocked()), "320 KB in all: no pressure yet");
    // ...but eight of them together pass an eighth of the budget: the queues with a backlog
    // hold their publishers back rather than page.
    for q in &queues[4..] {
        fill(q);
    }
    assert!(broker.memory_used() > (4 << 20) / 8);
    // The gate is evaluated as each queue changes: the next publish to each finds the pressure.
    for q in &queues {
        q.publish(message(10_000));
    }
    assert!(queues.iter().all(|q| q.is_flow_blocked()), "720 KB of 4 MiB: publishers wait");
    for q in &queues[..6] {
        q.purge();
    }
    assert!(queues[..6].iter().all(|q| !q.is_flow_blocked()), "purged queues release their publishers");
    assert!(queues[6..].iter().all(|q| q.is_flow_blocked()), "the others still have their backlog");
}
