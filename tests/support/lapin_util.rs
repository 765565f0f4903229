//! lapin plumbing every integration test binary needs: unique names, reply codes out of
//! lapin errors, the no-op round-trip that orders a channel's methods, and error events.
//!
//! `tests/common` and `tests/common_b` re-export this and add their suites' own helpers.
use futures_lite::StreamExt;
use lapin::options::ExchangeDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Channel, ErrorKind, ExchangeKind};
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

/// A synchronous round-trip on `ch` that changes nothing (passive declare of `amq.direct`).
/// The broker handles a channel's methods in order, so once this returns, everything sent
/// on `ch` before it has been processed; if an earlier asynchronous method (a publish, an
/// ack) was refused, this fails with the channel.close the broker sent instead of its reply.
pub async fn round_trip(ch: &Channel) -> lapin::Result<()> {
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

/// The error that closed `ch` after an asynchronous method (publish, ack...) it sent was
/// refused.
///
/// A synchronous call queued behind it ([`round_trip`]) fails with the close's code. If lapin
/// handled the close before that call went out, the call fails with a state error instead,
/// and the close is taken from the connection's event stream (which must have been
/// subscribed to before).
pub async fn async_close_error(
    events: &mut (impl futures_lite::Stream<Item = lapin::Event> + Unpin),
    ch: &Channel,
) -> lapin::Error {
    match round_trip(ch).await {
        Ok(()) => panic!("the broker was expected to close the channel"),
        Err(e) if reply_code(&e).is_some() => e,
        Err(_) => next_error_event(events).await,
    }
}
