//! basic.publish: routing through the default exchange, mandatory returns, errors for
//! unknown exchanges and the unsupported `immediate` flag, and per-queue FIFO order.
mod common_b;

use common_b::*;
use lapin::options::{BasicGetOptions, BasicPublishOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, ExchangeKind};

#[tokio::test(flavor = "multi_thread")]
async fn default_exchange_routes_by_queue_name() {
    let s = session().await;
    let q1 = declare_queue(&s.ch, "pub-default-1").await;
    let q2 = declare_queue(&s.ch, "pub-default-2").await;

    publish(&s.ch, &q1, b"to-q1").await;
    publish(&s.ch, &q2, b"to-q2").await;
    // A routing key naming no queue goes nowhere (and is not an error without mandatory).
    publish(&s.ch, &unique("no-such-queue"), b"lost").await;

    let m1 = s.ch.basic_get(q1.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap();
    let m1 = m1.expect("q1 has its message");
    assert_eq!(m1.delivery.data, b"to-q1");
    assert_eq!(m1.delivery.exchange.as_str(), "");
    assert_eq!(m1.delivery.routing_key.as_str(), q1);
    assert_eq!(m1.message_count, 0);

    let m2 = s.ch.basic_get(q2.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap();
    assert_eq!(m2.expect("q2 has its message").delivery.data, b"to-q2");

    assert_eq!(queue_counts(&s.conn, &q1).await.0, 0);
    assert_eq!(queue_counts(&s.conn, &q2).await.0, 0);
    delete_queue(&s.conn, &q1).await;
    delete_queue(&s.conn, &q2).await;
}

/// A queue deleted and declared again under the same name is a new queue: publishes on the
/// same channel reach the new one (the channel remembers where the default exchange routed
/// last, and must notice that queue is gone), and one to a name with no queue yet reaches the
/// queue once it exists.
#[tokio::test(flavor = "multi_thread")]
async fn default_exchange_follows_a_queue_deleted_and_declared_again() {
    let s = session().await;
    let q = declare_queue(&s.ch, "pub-redeclare").await;
    publish(&s.ch, &q, b"first").await;
    sync(&s.ch).await;
    assert_eq!(queue_counts(&s.conn, &q).await.0, 1);

    s.ch.queue_delete(q.as_str().into(), Default::default()).await.expect("queue.delete");
    publish(&s.ch, &q, b"into-nothing").await;
    s.ch.queue_declare(q.as_str().into(), Default::default(), FieldTable::default()).await.expect("declare again");
    publish(&s.ch, &q, b"second").await;
    sync(&s.ch).await;
    assert_eq!(queue_counts(&s.conn, &q).await.0, 1, "the new queue holds only what was published after it");
    let m = s.ch.basic_get(q.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap();
    assert_eq!(m.expect("the new queue has the message").delivery.data, b"second");
    delete_queue(&s.conn, &q).await;
}

/// `amq.default` is only the management UI's label for the default exchange: RabbitMQ 3.10
/// has no exchange by that name, so publishing to it closes the channel with 404.
#[tokio::test(flavor = "multi_thread")]
async fn amq_default_is_not_an_exchange_name() {
    let s = session().await;
    let mut events = s.conn.events_listener();
    let q = declare_queue(&s.ch, "pub-amq-default").await;
    publish_props(&s.ch, "amq.default", &q, b"x", BasicProperties::default()).await;
    let err = channel_close_error(&mut events, &s.ch).await;
    assert_eq!(reply_code(&err), Some(404));
    assert_eq!(reply_text(&err).unwrap(), "NOT_FOUND - no exchange 'amq.default' in vhost '/'");
    assert_eq!(queue_counts(&s.conn, &q).await.0, 0);
    delete_queue(&s.conn, &q).await;
}

/// mandatory=true with no matching queue: basic.return 312 NO_ROUTE carrying the exchange,
/// routing key, properties and body of the publish.
#[tokio::test(flavor = "multi_thread")]
async fn mandatory_unroutable_is_returned_with_no_route() {
    let s = session().await;
    let x = declare_exchange(&s.ch, "pub-mandatory", ExchangeKind::Direct).await;
    let mut headers = FieldTable::default();
    headers.insert("h".into(), AMQPValue::LongString("v".into()));
    let props = BasicProperties::default()
        .with_content_type("text/plain".into())
        .with_message_id("m-1".into())
        .with_headers(headers);

    s.ch.basic_publish(
        x.as_str().into(),
        "nowhere".into(),
        BasicPublishOptions { mandatory: true, immediate: false },
        b"bounce me",
        props.clone(),
    )
    .await
    .unwrap();
    // The return is sent before the broker handles our next method on this channel, so once
    // a synchronous reply is in, the returned message has been received.
    sync(&s.ch).await;
    let returned = s.ch.wait_for_confirms().await.unwrap();
    assert_eq!(returned.len(), 1, "{returned:?}");
    let r = &returned[0];
    assert_eq!(r.reply_code, 312);
    assert_eq!(r.reply_text.as_str(), "NO_ROUTE");
    assert_eq!(r.delivery.exchange.as_str(), x);
    assert_eq!(r.delivery.routing_key.as_str(), "nowhere");
    assert_eq!(r.delivery.data, b"bounce me");
    assert_eq!(r.delivery.properties, props);

    // The same publish without mandatory is silently dropped: nothing comes back.
    publish_props(&s.ch, &x, "nowhere", b"dropped", BasicProperties::default()).await;
    sync(&s.ch).await;
    assert!(s.ch.wait_for_confirms().await.unwrap().is_empty());

    // And a mandatory publish that does route is not returned.
    let q = declare_queue(&s.ch, "pub-mandatory-ok").await;
    s.ch.basic_publish(
        "".into(),
        q.as_str().into(),
        BasicPublishOptions { mandatory: true, immediate: false },
        b"routed",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    sync(&s.ch).await;
    assert!(s.ch.wait_for_confirms().await.unwrap().is_empty());
    assert_eq!(queue_counts(&s.conn, &q).await.0, 1);

    delete_queue(&s.conn, &q).await;
    delete_exchange(&s.conn, &x).await;
}

/// Publishing to an exchange that does not exist closes the channel with 404 NOT_FOUND;
/// the connection and its other channels are unaffected.
#[tokio::test(flavor = "multi_thread")]
async fn publish_to_missing_exchange_closes_channel_404() {
    let s = session().await;
    let mut events = s.conn.events_listener();
    let missing = unique("no-such-exchange");
    let other = s.conn.create_channel().await.unwrap();

    publish_props(&s.ch, &missing, "k", b"x", BasicProperties::default()).await;
    let err = channel_close_error(&mut events, &s.ch).await;
    assert_eq!(reply_code(&err), Some(404));
    assert_eq!(reply_text(&err).unwrap(), format!("NOT_FOUND - no exchange '{missing}' in vhost '/'"));
    assert!(err.is_amqp_soft_error());
    assert!(!s.ch.status().connected());

    // Only that channel died.
    assert!(s.conn.status().connected());
    sync(&other).await;
}

/// immediate=true is not supported by RabbitMQ 3.x: the whole connection is closed with
/// 540 NOT_IMPLEMENTED.
#[tokio::test(flavor = "multi_thread")]
async fn immediate_flag_closes_connection_540() {
    let s = session().await;
    let mut events = s.conn.events_listener();
    let q = declare_queue(&s.ch, "pub-immediate").await;

    s.ch.basic_publish(
        "".into(),
        q.as_str().into(),
        BasicPublishOptions { mandatory: false, immediate: true },
        b"now!",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    let err = channel_close_error(&mut events, &s.ch).await;
    assert_eq!(reply_code(&err), Some(540), "{err}");
    assert_eq!(reply_text(&err).unwrap(), "NOT_IMPLEMENTED - immediate=true");
    assert!(err.is_amqp_hard_error());
    assert!(!s.conn.status().connected());

    // Nothing was enqueued.
    let conn = connect(&s.broker).await;
    assert_eq!(queue_counts(&conn, &q).await.0, 0);
    delete_queue(&conn, &q).await;
}

/// One publisher, one queue: 10,000 messages come out in exactly the order they went in.
#[tokio::test(flavor = "multi_thread")]
async fn fifo_order_of_10000_messages() {
    const N: usize = 10_000;
    let s = session().await;
    let q = declare_queue(&s.ch, "pub-fifo").await;
    publish_confirmed(&s.conn, &q, N).await;
    assert_eq!(queue_counts(&s.conn, &q).await.0, N as u32);

    let mut c = consume(&s.ch, &q, "fifo", true).await;
    for i in 0..N {
        let d = next_delivery(&mut c).await;
        assert_eq!(text(&d), i.to_string(), "message {i} out of order");
        assert!(!d.redelivered);
    }
    assert_no_more(&s.ch, &mut c).await;
    assert_eq!(queue_counts(&s.conn, &q).await.0, 0);
    delete_queue(&s.conn, &q).await;
}
