//! Limits and timeouts: handshake_timeout, connection_max, consumer_timeout, max_message_size,
//! initial_frame_max, the heartbeat's range and the bound on field tables. Each test crosses a limit, checks how
//! the broker answers (codes and texts are RabbitMQ 3.10's) and that other channels and
//! connections are not disturbed. Wire-level cases use the raw client, the rest lapin.
//!
//! The limits are broker settings, so against an external broker (`WARREN_TEST_EXTERNAL`)
//! the tests that need one skip.
mod common;
mod raw;

use futures_lite::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use raw::*;
use std::time::{Duration, Instant};
use warren_it::lapin_util::{next_error_event, reply_code, reply_text, round_trip, unique_name, PATIENCE};

fn skip_external(b: &warren_it::TestBroker, why: &str) -> bool {
    if b.is_external() {
        eprintln!("skipped against WARREN_TEST_EXTERNAL: {why}");
    }
    b.is_external()
}

/// Proves an already open connection still works: a new channel, a queue, a publish and a get.
async fn assert_still_works(raw: &mut Raw, channel: u16) {
    raw.open_channel(channel).await;
    let q = raw.declare_temp_queue(channel).await;
    let body = warren_it::lapin_util::unique_name("still-working").into_bytes();
    raw.send(&publish_frames(channel, "", &q, &body)).await;
    assert_eq!(raw.get(channel, &q).await, Some(body));
}

/// Long enough that a handshake on a loaded machine finishes well inside it.
const HANDSHAKE_TIMEOUT_MS: u64 = 3000;

/// Asserts the broker closes `raw` without a word once the handshake timeout has passed
/// (RabbitMQ sends nothing either: the reader just stops).
async fn dropped_after_handshake_timeout(raw: &mut Raw, since: Instant) {
    let rest = raw.read_to_end(Duration::from_millis(HANDSHAKE_TIMEOUT_MS) + PATIENCE).await;
    assert!(rest.is_empty(), "expected the socket to close silently, got {rest:?}");
    // The broker's timer starts at accept, about when our connect returned; it never fires early.
    let lasted = since.elapsed();
    assert!(lasted >= Duration::from_millis(HANDSHAKE_TIMEOUT_MS * 3 / 4), "dropped after only {lasted:?}");
}

#[tokio::test]
async fn client_that_sends_nothing_is_dropped_after_handshake_timeout() {
    let b = warren_it::start_with(|c| c.handshake_timeout = HANDSHAKE_TIMEOUT_MS);
    if skip_external(&b, "needs handshake_timeout = 3000") {
        return;
    }
    let mut working = Raw::open(&b.host_port()).await;
    let mut silent = Raw::tcp(&b.host_port()).await;
    dropped_after_handshake_timeout(&mut silent, Instant::now()).await;
    // The timeout is the handshake's only: an open connection idle as long is kept.
    assert_still_works(&mut working, 1).await;
    assert_broker_healthy(&b.host_port()).await;
}

#[tokio::test]
async fn client_that_stops_mid_handshake_is_dropped_after_handshake_timeout() {
    let b = warren_it::start_with(|c| c.handshake_timeout = HANDSHAKE_TIMEOUT_MS);
    if skip_external(&b, "needs handshake_timeout = 3000") {
        return;
    }
    let mut working = Raw::open(&b.host_port()).await;
    let since = Instant::now();
    let mut stalled = Raw::tcp(&b.host_port()).await;
    // Protocol header, connection.start, start-ok, connection.tune: then never a tune-ok.
    stalled.handshake_until_tune().await;
    dropped_after_handshake_timeout(&mut stalled, since).await;
    assert_still_works(&mut working, 1).await;
}

/// A connection.open answered with open-ok, or the connection.close that refused it.
async fn try_open(addr: &str) -> Result<Raw, Close> {
    let mut raw = Raw::tcp(addr).await;
    raw.handshake_until_tune().await;
    let ok = TuneValues { heartbeat: 0, ..raw.server_tune };
    raw.send_tune_ok_and_open_unchecked(ok).await;
    let (ch, m) = raw.expect_method_on().await;
    assert_eq!(ch, 0, "{m:?}");
    match m {
        amq_protocol::protocol::AMQPClass::Connection(amq_protocol::protocol::connection::AMQPMethod::OpenOk(_)) => {
            Ok(raw)
        }
        amq_protocol::protocol::AMQPClass::Connection(amq_protocol::protocol::connection::AMQPMethod::Close(c)) => {
            Err(Close {
                reply_code: c.reply_code,
                reply_text: c.reply_text.as_str().to_owned(),
                class_id: c.class_id,
                method_id: c.method_id,
            })
        }
        other => panic!("expected connection.open-ok or connection.close, got {other:?}"),
    }
}

/// RabbitMQ (after 3.10, whose limit was ranch's soft, silent one) checks connection_max when
/// the client sends connection.open and refuses it with connection.close 530 naming
/// connection.open; the connections it already has are unaffected, and once one of them ends a
/// new one is accepted.
#[tokio::test]
async fn connection_max_refuses_the_next_connection_until_one_closes() {
    const MAX: usize = 2;
    let b = warren_it::start_with(|c| c.connection_max = warren_server::Limit::Value(MAX as u64));
    if skip_external(&b, "needs connection_max = 2") {
        return;
    }
    let addr = b.host_port();
    let mut open = Vec::new();
    for _ in 0..MAX {
        open.push(try_open(&addr).await.expect("a connection within connection_max"));
    }
    let refused = try_open(&addr).await.err().expect("connection number 3 must be refused");
    assert_eq!(
        refused,
        Close {
            reply_code: 530,
            reply_text: "NOT_ALLOWED - connection refused: node connection limit (2) is reached".into(),
            class_id: 10,
            method_id: 40,
        }
    );
    for (i, raw) in open.iter_mut().enumerate() {
        assert_still_works(raw, 1 + i as u16).await;
    }
    // A closed connection gives its place back once its task has ended: poll for that.
    open.pop().expect("two connections").close().await;
    let deadline = Instant::now() + PATIENCE;
    let mut replacement = loop {
        match try_open(&addr).await {
            Ok(raw) => break raw,
            Err(c) if Instant::now() < deadline && c.reply_code == 530 => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(c) => panic!("no place freed within {PATIENCE:?}: {c:?}"),
        }
    };
    assert_still_works(&mut replacement, 1).await;
    assert_still_works(&mut open[0], 9).await;
}

/// A client's socket that drops mid-handshake (never sending connection.open) also gives its
/// place back, or a connection storm would lock the node out for good.
#[tokio::test]
async fn connection_max_counts_connections_that_end_in_the_handshake_only_while_they_last() {
    let b = warren_it::start_with(|c| c.connection_max = warren_server::Limit::Value(1));
    if skip_external(&b, "needs connection_max = 1") {
        return;
    }
    let addr = b.host_port();
    for _ in 0..5 {
        let mut raw = Raw::tcp(&addr).await;
        raw.handshake_until_tune().await;
        drop(raw);
    }
    let deadline = Instant::now() + PATIENCE;
    let mut raw = loop {
        match try_open(&addr).await {
            Ok(raw) => break raw,
            Err(c) if Instant::now() < deadline => {
                assert_eq!(c.reply_code, 530, "{c:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(c) => panic!("places of abandoned handshakes never came back: {c:?}"),
        }
    };
    assert_still_works(&mut raw, 1).await;
}

/// The heartbeat travels in 16 bits, so 65535 s is its range's end. RabbitMQ takes the
/// client's tune-ok value as it is; the largest one must neither overflow the broker's timers
/// nor make it send heartbeats early, and the connection works.
#[tokio::test]
async fn largest_heartbeat_is_accepted_and_honoured() {
    let b = warren_it::start_with(|c| c.heartbeat = u16::MAX);
    if !b.is_external() {
        let mut probe = Raw::tcp(&b.host_port()).await;
        probe.handshake_until_tune().await;
        assert_eq!(probe.server_tune.heartbeat, u16::MAX, "the configured maximum is proposed");
    }
    let mut raw = Raw::open_with(&b.host_port(), |t| TuneValues { heartbeat: u16::MAX, ..t }).await;
    let quiet = tokio::time::timeout(Duration::from_secs(2), raw.next_frame()).await;
    assert!(quiet.is_err(), "expected silence with a 65535 s heartbeat, got {quiet:?}");
    assert_still_works(&mut raw, 1).await;
    raw.close().await;
}

/// A field table travels inside one frame (method arguments, a content header's `headers`), so
/// frame_max bounds its size and with it the work and memory parsing it costs. One larger than
/// frame_max is refused from the frame header alone, before its bytes are buffered.
async fn oversized_table_is_frame_error(frame: Vec<u8>) {
    let b = warren_it::start();
    let addr = b.host_port();
    let mut working = Raw::open(&addr).await;
    let mut raw = Raw::open(&addr).await;
    assert!(frame.len() > raw.server_tune.frame_max as usize + 8, "the frame must cross frame_max");
    let _ = raw.try_send(&[channel_open(1), frame].concat()).await;
    match raw.ending().await {
        Ending::Close(c) => {
            assert_eq!(c.reply_code, 501, "{c:?}");
            assert!(c.reply_text.starts_with("FRAME_ERROR - "), "{c:?}");
        }
        Ending::Eof => panic!("expected connection.close 501"),
    }
    assert_still_works(&mut working, 1).await;
}

/// A connection.start-ok whose client properties carry `padding` bytes.
fn start_ok_with_properties(padding: usize) -> Vec<u8> {
    use amq_protocol::protocol::{connection, AMQPClass};
    use amq_protocol::types::{AMQPValue, FieldTable as Table, LongString};
    let mut props = Table::default();
    props.insert("padding".into(), AMQPValue::LongString(LongString::from(vec![b'p'; padding])));
    method_frame(
        0,
        AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
            client_properties: props,
            mechanism: "PLAIN".into(),
            response: "\0guest\0guest".into(),
            locale: "en_US".into(),
        })),
    )
}

/// Before tune-ok there is no negotiated frame_max: RabbitMQ bounds frames by
/// initial_frame_max (4096), so a client that has not logged in cannot make the broker buffer
/// and parse large field tables. A start-ok over it is refused (RabbitMQ closes the socket
/// without a word; Warren first sends 501); one that fits opens normally.
#[tokio::test]
async fn start_ok_larger_than_initial_frame_max_is_refused() {
    let b = warren_it::start();
    let addr = b.host_port();
    let mut working = Raw::open(&addr).await;

    let fits = start_ok_with_properties(3000);
    assert!(fits.len() - 8 <= 4096);
    let mut raw = Raw::tcp(&addr).await;
    raw.send(PROTOCOL_HEADER).await;
    raw.expect_method().await; // connection.start
    raw.send(&fits).await;
    let tune = raw.expect_method().await;
    assert!(
        matches!(
            tune,
            amq_protocol::protocol::AMQPClass::Connection(amq_protocol::protocol::connection::AMQPMethod::Tune(_))
        ),
        "{tune:?}"
    );

    let too_big = start_ok_with_properties(5000);
    assert!(too_big.len() - 8 > 4096);
    let mut raw = Raw::tcp(&addr).await;
    raw.send(PROTOCOL_HEADER).await;
    raw.expect_method().await;
    let _ = raw.try_send(&too_big).await;
    // RabbitMQ waits 3 s before it drops a failed handshake.
    match raw.ending_within(Duration::from_secs(10)).await {
        Ending::Eof => assert!(b.is_external(), "Warren must send connection.close 501"),
        Ending::Close(c) => {
            assert_eq!(c.reply_code, 501, "{c:?}");
            assert!(c.reply_text.starts_with("FRAME_ERROR - "), "{c:?}");
        }
    }
    assert_still_works(&mut working, 1).await;
}

/// A field table of `entries` long-string values of `value_len` bytes each.
fn big_table(entries: usize, value_len: usize) -> Vec<u8> {
    let mut body = Vec::new();
    for i in 0..entries {
        let key = format!("k{i}");
        body.push(key.len() as u8);
        body.extend_from_slice(key.as_bytes());
        body.push(b'S');
        body.extend_from_slice(&(value_len as u32).to_be_bytes());
        body.extend(std::iter::repeat_n(b'v', value_len));
    }
    let mut table = (body.len() as u32).to_be_bytes().to_vec();
    table.extend(body);
    table
}

#[tokio::test]
async fn method_arguments_larger_than_frame_max_are_frame_error() {
    let mut args = vec![0, 0, 1, b'q', 0]; // queue.declare "q", no flags, then the arguments
    args.extend_from_slice(&big_table(200, 1000));
    oversized_table_is_frame_error(raw_method(1, 50, 10, &args)).await;
}

#[tokio::test]
async fn headers_larger_than_frame_max_are_frame_error() {
    let mut header = vec![0, 60, 0, 0];
    header.extend_from_slice(&1u64.to_be_bytes());
    header.extend_from_slice(&[0b0010_0000, 0]); // property flags: headers only
    header.extend_from_slice(&big_table(200, 1000));
    let publish = raw_method(1, 60, 40, &[0, 0, 0, 1, b'q', 0]);
    oversized_table_is_frame_error([publish, raw_frame(FRAME_HEADER, 1, &header)].concat()).await;
}

/// consumer_timeout of these tests: long enough for deliveries and acks to travel on a loaded
/// machine, short enough for a test.
const CONSUMER_TIMEOUT_MS: u64 = 2000;

async fn next_delivery(consumer: &mut lapin::Consumer) -> lapin::message::Delivery {
    tokio::time::timeout(PATIENCE + Duration::from_millis(CONSUMER_TIMEOUT_MS), consumer.next())
        .await
        .expect("no delivery in time")
        .expect("consumer ended")
        .expect("delivery")
}

/// RabbitMQ 3.10+: a delivery left unacknowledged past consumer_timeout closes its channel
/// with 406 and this text; its message is requeued and goes to another consumer, and the
/// connection's other channels and other connections carry on.
#[tokio::test(flavor = "multi_thread")]
async fn unacked_delivery_past_consumer_timeout_closes_its_channel() {
    let b = warren_it::start_with(|c| c.consumer_timeout = warren_server::Limit::Value(CONSUMER_TIMEOUT_MS));
    if skip_external(&b, "needs consumer_timeout = 2000") {
        return;
    }
    let slow = common::connect(&b.uri()).await;
    let mut events = slow.events_listener();
    let slow_ch = slow.create_channel().await.expect("channel");
    let other_ch = slow.create_channel().await.expect("second channel");
    let q = unique_name("consumer-timeout");
    slow_ch.queue_declare(q.as_str().into(), QueueDeclareOptions::default(), FieldTable::default()).await.unwrap();
    let mut never_acks = slow_ch
        .basic_consume(q.as_str().into(), "never-acks".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .unwrap();

    let fast = common::connect(&b.uri()).await;
    let fast_ch = fast.create_channel().await.expect("channel");
    fast_ch
        .basic_publish(
            "".into(),
            q.as_str().into(),
            BasicPublishOptions::default(),
            b"slow",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    let first = next_delivery(&mut never_acks).await;
    let delivered_at = Instant::now();
    assert!(!first.redelivered);

    // A second consumer joins after the delivery, so the message can only reach it requeued.
    let mut acks = fast_ch
        .basic_consume(q.as_str().into(), "acks".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .unwrap();
    let again = next_delivery(&mut acks).await;
    assert_eq!((again.data.as_slice(), again.redelivered), (&b"slow"[..], true));
    let waited = delivered_at.elapsed();
    // Measured from our receipt, which lags the broker's delivery by the machine's load.
    assert!(waited >= Duration::from_millis(CONSUMER_TIMEOUT_MS / 2), "requeued after only {waited:?}");
    again.ack(BasicAckOptions::default()).await.unwrap();

    let err = next_error_event(&mut events).await;
    assert_eq!(reply_code(&err), Some(406), "{err}");
    assert_eq!(
        reply_text(&err).unwrap(),
        format!(
            "PRECONDITION_FAILED - delivery acknowledgement on channel {} timed out. Timeout value used: \
             {CONSUMER_TIMEOUT_MS} ms. This timeout value can be configured, see consumers doc guide to learn more",
            slow_ch.id()
        )
    );
    assert!(slow.status().connected(), "a channel error only");
    round_trip(&other_ch).await.expect("the connection's other channel still works");
    round_trip(&fast_ch).await.expect("the other connection still works");
    assert_eq!(common::queue_status(&fast, &q).await.unwrap(), (0, 1), "acked once, nothing left");
}

/// Acked in time, a consumer is never timed out, however long the channel lives.
#[tokio::test(flavor = "multi_thread")]
async fn deliveries_acked_in_time_keep_the_channel_open() {
    let b = warren_it::start_with(|c| c.consumer_timeout = warren_server::Limit::Value(CONSUMER_TIMEOUT_MS));
    if skip_external(&b, "needs consumer_timeout = 2000") {
        return;
    }
    let conn = common::connect(&b.uri()).await;
    let ch = conn.create_channel().await.expect("channel");
    let q = unique_name("consumer-timeout-ok");
    ch.queue_declare(q.as_str().into(), QueueDeclareOptions::default(), FieldTable::default()).await.unwrap();
    let mut consumer = ch
        .basic_consume(q.as_str().into(), "acks".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .unwrap();
    let started = Instant::now();
    let mut n = 0u32;
    // Two timeouts' worth of traffic, each delivery acked at once.
    while started.elapsed() < Duration::from_millis(2 * CONSUMER_TIMEOUT_MS) {
        ch.basic_publish(
            "".into(),
            q.as_str().into(),
            BasicPublishOptions::default(),
            b"m",
            BasicProperties::default(),
        )
        .await
        .unwrap();
        let d = next_delivery(&mut consumer).await;
        assert!(!d.redelivered, "delivery {n} was requeued");
        d.ack(BasicAckOptions::default()).await.unwrap();
        n += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    round_trip(&ch).await.expect("channel still open");
    assert!(n > 0);
}

/// max_message_size: a body over it closes the publishing channel with 406 and RabbitMQ's
/// text; a body of exactly the limit goes through, and other channels and connections are fine.
#[tokio::test(flavor = "multi_thread")]
async fn body_over_max_message_size_closes_the_channel_406() {
    const MAX: usize = 1024;
    let b = warren_it::start_with(|c| c.max_message_size = MAX as u64);
    if skip_external(&b, "needs max_message_size = 1024") {
        return;
    }
    let conn = common::connect(&b.uri()).await;
    let mut events = conn.events_listener();
    let other = common::connect(&b.uri()).await;
    let other_ch = other.create_channel().await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    let second_ch = conn.create_channel().await.unwrap();
    let q = unique_name("max-size");
    ch.queue_declare(q.as_str().into(), QueueDeclareOptions::default(), FieldTable::default()).await.unwrap();
    let publish = |body: Vec<u8>| {
        let (ch, q) = (ch.clone(), q.clone());
        async move {
            ch.basic_publish(
                "".into(),
                q.as_str().into(),
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default(),
            )
            .await
        }
    };
    publish(vec![1; MAX]).await.unwrap();
    round_trip(&ch).await.expect("a body of exactly max_message_size is accepted");
    assert_eq!(common::queue_status(&conn, &q).await.unwrap().0, 1);

    publish(vec![2; MAX + 1]).await.unwrap();
    let err = warren_it::lapin_util::async_close_error(&mut events, &ch).await;
    assert_eq!(reply_code(&err), Some(406), "{err}");
    assert_eq!(
        reply_text(&err).unwrap(),
        format!("PRECONDITION_FAILED - message size {} is larger than configured max size {MAX}", MAX + 1)
    );
    assert!(conn.status().connected(), "a channel error only");
    round_trip(&second_ch).await.expect("the connection's other channel still works");
    round_trip(&other_ch).await.expect("the other connection still works");
    assert_eq!(common::queue_status(&other, &q).await.unwrap().0, 1, "the oversized message was not enqueued");
}
