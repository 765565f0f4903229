//! RabbitMQ tutorial 3, "Publish/Subscribe": a fanout exchange `logs` and two subscribers,
//! each with its own exclusive, server-named queue; every subscriber gets every message.
//!
//! A message published before any queue is bound goes nowhere (fanout with no bindings drops
//! it), so neither subscriber sees it.
//!
//! Run with `AMQP_URI=amqp://guest:guest@127.0.0.1:5672/%2f cargo run --example pubsub`.
use futures_lite::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties, ExchangeKind};
use std::error::Error;
use std::time::Duration;

pub const MESSAGES: usize = 5;
const SUBSCRIBERS: usize = 2;
/// Bound on waiting for one delivery; a correct broker needs milliseconds.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq)]
pub struct PubSubSummary {
    pub exchange: String,
    /// The message published while no queue was bound (dropped by the broker).
    pub unbound_message: String,
    /// The messages published once both subscribers were bound.
    pub published: Vec<String>,
    /// Per subscriber: its server-named queue and what it received, in order.
    pub received: Vec<(String, Vec<String>)>,
}

/// A name no other run uses, so runs can share a broker.
fn unique(prefix: &str) -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

pub async fn run(uri: &str) -> Result<PubSubSummary, Box<dyn Error>> {
    let conn = Connection::connect(uri, ConnectionProperties::default()).await?;
    let exchange = unique("logs");
    let publisher = conn.create_channel().await?;
    publisher
        .exchange_declare(
            exchange.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
    // Confirms make each publish a round trip, so "published" means "routed by the broker".
    publisher.confirm_select(ConfirmSelectOptions::default()).await?;

    let publish = |body: String| {
        let (publisher, exchange) = (publisher.clone(), exchange.clone());
        async move {
            let confirm = publisher
                .basic_publish(
                    exchange.as_str().into(),
                    "".into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    BasicProperties::default(),
                )
                .await?
                .await?;
            if !matches!(confirm, Confirmation::Ack(None)) {
                return Err(format!("publish of {body:?} not acked: {confirm:?}").into());
            }
            Ok::<(), Box<dyn Error>>(())
        }
    };

    let unbound_message = "nobody is listening yet".to_owned();
    publish(unbound_message.clone()).await?;

    let mut subscribers = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let channel = conn.create_channel().await?;
        // Server-named, exclusive: the queue lives as long as this subscriber's connection.
        let queue = channel.queue_declare("".into(), QueueDeclareOptions::exclusive(), FieldTable::default()).await?;
        let queue = queue.name().as_str().to_owned();
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() },
                FieldTable::default(),
            )
            .await?;
        subscribers.push((channel, queue, consumer));
    }

    let published: Vec<String> = (1..=MESSAGES).map(|i| format!("log line {i}")).collect();
    for body in &published {
        publish(body.clone()).await?;
    }

    let mut received = Vec::new();
    for (channel, queue, consumer) in &mut subscribers {
        let mut got = Vec::new();
        while got.len() < MESSAGES {
            let delivery = tokio::time::timeout(DELIVERY_TIMEOUT, consumer.next())
                .await
                .map_err(|_| format!("{queue} got only {got:?}"))?
                .ok_or("consumer ended")??;
            got.push(String::from_utf8_lossy(&delivery.data).into_owned());
        }
        // Close explicitly rather than leaving it to drop: lapin's implicit close of a
        // dropped channel races with the consumer's implicit cancel and can fail the
        // connection's next call.
        channel.close(200, "done".into()).await?;
        received.push((queue.clone(), got));
    }

    publisher.exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default()).await?;
    // Closing the connection deletes the exclusive queues.
    conn.close(200, "done".into()).await?;
    Ok(PubSubSummary { exchange, unbound_message, published, received })
}

#[allow(dead_code)] // unused when the integration tests include this file as a module
#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let uri = std::env::var("AMQP_URI").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let summary = run(&uri).await?;
    println!("fanout exchange {}: published {:?}", summary.exchange, summary.published);
    println!("dropped (no queue bound yet): {:?}", summary.unbound_message);
    for (queue, got) in &summary.received {
        println!("{queue} received {got:?}");
    }
    Ok(())
}
