//! basic.get / get-empty, acknowledgements (ack, nack, reject, multiple, requeue),
//! basic.recover and the redelivered flag, and the errors for bad delivery tags.
mod common_b;

use common_b::*;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions, BasicRecoverOptions, BasicRejectOptions};
use lapin::Channel;

/// basic.get with acks: (body, delivery tag, redelivered, message_count).
async fn get(ch: &Channel, q: &str) -> Option<(String, u64, bool, u32)> {
    ch.basic_get(q.into(), BasicGetOptions { no_ack: false }).await.expect("basic.get").map(|m| {
        (
            String::from_utf8(m.delivery.data.clone()).unwrap(),
            m.delivery.delivery_tag,
            m.delivery.redelivered,
            m.message_count,
        )
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn get_and_get_empty_with_message_count() {
    let s = session().await;
    let q = declare_queue(&s.ch, "get").await;
    assert_eq!(get(&s.ch, &q).await, None, "get-empty on an empty queue");

    publish_confirmed(&s.conn, &q, 3).await;
    // message_count in get-ok is the number of messages left *after* this one.
    assert_eq!(get(&s.ch, &q).await, Some(("0".into(), 1, false, 2)));
    assert_eq!(get(&s.ch, &q).await, Some(("1".into(), 2, false, 1)));
    let m = s.ch.basic_get(q.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap().unwrap();
    assert_eq!(m.delivery.data, b"2");
    assert_eq!(m.delivery.delivery_tag, 3, "no-ack gets consume delivery tags too");
    assert_eq!(m.message_count, 0);
    assert_eq!(m.delivery.routing_key.as_str(), q);
    assert_eq!(get(&s.ch, &q).await, None);

    // Unacked gets are not ready messages.
    assert_eq!(queue_counts(&s.conn, &q).await.0, 0);
    delete_queue(&s.conn, &q).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn get_missing_queue_404() {
    let s = session().await;
    let q = unique("no-such-queue");
    let res = s.ch.basic_get(q.as_str().into(), BasicGetOptions::default()).await;
    assert_eq!(expect_code(res, 404), format!("NOT_FOUND - no queue '{q}' in vhost '/'"));
}

#[tokio::test(flavor = "multi_thread")]
async fn ack_removes_message() {
    let s = session().await;
    let q = declare_queue(&s.ch, "ack").await;
    publish_confirmed(&s.conn, &q, 2).await;
    let (_, tag, _, _) = get(&s.ch, &q).await.unwrap();
    s.ch.basic_ack(tag, BasicAckOptions::default()).await.unwrap();
    sync(&s.ch).await;
    // Closing the channel requeues whatever is still unacked: only the acked one is gone.
    s.ch.close(200, "bye".into()).await.unwrap();
    assert_eq!(queue_counts(&s.conn, &q).await.0, 1);
    let ch = s.conn.create_channel().await.unwrap();
    assert_eq!(get(&ch, &q).await.map(|m| m.0), Some("1".into()));
    delete_queue(&s.conn, &q).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ack_multiple_acks_up_to_tag() {
    let s = session().await;
    let q = declare_queue(&s.ch, "ack-multiple").await;
    publish_confirmed(&s.conn, &q, 4).await;
    for _ in 0..4 {
        get(&s.ch, &q).await.unwrap();
    }
    s.ch.basic_ack(3, BasicAckOptions { multiple: true }).await.unwrap();
    sync(&s.ch).await;
    s.ch.close(200, "bye".into()).await.unwrap();
    // Tags 1..=3 acked, tag 4 requeued by the close.
    assert_eq!(queue_counts(&s.conn, &q).await.0, 1);
    let ch = s.conn.create_channel().await.unwrap();
    let (body, _, redelivered, _) = get(&ch, &q).await.unwrap();
    assert_eq!(body, "3");
    assert!(redelivered);
    delete_queue(&s.conn, &q).await;
}

/// basic.ack with delivery_tag 0 and multiple=true acknowledges everything outstanding.
#[tokio::test(flavor = "multi_thread")]
async fn ack_multiple_tag_zero_acks_all() {
    let s = session().await;
    let q = declare_queue(&s.ch, "ack-zero").await;
    publish_confirmed(&s.conn, &q, 3).await;
    for _ in 0..3 {
        get(&s.ch, &q).await.unwrap();
    }
    s.ch.basic_ack(0, BasicAckOptions { multiple: true }).await.unwrap();
    sync(&s.ch).await;
    s.ch.close(200, "bye".into()).await.unwrap();
    assert_eq!(queue_counts(&s.conn, &q).await.0, 0);
    delete_queue(&s.conn, &q).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ack_unknown_tag_closes_channel_406() {
    let s = session().await;
    let mut events = s.conn.events_listener();
    s.ch.basic_ack(42, BasicAckOptions::default()).await.unwrap();
    let err = channel_close_error(&mut events, &s.ch).await;
    assert_eq!(reply_code(&err), Some(406));
    assert_eq!(reply_text(&err).unwrap(), "PRECONDITION_FAILED - unknown delivery tag 42");
    assert!(s.conn.status().connected(), "a channel error only");
}

#[tokio::test(flavor = "multi_thread")]
async fn ack_same_tag_twice_closes_channel_406() {
    let s = session().await;
    let mut events = s.conn.events_listener();
    let q = declare_queue(&s.ch, "ack-twice").await;
    publish_confirmed(&s.conn, &q, 1).await;
    let (_, tag, _, _) = get(&s.ch, &q).await.unwrap();
    s.ch.basic_ack(tag, BasicAckOptions::default()).await.unwrap();
    s.ch.basic_ack(tag, BasicAckOptions::default()).await.unwrap();
    let err = channel_close_error(&mut events, &s.ch).await;
    assert_eq!(reply_code(&err), Some(406));
    assert_eq!(reply_text(&err).unwrap(), format!("PRECONDITION_FAILED - unknown delivery tag {tag}"));
    // The first ack counted: the message is gone, not requeued by the channel's death.
    assert_eq!(queue_counts(&s.conn, &q).await.0, 0);
    delete_queue(&s.conn, &q).await;
}

/// nack on a tag the channel never handed out fails the same way as ack.
#[tokio::test(flavor = "multi_thread")]
async fn nack_unknown_tag_406() {
    let s = session().await;
    let mut events = s.conn.events_listener();
    s.ch.basic_nack(7, BasicNackOptions { multiple: false, requeue: true }).await.unwrap();
    let err = channel_close_error(&mut events, &s.ch).await;
    assert_eq!(reply_code(&err), Some(406));
    assert_eq!(reply_text(&err).unwrap(), "PRECONDITION_FAILED - unknown delivery tag 7");
    assert!(s.conn.status().connected(), "a channel error only");
}

/// So does reject. A connection of its own, not a second channel on the nack test's: all of a
/// connection's lapin event listeners drain one shared queue, so an error event the first
/// listener left unread is the first thing a listener created later reads.
#[tokio::test(flavor = "multi_thread")]
async fn reject_unknown_tag_406() {
    let s = session().await;
    let mut events = s.conn.events_listener();
    s.ch.basic_reject(9, BasicRejectOptions { requeue: false }).await.unwrap();
    let err = channel_close_error(&mut events, &s.ch).await;
    assert_eq!(reply_code(&err), Some(406));
    assert_eq!(reply_text(&err).unwrap(), "PRECONDITION_FAILED - unknown delivery tag 9");
    assert!(s.conn.status().connected(), "a channel error only");
}

#[tokio::test(flavor = "multi_thread")]
async fn nack_requeue_redelivers_with_flag() {
    let s = session().await;
    let q = declare_queue(&s.ch, "nack-requeue").await;
    publish_confirmed(&s.conn, &q, 1).await;
    let (body, tag, redelivered, _) = get(&s.ch, &q).await.unwrap();
    assert_eq!((body.as_str(), redelivered), ("0", false));
    s.ch.basic_nack(tag, BasicNackOptions { multiple: false, requeue: true }).await.unwrap();
    let (body, tag2, redelivered, count) = get(&s.ch, &q).await.unwrap();
    assert_eq!(body, "0");
    assert!(redelivered, "a requeued message is flagged redelivered");
    assert_eq!(tag2, tag + 1, "a redelivery gets a fresh delivery tag");
    assert_eq!(count, 0);
    delete_queue(&s.conn, &q).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nack_multiple_requeue_keeps_order() {
    let s = session().await;
    let q = declare_queue(&s.ch, "nack-multiple").await;
    publish_confirmed(&s.conn, &q, 3).await;
    for _ in 0..3 {
        get(&s.ch, &q).await.unwrap();
    }
    s.ch.basic_nack(3, BasicNackOptions { multiple: true, requeue: true }).await.unwrap();
    // Requeued messages go back to their original positions.
    for expected in ["0", "1", "2"] {
        let (body, _, redelivered, _) = get(&s.ch, &q).await.unwrap();
        assert_eq!(body, expected);
        assert!(redelivered);
    }
    delete_queue(&s.conn, &q).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nack_without_requeue_discards() {
    let s = session().await;
    let q = declare_queue(&s.ch, "nack-drop").await;
    publish_confirmed(&s.conn, &q, 2).await;
    get(&s.ch, &q).await.unwrap();
    get(&s.ch, &q).await.unwrap();
    s.ch.basic_nack(2, BasicNackOptions { multiple: true, requeue: false }).await.unwrap();
    assert_eq!(get(&s.ch, &q).await, None);
    s.ch.close(200, "bye".into()).await.unwrap();
    assert_eq!(queue_counts(&s.conn, &q).await.0, 0, "nothing left to requeue on close");
    delete_queue(&s.conn, &q).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reject_requeue_and_discard() {
    let s = session().await;
    let q = declare_queue(&s.ch, "reject").await;
    publish_confirmed(&s.conn, &q, 2).await;
    let (_, tag, _, _) = get(&s.ch, &q).await.unwrap();
    s.ch.basic_reject(tag, BasicRejectOptions { requeue: true }).await.unwrap();
    let (body, tag, redelivered, count) = get(&s.ch, &q).await.unwrap();
    assert_eq!((body.as_str(), redelivered, count), ("0", true, 1));

    s.ch.basic_reject(tag, BasicRejectOptions { requeue: false }).await.unwrap();
    let (body, _, redelivered, count) = get(&s.ch, &q).await.unwrap();
    assert_eq!((body.as_str(), redelivered, count), ("1", false, 0));
    delete_queue(&s.conn, &q).await;
}

/// basic.recover(requeue=true) puts every unacked message back, flagged redelivered.
#[tokio::test(flavor = "multi_thread")]
async fn recover_requeue_redelivers_unacked() {
    let s = session().await;
    let q = declare_queue(&s.ch, "recover").await;
    publish_confirmed(&s.conn, &q, 3).await;
    let (_, first, _, _) = get(&s.ch, &q).await.unwrap();
    get(&s.ch, &q).await.unwrap();
    s.ch.basic_ack(first, BasicAckOptions::default()).await.unwrap();

    s.ch.basic_recover(BasicRecoverOptions { requeue: true }).await.unwrap();
    assert_eq!(queue_counts(&s.conn, &q).await.0, 2, "message 1 requeued next to message 2");
    let (body, _, redelivered, _) = get(&s.ch, &q).await.unwrap();
    assert_eq!((body.as_str(), redelivered), ("1", true));
    let (body, _, redelivered, _) = get(&s.ch, &q).await.unwrap();
    assert_eq!((body.as_str(), redelivered), ("2", false));
    delete_queue(&s.conn, &q).await;
}

/// Same through a consumer: the recovered message is pushed again with redelivered=true.
#[tokio::test(flavor = "multi_thread")]
async fn recover_requeue_redelivers_to_consumer() {
    let s = session().await;
    let q = declare_queue(&s.ch, "recover-consumer").await;
    let mut c = consume(&s.ch, &q, "c", false).await;
    publish(&s.ch, &q, b"once").await;
    let d = next_delivery(&mut c).await;
    assert!(!d.redelivered);
    s.ch.basic_recover(BasicRecoverOptions { requeue: true }).await.unwrap();
    let d2 = next_delivery(&mut c).await;
    assert_eq!(text(&d2), "once");
    assert!(d2.redelivered);
    assert!(d2.delivery_tag > d.delivery_tag);
    d2.ack(BasicAckOptions::default()).await.unwrap();
    sync(&s.ch).await;
    s.ch.close(200, "bye".into()).await.unwrap();
    assert_eq!(queue_counts(&s.conn, &q).await.0, 0);
    delete_queue(&s.conn, &q).await;
}

/// Closing a channel with unacked messages requeues them, flagged redelivered, in order.
#[tokio::test(flavor = "multi_thread")]
async fn channel_close_requeues_unacked() {
    let s = session().await;
    let q = declare_queue(&s.ch, "close-requeue").await;
    publish_confirmed(&s.conn, &q, 3).await;
    let ch1 = s.conn.create_channel().await.unwrap();
    get(&ch1, &q).await.unwrap();
    get(&ch1, &q).await.unwrap();
    assert_eq!(queue_counts(&s.conn, &q).await.0, 1);
    ch1.close(200, "bye".into()).await.unwrap();
    assert_eq!(queue_counts(&s.conn, &q).await.0, 3);

    let expected = [("0", true), ("1", true), ("2", false)];
    for (body, redelivered) in expected {
        let got = get(&s.ch, &q).await.unwrap();
        assert_eq!((got.0.as_str(), got.2), (body, redelivered));
    }
    delete_queue(&s.conn, &q).await;
}

/// Delivery tags are per channel: each channel starts at 1.
#[tokio::test(flavor = "multi_thread")]
async fn delivery_tags_are_per_channel() {
    let s = session().await;
    let q = declare_queue(&s.ch, "tags-per-channel").await;
    publish_confirmed(&s.conn, &q, 2).await;
    let ch2 = s.conn.create_channel().await.unwrap();
    assert_eq!(get(&s.ch, &q).await.unwrap().1, 1);
    assert_eq!(get(&ch2, &q).await.unwrap().1, 1);
    delete_queue(&s.conn, &q).await;
}
