//! Generic helpers for the lapin integration tests (connection, channel, exchange, queue).
//!
//! Only broker-agnostic plumbing lives here: connecting, naming things uniquely, and reading
//! the AMQP reply code out of a lapin error. Each test binary uses a subset of it.
#![allow(dead_code)]

use futures_lite::StreamExt;
use lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ErrorKind, ExchangeKind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// AMQP 0-9-1 reply codes the tests expect (spec section 1.2 "Constants").
pub const ACCESS_REFUSED: u16 = 403;
pub const NOT_FOUND: u16 = 404;
pub const RESOURCE_LOCKED: u16 = 405;
pub const PRECONDITION_FAILED: u16 = 406;
pub const COMMAND_INVALID: u16 = 503;
pub const NOT_ALLOWED: u16 = 530;
pub const NOT_IMPLEMENTED: u16 = 540;

/// Upper bound for anything that should happen promptly (a reply, a delivery, a close).
/// It only turns a hang into a failure; nothing waits for it to elapse.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A name no other test, nor an earlier run against a shared external broker, uses.
pub fn unique_name(prefix: &str) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("warren-it.{prefix}.{}.{nanos}.{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed))
}

/// Connects with lapin's defaults, panicking with the URI on failure.
pub async fn connect(uri: &str) -> Connection {
    try_connect(uri).await.unwrap_or_else(|e| panic!("connect to {uri}: {e}"))
}

/// Connects, bounded by [`PATIENCE`] so a broker that never answers fails the test.
pub async fn try_connect(uri: &str) -> lapin::Result<Connection> {
    tokio::time::timeout(PATIENCE, Connection::connect(uri, ConnectionProperties::default()))
        .await
        .unwrap_or_else(|_| panic!("connect to {uri} did not finish within {PATIENCE:?}"))
}

/// The AMQP reply code of a channel.close / connection.close the broker sent, if `err` is one.
pub fn reply_code(err: &lapin::Error) -> Option<u16> {
    match err.kind() {
        ErrorKind::ProtocolError(e) => Some(e.get_id()),
        _ => None,
    }
}

/// The reply text of a channel.close / connection.close the broker sent, if `err` is one.
pub fn reply_text(err: &lapin::Error) -> Option<String> {
    match err.kind() {
        ErrorKind::ProtocolError(e) => Some(e.get_message().to_string()),
        _ => None,
    }
}

/// Asserts that `res` failed with AMQP reply `code`; returns the reply text for further checks.
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

/// Passive queue.declare on a fresh channel: `Ok((messages, consumers))` or the error
/// (the fresh channel absorbs a 404 so the caller's channel stays usable).
pub async fn queue_status(conn: &Connection, name: &str) -> lapin::Result<(u32, u32)> {
    let ch = conn.create_channel().await.expect("status channel");
    let res = ch
        .queue_declare(name.into(), QueueDeclareOptions { passive: true, ..Default::default() }, FieldTable::default())
        .await;
    if res.is_ok() {
        let _ = ch.close(200, "bye".into()).await;
    }
    res.map(|q| (q.message_count(), q.consumer_count()))
}

/// Passive exchange.declare on a fresh channel: whether the exchange exists. Any error other
/// than 404 fails the test.
pub async fn exchange_exists(conn: &Connection, name: &str) -> bool {
    let ch = conn.create_channel().await.expect("status channel");
    let res = ch
        .exchange_declare(
            name.into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions { passive: true, ..Default::default() },
            FieldTable::default(),
        )
        .await;
    match res {
        Ok(()) => {
            let _ = ch.close(200, "bye".into()).await;
            true
        }
        Err(e) if reply_code(&e) == Some(NOT_FOUND) => false,
        Err(e) => panic!("passive exchange.declare {name}: {e}"),
    }
}

/// A synchronous round-trip on `ch` that changes nothing (passive declare of `amq.direct`).
/// The broker handles a channel's methods in order, so once this returns, everything sent
/// on `ch` before it has been processed; if an earlier asynchronous method (a publish) was
/// refused, this fails with the channel.close the broker sent instead of its reply.
pub async fn sync(ch: &Channel) -> lapin::Result<()> {
    ch.exchange_declare(
        "amq.direct".into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions { passive: true, ..Default::default() },
        FieldTable::default(),
    )
    .await
}

/// The next `Event::Error` on a connection's event stream, within [`PATIENCE`].
pub async fn next_error_event(events: &mut (impl futures_lite::Stream<Item = lapin::Event> + Unpin)) -> lapin::Error {
    loop {
        match tokio::time::timeout(PATIENCE, events.next()).await {
            Ok(Some(lapin::Event::Error(e))) => return e,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("event stream ended without an error"),
            Err(_) => panic!("no error event within {PATIENCE:?}"),
        }
    }
}

/// The channel.close code a refused asynchronous method (e.g. basic.publish) provoked on `ch`.
///
/// A synchronous call queued behind it fails with the close's code. If lapin handled the
/// close before that call went out, the call fails with a state error instead, and the code
/// is taken from the connection's event stream (which must have been subscribed before).
pub async fn async_close_code(
    events: &mut (impl futures_lite::Stream<Item = lapin::Event> + Unpin),
    ch: &Channel,
) -> u16 {
    match sync(ch).await {
        Ok(()) => panic!("the broker was expected to close the channel"),
        Err(e) => match reply_code(&e) {
            Some(code) => code,
            None => reply_code(&next_error_event(events).await).expect("AMQP error event"),
        },
    }
}
