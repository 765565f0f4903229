//! basic.qos: per-consumer prefetch (global=false), per-channel prefetch (global=true, the
//! RabbitMQ reinterpretation), both combined, and prefetch 0 meaning unlimited.
//!
//! "How many did the broker hand out" is measured without timing: the queue's ready count
//! (passive declare) drops the moment the queue delivers a message, so ready == published -
//! delivered is exact once the expected deliveries have arrived.
mod common_b;

use common_b::*;
use lapin::options::{BasicAckOptions, BasicQosOptions};

#[tokio::test(flavor = "multi_thread")]
async fn per_consumer_prefetch_limits_unacked() {
    let s = session().await;
    let q = declare_queue(&s.ch, "qos-consumer").await;
    publish_confirmed(&s.conn, &q, 5).await;
    s.ch.basic_qos(2, BasicQosOptions { global: false }).await.unwrap();
    let mut c = consume(&s.ch, &q, "c", false).await;

    let d0 = next_delivery(&mut c).await;
    let d1 = next_delivery(&mut c).await;
    assert_eq!((text(&d0).as_str(), text(&d1).as_str()), ("0", "1"));
    assert_eq!(queue_counts(&s.conn, &q).await.0, 3, "exactly 2 handed out");
    assert_no_more(&s.ch, &mut c).await;

    // Each ack frees exactly one slot.
    d0.ack(BasicAckOptions::default()).await.unwrap();
    let d2 = next_delivery(&mut c).await;
    assert_eq!(text(&d2), "2");
    assert_eq!(queue_counts(&s.conn, &q).await.0, 2);

    // A multiple ack of both outstanding messages frees two.
    s.ch.basic_ack(d2.delivery_tag, BasicAckOptions { multiple: true }).await.unwrap();
    let d3 = next_delivery(&mut c).await;
    let d4 = next_delivery(&mut c).await;
    assert_eq!((text(&d3).as_str(), text(&d4).as_str()), ("3", "4"));
    assert_eq!(queue_counts(&s.conn, &q).await.0, 0);
    delete_queue(&s.conn, &q).await;
}

/// global=false applies to each consumer separately: two consumers on one channel may each
/// hold the full prefetch.
#[tokio::test(flavor = "multi_thread")]
async fn per_consumer_prefetch_is_per_consumer() {
    let s = session().await;
    let qa = declare_queue(&s.ch, "qos-per-a").await;
    let qb = declare_queue(&s.ch, "qos-per-b").await;
    publish_confirmed(&s.conn, &qa, 5).await;
    publish_confirmed(&s.conn, &qb, 5).await;
    s.ch.basic_qos(2, BasicQosOptions { global: false }).await.unwrap();
    let mut a = consume(&s.ch, &qa, "a", false).await;
    let mut b = consume(&s.ch, &qb, "b", false).await;
    for _ in 0..2 {
        next_delivery(&mut a).await;
        next_delivery(&mut b).await;
    }
    assert_eq!(queue_counts(&s.conn, &qa).await.0, 3);
    assert_eq!(queue_counts(&s.conn, &qb).await.0, 3);
    delete_queue(&s.conn, &qa).await;
    delete_queue(&s.conn, &qb).await;
}

/// A qos setting only applies to consumers created after it.
#[tokio::test(flavor = "multi_thread")]
async fn per_consumer_prefetch_applies_to_later_consumers_only() {
    let s = session().await;
    let qa = declare_queue(&s.ch, "qos-late-a").await;
    let qb = declare_queue(&s.ch, "qos-late-b").await;
    publish_confirmed(&s.conn, &qa, 4).await;
    publish_confirmed(&s.conn, &qb, 4).await;
    s.ch.basic_qos(1, BasicQosOptions { global: false }).await.unwrap();
    let mut a = consume(&s.ch, &qa, "a", false).await;
    s.ch.basic_qos(3, BasicQosOptions { global: false }).await.unwrap();
    let mut b = consume(&s.ch, &qb, "b", false).await;
    next_delivery(&mut a).await;
    for _ in 0..3 {
        next_delivery(&mut b).await;
    }
    assert_eq!(queue_counts(&s.conn, &qa).await.0, 3, "consumer a keeps prefetch 1");
    assert_eq!(queue_counts(&s.conn, &qb).await.0, 1, "consumer b got prefetch 3");
    delete_queue(&s.conn, &qa).await;
    delete_queue(&s.conn, &qb).await;
}

/// global=true: one limit shared by all consumers on the channel.
#[tokio::test(flavor = "multi_thread")]
async fn global_prefetch_is_shared_by_the_channel() {
    let s = session().await;
    let qa = declare_queue(&s.ch, "qos-global-a").await;
    let qb = declare_queue(&s.ch, "qos-global-b").await;
    publish_confirmed(&s.conn, &qa, 5).await;
    publish_confirmed(&s.conn, &qb, 5).await;
    s.ch.basic_qos(3, BasicQosOptions { global: true }).await.unwrap();
    let mut a = consume(&s.ch, &qa, "a", false).await;
    // Consumer a alone fills the channel's 3 slots before b exists.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(next_delivery(&mut a).await);
    }
    assert_eq!(queue_counts(&s.conn, &qa).await.0, 2);
    let mut b = consume(&s.ch, &qb, "b", false).await;
    assert_eq!(queue_counts(&s.conn, &qb).await.0, 5, "no slot left for b");
    assert_no_more(&s.ch, &mut b).await;

    // Freeing one slot on the channel lets exactly one more message through. Which queue
    // claims it first is not specified, so count across both queues.
    held.remove(0).ack(BasicAckOptions::default()).await.unwrap();
    let extra = tokio::select! {
        d = next_delivery_opt(&mut a) => d,
        d = next_delivery_opt(&mut b) => d,
    };
    assert!(extra.is_some());
    let ready = queue_counts(&s.conn, &qa).await.0 + queue_counts(&s.conn, &qb).await.0;
    assert_eq!(ready, 6, "10 published, 3 outstanding + 1 acked");
    delete_queue(&s.conn, &qa).await;
    delete_queue(&s.conn, &qb).await;
}

async fn next_delivery_opt(c: &mut lapin::Consumer) -> Option<lapin::message::Delivery> {
    Some(next_delivery(c).await)
}

/// Both limits at once: each consumer is held to its own prefetch and the channel to the
/// global one.
#[tokio::test(flavor = "multi_thread")]
async fn per_consumer_and_global_combine() {
    let s = session().await;
    let qa = declare_queue(&s.ch, "qos-both-a").await;
    let qb = declare_queue(&s.ch, "qos-both-b").await;
    publish_confirmed(&s.conn, &qa, 5).await;
    publish_confirmed(&s.conn, &qb, 5).await;
    s.ch.basic_qos(2, BasicQosOptions { global: false }).await.unwrap();
    s.ch.basic_qos(3, BasicQosOptions { global: true }).await.unwrap();
    let mut a = consume(&s.ch, &qa, "a", false).await;
    for _ in 0..2 {
        next_delivery(&mut a).await;
    }
    assert_eq!(queue_counts(&s.conn, &qa).await.0, 3, "a stops at its own limit of 2");
    let mut b = consume(&s.ch, &qb, "b", false).await;
    next_delivery(&mut b).await;
    assert_eq!(queue_counts(&s.conn, &qb).await.0, 4, "b gets the channel's last slot");
    assert_no_more(&s.ch, &mut a).await;
    assert_no_more(&s.ch, &mut b).await;
    assert_eq!(queue_counts(&s.conn, &qa).await.0, 3);
    delete_queue(&s.conn, &qa).await;
    delete_queue(&s.conn, &qb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn prefetch_zero_is_unlimited() {
    const N: usize = 200;
    let s = session().await;
    let q = declare_queue(&s.ch, "qos-zero").await;
    publish_confirmed(&s.conn, &q, N).await;
    s.ch.basic_qos(0, BasicQosOptions { global: false }).await.unwrap();
    let mut c = consume(&s.ch, &q, "c", false).await;
    for i in 0..N {
        assert_eq!(text(&next_delivery(&mut c).await), i.to_string());
    }
    assert_eq!(queue_counts(&s.conn, &q).await.0, 0, "all handed out without any ack");
    delete_queue(&s.conn, &q).await;
}

/// Raising the channel-wide (global) prefetch immediately lets more through to an existing
/// consumer. (A new global=false value, by contrast, only applies to consumers created after
/// it; see `per_consumer_prefetch_applies_to_later_consumers_only`.)
#[tokio::test(flavor = "multi_thread")]
async fn raising_global_prefetch_releases_more() {
    let s = session().await;
    let q = declare_queue(&s.ch, "qos-raise").await;
    publish_confirmed(&s.conn, &q, 5).await;
    s.ch.basic_qos(1, BasicQosOptions { global: true }).await.unwrap();
    let mut c = consume(&s.ch, &q, "c", false).await;
    next_delivery(&mut c).await;
    assert_eq!(queue_counts(&s.conn, &q).await.0, 4);
    s.ch.basic_qos(3, BasicQosOptions { global: true }).await.unwrap();
    next_delivery(&mut c).await;
    next_delivery(&mut c).await;
    assert_eq!(queue_counts(&s.conn, &q).await.0, 2);
    delete_queue(&s.conn, &q).await;
}
