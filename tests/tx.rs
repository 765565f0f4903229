//! Transactions (tx.select / tx.commit / tx.rollback): publishes and acknowledgements are
//! held back until commit and discarded by rollback.
mod common_b;

use common_b::*;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions, BasicRejectOptions};
use lapin::BasicProperties;

#[tokio::test(flavor = "multi_thread")]
async fn publishes_invisible_until_commit() {
    let s = session().await;
    let q = declare_queue(&s.ch, "tx-commit").await;
    s.ch.tx_select().await.unwrap();
    for i in 0..3 {
        publish(&s.ch, &q, format!("m{i}").as_bytes()).await;
    }
    // A round-trip on the tx channel proves the publishes reached the broker...
    sync(&s.ch).await;
    // ...yet nothing is in the queue.
    assert_eq!(queue_counts(&s.conn, &q).await.0, 0);

    s.ch.tx_commit().await.unwrap();
    assert_eq!(queue_counts(&s.conn, &q).await.0, 3);
    let ch = s.conn.create_channel().await.unwrap();
    for i in 0..3 {
        let m = ch.basic_get(q.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap().unwrap();
        assert_eq!(m.delivery.data, format!("m{i}").into_bytes(), "commit keeps publish order");
    }
    delete_queue(&s.conn, &q).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_discards_publishes_and_tx_continues() {
    let s = session().await;
    let q = declare_queue(&s.ch, "tx-rollback").await;
    s.ch.tx_select().await.unwrap();
    publish(&s.ch, &q, b"discarded-1").await;
    publish(&s.ch, &q, b"discarded-2").await;
    s.ch.tx_rollback().await.unwrap();
    assert_eq!(queue_counts(&s.conn, &q).await.0, 0);

    // The channel stays transactional: the next publish waits for the next commit.
    publish(&s.ch, &q, b"kept").await;
    sync(&s.ch).await;
    assert_eq!(queue_counts(&s.conn, &q).await.0, 0);
    s.ch.tx_commit().await.unwrap();
    assert_eq!(queue_counts(&s.conn, &q).await.0, 1);
    let m = s.ch.basic_get(q.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap().unwrap();
    assert_eq!(m.delivery.data, b"kept");
    delete_queue(&s.conn, &q).await;
}

/// Acks inside a transaction take effect at commit.
#[tokio::test(flavor = "multi_thread")]
async fn acks_apply_on_commit() {
    let s = session().await;
    let q = declare_queue(&s.ch, "tx-ack-commit").await;
    publish_confirmed(&s.conn, &q, 2).await;
    s.ch.tx_select().await.unwrap();
    let m1 = s.ch.basic_get(q.as_str().into(), BasicGetOptions::default()).await.unwrap().unwrap();
    let m2 = s.ch.basic_get(q.as_str().into(), BasicGetOptions::default()).await.unwrap().unwrap();
    s.ch.basic_ack(m1.delivery.delivery_tag, BasicAckOptions::default()).await.unwrap();
    s.ch.basic_ack(m2.delivery.delivery_tag, BasicAckOptions::default()).await.unwrap();
    s.ch.tx_commit().await.unwrap();
    // Committed acks survive the channel's end: nothing is requeued.
    s.ch.close(200, "bye".into()).await.unwrap();
    assert_eq!(queue_counts(&s.conn, &q).await.0, 0);
    delete_queue(&s.conn, &q).await;
}

/// Rolling back acks forgets them: the messages are still unacked (not requeued by the
/// rollback), and come back only when the channel closes.
#[tokio::test(flavor = "multi_thread")]
async fn rollback_forgets_acks_without_requeue() {
    let s = session().await;
    let q = declare_queue(&s.ch, "tx-ack-rollback").await;
    publish_confirmed(&s.conn, &q, 2).await;
    s.ch.tx_select().await.unwrap();
    let m1 = s.ch.basic_get(q.as_str().into(), BasicGetOptions::default()).await.unwrap().unwrap();
    let m2 = s.ch.basic_get(q.as_str().into(), BasicGetOptions::default()).await.unwrap().unwrap();
    s.ch.basic_ack(m2.delivery.delivery_tag, BasicAckOptions { multiple: true }).await.unwrap();
    s.ch.tx_rollback().await.unwrap();
    assert_eq!(queue_counts(&s.conn, &q).await.0, 0, "rollback does not requeue");

    // The rolled-back ack is gone, so the tags are still valid: ack one for real.
    s.ch.basic_ack(m1.delivery.delivery_tag, BasicAckOptions::default()).await.unwrap();
    s.ch.tx_commit().await.unwrap();
    s.ch.close(200, "bye".into()).await.unwrap();
    assert_eq!(queue_counts(&s.conn, &q).await.0, 1, "only the still-unacked m2 is requeued");
    let ch = s.conn.create_channel().await.unwrap();
    let m = ch.basic_get(q.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap().unwrap();
    assert_eq!(m.delivery.data, b"1");
    assert!(m.delivery.redelivered);
    delete_queue(&s.conn, &q).await;
}

/// An uncommitted ack is not applied if the channel closes first.
#[tokio::test(flavor = "multi_thread")]
async fn uncommitted_ack_is_dropped_on_close() {
    let s = session().await;
    let q = declare_queue(&s.ch, "tx-ack-uncommitted").await;
    publish_confirmed(&s.conn, &q, 1).await;
    s.ch.tx_select().await.unwrap();
    let m = s.ch.basic_get(q.as_str().into(), BasicGetOptions::default()).await.unwrap().unwrap();
    s.ch.basic_ack(m.delivery.delivery_tag, BasicAckOptions::default()).await.unwrap();
    sync(&s.ch).await;
    s.ch.close(200, "bye".into()).await.unwrap();
    assert_eq!(queue_counts(&s.conn, &q).await.0, 1);
    delete_queue(&s.conn, &q).await;
}

/// basic.reject with requeue inside a transaction also waits for commit.
#[tokio::test(flavor = "multi_thread")]
async fn reject_requeue_applies_on_commit() {
    let s = session().await;
    let q = declare_queue(&s.ch, "tx-reject").await;
    publish_confirmed(&s.conn, &q, 1).await;
    s.ch.tx_select().await.unwrap();
    let m = s.ch.basic_get(q.as_str().into(), BasicGetOptions::default()).await.unwrap().unwrap();
    s.ch.basic_reject(m.delivery.delivery_tag, BasicRejectOptions { requeue: true }).await.unwrap();
    sync(&s.ch).await;
    assert_eq!(queue_counts(&s.conn, &q).await.0, 0, "not requeued before commit");
    s.ch.tx_commit().await.unwrap();
    assert_eq!(queue_counts(&s.conn, &q).await.0, 1);
    let again = s.ch.basic_get(q.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap().unwrap();
    assert!(again.delivery.redelivered);
    delete_queue(&s.conn, &q).await;
}

/// A mandatory unroutable publish in a transaction is returned at commit, not before.
#[tokio::test(flavor = "multi_thread")]
async fn mandatory_return_happens_at_commit() {
    let s = session().await;
    s.ch.tx_select().await.unwrap();
    let rk = unique("nobody-home");
    s.ch.basic_publish(
        "".into(),
        rk.as_str().into(),
        BasicPublishOptions { mandatory: true, immediate: false },
        b"bounce",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    sync(&s.ch).await;
    assert!(s.ch.wait_for_confirms().await.unwrap().is_empty(), "nothing returned before commit");
    s.ch.tx_commit().await.unwrap();
    sync(&s.ch).await;
    let returned = s.ch.wait_for_confirms().await.unwrap();
    assert_eq!(returned.len(), 1);
    assert_eq!(returned[0].reply_code, 312);
    assert_eq!(returned[0].delivery.routing_key.as_str(), rk);
    assert_eq!(returned[0].delivery.data, b"bounce");
}

#[tokio::test(flavor = "multi_thread")]
async fn commit_without_select_406() {
    let s = session().await;
    let text = expect_code(s.ch.tx_commit().await, 406);
    assert_eq!(text, "PRECONDITION_FAILED - channel is not transactional");
    assert!(s.conn.status().connected());
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_without_select_406() {
    let s = session().await;
    let text = expect_code(s.ch.tx_rollback().await, 406);
    assert_eq!(text, "PRECONDITION_FAILED - channel is not transactional");
}

#[tokio::test(flavor = "multi_thread")]
async fn tx_select_is_idempotent() {
    let s = session().await;
    let q = declare_queue(&s.ch, "tx-select-twice").await;
    s.ch.tx_select().await.unwrap();
    s.ch.tx_select().await.unwrap();
    publish(&s.ch, &q, b"x").await;
    s.ch.tx_commit().await.unwrap();
    // An empty commit is fine too.
    s.ch.tx_commit().await.unwrap();
    assert_eq!(queue_counts(&s.conn, &q).await.0, 1);
    delete_queue(&s.conn, &q).await;
}
