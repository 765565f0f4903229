//! RabbitMQ tutorial 5, "Topics": a topic exchange with three queues bound by patterns,
//! and a table of routing keys showing which queues each one reaches.
//!
//! Bindings: q1 `A.error.*`, q2 `B.#`, q3 `*.*.email`. `*` matches exactly one word, `#`
//! zero or more. Messages are published mandatory with publisher confirms, so a key that
//! matches no binding comes back as a basic.return and is listed as unrouted.
//!
//! Run with `AMQP_URI=amqp://guest:guest@127.0.0.1:5672/%2f cargo run --example topic_logs`.
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties, ExchangeKind};
use std::collections::BTreeMap;
use std::error::Error;

/// (queue label, binding key)
pub const BINDINGS: [(&str, &str); 3] = [("q1", "A.error.*"), ("q2", "B.#"), ("q3", "*.*.email")];

/// Routing keys published, in order.
pub const ROUTING_KEYS: [&str; 11] = [
    "A.error.x",
    "B.x.y",
    "z.y.email",
    "A.error.email",
    "B.error.email",
    "B",
    "A.info.email",
    "A.error",
    "A.error.x.y",
    "x.y.z",
    "a.error.x",
];

#[derive(Debug, Clone, PartialEq)]
pub struct TopicSummary {
    pub exchange: String,
    /// Routing key -> labels of the queues that received it (sorted; empty if unrouted).
    pub routes: BTreeMap<String, Vec<String>>,
    /// Keys the broker returned as unroutable (basic.return 312 NO_ROUTE), in publish order.
    pub returned: Vec<String>,
}

/// A name no other run uses, so runs can share a broker.
fn unique(prefix: &str) -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

pub async fn run(uri: &str) -> Result<TopicSummary, Box<dyn Error>> {
    let conn = Connection::connect(uri, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    let exchange = unique("topic_logs");
    channel
        .exchange_declare(
            exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;

    let mut queues = Vec::new();
    for (label, binding) in BINDINGS {
        let queue = channel.queue_declare("".into(), QueueDeclareOptions::exclusive(), FieldTable::default()).await?;
        let queue = queue.name().as_str().to_owned();
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                binding.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        queues.push((label, queue));
    }

    // Once a publish is confirmed, the broker has routed it: each queue holds its copy, so
    // draining the queues with basic.get afterwards sees every routed message.
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    let mut returned = Vec::new();
    for key in ROUTING_KEYS {
        let confirm = channel
            .basic_publish(
                exchange.as_str().into(),
                key.into(),
                BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() },
                key.as_bytes(),
                BasicProperties::default(),
            )
            .await?
            .await?;
        match confirm {
            Confirmation::Ack(None) => {}
            Confirmation::Ack(Some(ret)) if ret.reply_code == 312 => returned.push(key.to_owned()),
            other => return Err(format!("publish of {key:?}: unexpected {other:?}").into()),
        }
    }

    let mut routes: BTreeMap<String, Vec<String>> = ROUTING_KEYS.iter().map(|k| (k.to_string(), Vec::new())).collect();
    for (label, queue) in &queues {
        while let Some(msg) = channel.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true }).await? {
            let key = msg.delivery.routing_key.as_str().to_owned();
            // The body repeats the key, which shows the message arrived intact.
            if msg.delivery.data != key.as_bytes() {
                return Err(format!("{label}: body does not match key {key:?}").into());
            }
            routes.entry(key).or_default().push(label.to_string());
        }
        channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await?;
    }
    for labels in routes.values_mut() {
        labels.sort();
    }

    channel.exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default()).await?;
    conn.close(200, "done".into()).await?;
    Ok(TopicSummary { exchange, routes, returned })
}

#[allow(dead_code)] // unused when the integration tests include this file as a module
#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let uri = std::env::var("AMQP_URI").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let summary = run(&uri).await?;
    println!("topic exchange {}", summary.exchange);
    for (label, binding) in BINDINGS {
        println!("  {label} bound with {binding}");
    }
    for key in ROUTING_KEYS {
        let labels = &summary.routes[key];
        let to = if labels.is_empty() { "(unrouted)".to_owned() } else { labels.join(" + ") };
        println!("  {key:<15} -> {to}");
    }
    println!("returned as unroutable: {:?}", summary.returned);
    Ok(())
}
