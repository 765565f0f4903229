//! Method frames: the hand-written basic.publish fast path and amq-protocol for the rest.

use crate::error::{cannot_decode, malformed_utf8, too_deep, CodecError};
use crate::nesting;
use crate::FRAME_METHOD;
use amq_protocol::frame::ParserError;
use amq_protocol::protocol::{parse_class, AMQPClass};
use bytes::Bytes;

/// basic.publish, parsed without allocating: the names are slices of the frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publish {
    /// Exchange name, the raw short-string bytes (checked to be UTF-8).
    pub exchange: Bytes,
    /// Routing key, the raw short-string bytes (checked to be UTF-8).
    pub routing_key: Bytes,
    pub mandatory: bool,
    pub immediate: bool,
}

/// A decoded method frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Method {
    Publish(Publish),
    Other(AMQPClass),
}

impl Method {
    /// The method's (class id, method id), e.g. (60, 40) for basic.publish.
    pub fn class_method(&self) -> (u16, u16) {
        match self {
            Method::Publish(_) => (60, 40),
            Method::Other(c) => (c.get_amqp_class_id(), c.get_amqp_method_id()),
        }
    }
}

/// Whether (class, method) is an AMQP 0-9-1 method as RabbitMQ defines the protocol, including
/// its extensions (confirm class 85, basic.nack, connection.blocked/unblocked,
/// connection.update-secret). Note exchange.unbind-ok is 40/51, as in RabbitMQ's spec file.
pub fn is_known_method(class_id: u16, method_id: u16) -> bool {
    let methods: &[u16] = match class_id {
        10 => &[10, 11, 20, 21, 30, 31, 40, 41, 50, 51, 60, 61, 70, 71],
        20 => &[10, 11, 20, 21, 40, 41],
        30 => &[10, 11],
        40 => &[10, 11, 20, 21, 30, 31, 40, 51],
        50 => &[10, 11, 20, 21, 30, 31, 40, 41, 50, 51],
        60 => &[10, 11, 20, 21, 30, 31, 40, 50, 60, 70, 71, 72, 80, 90, 100, 110, 111, 120],
        85 => &[10, 11],
        90 => &[10, 11, 20, 21, 30, 31],
        _ => &[],
    };
    methods.contains(&method_id)
}

/// Decodes a method frame payload (class id, method id, arguments).
pub(crate) fn decode_method(payload: Bytes) -> Result<Method, CodecError> {
    if payload.len() < 4 {
        // RabbitMQ's analyze_frame cannot even find the ids: "unknown_frame".
        return Err(CodecError::UnknownFrameType(FRAME_METHOD));
    }
    let class_id = u16::from_be_bytes([payload[0], payload[1]]);
    let method_id = u16::from_be_bytes([payload[2], payload[3]]);
    if !is_known_method(class_id, method_id) {
        return Err(CodecError::UnknownMethod { class_id, method_id });
    }
    if (class_id, method_id) == (60, 40) {
        return decode_publish(&payload).map(Method::Publish);
    }
    if let Some(ack) = decode_ack(&payload) {
        return Ok(Method::Other(ack));
    }
    if nesting::check_method(class_id, method_id, &payload[4..]) == Err(nesting::Stop::TooDeep) {
        return Err(too_deep(class_id, method_id));
    }
    match parse_class(&payload[..]) {
        Ok(([], class)) => Ok(Method::Other(class)),
        // Trailing bytes: RabbitMQ's decoder rejects these as "cannot decode" too.
        Ok(_) => Err(cannot_decode(class_id, method_id, &payload[4..])),
        Err(e) if is_utf8_error(&e) => Err(malformed_utf8(class_id, method_id)),
        Err(_) => Err(cannot_decode(class_id, method_id, &payload[4..])),
    }
}

/// amq-protocol's only fallible mapping while parsing methods is short-string UTF-8 validation
/// (`map_res` over `String::from_utf8`), which nom reports as `ErrorKind::MapRes`. The parser
/// error's fields are private, so its Debug text is the only way to tell; a unit test pins it.
fn is_utf8_error(e: &ParserError) -> bool {
    format!("{e:?}").contains("MapRes")
}

/// basic.ack, the other method every consumer sends per message (or per batch), built by hand:
/// amq-protocol's parser takes ~230 ns for it, four times the cost of encoding a delivery.
/// Anything but the exact 13-byte form goes to amq-protocol, so errors are reported the same.
fn decode_ack(payload: &[u8]) -> Option<AMQPClass> {
    use amq_protocol::protocol::basic;
    if payload.len() != 13 || payload[..4] != [0, 60, 0, 80] {
        return None;
    }
    let delivery_tag = u64::from_be_bytes(payload[4..12].try_into().ok()?);
    let multiple = payload[12] & 1 != 0;
    Some(AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack { delivery_tag, multiple })))
}

/// basic.publish arguments: ticket (u16), exchange (shortstr), routing-key (shortstr), bits
/// (mandatory, immediate). `payload` still starts with the class and method ids.
fn decode_publish(payload: &Bytes) -> Result<Publish, CodecError> {
    const ARGS: usize = 4;
    let err = || cannot_decode(60, 40, &payload[ARGS..]);
    let short_string = |pos: usize| -> Option<(usize, usize)> {
        let len = usize::from(*payload.get(pos)?);
        let start = pos + 1;
        (start + len <= payload.len()).then_some((start, start + len))
    };
    let (ex_start, ex_end) = short_string(ARGS + 2).ok_or_else(err)?;
    let (rk_start, rk_end) = short_string(ex_end).ok_or_else(err)?;
    let bits = *payload.get(rk_end).ok_or_else(err)?;
    if rk_end + 1 != payload.len() {
        return Err(err());
    }
    if std::str::from_utf8(&payload[ex_start..ex_end]).is_err()
        || std::str::from_utf8(&payload[rk_start..rk_end]).is_err()
    {
        return Err(malformed_utf8(60, 40));
    }
    Ok(Publish {
        exchange: payload.slice(ex_start..ex_end),
        routing_key: payload.slice(rk_start..rk_end),
        mandatory: bits & 1 != 0,
        immediate: bits & 2 != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::method_payload;
    use amq_protocol::protocol::{basic, queue};

    fn publish_class(exchange: &str, routing_key: &str, mandatory: bool, immediate: bool) -> AMQPClass {
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            mandatory,
            immediate,
        }))
    }

    #[test]
    fn publish_fast_path_equals_amq_protocol_parse() {
        let cases = [
            ("", "", false, false),
            ("amq.topic", "a.b.c", true, false),
            ("ex", "rk", false, true),
            ("ünïcode", &"k".repeat(255), true, true),
        ];
        for (ex, rk, mandatory, immediate) in cases {
            let class = publish_class(ex, rk, mandatory, immediate);
            let payload = method_payload(&class);
            let Method::Publish(p) = decode_method(payload.clone()).unwrap() else {
                panic!("not a publish");
            };
            let (rest, parsed) = parse_class(&payload[..]).unwrap();
            assert!(rest.is_empty());
            let AMQPClass::Basic(basic::AMQPMethod::Publish(reference)) = parsed else {
                panic!("amq-protocol parsed something else");
            };
            assert_eq!(&p.exchange[..], reference.exchange.as_str().as_bytes());
            assert_eq!(&p.routing_key[..], reference.routing_key.as_str().as_bytes());
            assert_eq!(p.mandatory, reference.mandatory);
            assert_eq!(p.immediate, reference.immediate);
            assert_eq!(Method::Publish(p).class_method(), (60, 40));
        }
    }

    #[test]
    fn ack_fast_path_equals_amq_protocol_parse() {
        for (delivery_tag, multiple) in [(1, false), (42, true), (u64::MAX, true), (0, false)] {
            let class = AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack { delivery_tag, multiple }));
            let payload = method_payload(&class);
            assert_eq!(payload.len(), 13);
            assert_eq!(decode_ack(&payload), Some(class.clone()));
            let (rest, reference) = parse_class(&payload[..]).unwrap();
            assert!(rest.is_empty());
            assert_eq!(reference, class);
            assert_eq!(decode_method(payload).unwrap(), Method::Other(class));
        }
        // A short or long ack is left to amq-protocol, which reports it as RabbitMQ does.
        let mut long = method_payload(&AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack::default()))).to_vec();
        long.push(0);
        assert_eq!(decode_ack(&long), None);
        assert!(decode_method(Bytes::from(long)).is_err());
        assert!(decode_method(Bytes::from_static(&[0, 60, 0, 80, 0, 0])).is_err());
    }

    #[test]
    fn publish_names_are_slices_of_the_frame() {
        let payload = method_payload(&publish_class("exchange", "key", false, false));
        let Method::Publish(p) = decode_method(payload.clone()).unwrap() else {
            panic!("not a publish");
        };
        let range = payload.as_ptr_range();
        assert!(range.contains(&p.exchange.as_ptr()));
        assert!(range.contains(&p.routing_key.as_ptr()));
    }

    #[test]
    fn truncated_publish_args_are_a_syntax_error_at_every_length() {
        let payload = method_payload(&publish_class("ex", "rk", true, false));
        for cut in 4..payload.len() {
            let err = decode_method(payload.slice(..cut)).unwrap_err();
            let CodecError::Syntax { class_id: 60, method_id: 40, detail } = &err else {
                panic!("cut {cut}: {err:?}");
            };
            assert!(detail.starts_with("cannot decode <<"), "{detail}");
        }
    }

    #[test]
    fn rabbitmq_text_for_truncated_publish() {
        // The exact bytes RabbitMQ 3.10 answered with
        // "FRAME_ERROR - cannot decode <<0,0,3,97,98>>" (class 60, method 40).
        let payload = Bytes::from_static(&[0, 60, 0, 40, 0, 0, 3, 97, 98]);
        let err = crate::AmqpError::from(decode_method(payload).unwrap_err());
        assert_eq!(err.text, "FRAME_ERROR - cannot decode <<0,0,3,97,98>>");
        assert_eq!((err.code.code(), err.class_id, err.method_id), (501, 60, 40));
    }

    #[test]
    fn trailing_bytes_are_a_syntax_error() {
        let mut publish = method_payload(&publish_class("", "rk", false, false)).to_vec();
        publish.extend_from_slice(b"XYZ");
        assert!(matches!(decode_method(publish.into()), Err(CodecError::Syntax { class_id: 60, method_id: 40, .. })));
        // tx.select takes no arguments; RabbitMQ: "cannot decode <<0>>".
        let err = decode_method(Bytes::from_static(&[0, 90, 0, 10, 0])).unwrap_err();
        assert_eq!(err.to_string(), "cannot decode <<0>>");
        assert_eq!(err.class_method(), (90, 10));
    }

    #[test]
    fn non_utf8_names_are_a_syntax_error() {
        // publish with routing key 0xFF 0xFE
        let payload = Bytes::from_static(&[0, 60, 0, 40, 0, 0, 0, 2, 0xFF, 0xFE, 0]);
        let err = decode_method(payload).unwrap_err();
        assert_eq!(err.to_string(), "Malformed UTF-8 in shortstr");
        assert_eq!(err.class_method(), (60, 40));
        // queue.declare with queue name 0xFF goes through amq-protocol; RabbitMQ's text is the same.
        let payload = Bytes::from_static(&[0, 50, 0, 10, 0, 0, 1, 0xFF, 0, 0, 0, 0, 0]);
        let err = decode_method(payload).unwrap_err();
        assert_eq!(err.to_string(), "Malformed UTF-8 in shortstr");
        assert_eq!(err.class_method(), (50, 10));
    }

    #[test]
    fn unknown_class_and_method() {
        for (c, m) in [(99, 1), (60, 999), (40, 50), (0, 0)] {
            let mut p = Vec::new();
            p.extend_from_slice(&u16::to_be_bytes(c));
            p.extend_from_slice(&u16::to_be_bytes(m));
            let err = decode_method(p.into()).unwrap_err();
            assert!(
                matches!(err, CodecError::UnknownMethod { class_id, method_id } if (class_id, method_id) == (c, m)),
                "{err:?}"
            );
        }
    }

    #[test]
    fn method_payload_shorter_than_ids_is_an_unknown_frame() {
        assert!(matches!(decode_method(Bytes::from_static(&[0, 60])), Err(CodecError::UnknownFrameType(1))));
    }

    #[test]
    fn other_methods_go_through_amq_protocol() {
        let class = AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: "q".into(),
            durable: true,
            ..Default::default()
        }));
        let method = decode_method(method_payload(&class)).unwrap();
        assert_eq!(method.class_method(), (50, 10));
        assert_eq!(method, Method::Other(class));
    }

    /// The known-method table agrees with amq-protocol's parser for every id pair: all-zero
    /// arguments are valid for every AMQP field type, so a known method always parses from them.
    #[test]
    fn known_method_table_matches_amq_protocol() {
        let mut known = 0;
        for class_id in 0..=120u16 {
            for method_id in 0..=130u16 {
                let mut p = Vec::with_capacity(4 + 64);
                p.extend_from_slice(&class_id.to_be_bytes());
                p.extend_from_slice(&method_id.to_be_bytes());
                p.extend_from_slice(&[0; 64]);
                let amq = parse_class(&p[..]).is_ok();
                assert_eq!(is_known_method(class_id, method_id), amq, "{class_id}/{method_id}");
                known += usize::from(amq);
            }
        }
        assert_eq!(known, 14 + 6 + 2 + 8 + 10 + 18 + 2 + 6);
        assert!(!is_known_method(60, 999));
    }
}
