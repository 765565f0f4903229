//! The codec targets: frames, method payloads, content-header payloads.
use amq_protocol::protocol::{basic, AMQPClass};
use amq_protocol::types::parsing::parse_field_table;
use bytes::{BufMut, BytesMut};
use warren_codec::{decode_frame, encode_method, table_too_deep, ContentHeader, Frame, Method, FRAME_END};

/// A stream of frames. The first byte picks the frame_max in force (none, the 4096 minimum,
/// or Warren's default 131072), so the size check and the unlimited path are both reached.
pub fn frame(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else { return };
    let frame_max = [0, warren_codec::FRAME_MIN_SIZE, 131_072][usize::from(pick % 3)];
    let mut buf = BytesMut::from(rest);
    loop {
        let before = buf.len();
        match decode_frame(&mut buf, frame_max) {
            Ok(Some(f)) => {
                assert!(buf.len() < before, "a decoded frame must consume bytes");
                check_frame(&f);
            }
            Ok(None) => {
                assert_eq!(buf.len(), before, "waiting for more bytes must not consume any");
                return;
            }
            Err(_) => return,
        }
    }
}

/// One method frame payload: class id, method id, arguments. The same bytes are also read as
/// a bare field table, as the handshake reads an AMQPLAIN response: whenever the nesting scan
/// lets a table through, amq-protocol's recursive parser must be safe to run on it.
pub fn method(data: &[u8]) {
    decode_one(1, data);
    if !table_too_deep(data) {
        let _ = parse_field_table(data);
    }
}

/// One content-header frame payload: class id, weight, body size, property flags, properties.
pub fn header(data: &[u8]) {
    decode_one(2, data);
}

/// Wraps `payload` in one frame of `frame_type` on channel 1 and decodes it.
fn decode_one(frame_type: u8, payload: &[u8]) {
    let mut buf = frame_bytes(frame_type, 1, payload);
    if let Ok(Some(f)) = decode_frame(&mut buf, 0) {
        assert!(buf.is_empty(), "one frame in, one frame out");
        check_frame(&f);
    }
}

fn frame_bytes(frame_type: u8, channel: u16, payload: &[u8]) -> BytesMut {
    let mut buf = BytesMut::with_capacity(payload.len() + 8);
    buf.put_u8(frame_type);
    buf.put_u16(channel);
    buf.put_u32(payload.len() as u32);
    buf.extend_from_slice(payload);
    buf.put_u8(FRAME_END);
    buf
}

/// What must hold of any frame the decoder accepted.
fn check_frame(f: &Frame) {
    match f {
        Frame::Method { method: Method::Other(class), .. } => check_class(class),
        Frame::Method { method: Method::Publish(p), .. } => {
            let text = |b: &[u8]| std::str::from_utf8(b).expect("publish names were checked as UTF-8").to_owned();
            let class = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                exchange: text(&p.exchange).into(),
                routing_key: text(&p.routing_key).into(),
                mandatory: p.mandatory,
                immediate: p.immediate,
            }));
            let Method::Publish(again) = redecode(&class) else { panic!("a publish decodes as a publish") };
            assert_eq!(&again, p, "publish round trip");
        }
        Frame::Header { header, .. } => check_header(header),
        Frame::Body { .. } | Frame::Heartbeat => {}
    }
}

/// A decoded method, encoded again, decodes to a method that encodes to the same bytes. Bytes,
/// not values, are compared: a NaN float header is legal and never equal to itself.
fn check_class(class: &AMQPClass) {
    let first = encoded(class);
    let Method::Other(again) = redecode(class) else { panic!("only basic.publish decodes as Publish") };
    assert_eq!(encoded(&again), first, "method round trip changed the encoding of {class:?}");
}

fn encoded(class: &AMQPClass) -> BytesMut {
    let mut buf = BytesMut::new();
    encode_method(&mut buf, 1, class);
    buf
}

fn redecode(class: &AMQPClass) -> Method {
    let mut buf = encoded(class);
    match decode_frame(&mut buf, 0) {
        Ok(Some(Frame::Method { channel: 1, method })) => method,
        other => panic!("Warren's encoding of {class:?} does not decode: {other:?}"),
    }
}

/// The fast accessors agree with the parsed properties, and the properties round-trip.
fn check_header(h: &ContentHeader) {
    let props = h.properties();
    assert_eq!(h.delivery_mode(), props.delivery_mode().unwrap_or(0), "delivery_mode accessor");
    assert_eq!(h.user_id(), props.user_id().as_ref().map(|u| u.to_string()), "user_id accessor");
    let _ = h.weight();
    let rebuilt = ContentHeader::new(h.class_id, h.body_size, props);
    let back = match ContentHeader::decode(rebuilt.raw.clone()) {
        Ok(b) => b,
        Err(e) => panic!("a re-encoded header does not decode: {e}"),
    };
    assert_eq!((back.class_id, back.body_size), (h.class_id, h.body_size));
    let again = ContentHeader::new(back.class_id, back.body_size, back.properties());
    assert_eq!(again.raw, rebuilt.raw, "header round trip changed the encoding");
}
