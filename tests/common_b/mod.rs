//! Helpers shared by the basic/confirm/tx/qos/flow/properties integration tests.
//!
//! Built on `warren_it::lapin_util` (names, reply codes, error events), as `tests/common/` is;
//! this one adds the publish/consume helpers those suites share. Each test binary only uses a
//! subset, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod raw;

use futures_lite::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};

pub use warren_it::lapin_util::*;
pub use warren_it::TestBroker;

/// A name no other test (or earlier run against a shared broker) uses.
#[allow(unused_imports)] // not every test binary uses it
pub use warren_it::lapin_util::unique_name as unique;

pub async fn connect(b: &TestBroker) -> Connection {
    connect_uri(&b.uri()).await
}

pub async fn connect_uri(uri: &str) -> Connection {
    Connection::connect(uri, ConnectionProperties::default()).await.unwrap_or_else(|e| panic!("connect to {uri}: {e}"))
}

/// A broker, one connection to it and one open channel.
pub struct Session {
    pub broker: TestBroker,
    pub conn: Connection,
    pub ch: Channel,
}

pub async fn session() -> Session {
    let broker = warren_it::start();
    let conn = connect(&broker).await;
    let ch = conn.create_channel().await.expect("create channel");
    Session { broker, conn, ch }
}

pub async fn declare_queue(ch: &Channel, prefix: &str) -> String {
    declare_queue_args(ch, prefix, FieldTable::default()).await
}

pub async fn declare_queue_args(ch: &Channel, prefix: &str, args: FieldTable) -> String {
    let name = unique(prefix);
    let q = ch.queue_declare(name.as_str().into(), QueueDeclareOptions::default(), args).await.expect("queue.declare");
    assert_eq!(q.name().as_str(), name);
    name
}

pub async fn declare_exchange(ch: &Channel, prefix: &str, kind: ExchangeKind) -> String {
    let name = unique(prefix);
    ch.exchange_declare(name.as_str().into(), kind, ExchangeDeclareOptions::default(), FieldTable::default())
        .await
        .expect("exchange.declare");
    name
}

/// Deletes a queue on a fresh channel (the test's channel may be closed by then).
pub async fn delete_queue(conn: &Connection, name: &str) {
    let ch = conn.create_channel().await.expect("cleanup channel");
    ch.queue_delete(name.into(), QueueDeleteOptions::default()).await.expect("queue.delete");
    let _ = ch.close(200, "bye".into()).await;
}

pub async fn delete_exchange(conn: &Connection, name: &str) {
    let ch = conn.create_channel().await.expect("cleanup channel");
    ch.exchange_delete(name.into(), Default::default()).await.expect("exchange.delete");
    let _ = ch.close(200, "bye".into()).await;
}

/// Passive declare: (ready message count, consumer count).
pub async fn queue_counts(conn: &Connection, name: &str) -> (u32, u32) {
    let ch = conn.create_channel().await.expect("counting channel");
    let q = ch
        .queue_declare(name.into(), QueueDeclareOptions { passive: true, ..Default::default() }, FieldTable::default())
        .await
        .expect("passive queue.declare");
    let _ = ch.close(200, "bye".into()).await;
    (q.message_count(), q.consumer_count())
}

/// Publishes `body` to the default exchange with routing key `queue`.
pub async fn publish(ch: &Channel, queue: &str, body: &[u8]) {
    publish_props(ch, "", queue, body, BasicProperties::default()).await
}

pub async fn publish_props(ch: &Channel, exchange: &str, routing_key: &str, body: &[u8], props: BasicProperties) {
    ch.basic_publish(exchange.into(), routing_key.into(), BasicPublishOptions::default(), body, props)
        .await
        .expect("basic.publish");
}

/// Publishes `n` messages whose bodies are "0", "1", ... on a confirm channel of its own, and
/// waits until the broker has confirmed them all (so they are enqueued when this returns).
pub async fn publish_confirmed(conn: &Connection, queue: &str, n: usize) {
    let ch = conn.create_channel().await.expect("publisher channel");
    ch.confirm_select(Default::default()).await.expect("confirm.select");
    for i in 0..n {
        publish(&ch, queue, i.to_string().as_bytes()).await;
    }
    let returned = ch.wait_for_confirms().await.expect("wait_for_confirms");
    assert!(returned.is_empty(), "unexpected basic.return: {returned:?}");
    let _ = ch.close(200, "bye".into()).await;
}

pub async fn consume(ch: &Channel, queue: &str, tag: &str, no_ack: bool) -> Consumer {
    ch.basic_consume(
        queue.into(),
        tag.into(),
        BasicConsumeOptions { no_ack, ..Default::default() },
        FieldTable::default(),
    )
    .await
    .expect("basic.consume")
}

/// The next delivery, failing the test if none arrives within [`PATIENCE`].
pub async fn next_delivery(c: &mut Consumer) -> lapin::message::Delivery {
    match tokio::time::timeout(PATIENCE, c.next()).await {
        Ok(Some(Ok(d))) => d,
        Ok(Some(Err(e))) => panic!("consumer error: {e}"),
        Ok(None) => panic!("consumer was cancelled"),
        Err(_) => panic!("no delivery within {PATIENCE:?}"),
    }
}

/// Body as UTF-8 text (test payloads are ASCII).
pub fn text(d: &lapin::message::Delivery) -> String {
    String::from_utf8(d.data.clone()).expect("utf-8 body")
}

/// Asserts that the consumer has nothing buffered *after* a channel round-trip.
///
/// RabbitMQ sends deliveries for a channel in order with its replies, so once a synchronous
/// method on `ch` has been answered, any delivery the broker had already decided to push to
/// this consumer has arrived. That turns "nothing more is delivered" into a non-timing check.
pub async fn assert_no_more(ch: &Channel, c: &mut Consumer) {
    sync(ch).await;
    let pending = futures_lite::future::poll_once(c.next()).await;
    if let Some(Some(item)) = pending {
        panic!("unexpected extra delivery: {item:?}");
    }
}

/// A synchronous round-trip on `ch` that changes nothing (passive declare of `amq.direct`).
pub async fn sync(ch: &Channel) {
    round_trip(ch).await.expect("sync round-trip (passive exchange.declare amq.direct)");
}

/// The error that closes `ch` after an asynchronous method (ack, publish...) the broker rejects.
#[allow(unused_imports)] // not every test binary uses it
pub use warren_it::lapin_util::async_close_error as channel_close_error;
