//! Helpers shared by the unit tests: reference encodings via amq-protocol and hand-built bytes.

use crate::OutBuf;
use amq_protocol::frame::{parse_frame, AMQPFrame, WriteContext};
use amq_protocol::protocol::{gen_class, AMQPClass};
use amq_protocol::types::{AMQPValue, DecimalValue, FieldTable};
use bytes::{BufMut, Bytes};
use std::io::IoSlice;

/// A method frame payload (class, method, arguments) as amq-protocol generates it.
pub(crate) fn method_payload(class: &AMQPClass) -> Bytes {
    match gen_class(class)(WriteContext::from(Vec::new())) {
        Ok(ctx) => ctx.into_inner().0.into(),
        Err(e) => panic!("amq-protocol could not generate {class:?}: {e:?}"),
    }
}

/// A complete frame around `payload`.
pub(crate) fn frame_bytes(frame_type: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + 8);
    v.push(frame_type);
    v.extend_from_slice(&channel.to_be_bytes());
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v.push(crate::FRAME_END);
    v
}

/// Parses every frame in `bytes` with amq-protocol's own frame parser; all bytes must be used.
pub(crate) fn parse_all(mut bytes: &[u8]) -> Vec<AMQPFrame> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        match parse_frame(bytes) {
            Ok((rest, f)) => {
                frames.push(f);
                bytes = rest;
            }
            Err(e) => panic!("amq-protocol cannot parse {bytes:?}: {e:?}"),
        }
    }
    frames
}

/// Everything pending in `out`, gathered the way a vectored write would send it.
pub(crate) fn drain(out: &OutBuf) -> Vec<u8> {
    let mut slices = vec![IoSlice::new(&[]); 1024];
    let n = out.io_slices(&mut slices);
    assert!(n < slices.len(), "more slices than the test expects");
    let bytes: Vec<u8> = slices[..n].iter().flat_map(|s| s.iter().copied()).collect();
    assert_eq!(bytes.len(), out.len());
    bytes
}

pub(crate) use crate::testing::full_properties;

fn short(buf: &mut Vec<u8>, s: &[u8]) {
    buf.put_u8(s.len() as u8);
    buf.extend_from_slice(s);
}

/// A content-header payload built by hand the way a client writes one: all 14 properties set,
/// and a headers table with one entry per field-type tag RabbitMQ's table codec knows
/// (t b B s u I i l f d D S x T F A V), keys in reverse order so that re-encoding from
/// amq-protocol's sorted map could not reproduce it.
pub(crate) fn header_payload_with_all_field_types() -> Bytes {
    let mut t = Vec::new();
    let mut entry = |key: &str, tag: u8, value: &[u8]| {
        short(&mut t, key.as_bytes());
        t.push(tag);
        t.extend_from_slice(value);
    };
    entry("z-void", b'V', &[]);
    let mut array = Vec::new();
    array.push(b'I');
    array.extend_from_slice(&1i32.to_be_bytes());
    array.push(b'S');
    array.extend_from_slice(&1u32.to_be_bytes());
    array.push(b'a');
    array.push(b'V');
    let mut a = (array.len() as u32).to_be_bytes().to_vec();
    a.extend_from_slice(&array);
    entry("y-array", b'A', &a);
    let mut nested = Vec::new();
    short(&mut nested, b"k");
    nested.push(b'S');
    nested.extend_from_slice(&1u32.to_be_bytes());
    nested.push(b'v');
    let mut f = (nested.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(&nested);
    entry("x-table", b'F', &f);
    entry("w-timestamp", b'T', &1_700_000_000u64.to_be_bytes());
    entry("v-bytes", b'x', &[0, 0, 0, 3, 0, 1, 255]);
    entry("u-longstr", b'S', &[0, 0, 0, 5, b'h', b'e', b'l', b'l', b'o']);
    entry("t-decimal", b'D', &[2, 0, 0, 0x30, 0x39]);
    entry("s-double", b'd', &2.25f64.to_be_bytes());
    entry("r-float", b'f', &1.5f32.to_be_bytes());
    entry("q-i64", b'l', &(-5_000_000_000i64).to_be_bytes());
    entry("p-u32", b'i', &4_000_000_000u32.to_be_bytes());
    entry("o-i32", b'I', &(-70000i32).to_be_bytes());
    entry("n-u16", b'u', &60000u16.to_be_bytes());
    entry("m-i16", b's', &(-300i16).to_be_bytes());
    entry("l-u8", b'B', &[200]);
    entry("k-i8", b'b', &[0xFE]);
    entry("j-bool", b't', &[1]);

    let mut p = Vec::new();
    p.put_u16(60); // class
    p.put_u16(0); // weight
    p.put_u64(3); // body size
    p.put_u16(0xFFFC); // all 14 property flags
    short(&mut p, b"text/plain");
    short(&mut p, b"utf-8");
    p.put_u32(t.len() as u32);
    p.extend_from_slice(&t);
    p.put_u8(1); // delivery mode
    p.put_u8(5); // priority
    short(&mut p, b"corr-1");
    short(&mut p, b"reply.queue");
    short(&mut p, b"1000");
    short(&mut p, b"id-1");
    p.put_u64(1_700_000_002); // timestamp
    short(&mut p, b"kind");
    short(&mut p, b"guest");
    short(&mut p, b"app-1");
    short(&mut p, b"");
    p.into()
}

#[test]
fn hand_built_header_decodes_to_the_expected_values() {
    use amq_protocol::frame::parsing::parse_content_header;
    let raw = header_payload_with_all_field_types();
    let (rest, h) = parse_content_header(&raw[..]).unwrap();
    assert!(rest.is_empty());
    let p = h.properties;
    assert_eq!(p.delivery_mode(), &Some(1));
    assert_eq!(p.priority(), &Some(5));
    assert_eq!(p.timestamp(), &Some(1_700_000_002));
    assert_eq!(p.cluster_id().as_ref().map(|s| s.as_str()), Some(""));
    let headers = p.headers().as_ref().unwrap().inner();
    let get = |k: &str| headers.get(k).unwrap().clone();
    assert_eq!(get("j-bool"), AMQPValue::Boolean(true));
    assert_eq!(get("k-i8"), AMQPValue::ShortShortInt(-2));
    assert_eq!(get("l-u8"), AMQPValue::ShortShortUInt(200));
    assert_eq!(get("m-i16"), AMQPValue::ShortInt(-300));
    assert_eq!(get("n-u16"), AMQPValue::ShortUInt(60000));
    assert_eq!(get("o-i32"), AMQPValue::LongInt(-70000));
    assert_eq!(get("p-u32"), AMQPValue::LongUInt(4_000_000_000));
    assert_eq!(get("q-i64"), AMQPValue::LongLongInt(-5_000_000_000));
    assert_eq!(get("r-float"), AMQPValue::Float(1.5));
    assert_eq!(get("s-double"), AMQPValue::Double(2.25));
    assert_eq!(get("t-decimal"), AMQPValue::DecimalValue(DecimalValue { scale: 2, value: 12345 }));
    assert_eq!(get("u-longstr"), AMQPValue::LongString("hello".into()));
    assert_eq!(get("v-bytes"), AMQPValue::ByteArray(vec![0u8, 1, 255].into()));
    assert_eq!(get("w-timestamp"), AMQPValue::Timestamp(1_700_000_000));
    let mut nested = FieldTable::default();
    nested.insert("k".into(), AMQPValue::LongString("v".into()));
    assert_eq!(get("x-table"), AMQPValue::FieldTable(nested));
    assert_eq!(
        get("y-array"),
        AMQPValue::FieldArray(vec![AMQPValue::LongInt(1), AMQPValue::LongString("a".into()), AMQPValue::Void].into())
    );
    assert_eq!(get("z-void"), AMQPValue::Void);
}
