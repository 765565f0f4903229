//! Splitting whole frames off the read buffer.

use crate::error::CodecError;
use crate::header::ContentHeader;
use crate::method::{decode_method, Method};
use crate::{FRAME_BODY, FRAME_END, FRAME_HEADER, FRAME_HEADER_SIZE, FRAME_HEARTBEAT, FRAME_METHOD};
use bytes::{Buf, Bytes, BytesMut};

/// One inbound frame. Payload bytes (`Body::payload`, `ContentHeader::raw`, `Publish` names)
/// are slices of the read buffer, not copies.
// A Frame lives only from decode to dispatch, so its size does not matter; boxing the header
// would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    Method { channel: u16, method: Method },
    Header { channel: u16, header: ContentHeader },
    Body { channel: u16, payload: Bytes },
    Heartbeat,
}

/// The most `decode_frame` reserves ahead for a partly received frame. A peer can declare a
/// payload of up to 4 GiB when frame_max is 0 (unlimited); growing the buffer to that before
/// the bytes exist would let it claim memory it never sends.
const MAX_RESERVE: usize = 1 << 20;

/// Splits one whole frame off the front of `buf` (after the protocol header has been consumed).
///
/// Returns `Ok(None)` when more bytes are needed (having reserved room for the rest of the
/// frame). `frame_max` is the negotiated limit, 0 meaning none.
///
/// Checks happen in RabbitMQ's order (rabbit_reader / rabbit_command_assembler):
/// 1. As soon as the 7-byte header is there, the declared payload size against `frame_max`,
///    before any of the payload is awaited. Like RabbitMQ, which lets through clients that
///    forget the 8 bytes of framing, the limit on the *payload* is `frame_max` itself: only
///    `size > frame_max` is [`CodecError::FrameTooLarge`].
/// 2. The frame-end octet ([`CodecError::BadFrameEnd`]).
/// 3. The frame type and its fixed fields ([`CodecError::UnknownFrameType`]), heartbeats on a
///    non-zero channel ([`CodecError::HeartbeatOnChannel`]), then method and header decoding
///    ([`CodecError::UnknownMethod`], [`CodecError::Syntax`]).
///
/// On error the connection is beyond recovery; `buf` is left in an unspecified state.
pub fn decode_frame(buf: &mut BytesMut, frame_max: u32) -> Result<Option<Frame>, CodecError> {
    if buf.len() < FRAME_HEADER_SIZE {
        buf.reserve(FRAME_HEADER_SIZE - buf.len());
        return Ok(None);
    }
    let frame_type = buf[0];
    let channel = u16::from_be_bytes([buf[1], buf[2]]);
    let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]);
    if frame_max != 0 && size > frame_max {
        return Err(CodecError::FrameTooLarge { size, max: frame_max });
    }
    let total = FRAME_HEADER_SIZE + size as usize + 1;
    if buf.len() < total {
        buf.reserve((total - buf.len()).min(MAX_RESERVE));
        return Ok(None);
    }
    let end = buf[total - 1];
    if end != FRAME_END {
        return Err(CodecError::BadFrameEnd(end));
    }
    let mut frame = buf.split_to(total);
    frame.truncate(total - 1);
    frame.advance(FRAME_HEADER_SIZE);
    let payload = frame.freeze();
    let frame = match frame_type {
        FRAME_METHOD => Frame::Method { channel, method: decode_method(payload)? },
        FRAME_HEADER => Frame::Header { channel, header: ContentHeader::decode(payload)? },
        FRAME_BODY => Frame::Body { channel, payload },
        // RabbitMQ only recognises an empty heartbeat; one with a payload is "unknown_frame".
        FRAME_HEARTBEAT if !payload.is_empty() => return Err(CodecError::UnknownFrameType(FRAME_HEARTBEAT)),
        FRAME_HEARTBEAT if channel != 0 => return Err(CodecError::HeartbeatOnChannel(channel)),
        FRAME_HEARTBEAT => Frame::Heartbeat,
        other => return Err(CodecError::UnknownFrameType(other)),
    };
    Ok(Some(frame))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{frame_bytes, method_payload};
    use crate::{encode_heartbeat, FRAME_MIN_SIZE};
    use amq_protocol::protocol::{basic, channel, AMQPClass};

    fn publish_bytes() -> Vec<u8> {
        let publish = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "ex".into(),
            routing_key: "rk".into(),
            mandatory: true,
            immediate: false,
        }));
        frame_bytes(1, 3, &method_payload(&publish))
    }

    /// A publish, its header, two body frames and a heartbeat, back to back.
    fn stream() -> (Vec<u8>, Vec<Frame>) {
        let header = crate::ContentHeader::new(60, 5, Default::default());
        let mut bytes = publish_bytes();
        bytes.extend(frame_bytes(2, 3, &header.raw));
        bytes.extend(frame_bytes(3, 3, b"hel"));
        bytes.extend(frame_bytes(3, 3, b"lo"));
        let mut hb = BytesMut::new();
        encode_heartbeat(&mut hb);
        bytes.extend_from_slice(&hb);
        let expected = vec![
            Frame::Method {
                channel: 3,
                method: Method::Publish(crate::Publish {
                    exchange: Bytes::from_static(b"ex"),
                    routing_key: Bytes::from_static(b"rk"),
                    mandatory: true,
                    immediate: false,
                }),
            },
            Frame::Header { channel: 3, header },
            Frame::Body { channel: 3, payload: Bytes::from_static(b"hel") },
            Frame::Body { channel: 3, payload: Bytes::from_static(b"lo") },
            Frame::Heartbeat,
        ];
        (bytes, expected)
    }

    #[test]
    fn frames_arriving_byte_by_byte() {
        let (bytes, expected) = stream();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for (i, b) in bytes.iter().enumerate() {
            buf.extend_from_slice(&[*b]);
            while let Some(f) = decode_frame(&mut buf, FRAME_MIN_SIZE).unwrap() {
                got.push((i, f));
            }
        }
        assert!(buf.is_empty());
        let frames: Vec<Frame> = got.iter().map(|(_, f)| f.clone()).collect();
        assert_eq!(frames, expected);
        // Each frame is produced exactly when its frame-end byte arrives.
        let mut end = 0;
        for ((i, _), len) in got.iter().zip(frame_lengths(&bytes)) {
            end += len;
            assert_eq!(*i, end - 1);
        }
    }

    fn frame_lengths(mut bytes: &[u8]) -> Vec<usize> {
        let mut v = Vec::new();
        while !bytes.is_empty() {
            let len = 8 + u32::from_be_bytes(bytes[3..7].try_into().unwrap()) as usize;
            v.push(len);
            bytes = &bytes[len..];
        }
        v
    }

    #[test]
    fn all_frames_in_one_buffer() {
        let (bytes, expected) = stream();
        let mut buf = BytesMut::from(&bytes[..]);
        let mut frames = Vec::new();
        while let Some(f) = decode_frame(&mut buf, 0).unwrap() {
            frames.push(f);
        }
        assert_eq!(frames, expected);
    }

    #[test]
    fn body_payload_is_a_slice_of_the_read_buffer() {
        let mut buf = BytesMut::from(&frame_bytes(3, 1, b"zero-copy")[..]);
        let base = buf.as_ptr();
        let Some(Frame::Body { payload, .. }) = decode_frame(&mut buf, 0).unwrap() else {
            panic!("expected a body frame");
        };
        assert_eq!(&payload[..], b"zero-copy");
        assert_eq!(payload.as_ptr(), base.wrapping_add(7));
    }

    #[test]
    fn frame_too_large_is_detected_from_the_header_alone() {
        // Only the 7 header bytes: type 3, channel 1, size 200000.
        let mut buf = BytesMut::from(&[3u8, 0, 1, 0, 3, 0x0d, 0x40][..]);
        let err = decode_frame(&mut buf, 131072).unwrap_err();
        assert!(matches!(err, CodecError::FrameTooLarge { size: 200000, max: 131072 }), "{err:?}");
        assert_eq!(err.reply_code(), crate::ReplyCode::FrameError);
        // Without a limit the same header just waits for the payload.
        let mut buf = BytesMut::from(&[3u8, 0, 1, 0, 3, 0x0d, 0x40][..]);
        assert_eq!(decode_frame(&mut buf, 0).unwrap(), None);
    }

    #[test]
    fn frame_max_boundary_copies_rabbitmq_fudge() {
        // RabbitMQ 3.10 with frame_max 4096 accepts a 4096-byte payload and rejects 4097
        // ("{frame_too_large,4097,4088}").
        let mut ok = BytesMut::from(&frame_bytes(3, 1, &[b'a'; 4096])[..]);
        assert!(matches!(decode_frame(&mut ok, 4096), Ok(Some(Frame::Body { .. }))));
        let mut too_big = BytesMut::from(&[3u8, 0, 1, 0, 0, 0x10, 0x01][..]);
        assert!(matches!(decode_frame(&mut too_big, 4096), Err(CodecError::FrameTooLarge { size: 4097, max: 4096 })));
    }

    #[test]
    fn incomplete_frame_reserves_the_missing_bytes() {
        let mut buf = BytesMut::from(&[3u8, 0, 1, 0, 0, 0x10, 0x00][..]);
        assert_eq!(decode_frame(&mut buf, 0).unwrap(), None);
        assert!(buf.capacity() > 7 + 4096);
        assert_eq!(buf.len(), 7);
    }

    #[test]
    fn bad_frame_end() {
        let mut bytes = frame_bytes(1, 1, &[0, 90, 0, 10]);
        *bytes.last_mut().unwrap() = 0;
        let err = decode_frame(&mut BytesMut::from(&bytes[..]), 0).unwrap_err();
        assert!(matches!(err, CodecError::BadFrameEnd(0)), "{err:?}");
        assert_eq!(err.reply_code().code(), 501);
    }

    #[test]
    fn unknown_frame_type() {
        let err = decode_frame(&mut BytesMut::from(&frame_bytes(9, 1, b"abc")[..]), 0).unwrap_err();
        assert!(matches!(err, CodecError::UnknownFrameType(9)), "{err:?}");
        assert_eq!(err.reply_code().code(), 501);
    }

    #[test]
    fn heartbeat_on_channel_1() {
        let err = decode_frame(&mut BytesMut::from(&frame_bytes(8, 1, b"")[..]), 0).unwrap_err();
        assert!(matches!(err, CodecError::HeartbeatOnChannel(1)), "{err:?}");
        // RabbitMQ: 505 "UNEXPECTED_FRAME - type 8, all octets = <<>>".
        assert_eq!(err.reply_code().code(), 505);
    }

    #[test]
    fn heartbeat_with_payload_is_an_unknown_frame() {
        let err = decode_frame(&mut BytesMut::from(&frame_bytes(8, 0, b"xx")[..]), 0).unwrap_err();
        assert!(matches!(err, CodecError::UnknownFrameType(8)), "{err:?}");
    }

    #[test]
    fn unknown_class_and_method_frames() {
        for (c, m) in [(99u16, 1u16), (60, 999)] {
            let mut p = c.to_be_bytes().to_vec();
            p.extend_from_slice(&m.to_be_bytes());
            let err = decode_frame(&mut BytesMut::from(&frame_bytes(1, 1, &p)[..]), 0).unwrap_err();
            assert!(
                matches!(err, CodecError::UnknownMethod { class_id, method_id } if (class_id, method_id) == (c, m)),
                "{err:?}"
            );
            assert_eq!(err.reply_code().code(), 540);
            assert_eq!(err.class_method(), (c, m));
        }
    }

    #[test]
    fn truncated_publish_frame_is_a_syntax_error() {
        let bytes = frame_bytes(1, 1, &[0, 60, 0, 40, 0, 0, 3, b'a', b'b']);
        let err = decode_frame(&mut BytesMut::from(&bytes[..]), 0).unwrap_err();
        assert!(matches!(err, CodecError::Syntax { class_id: 60, method_id: 40, .. }), "{err:?}");
    }

    #[test]
    fn other_methods_decode_on_their_channel() {
        let open = AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {}));
        let bytes = frame_bytes(1, 7, &method_payload(&open));
        let frame = decode_frame(&mut BytesMut::from(&bytes[..]), 0).unwrap().unwrap();
        assert_eq!(frame, Frame::Method { channel: 7, method: Method::Other(open) });
    }
}
