//! Test data for the crates above the codec (feature `testing`; the codec's own unit tests
//! and the fuzz seeds use it too): inputs the codec must refuse, and field tables and
//! properties holding every type.
use amq_protocol::protocol::BasicProperties;
use amq_protocol::types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString};

/// A field table, with its length prefix, holding `depth` tables nested one inside the other
/// (each under key "a"): the shape that overflowed amq-protocol's recursive parser.
pub fn nested_table(depth: usize) -> Vec<u8> {
    let mut t = 0u32.to_be_bytes().to_vec();
    for _ in 0..depth {
        let mut entry = vec![1, b'a', b'F'];
        entry.extend_from_slice(&t);
        t = (entry.len() as u32).to_be_bytes().to_vec();
        t.extend_from_slice(&entry);
    }
    t
}

/// A field table holding every value type, a nested table and an array of tables.
pub fn every_type_table() -> FieldTable {
    let mut inner = FieldTable::default();
    inner.insert("count".into(), AMQPValue::LongInt(2));
    inner.insert("reason".into(), AMQPValue::LongString("expired".into()));
    let mut t = FieldTable::default();
    let values = [
        ("bool", AMQPValue::Boolean(true)),
        ("i8", AMQPValue::ShortShortInt(-2)),
        ("u8", AMQPValue::ShortShortUInt(200)),
        ("i16", AMQPValue::ShortInt(-300)),
        ("u16", AMQPValue::ShortUInt(60000)),
        ("i32", AMQPValue::LongInt(-70000)),
        ("u32", AMQPValue::LongUInt(4_000_000_000)),
        ("i64", AMQPValue::LongLongInt(-5_000_000_000)),
        ("f32", AMQPValue::Float(1.5)),
        ("f64", AMQPValue::Double(2.25)),
        ("decimal", AMQPValue::DecimalValue(DecimalValue { scale: 2, value: 12345 })),
        ("longstr", AMQPValue::LongString(LongString::from("hello"))),
        ("bytes", AMQPValue::ByteArray(ByteArray::from(vec![0u8, 1, 255]))),
        ("timestamp", AMQPValue::Timestamp(1_700_000_000)),
        ("table", AMQPValue::FieldTable(inner.clone())),
        ("x-death", AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::FieldTable(inner), AMQPValue::Void]))),
        ("void", AMQPValue::Void),
    ];
    for (k, v) in values {
        t.insert(k.into(), v);
    }
    t
}

/// Every basic property set, with [`every_type_table`] as headers.
pub fn full_properties() -> BasicProperties {
    BasicProperties::default()
        .with_content_type("text/plain".into())
        .with_content_encoding("identity".into())
        .with_headers(every_type_table())
        .with_delivery_mode(2)
        .with_priority(5)
        .with_correlation_id("corr".into())
        .with_reply_to("amq.rabbitmq.reply-to".into())
        .with_expiration("60000".into())
        .with_message_id("id-1".into())
        .with_timestamp(1_700_000_000)
        .with_type("kind".into())
        .with_user_id("guest".into())
        .with_app_id("app".into())
        .with_cluster_id("".into())
}
