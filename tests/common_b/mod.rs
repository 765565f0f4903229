//! Helpers shared by the basic/confirm/tx/qos/flow/properties integration tests.
//!
//! Kept separate from `tests/common/` (owned by another suite) so both can evolve
//! independently. Each test binary only uses a subset, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod raw;

use futures_lite::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer, ErrorKind, ExchangeKind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use warren_it::TestBroker;

/// Upper bound for anything that should happen "promptly" (a delivery, a reply).
/// Only used to turn a hang into a failure, never as a synchronisation point.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A name no other test (or earlier run against a shared broker) uses.
pub fn unique(prefix: &str) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("warren-it.{prefix}.{}.{nanos}.{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed))
}

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

/// The AMQP reply code carried by an error (channel.close / connection.close), if any.
pub fn reply_code(err: &lapin::Error) -> Option<u16> {
    match err.kind() {
        ErrorKind::ProtocolError(e) => Some(e.get_id()),
        _ => None,
    }
}

/// The AMQP reply text carried by an error, if any.
pub fn reply_text(err: &lapin::Error) -> Option<String> {
    match err.kind() {
        ErrorKind::ProtocolError(e) => Some(e.get_message().to_string()),
        _ => None,
    }
}

/// Asserts that `res` failed with the AMQP reply `code` and returns the reply text.
#[track_caller]
pub fn expect_code<T: std::fmt::Debug>(res: lapin::Result<T>, code: u16) -> String {
    match res {
        Ok(v) => panic!("expected AMQP error {code}, got Ok({v:?})"),
        Err(e) => {
            assert_eq!(reply_code(&e), Some(code), "unexpected error: {e}");
            reply_text(&e).unwrap()
        }
    }
}

/// Declares a non-durable, auto-delete=false queue with a unique name and returns the name.
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
    ch.exchange_declare(
        "amq.direct".into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions { passive: true, ..Default::default() },
        FieldTable::default(),
    )
    .await
    .expect("sync round-trip (passive exchange.declare amq.direct)");
}

/// The error that closes `ch` after an asynchronous method (ack, publish...) the broker rejects.
///
/// Asynchronous methods have no reply; the broker answers a bad one with channel.close. We
/// issue a synchronous method behind it: RabbitMQ processes the channel's methods in order, so
/// the close arrives instead of that method's reply, and lapin fails the pending call with the
/// close's code. If lapin already processed the close before our call went out, the call fails
/// with a state error instead; the connection's event stream still carries the close, so we
/// take the code from there.
pub async fn channel_close_error(
    events: &mut (impl futures_lite::Stream<Item = lapin::Event> + Unpin),
    ch: &Channel,
) -> lapin::Error {
    let res = ch
        .exchange_declare(
            "amq.direct".into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions { passive: true, ..Default::default() },
            FieldTable::default(),
        )
        .await;
    match res {
        Ok(()) => panic!("channel was expected to be closed by the broker"),
        Err(e) if reply_code(&e).is_some() => e,
        Err(_) => next_error_event(events).await,
    }
}

/// Next `Event::Error` on a connection's event stream.
pub async fn next_error_event(events: &mut (impl futures_lite::Stream<Item = lapin::Event> + Unpin)) -> lapin::Error {
    loop {
        match tokio::time::timeout(PATIENCE, events.next()).await {
            Ok(Some(lapin::Event::Error(e))) => return e,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("event stream ended"),
            Err(_) => panic!("no error event within {PATIENCE:?}"),
        }
    }
}
