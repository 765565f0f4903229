//! Message properties and bodies survive the broker unchanged: every basic property, a
//! headers table holding every field type lapin can encode, empty and large bodies.
mod common_b;

use common_b::*;
use lapin::options::{BasicGetOptions, BasicPublishOptions};
use lapin::types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString};
use lapin::BasicProperties;

fn every_property() -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert("x-custom".into(), AMQPValue::LongString("value".into()));
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("gzip".into())
        .with_headers(headers)
        .with_delivery_mode(2)
        .with_priority(7)
        .with_correlation_id("corr-42".into())
        .with_reply_to("amq.rabbitmq.reply-to.not-used".into())
        // Long enough that the message cannot expire during the test.
        .with_expiration("3600000".into())
        .with_message_id("msg-0001".into())
        .with_timestamp(1_700_000_000)
        .with_type("order.created".into())
        // RabbitMQ checks user_id against the authenticated user: it must be "guest" here.
        .with_user_id("guest".into())
        .with_app_id("warren-it".into())
        .with_cluster_id("cluster-a".into())
}

/// Every field type of a field table that lapin (amq-protocol) writes in RabbitMQ's dialect.
/// Not included: short strings (amq-protocol has no wire tag for them in tables) and
/// unsigned 64-bit integers (RabbitMQ has no such field type).
fn every_field_type() -> FieldTable {
    let mut inner = FieldTable::default();
    inner.insert("inner-int".into(), AMQPValue::LongInt(-7));
    inner.insert("inner-str".into(), AMQPValue::LongString("deep".into()));
    let mut nested_in_array = FieldTable::default();
    nested_in_array.insert("k".into(), AMQPValue::Boolean(false));

    let mut t = FieldTable::default();
    t.insert("bool-true".into(), AMQPValue::Boolean(true));
    t.insert("bool-false".into(), AMQPValue::Boolean(false));
    t.insert("i8".into(), AMQPValue::ShortShortInt(-128));
    t.insert("u8".into(), AMQPValue::ShortShortUInt(255));
    t.insert("i16".into(), AMQPValue::ShortInt(-32768));
    t.insert("u16".into(), AMQPValue::ShortUInt(65535));
    t.insert("i32".into(), AMQPValue::LongInt(i32::MIN));
    t.insert("u32".into(), AMQPValue::LongUInt(u32::MAX));
    t.insert("i64".into(), AMQPValue::LongLongInt(i64::MIN));
    t.insert("f32".into(), AMQPValue::Float(3.5));
    t.insert("f64".into(), AMQPValue::Double(-1.25e300));
    t.insert("decimal".into(), AMQPValue::DecimalValue(DecimalValue { scale: 3, value: 123_456 }));
    t.insert("long-string".into(), AMQPValue::LongString(LongString::from("x".repeat(1000))));
    t.insert("empty-string".into(), AMQPValue::LongString("".into()));
    t.insert("utf8-string".into(), AMQPValue::LongString("h\u{e9}llo \u{2603}".into()));
    t.insert("bytes".into(), AMQPValue::ByteArray(ByteArray::from(vec![0u8, 1, 2, 255])));
    t.insert("timestamp".into(), AMQPValue::Timestamp(1_234_567_890));
    t.insert("table".into(), AMQPValue::FieldTable(inner));
    t.insert("empty-table".into(), AMQPValue::FieldTable(FieldTable::default()));
    t.insert(
        "array".into(),
        AMQPValue::FieldArray(FieldArray::from(vec![
            AMQPValue::LongInt(1),
            AMQPValue::LongString("two".into()),
            AMQPValue::Boolean(true),
            AMQPValue::FieldTable(nested_in_array),
            AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::Void])),
        ])),
    );
    t.insert("empty-array".into(), AMQPValue::FieldArray(FieldArray::default()));
    t.insert("void".into(), AMQPValue::Void);
    t
}

#[tokio::test(flavor = "multi_thread")]
async fn every_basic_property_round_trips_via_consume() {
    let s = session().await;
    let q = declare_queue(&s.ch, "props-all").await;
    let props = every_property();
    publish_props(&s.ch, "", &q, b"payload", props.clone()).await;
    let mut c = consume(&s.ch, &q, "c", true).await;
    let d = next_delivery(&mut c).await;
    assert_eq!(d.properties, props);
    assert_eq!(d.data, b"payload");
    delete_queue(&s.conn, &q).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_basic_property_round_trips_via_get() {
    let s = session().await;
    let q = declare_queue(&s.ch, "props-all-get").await;
    let props = every_property();
    publish_props(&s.ch, "", &q, b"payload", props.clone()).await;
    let m = s.ch.basic_get(q.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap().unwrap();
    assert_eq!(m.delivery.properties, props);
    delete_queue(&s.conn, &q).await;
}

/// No properties at all stays no properties (the broker adds none).
#[tokio::test(flavor = "multi_thread")]
async fn absent_properties_stay_absent() {
    let s = session().await;
    let q = declare_queue(&s.ch, "props-none").await;
    publish(&s.ch, &q, b"bare").await;
    let m = s.ch.basic_get(q.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap().unwrap();
    assert_eq!(m.delivery.properties, BasicProperties::default());
    delete_queue(&s.conn, &q).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn headers_with_every_field_type_round_trip() {
    let s = session().await;
    let q = declare_queue(&s.ch, "props-headers").await;
    let props = BasicProperties::default().with_headers(every_field_type());
    publish_props(&s.ch, "", &q, b"typed", props.clone()).await;
    let mut c = consume(&s.ch, &q, "c", true).await;
    let d = next_delivery(&mut c).await;
    let got = d.properties.headers().clone().expect("headers present");
    let want = every_field_type();
    // Compare key by key first for a readable failure, then the whole table.
    for (k, v) in want.inner() {
        assert_eq!(got.inner().get(k), Some(v), "header {k}");
    }
    assert_eq!(got, want);
    assert_eq!(d.properties, props);
    delete_queue(&s.conn, &q).await;
}

/// RabbitMQ validates user_id against the connection's user: a mismatch closes the channel
/// with 406 and the message is not enqueued.
#[tokio::test(flavor = "multi_thread")]
async fn user_id_must_match_authenticated_user() {
    let s = session().await;
    let mut events = s.conn.events_listener();
    let q = declare_queue(&s.ch, "props-user-id").await;
    publish_props(&s.ch, "", &q, b"ok", BasicProperties::default().with_user_id("guest".into())).await;
    sync(&s.ch).await;
    assert_eq!(queue_counts(&s.conn, &q).await.0, 1);

    publish_props(&s.ch, "", &q, b"forged", BasicProperties::default().with_user_id("mallory".into())).await;
    let err = channel_close_error(&mut events, &s.ch).await;
    assert_eq!(reply_code(&err), Some(406));
    assert_eq!(
        reply_text(&err).unwrap(),
        "PRECONDITION_FAILED - user_id property set to 'mallory' but authenticated user was 'guest'"
    );
    assert_eq!(queue_counts(&s.conn, &q).await.0, 1, "the forged message was not enqueued");
    delete_queue(&s.conn, &q).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_body_round_trips() {
    let s = session().await;
    let q = declare_queue(&s.ch, "props-empty").await;
    let props = BasicProperties::default().with_content_type("text/plain".into());
    publish_props(&s.ch, "", &q, b"", props.clone()).await;
    let mut c = consume(&s.ch, &q, "c", true).await;
    let d = next_delivery(&mut c).await;
    assert!(d.data.is_empty());
    assert_eq!(d.properties, props);
    // A following message is not mixed up with the empty one.
    publish(&s.ch, &q, b"next").await;
    assert_eq!(text(&next_delivery(&mut c).await), "next");
    delete_queue(&s.conn, &q).await;
}

/// 1 MiB spans many body frames (frame_max is 128 KiB by default) and must come back
/// byte-for-byte.
#[tokio::test(flavor = "multi_thread")]
async fn one_megabyte_body_round_trips() {
    let s = session().await;
    let q = declare_queue(&s.ch, "props-1mb").await;
    let body: Vec<u8> = (0..1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    s.ch.confirm_select(Default::default()).await.unwrap();
    let confirm =
        s.ch.basic_publish("".into(), q.as_str().into(), BasicPublishOptions::default(), &body, every_property())
            .await
            .unwrap()
            .await
            .unwrap();
    assert!(confirm.is_ack());
    let mut c = consume(&s.ch, &q, "c", true).await;
    let d = next_delivery(&mut c).await;
    assert_eq!(d.data.len(), body.len());
    assert!(d.data == body, "1 MiB body differs");
    assert_eq!(d.properties, every_property());
    let m = s.ch.basic_get(q.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap();
    assert!(m.is_none());
    delete_queue(&s.conn, &q).await;
}
