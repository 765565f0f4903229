//! basic.consume / basic.cancel: no-ack delivery, exclusive consumers, consumer tags,
//! client and broker-initiated cancellation, round-robin dispatch.
mod common_b;

use common_b::*;
use futures_lite::StreamExt;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, QueueDeleteOptions};
use lapin::types::FieldTable;

#[tokio::test(flavor = "multi_thread")]
async fn no_ack_consumer_receives_messages() {
    let s = session().await;
    let q = declare_queue(&s.ch, "consume-noack").await;
    let mut c = consume(&s.ch, &q, "noack", true).await;
    assert_eq!(c.tag().as_str(), "noack");
    assert_eq!(queue_counts(&s.conn, &q).await.1, 1, "one consumer registered");

    for i in 0..3 {
        publish(&s.ch, &q, format!("m{i}").as_bytes()).await;
    }
    for i in 0..3 {
        let d = next_delivery(&mut c).await;
        assert_eq!(text(&d), format!("m{i}"));
        assert_eq!(d.delivery_tag, i + 1, "delivery tags start at 1 and increase by 1");
        assert_eq!(d.exchange.as_str(), "");
        assert_eq!(d.routing_key.as_str(), q);
        assert!(!d.redelivered);
    }
    // no-ack deliveries are settled on send: nothing is left in the queue.
    assert_eq!(queue_counts(&s.conn, &q).await.0, 0);
    delete_queue(&s.conn, &q).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exclusive_consumer_refuses_others_403() {
    let s = session().await;
    let q = declare_queue(&s.ch, "consume-exclusive").await;
    let _c =
        s.ch.basic_consume(
            q.as_str().into(),
            "owner".into(),
            BasicConsumeOptions { exclusive: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .unwrap();

    let ch2 = s.conn.create_channel().await.unwrap();
    let res = ch2
        .basic_consume(q.as_str().into(), "second".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await;
    let text = expect_code(res, 403);
    assert_eq!(text, format!("ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use"));
    assert!(!ch2.status().connected(), "403 closes the channel");
    assert!(s.conn.status().connected(), "but not the connection");

    delete_queue(&s.conn, &q).await;
}

/// The other way round: asking for exclusivity on a queue that already has a consumer.
#[tokio::test(flavor = "multi_thread")]
async fn exclusive_consume_on_queue_with_consumer_403() {
    let s = session().await;
    let q = declare_queue(&s.ch, "consume-exclusive-late").await;
    let _c = consume(&s.ch, &q, "first", false).await;

    let ch2 = s.conn.create_channel().await.unwrap();
    let res = ch2
        .basic_consume(
            q.as_str().into(),
            "wants-exclusive".into(),
            BasicConsumeOptions { exclusive: true, ..Default::default() },
            FieldTable::default(),
        )
        .await;
    let text = expect_code(res, 403);
    assert_eq!(text, format!("ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use"));
    delete_queue(&s.conn, &q).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_tag_gets_server_generated_tag() {
    let s = session().await;
    let q = declare_queue(&s.ch, "consume-ctag").await;
    let mut c1 = consume(&s.ch, &q, "", true).await;
    let c2 = consume(&s.ch, &q, "", true).await;
    let (t1, t2) = (c1.tag().to_string(), c2.tag().to_string());
    assert!(t1.starts_with("amq.ctag-"), "{t1}");
    assert!(t2.starts_with("amq.ctag-"), "{t2}");
    assert!(t1.len() > "amq.ctag-".len());
    assert_ne!(t1, t2, "generated tags are unique");

    // The generated tag is the one deliveries and cancel use.
    s.ch.basic_cancel(t2.as_str().into(), BasicCancelOptions::default()).await.unwrap();
    publish(&s.ch, &q, b"hi").await;
    let d = next_delivery(&mut c1).await;
    assert_eq!(text(&d), "hi");
    delete_queue(&s.conn, &q).await;
}

/// Reusing a consumer tag on the same channel is a connection error in RabbitMQ:
/// 530 NOT_ALLOWED.
#[tokio::test(flavor = "multi_thread")]
async fn duplicate_consumer_tag_closes_connection_530() {
    let s = session().await;
    let q = declare_queue(&s.ch, "consume-dup").await;
    let _c = consume(&s.ch, &q, "dup", false).await;
    let res =
        s.ch.basic_consume(q.as_str().into(), "dup".into(), BasicConsumeOptions::default(), FieldTable::default())
            .await;
    let err = res.expect_err("duplicate tag must fail");
    assert_eq!(reply_code(&err), Some(530));
    assert_eq!(reply_text(&err).unwrap(), "NOT_ALLOWED - attempt to reuse consumer tag 'dup'");
    assert!(err.is_amqp_hard_error());
    assert!(!s.conn.status().connected());

    let conn = connect(&s.broker).await;
    delete_queue(&conn, &q).await;
}

/// The same tag on a *different* channel is fine: tags are per channel.
#[tokio::test(flavor = "multi_thread")]
async fn same_tag_on_two_channels_is_allowed() {
    let s = session().await;
    let q = declare_queue(&s.ch, "consume-tag-2ch").await;
    let ch2 = s.conn.create_channel().await.unwrap();
    let _c1 = consume(&s.ch, &q, "same", false).await;
    let _c2 = consume(&ch2, &q, "same", false).await;
    assert_eq!(queue_counts(&s.conn, &q).await.1, 2);
    delete_queue(&s.conn, &q).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_stops_deliveries() {
    let s = session().await;
    let q = declare_queue(&s.ch, "consume-cancel").await;
    let mut c = consume(&s.ch, &q, "to-cancel", false).await;
    publish(&s.ch, &q, b"before").await;
    let d = next_delivery(&mut c).await;
    assert_eq!(text(&d), "before");
    d.ack(BasicAckOptions::default()).await.unwrap();

    // basic_cancel resolves when cancel-ok arrives.
    s.ch.basic_cancel("to-cancel".into(), BasicCancelOptions::default()).await.unwrap();
    // lapin ends the consumer's stream on cancel-ok.
    let end = tokio::time::timeout(PATIENCE, c.next()).await.expect("stream ends after cancel");
    assert!(end.is_none(), "{end:?}");
    assert_eq!(queue_counts(&s.conn, &q).await.1, 0, "consumer gone");

    // Messages published after the cancel stay in the queue.
    publish_confirmed(&s.conn, &q, 2).await;
    assert_eq!(queue_counts(&s.conn, &q).await.0, 2);
    delete_queue(&s.conn, &q).await;
}

/// Cancelling an unknown consumer tag is not an error: RabbitMQ replies cancel-ok.
#[tokio::test(flavor = "multi_thread")]
async fn cancel_unknown_tag_is_ok() {
    let s = session().await;
    s.ch.basic_cancel("never-registered".into(), BasicCancelOptions::default()).await.unwrap();
    sync(&s.ch).await;
}

/// Deleting a queue that has consumers sends them basic.cancel (consumer_cancel_notify,
/// which lapin advertises); lapin ends the consumer's stream. The channel stays open.
#[tokio::test(flavor = "multi_thread")]
async fn queue_deletion_cancels_consumers() {
    let s = session().await;
    let q = declare_queue(&s.ch, "consume-deleted").await;
    let mut c = consume(&s.ch, &q, "doomed", false).await;

    let ch2 = s.conn.create_channel().await.unwrap();
    let deleted = ch2.queue_delete(q.as_str().into(), QueueDeleteOptions::default()).await.unwrap();
    assert_eq!(deleted, 0, "queue was empty");

    let end = tokio::time::timeout(PATIENCE, c.next()).await.expect("broker cancel arrives");
    assert!(end.is_none(), "consumer stream ends on basic.cancel, got {end:?}");
    // It was a consumer cancellation, not a channel error.
    assert!(s.ch.status().connected());
    sync(&s.ch).await;
}

/// Two consumers on one queue, each allowed one unacked message: a queue hands messages
/// out in strict rotation, so consumer A gets every other message and B the rest, each in
/// publish order.
#[tokio::test(flavor = "multi_thread")]
async fn round_robin_between_two_consumers() {
    const N: usize = 20;
    let s = session().await;
    let q = declare_queue(&s.ch, "consume-rr").await;
    let ch_a = s.conn.create_channel().await.unwrap();
    let ch_b = s.conn.create_channel().await.unwrap();
    ch_a.basic_qos(1, Default::default()).await.unwrap();
    ch_b.basic_qos(1, Default::default()).await.unwrap();
    let mut a = consume(&ch_a, &q, "a", false).await;
    let mut b = consume(&ch_b, &q, "b", false).await;

    publish_confirmed(&s.conn, &q, N).await;

    // Each consumer holds at most one message, so reading them alternately never starves.
    let mut got_a = Vec::new();
    let mut got_b = Vec::new();
    for _ in 0..N / 2 {
        let d = next_delivery(&mut a).await;
        got_a.push(text(&d).parse::<usize>().unwrap());
        d.ack(BasicAckOptions::default()).await.unwrap();
        let d = next_delivery(&mut b).await;
        got_b.push(text(&d).parse::<usize>().unwrap());
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    let first = got_a[0] % 2;
    assert!(got_a.iter().all(|i| i % 2 == first), "a got {got_a:?}");
    assert!(got_b.iter().all(|i| i % 2 != first), "b got {got_b:?}");
    assert!(got_a.windows(2).all(|w| w[0] < w[1]), "a in order: {got_a:?}");
    assert!(got_b.windows(2).all(|w| w[0] < w[1]), "b in order: {got_b:?}");
    assert_eq!(queue_counts(&s.conn, &q).await.0, 0);
    delete_queue(&s.conn, &q).await;
}

/// The same rotation with no-ack consumers (no prefetch limit at all).
#[tokio::test(flavor = "multi_thread")]
async fn round_robin_no_ack() {
    const N: usize = 20;
    let s = session().await;
    let q = declare_queue(&s.ch, "consume-rr-noack").await;
    let mut a = consume(&s.ch, &q, "a", true).await;
    let mut b = consume(&s.ch, &q, "b", true).await;
    publish_confirmed(&s.conn, &q, N).await;

    let got_a: Vec<usize> = {
        let mut v = Vec::new();
        for _ in 0..N / 2 {
            v.push(text(&next_delivery(&mut a).await).parse().unwrap());
        }
        v
    };
    let got_b: Vec<usize> = {
        let mut v = Vec::new();
        for _ in 0..N / 2 {
            v.push(text(&next_delivery(&mut b).await).parse().unwrap());
        }
        v
    };
    let first = got_a[0] % 2;
    assert!(got_a.iter().all(|i| i % 2 == first), "a got {got_a:?}");
    assert!(got_b.iter().all(|i| i % 2 != first), "b got {got_b:?}");
    assert!(got_a.windows(2).all(|w| w[0] < w[1]));
    assert!(got_b.windows(2).all(|w| w[0] < w[1]));
    assert_no_more(&s.ch, &mut a).await;
    assert_no_more(&s.ch, &mut b).await;
    delete_queue(&s.conn, &q).await;
}

/// Consuming from a queue that does not exist closes the channel with 404.
#[tokio::test(flavor = "multi_thread")]
async fn consume_missing_queue_404() {
    let s = session().await;
    let q = unique("no-such-queue");
    let res =
        s.ch.basic_consume(q.as_str().into(), "".into(), BasicConsumeOptions::default(), FieldTable::default()).await;
    let text = expect_code(res, 404);
    assert_eq!(text, format!("NOT_FOUND - no queue '{q}' in vhost '/'"));
}
