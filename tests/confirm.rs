//! Publisher confirms (confirm.select): acks for every publish, their delivery tags on the
//! wire, returns before acks, errors on confirm channels, and confirm/tx exclusivity.
mod common_b;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{basic, confirm, AMQPClass};
use common_b::raw::Raw;
use common_b::*;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::BasicProperties;
use lapin::Confirmation;

#[tokio::test(flavor = "multi_thread")]
async fn every_publish_is_acked() {
    const N: usize = 500;
    let s = session().await;
    let q = declare_queue(&s.ch, "confirm-all").await;
    s.ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    assert!(s.ch.status().confirm());

    let mut pending = Vec::with_capacity(N);
    for i in 0..N {
        let confirm =
            s.ch.basic_publish(
                "".into(),
                q.as_str().into(),
                BasicPublishOptions::default(),
                i.to_string().as_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap();
        pending.push(confirm);
    }
    for (i, confirm) in pending.into_iter().enumerate() {
        assert_eq!(confirm.await.unwrap(), Confirmation::Ack(None), "publish {i}");
    }
    assert_eq!(queue_counts(&s.conn, &q).await.0, N as u32, "acked means enqueued");
    delete_queue(&s.conn, &q).await;
}

/// Unroutable publishes (no mandatory flag) are still confirmed: the broker has taken
/// responsibility for them, by dropping them.
#[tokio::test(flavor = "multi_thread")]
async fn unroutable_publish_is_acked() {
    let s = session().await;
    s.ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    let confirm =
        s.ch.basic_publish(
            "amq.direct".into(),
            unique("unbound").as_str().into(),
            BasicPublishOptions::default(),
            b"into the void",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(confirm, Confirmation::Ack(None));
}

/// On the wire: select-ok, then acks whose delivery tags number the publishes 1, 2, 3...
/// An ack may cover several publishes with multiple=true (all unconfirmed tags up to it).
/// Together the acks confirm exactly 1..=N, each tag once.
///
/// Acks need not come in publish order: RabbitMQ confirms an unroutable publish at once
/// but a routed one only when its queue has taken it, so the unroutable tags below may be
/// acked before earlier routed ones.
#[tokio::test(flavor = "multi_thread")]
async fn confirm_delivery_tags_count_publishes_from_one() {
    const N: u64 = 200;
    let s = session().await;
    let q = declare_queue(&s.ch, "confirm-tags").await;
    let mut raw = Raw::open(&s.broker.host_port()).await;
    raw.method(1, AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select { nowait: false }))).await;
    match raw.recv().await {
        AMQPFrame::Method(1, AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_))) => {}
        other => panic!("expected confirm.select-ok, got {other:?}"),
    }
    for i in 0..N {
        // Every 7th publish is unroutable: it still takes a sequence number.
        let rk = if i % 7 == 3 { "no-such-queue-for-confirm-tags" } else { q.as_str() };
        raw.publish(1, "", rk, false, i.to_string().as_bytes()).await;
    }
    let mut unconfirmed: std::collections::BTreeSet<u64> = (1..=N).collect();
    while !unconfirmed.is_empty() {
        match raw.recv().await {
            AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Ack(ack))) => {
                let tag = ack.delivery_tag;
                assert!(unconfirmed.contains(&tag), "ack for tag {tag}, which is not outstanding");
                if ack.multiple {
                    unconfirmed.retain(|t| *t > tag);
                } else {
                    unconfirmed.remove(&tag);
                }
            }
            other => panic!("expected basic.ack, got {other:?}"),
        }
    }
    assert_eq!(queue_counts(&s.conn, &q).await.0, (N - (N + 3) / 7) as u32);
    delete_queue(&s.conn, &q).await;
}

/// All publishes routed to one queue: RabbitMQ confirms them in order, so tags rise
/// monotonically and reach exactly N.
#[tokio::test(flavor = "multi_thread")]
async fn confirms_for_one_queue_rise_to_n() {
    const N: u64 = 300;
    let s = session().await;
    let q = declare_queue(&s.ch, "confirm-tags-ordered").await;
    let mut raw = Raw::open(&s.broker.host_port()).await;
    raw.method(1, AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select { nowait: false }))).await;
    assert!(matches!(raw.recv().await, AMQPFrame::Method(1, AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_)))));
    for i in 0..N {
        raw.publish(1, "", &q, false, i.to_string().as_bytes()).await;
    }
    let mut confirmed = 0u64;
    while confirmed < N {
        match raw.recv().await {
            AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Ack(ack))) => {
                assert!(ack.delivery_tag > confirmed, "tag {} after {confirmed}", ack.delivery_tag);
                assert!(ack.delivery_tag <= N);
                if !ack.multiple {
                    assert_eq!(ack.delivery_tag, confirmed + 1, "a single ack skipped a tag");
                }
                confirmed = ack.delivery_tag;
            }
            other => panic!("expected basic.ack, got {other:?}"),
        }
    }
    assert_eq!(queue_counts(&s.conn, &q).await.0, N as u32);
    delete_queue(&s.conn, &q).await;
}

/// A mandatory publish that cannot be routed is returned (312 NO_ROUTE) *and then* acked.
#[tokio::test(flavor = "multi_thread")]
async fn mandatory_unroutable_returned_then_acked() {
    let s = session().await;
    s.ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    let rk = unique("nobody-home");
    let confirmation =
        s.ch.basic_publish(
            "".into(),
            rk.as_str().into(),
            BasicPublishOptions { mandatory: true, immediate: false },
            b"returned",
            BasicProperties::default().with_priority(3),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirmation.is_ack(), "{confirmation:?}");
    let returned = confirmation.take_message().expect("the ack carries the returned message");
    assert_eq!(returned.reply_code, 312);
    assert_eq!(returned.reply_text.as_str(), "NO_ROUTE");
    assert_eq!(returned.delivery.exchange.as_str(), "");
    assert_eq!(returned.delivery.routing_key.as_str(), rk);
    assert_eq!(returned.delivery.data, b"returned");
    assert_eq!(returned.delivery.properties, BasicProperties::default().with_priority(3));
}

/// The order on the wire: basic.return, its content, then basic.ack for the same publish.
#[tokio::test(flavor = "multi_thread")]
async fn return_precedes_ack_on_the_wire() {
    let b = warren_it::start();
    let mut raw = Raw::open(&b.host_port()).await;
    raw.method(1, AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select { nowait: false }))).await;
    assert!(matches!(raw.recv().await, AMQPFrame::Method(1, AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_)))));
    raw.publish(1, "", &unique("nobody-home"), true, b"xyz").await;
    match raw.recv().await {
        AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Return(r))) => {
            assert_eq!(r.reply_code, 312);
            assert_eq!(r.reply_text.as_str(), "NO_ROUTE");
        }
        other => panic!("expected basic.return, got {other:?}"),
    }
    match raw.recv().await {
        AMQPFrame::Header(1, h) => assert_eq!(h.body_size, 3),
        other => panic!("expected content header, got {other:?}"),
    }
    assert_eq!(raw.recv().await, AMQPFrame::Body(1, b"xyz".to_vec()));
    match raw.recv().await {
        AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Ack(ack))) => {
            assert_eq!(ack.delivery_tag, 1);
            assert!(!ack.multiple);
        }
        other => panic!("expected basic.ack, got {other:?}"),
    }
}

/// Publishing to a missing exchange on a confirm channel closes the channel with 404, and
/// the outstanding confirm fails with that error.
#[tokio::test(flavor = "multi_thread")]
async fn publish_to_missing_exchange_on_confirm_channel_404() {
    let s = session().await;
    let mut events = s.conn.events_listener();
    s.ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    let missing = unique("no-such-exchange");
    let confirm =
        s.ch.basic_publish(
            missing.as_str().into(),
            "k".into(),
            BasicPublishOptions::default(),
            b"x",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    let err = confirm.await.expect_err("no ack for a publish that closed the channel");
    assert_eq!(reply_code(&err), Some(404), "{err}");
    assert_eq!(reply_text(&err).unwrap(), format!("NOT_FOUND - no exchange '{missing}' in vhost '/'"));
    let err = channel_close_error(&mut events, &s.ch).await;
    assert_eq!(reply_code(&err), Some(404));
    assert!(s.conn.status().connected());
}

#[tokio::test(flavor = "multi_thread")]
async fn confirm_select_is_idempotent() {
    let s = session().await;
    s.ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    s.ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    let c =
        s.ch.basic_publish(
            "amq.direct".into(),
            "x".into(),
            BasicPublishOptions::default(),
            b"x",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(c.is_ack());
}

#[tokio::test(flavor = "multi_thread")]
async fn tx_select_on_confirm_channel_406() {
    let s = session().await;
    s.ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    let text = expect_code(s.ch.tx_select().await, 406);
    assert_eq!(text, "PRECONDITION_FAILED - cannot switch from confirm to tx mode");
    assert!(s.conn.status().connected());
}

#[tokio::test(flavor = "multi_thread")]
async fn confirm_select_on_tx_channel_406() {
    let s = session().await;
    s.ch.tx_select().await.unwrap();
    let text = expect_code(s.ch.confirm_select(ConfirmSelectOptions::default()).await, 406);
    assert_eq!(text, "PRECONDITION_FAILED - cannot switch from tx to confirm mode");
    assert!(s.conn.status().connected());
}

/// Without confirm.select, lapin reports every publish as NotRequested: the broker sends no
/// basic.ack (a stray one would make lapin close the channel, failing the round-trip).
#[tokio::test(flavor = "multi_thread")]
async fn no_acks_without_confirm_select() {
    let s = session().await;
    let q = declare_queue(&s.ch, "confirm-none").await;
    let c = s
        .ch
        .basic_publish("".into(), q.as_str().into(), BasicPublishOptions::default(), b"x", BasicProperties::default())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(c, Confirmation::NotRequested);
    sync(&s.ch).await;
    delete_queue(&s.conn, &q).await;
}
