//! Generated round trips: methods and content headers with field tables of every value type,
//! nested, encoded by Warren's encoders and decoded by `decode_frame`, come back equal; and no
//! prefix of a valid frame decodes to anything but "need more bytes".
use amq_protocol::protocol::{basic, channel, connection, exchange, queue, AMQPClass, BasicProperties};
use amq_protocol::types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString, ShortString};
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use std::io::IoSlice;
use warren_codec::{decode_frame, encode_content, encode_method, ContentHeader, Frame, Method, OutBuf};

fn short_string() -> impl Strategy<Value = ShortString> {
    // Short strings are UTF-8 of at most 255 bytes; 60 chars of up to 4 bytes stay below.
    "\\PC{0,60}".prop_map(ShortString::from)
}

fn long_string() -> impl Strategy<Value = LongString> {
    prop::collection::vec(any::<u8>(), 0..64).prop_map(LongString::from)
}

fn to_table(m: std::collections::BTreeMap<ShortString, AMQPValue>) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in m {
        t.insert(k, v);
    }
    t
}

/// Every value type amq-protocol writes with a tag that reads back as the same type
/// (ShortString has no wire tag of its own, LongLongUInt is written as 'l' and reads back
/// signed). Floats exclude NaN, which is never equal to itself.
fn value() -> impl Strategy<Value = AMQPValue> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(AMQPValue::Boolean),
        any::<i8>().prop_map(AMQPValue::ShortShortInt),
        any::<u8>().prop_map(AMQPValue::ShortShortUInt),
        any::<i16>().prop_map(AMQPValue::ShortInt),
        any::<u16>().prop_map(AMQPValue::ShortUInt),
        any::<i32>().prop_map(AMQPValue::LongInt),
        any::<u32>().prop_map(AMQPValue::LongUInt),
        any::<i64>().prop_map(AMQPValue::LongLongInt),
        any::<f32>().prop_filter("NaN", |f| !f.is_nan()).prop_map(AMQPValue::Float),
        any::<f64>().prop_filter("NaN", |f| !f.is_nan()).prop_map(AMQPValue::Double),
        (any::<u8>(), any::<u32>()).prop_map(|(scale, value)| AMQPValue::DecimalValue(DecimalValue { scale, value })),
        long_string().prop_map(AMQPValue::LongString),
        any::<u64>().prop_map(AMQPValue::Timestamp),
        prop::collection::vec(any::<u8>(), 0..32).prop_map(|b| AMQPValue::ByteArray(ByteArray::from(b))),
        Just(AMQPValue::Void),
    ];
    // Tables and arrays inside each other, up to 4 levels.
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::btree_map(short_string(), inner.clone(), 0..6)
                .prop_map(|m| AMQPValue::FieldTable(to_table(m))),
            prop::collection::vec(inner, 0..6).prop_map(|v| AMQPValue::FieldArray(FieldArray::from(v))),
        ]
    })
}

fn table() -> impl Strategy<Value = FieldTable> {
    prop::collection::btree_map(short_string(), value(), 0..8).prop_map(to_table)
}

fn queue_declare() -> impl Strategy<Value = AMQPClass> {
    (short_string(), prop::array::uniform5(any::<bool>()), table()).prop_map(|(queue, f, arguments)| {
        AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue,
            passive: f[0],
            durable: f[1],
            exclusive: f[2],
            auto_delete: f[3],
            nowait: f[4],
            arguments,
        }))
    })
}

fn exchange_declare() -> impl Strategy<Value = AMQPClass> {
    (short_string(), short_string(), prop::array::uniform5(any::<bool>()), table()).prop_map(
        |(exchange, kind, f, arguments)| {
            AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
                exchange,
                kind,
                passive: f[0],
                durable: f[1],
                auto_delete: f[2],
                internal: f[3],
                nowait: f[4],
                arguments,
            }))
        },
    )
}

fn bindings() -> impl Strategy<Value = AMQPClass> {
    (short_string(), short_string(), short_string(), any::<bool>(), table(), any::<bool>()).prop_map(
        |(a, b, routing_key, nowait, arguments, queue)| {
            if queue {
                AMQPClass::Queue(queue::AMQPMethod::Bind(queue::Bind {
                    queue: a,
                    exchange: b,
                    routing_key,
                    nowait,
                    arguments,
                }))
            } else {
                AMQPClass::Exchange(exchange::AMQPMethod::Bind(exchange::Bind {
                    destination: a,
                    source: b,
                    routing_key,
                    nowait,
                    arguments,
                }))
            }
        },
    )
}

fn consume() -> impl Strategy<Value = AMQPClass> {
    (short_string(), short_string(), prop::array::uniform4(any::<bool>()), table()).prop_map(
        |(queue, consumer_tag, f, arguments)| {
            AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
                queue,
                consumer_tag,
                no_local: f[0],
                no_ack: f[1],
                exclusive: f[2],
                nowait: f[3],
                arguments,
            }))
        },
    )
}

fn start_ok() -> impl Strategy<Value = AMQPClass> {
    (table(), short_string(), long_string(), short_string()).prop_map(
        |(client_properties, mechanism, response, locale)| {
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties,
                mechanism,
                response,
                locale,
            }))
        },
    )
}

/// Methods without tables, including the ones Warren decodes by hand (basic.ack).
fn small_methods() -> impl Strategy<Value = AMQPClass> {
    prop_oneof![
        (any::<u64>(), any::<bool>()).prop_map(|(delivery_tag, multiple)| AMQPClass::Basic(basic::AMQPMethod::Ack(
            basic::Ack { delivery_tag, multiple }
        ))),
        (any::<u64>(), any::<bool>(), any::<bool>()).prop_map(|(delivery_tag, multiple, requeue)| {
            AMQPClass::Basic(basic::AMQPMethod::Nack(basic::Nack { delivery_tag, multiple, requeue }))
        }),
        (any::<u16>(), short_string(), any::<u16>(), any::<u16>()).prop_map(
            |(reply_code, reply_text, class_id, method_id)| {
                AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
                    reply_code,
                    reply_text,
                    class_id,
                    method_id,
                }))
            }
        ),
        (any::<u16>(), any::<bool>()).prop_map(|(prefetch_count, global)| AMQPClass::Basic(basic::AMQPMethod::Qos(
            basic::Qos { prefetch_count, global }
        ))),
    ]
}

fn method() -> impl Strategy<Value = AMQPClass> {
    prop_oneof![queue_declare(), exchange_declare(), bindings(), consume(), start_ok(), small_methods()]
}

type Setter = fn(BasicProperties, ShortString) -> BasicProperties;

/// Every basic property, each present or not.
fn properties() -> impl Strategy<Value = BasicProperties> {
    let strings = prop::collection::vec(prop::option::of(short_string()), 9);
    let numbers = (prop::option::of(any::<u8>()), prop::option::of(any::<u8>()), prop::option::of(any::<u64>()));
    (strings, prop::option::of(table()), numbers).prop_map(|(s, headers, (delivery_mode, priority, timestamp))| {
        let setters: [Setter; 9] = [
            BasicProperties::with_content_type,
            BasicProperties::with_content_encoding,
            BasicProperties::with_correlation_id,
            BasicProperties::with_reply_to,
            BasicProperties::with_expiration,
            BasicProperties::with_message_id,
            BasicProperties::with_type,
            BasicProperties::with_user_id,
            BasicProperties::with_app_id,
        ];
        let mut p = BasicProperties::default();
        for (value, set) in s.into_iter().zip(setters) {
            if let Some(v) = value {
                p = set(p, v);
            }
        }
        if let Some(h) = headers {
            p = p.with_headers(h);
        }
        if let Some(d) = delivery_mode {
            p = p.with_delivery_mode(d);
        }
        if let Some(pr) = priority {
            p = p.with_priority(pr);
        }
        if let Some(t) = timestamp {
            p = p.with_timestamp(t);
        }
        p
    })
}

fn drain(out: &OutBuf) -> Vec<u8> {
    let mut slices = vec![IoSlice::new(&[]); 4096];
    let n = out.io_slices(&mut slices);
    slices[..n].iter().flat_map(|s| s.iter().copied()).collect()
}

/// Every strict prefix of one whole frame waits for more bytes (consuming none), and the
/// rest of the frame then completes it.
fn prefixes_wait(frame: &[u8], frame_max: u32) -> Result<(), TestCaseError> {
    for cut in 0..frame.len() {
        let mut buf = BytesMut::from(&frame[..cut]);
        let r = decode_frame(&mut buf, frame_max);
        prop_assert!(matches!(r, Ok(None)), "prefix of {} bytes: {:?}", cut, r);
        prop_assert_eq!(buf.len(), cut);
        buf.extend_from_slice(&frame[cut..]);
        prop_assert!(matches!(decode_frame(&mut buf, frame_max), Ok(Some(_))), "not completed after {}", cut);
    }
    Ok(())
}

proptest! {
    // Modest on purpose: CI runs this on every change; the fuzzer does the long runs.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn methods_round_trip(class in method(), channel in any::<u16>()) {
        let mut buf = BytesMut::new();
        encode_method(&mut buf, channel, &class);
        let bytes = buf.to_vec();
        let decoded = decode_frame(&mut buf, 0).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(buf.is_empty());
        prop_assert_eq!(decoded, Some(Frame::Method { channel, method: Method::Other(class) }));
        prefixes_wait(&bytes, 0)?;
    }

    #[test]
    fn publish_round_trips_through_the_hand_written_decoder(
        exchange in short_string(),
        routing_key in short_string(),
        mandatory in any::<bool>(),
        immediate in any::<bool>(),
    ) {
        let class = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: exchange.clone(),
            routing_key: routing_key.clone(),
            mandatory,
            immediate,
        }));
        let mut buf = BytesMut::new();
        encode_method(&mut buf, 1, &class);
        let bytes = buf.to_vec();
        let Ok(Some(Frame::Method { channel: 1, method: Method::Publish(p) })) = decode_frame(&mut buf, 0) else {
            return Err(TestCaseError::fail("not decoded as a publish"));
        };
        prop_assert_eq!(&p.exchange[..], exchange.as_str().as_bytes());
        prop_assert_eq!(&p.routing_key[..], routing_key.as_str().as_bytes());
        prop_assert_eq!((p.mandatory, p.immediate), (mandatory, immediate));
        prefixes_wait(&bytes, 4096)?;
    }

    #[test]
    fn content_round_trips(
        props in properties(),
        body in prop::collection::vec(any::<u8>(), 0..10_000),
        frame_max in prop_oneof![Just(0u32), Just(4096u32), 4096u32..20_000],
        channel in 1u16..,
    ) {
        let header = ContentHeader::new(60, body.len() as u64, props.clone());
        let mut out = OutBuf::new();
        encode_content(&mut out, channel, &header, &Bytes::from(body.clone()), frame_max);
        let bytes = drain(&out);
        let mut buf = BytesMut::from(&bytes[..]);
        let Ok(Some(Frame::Header { channel: ch, header: got })) = decode_frame(&mut buf, frame_max) else {
            return Err(TestCaseError::fail("no header frame first"));
        };
        prop_assert_eq!(ch, channel);
        prop_assert_eq!(got.properties(), props);
        prop_assert_eq!(&got, &header);
        let header_len = bytes.len() - buf.len();
        prefixes_wait(&bytes[..header_len], frame_max)?;
        let mut received = Vec::new();
        while !buf.is_empty() {
            match decode_frame(&mut buf, frame_max) {
                Ok(Some(Frame::Body { channel: ch, payload })) => {
                    prop_assert_eq!(ch, channel);
                    prop_assert!(frame_max == 0 || payload.len() + 8 <= frame_max as usize);
                    received.extend_from_slice(&payload);
                }
                other => return Err(TestCaseError::fail(format!("expected a body frame, got {other:?}"))),
            }
        }
        prop_assert_eq!(received, body);
    }
}
