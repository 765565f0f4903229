//! Connection lifecycle as lapin sees it: start/start-ok with PLAIN and AMQPLAIN, the
//! server-properties RabbitMQ advertises, tune negotiation, open, refusals (vhost, login),
//! client- and server-initiated close, and broker configuration (heartbeat, frame_max,
//! channel_max, users).
mod common;

use common::*;
use lapin::options::{BasicGetOptions, BasicPublishOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ExchangeKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `amqp://USER:PASS@HOST:PORT/VHOST?QUERY` for the broker under test.
fn uri_for(b: &warren_it::TestBroker, user: &str, pass: &str, vhost: &str, query: &str) -> String {
    let q = if query.is_empty() { String::new() } else { format!("?{query}") };
    format!("amqp://{user}:{pass}@{}/{vhost}{q}", b.host_port())
}

/// Reads the broker's connection.start by hand: lapin does not expose server-properties.
async fn read_connection_start(addr: &str) -> amq_protocol::protocol::connection::Start {
    use amq_protocol::protocol::{connection, parse_class, AMQPClass};
    let mut sock = tokio::net::TcpStream::connect(addr).await.expect("tcp connect");
    sock.write_all(b"AMQP\x00\x00\x09\x01").await.expect("protocol header");
    let read = async {
        // Frame: type(1) channel(2) size(4) payload(size) frame-end(1).
        let mut head = [0u8; 7];
        sock.read_exact(&mut head).await.expect("frame header");
        assert_eq!(head[0], 1, "first frame is a method frame");
        assert_eq!(u16::from_be_bytes([head[1], head[2]]), 0, "on channel 0");
        let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize;
        let mut payload = vec![0u8; size + 1];
        sock.read_exact(&mut payload).await.expect("frame payload");
        assert_eq!(payload[size], 0xCE, "frame-end octet");
        payload.truncate(size);
        payload
    };
    let payload = tokio::time::timeout(PATIENCE, read).await.expect("connection.start in time");
    match parse_class(payload.as_slice()) {
        Ok((_, AMQPClass::Connection(connection::AMQPMethod::Start(start)))) => start,
        other => panic!("expected connection.start, got {other:?}"),
    }
}

/// Publishes `body` to the server-named queue it declares and reads it back with basic.get.
/// The publish is confirmed first so the get cannot overtake it.
async fn round_trip(conn: &Connection, body: &[u8]) -> Vec<u8> {
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(Default::default()).await.expect("confirm.select");
    let q = ch
        .queue_declare(
            "".into(),
            lapin::options::QueueDeclareOptions { exclusive: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .expect("queue.declare");
    let confirm = ch
        .basic_publish("".into(), q.name().clone(), BasicPublishOptions::default(), body, BasicProperties::default())
        .await
        .expect("basic.publish")
        .await
        .expect("publisher confirm");
    assert!(confirm.is_ack(), "publish was not acked: {confirm:?}");
    let got = ch
        .basic_get(q.name().clone(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
        .expect("the message is in the queue");
    ch.close(200, "bye".into()).await.expect("channel.close");
    got.delivery.data
}

/// Config tweaks cannot be applied to an external broker: such tests skip themselves.
fn skip_external(b: &warren_it::TestBroker, why: &str) -> bool {
    if b.is_external() {
        eprintln!("skipped against WARREN_TEST_EXTERNAL: {why}");
    }
    b.is_external()
}

#[tokio::test(flavor = "multi_thread")]
async fn start_advertises_rabbitmq_server_properties() {
    let b = warren_it::start();
    let start = read_connection_start(&b.host_port()).await;
    assert_eq!((start.version_major, start.version_minor), (0, 9));

    let mechanisms = start.mechanisms.to_string();
    let mechanisms: Vec<&str> = mechanisms.split_whitespace().collect();
    assert!(mechanisms.contains(&"PLAIN"), "mechanisms: {mechanisms:?}");
    assert!(mechanisms.contains(&"AMQPLAIN"), "mechanisms: {mechanisms:?}");
    let locales = start.locales.to_string();
    assert!(locales.split_whitespace().any(|l| l == "en_US"), "locales: {locales}");

    let props = start.server_properties.inner();
    for key in ["product", "version", "platform"] {
        match props.get(key) {
            Some(lapin::types::AMQPValue::LongString(s)) => {
                assert!(!s.to_string().is_empty(), "{key} is empty")
            }
            other => panic!("server property {key}: {other:?}"),
        }
    }
    let caps = match props.get("capabilities") {
        Some(lapin::types::AMQPValue::FieldTable(t)) => t.inner().clone(),
        other => panic!("capabilities: {other:?}"),
    };
    // What RabbitMQ 3.10 advertises and clients act on, less what Warren does not implement
    // yet: a client that sees a capability relies on it, so Warren must not claim
    // consumer_priorities or direct_reply_to until they work. RabbitMQ advertises them all.
    for cap in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "authentication_failure_close",
        "per_consumer_qos",
    ] {
        assert_eq!(caps.get(cap).and_then(|v| v.as_bool()), Some(true), "capability {cap} in {caps:?}");
    }
    if !b.is_external() {
        for cap in ["consumer_priorities", "direct_reply_to"] {
            assert_eq!(caps.get(cap), None, "Warren must not advertise {cap} before it works");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_login_opens_the_connection() {
    let b = warren_it::start();
    let conn = connect(&uri_for(&b, "guest", "guest", "%2f", "auth_mechanism=plain")).await;
    assert!(conn.status().connected());
    assert_eq!(conn.status().username(), "guest");
    assert_eq!(conn.status().vhost().as_str(), "/");
    assert_eq!(round_trip(&conn, b"over PLAIN").await, b"over PLAIN");
    conn.close(200, "bye".into()).await.expect("connection.close");
}

#[tokio::test(flavor = "multi_thread")]
async fn amqplain_login_opens_the_connection() {
    let b = warren_it::start();
    let conn = connect(&uri_for(&b, "guest", "guest", "%2f", "auth_mechanism=amqplain")).await;
    assert!(conn.status().connected());
    assert_eq!(round_trip(&conn, b"over AMQPLAIN").await, b"over AMQPLAIN");
    conn.close(200, "bye".into()).await.expect("connection.close");
}

/// A client proposing 0 everywhere takes the server's tune values; RabbitMQ's defaults are
/// channel_max 2047, frame_max 131072 and heartbeat 60 s.
#[tokio::test(flavor = "multi_thread")]
async fn tune_proposes_rabbitmq_defaults() {
    let b = warren_it::start();
    let conn = connect(&b.uri()).await;
    let c = conn.configuration();
    assert_eq!(c.channel_max(), 2047);
    assert_eq!(c.frame_max(), 131_072);
    assert_eq!(c.heartbeat(), 60);
    conn.close(200, "bye".into()).await.expect("connection.close");
}

/// Lower non-zero client values win; the broker must accept a tune-ok below its proposal and
/// then honour it (a message larger than the negotiated frame_max is split and reassembled,
/// every negotiated channel can be opened).
#[tokio::test(flavor = "multi_thread")]
async fn tune_lower_client_values_win() {
    let b = warren_it::start();
    let uri = uri_for(&b, "guest", "guest", "%2f", "heartbeat=5&frame_max=16384&channel_max=8");
    let conn = connect(&uri).await;
    let c = conn.configuration();
    assert_eq!((c.channel_max(), c.frame_max(), c.heartbeat()), (8, 16_384, 5));

    let body: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(round_trip(&conn, &body).await, body);

    let mut channels = Vec::new();
    for _ in 0..8 {
        let ch = conn.create_channel().await.expect("a channel within channel_max");
        sync(&ch).await.expect("round-trip on the channel");
        channels.push(ch);
    }
    let mut ids: Vec<u16> = channels.iter().map(|c| c.id()).collect();
    ids.sort();
    assert_eq!(ids, (1..=8).collect::<Vec<u16>>());
    conn.close(200, "bye".into()).await.expect("connection.close");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_vhost_is_refused_with_not_allowed() {
    let b = warren_it::start();
    let vhost = unique_name("no-such-vhost");
    let res = try_connect(&uri_for(&b, "guest", "guest", &vhost, "")).await;
    let text = expect_code(res, NOT_ALLOWED);
    assert!(text.starts_with("NOT_ALLOWED"), "{text}");
    assert!(text.contains(&vhost), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_password_is_refused_with_access_refused() {
    let b = warren_it::start();
    for mechanism in ["plain", "amqplain"] {
        let uri = uri_for(&b, "guest", "wrong", "%2f", &format!("auth_mechanism={mechanism}"));
        let text = expect_code(try_connect(&uri).await, ACCESS_REFUSED);
        assert!(text.starts_with("ACCESS_REFUSED"), "{mechanism}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_user_is_refused_with_access_refused() {
    let b = warren_it::start();
    let user = unique_name("nobody");
    let text = expect_code(try_connect(&uri_for(&b, &user, "guest", "%2f", "")).await, ACCESS_REFUSED);
    assert!(text.starts_with("ACCESS_REFUSED"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn client_close_completes() {
    let b = warren_it::start();
    let conn = connect(&b.uri()).await;
    let ch = conn.create_channel().await.expect("channel");
    sync(&ch).await.expect("round-trip");
    // lapin resolves close() when the broker's close-ok arrives (it marks the connection
    // Closed a moment later, so only "no longer connected" is certain here).
    conn.close(200, "bye".into()).await.expect("connection.close answered by close-ok");
    assert!(!conn.status().connected(), "still connected: {:?}", conn.status());
    // Nothing can be done on a closed connection or its channels any more.
    assert!(conn.create_channel().await.is_err());
    assert!(sync(&ch).await.is_err());
}

/// A connection-level error makes the broker send connection.close with the error's code;
/// the call that provoked it fails with that code, the connection's event stream reports it,
/// and the connection is unusable afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn server_close_after_connection_error_is_reported() {
    let b = warren_it::start();
    let conn = connect(&b.uri()).await;
    let mut events = conn.events_listener();
    let ch = conn.create_channel().await.expect("channel");
    let other = conn.create_channel().await.expect("second channel");

    // An unknown exchange type is a hard error (503 COMMAND_INVALID) in RabbitMQ.
    let name = unique_name("bad-type");
    let res = ch
        .exchange_declare(
            name.as_str().into(),
            ExchangeKind::Custom("x-no-such-type".into()),
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await;
    let text = expect_code(res, COMMAND_INVALID);
    assert!(text.contains("x-no-such-type"), "{text}");

    let event = next_error_event(&mut events).await;
    assert_eq!(reply_code(&event), Some(COMMAND_INVALID), "event: {event}");
    assert!(sync(&other).await.is_err(), "other channels die with the connection");
    assert!(conn.create_channel().await.is_err());
    assert!(!conn.status().connected());
    // The broker itself is fine: a new connection works.
    let conn2 = connect(&b.uri()).await;
    assert!(!exchange_exists(&conn2, &name).await);
    conn2.close(200, "bye".into()).await.expect("connection.close");
}

#[tokio::test(flavor = "multi_thread")]
async fn configured_heartbeat_is_negotiated_and_kept() {
    let b = warren_it::start_with(|c| c.heartbeat = 1);
    if skip_external(&b, "needs heartbeat = 1 in the broker config") {
        return;
    }
    let conn = connect(&b.uri()).await;
    assert_eq!(conn.configuration().heartbeat(), 1);
    // Stay idle for several heartbeat intervals: with heartbeats flowing both ways neither
    // side may declare the other dead (a missed heartbeat would close the connection).
    tokio::time::sleep(std::time::Duration::from_millis(3_500)).await;
    assert!(conn.status().connected(), "not connected: {:?}", conn.status());
    assert_eq!(round_trip(&conn, b"still alive").await, b"still alive");
    conn.close(200, "bye".into()).await.expect("connection.close");
}

#[tokio::test(flavor = "multi_thread")]
async fn configured_frame_max_splits_large_messages() {
    let b = warren_it::start_with(|c| c.frame_max = 8192);
    if skip_external(&b, "needs frame_max = 8192 in the broker config") {
        return;
    }
    let conn = connect(&b.uri()).await;
    assert_eq!(conn.configuration().frame_max(), 8192);
    let body: Vec<u8> = (0..100 * 1024u32).map(|i| (i % 253) as u8).collect();
    assert_eq!(round_trip(&conn, &body).await, body);
    conn.close(200, "bye".into()).await.expect("connection.close");
}

#[tokio::test(flavor = "multi_thread")]
async fn configured_channel_max_is_negotiated() {
    let b = warren_it::start_with(|c| c.channel_max = 3);
    if skip_external(&b, "needs channel_max = 3 in the broker config") {
        return;
    }
    let conn = connect(&b.uri()).await;
    assert_eq!(conn.configuration().channel_max(), 3);
    let mut channels = Vec::new();
    for _ in 0..3 {
        let ch = conn.create_channel().await.expect("a channel within channel_max");
        sync(&ch).await.expect("round-trip");
        channels.push(ch);
    }
    conn.close(200, "bye".into()).await.expect("connection.close");
}

#[tokio::test(flavor = "multi_thread")]
async fn configured_users_replace_guest() {
    let b = warren_it::start_with(|c| {
        c.users = vec![warren_server::config::UserConfig {
            name: "alice".into(),
            password: "s3cret pass".into(),
            tags: vec![],
        }]
    });
    if skip_external(&b, "needs a custom user list in the broker config") {
        return;
    }
    for mechanism in ["plain", "amqplain"] {
        let uri = uri_for(&b, "alice", "s3cret%20pass", "%2f", &format!("auth_mechanism={mechanism}"));
        let conn = connect(&uri).await;
        assert_eq!(conn.status().username(), "alice");
        assert_eq!(round_trip(&conn, b"alice was here").await, b"alice was here");
        conn.close(200, "bye".into()).await.expect("connection.close");
    }
    expect_code(try_connect(&b.uri()).await, ACCESS_REFUSED);
    expect_code(try_connect(&uri_for(&b, "alice", "guest", "%2f", "")).await, ACCESS_REFUSED);
}
