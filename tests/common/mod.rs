//! Generic helpers for the lapin integration tests (connection, channel, exchange, queue).
//!
//! Only broker-agnostic plumbing lives here: connecting and passive status checks, on top of
//! `warren_it::lapin_util` (names, reply codes). Each test binary uses a subset of it.
#![allow(dead_code)]

use lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

#[allow(unused_imports)] // not every test binary uses it
pub use warren_it::lapin_util::round_trip as sync;
pub use warren_it::lapin_util::*;

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

/// The channel.close code a refused asynchronous method (e.g. basic.publish) provoked on `ch`.
///
/// See [`async_close_error`] for how the close is found.
pub async fn async_close_code(
    events: &mut (impl futures_lite::Stream<Item = lapin::Event> + Unpin),
    ch: &Channel,
) -> u16 {
    reply_code(&async_close_error(events, ch).await).expect("AMQP error event")
}
