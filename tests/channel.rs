//! Channels as lapin sees them: open/close, several per connection, channel.flow from the
//! client, and channel errors that close only their own channel.
mod common;

use common::*;
use lapin::options::{BasicGetOptions, BasicPublishOptions, ChannelFlowOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};

/// Declares a server-named exclusive queue on `ch` and returns its name.
async fn temp_queue(ch: &Channel) -> String {
    let q = ch
        .queue_declare("".into(), QueueDeclareOptions { exclusive: true, ..Default::default() }, FieldTable::default())
        .await
        .expect("queue.declare");
    q.name().to_string()
}

/// Publishes on a confirm-mode `ch` and waits for the broker's ack.
async fn publish_confirmed(ch: &Channel, queue: &str, body: &[u8]) {
    let confirm = ch
        .basic_publish("".into(), queue.into(), BasicPublishOptions::default(), body, BasicProperties::default())
        .await
        .expect("basic.publish")
        .await
        .expect("confirm");
    assert!(confirm.is_ack(), "{confirm:?}");
}

async fn get_body(ch: &Channel, queue: &str) -> Option<Vec<u8>> {
    ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }).await.expect("basic.get").map(|m| m.delivery.data)
}

#[tokio::test(flavor = "multi_thread")]
async fn open_and_close() {
    let b = warren_it::start();
    let conn = connect(&b.uri()).await;
    let ch = conn.create_channel().await.expect("channel.open");
    assert!(ch.status().connected());
    sync(&ch).await.expect("round-trip on an open channel");
    ch.close(200, "bye".into()).await.expect("channel.close answered by close-ok");
    assert!(!ch.status().connected());
    let err = sync(&ch).await.expect_err("a closed channel refuses methods");
    assert_eq!(reply_code(&err), None, "refused by lapin, not by the broker: {err}");
    // The connection is untouched by a channel's close.
    assert!(conn.status().connected());
    let ch2 = conn.create_channel().await.expect("another channel.open");
    sync(&ch2).await.expect("round-trip");
    conn.close(200, "bye".into()).await.expect("connection.close");
}

/// Channels are independent: each has its own confirm sequence and its own exclusive queue,
/// messages cross between them through the broker, and closing one leaves the rest working.
#[tokio::test(flavor = "multi_thread")]
async fn several_channels_share_one_connection() {
    let b = warren_it::start();
    let conn = connect(&b.uri()).await;
    let mut channels = Vec::new();
    let mut queues = Vec::new();
    for _ in 0..5 {
        let ch = conn.create_channel().await.expect("channel.open");
        ch.confirm_select(Default::default()).await.expect("confirm.select");
        queues.push(temp_queue(&ch).await);
        channels.push(ch);
    }
    let mut ids: Vec<u16> = channels.iter().map(|c| c.id()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5, "distinct channel numbers");

    // Channel i publishes to the queue declared on channel i+1.
    for (i, ch) in channels.iter().enumerate() {
        let target = &queues[(i + 1) % queues.len()];
        publish_confirmed(ch, target, format!("from {i}").as_bytes()).await;
    }
    channels.remove(2).close(200, "bye".into()).await.expect("channel.close");
    for (i, q) in queues.iter().enumerate() {
        let from = (i + queues.len() - 1) % queues.len();
        let reader = &channels[i % channels.len()];
        assert_eq!(get_body(reader, q).await, Some(format!("from {from}").into_bytes()));
        assert_eq!(get_body(reader, q).await, None);
    }
    conn.close(200, "bye".into()).await.expect("connection.close");
}

#[tokio::test(flavor = "multi_thread")]
async fn channel_flow_active_true_is_acknowledged() {
    let b = warren_it::start();
    let conn = connect(&b.uri()).await;
    let ch = conn.create_channel().await.expect("channel.open");
    let active = ch.channel_flow(ChannelFlowOptions { active: true }).await.expect("channel.flow");
    assert!(active, "flow-ok echoes active=true");
    sync(&ch).await.expect("channel still usable");
    conn.close(200, "bye".into()).await.expect("connection.close");
}

/// RabbitMQ 3.x does not let a client pause deliveries with channel.flow: active=false is a
/// connection error, 540 NOT_IMPLEMENTED (rabbit_channel: protocol_error(not_implemented,
/// "active=false")).
#[tokio::test(flavor = "multi_thread")]
async fn channel_flow_active_false_is_not_implemented() {
    let b = warren_it::start();
    let conn = connect(&b.uri()).await;
    let ch = conn.create_channel().await.expect("channel.open");
    let res = ch.channel_flow(ChannelFlowOptions { active: false }).await;
    let text = expect_code(res, NOT_IMPLEMENTED);
    assert!(text.contains("active=false"), "{text}");
    assert!(conn.create_channel().await.is_err(), "the connection is closed");
}

/// A 404 closes the channel it happened on, nothing else.
#[tokio::test(flavor = "multi_thread")]
async fn channel_error_leaves_the_connection_open() {
    let b = warren_it::start();
    let conn = connect(&b.uri()).await;
    let mut events = conn.events_listener();
    let bad = conn.create_channel().await.expect("channel.open");
    let good = conn.create_channel().await.expect("second channel.open");
    good.confirm_select(Default::default()).await.expect("confirm.select");
    let q = temp_queue(&good).await;

    let missing = unique_name("missing");
    let text = expect_code(
        bad.queue_declare(
            missing.as_str().into(),
            QueueDeclareOptions { passive: true, ..Default::default() },
            FieldTable::default(),
        )
        .await,
        NOT_FOUND,
    );
    assert!(text.starts_with("NOT_FOUND"), "{text}");
    assert!(text.contains(&missing), "{text}");
    let event = next_error_event(&mut events).await;
    assert_eq!(reply_code(&event), Some(NOT_FOUND), "event: {event}");

    // The failed channel is gone...
    assert!(!bad.status().connected());
    assert!(sync(&bad).await.is_err());
    // ...but the connection, its other channels and their exclusive queues are not.
    assert!(conn.status().connected());
    publish_confirmed(&good, &q, b"still here").await;
    assert_eq!(get_body(&good, &q).await, Some(b"still here".to_vec()));
    let fresh = conn.create_channel().await.expect("channel.open after a channel error");
    sync(&fresh).await.expect("round-trip");
    conn.close(200, "bye".into()).await.expect("connection.close");
}
