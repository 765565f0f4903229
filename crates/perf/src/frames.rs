//! The frames a load generator sends and receives most, handled by hand.
//!
//! Going through amq-protocol for every basic.deliver would allocate its consumer tag,
//! exchange and routing key per message: CPU taken from the broker under test, which shares
//! the machine. Only the ids and the one field we need are read here; everything else goes
//! to `warren_codec::decode_frame`.
use bytes::{BufMut, Bytes, BytesMut};
use warren_codec::{AMQPClass, BasicProperties, ContentHeader};

const FRAME_END: u8 = 0xCE;

/// A frame we act on without decoding it fully.
#[derive(Debug, PartialEq, Eq)]
pub enum Hot {
    Deliver {
        channel: u16,
        tag: u64,
    },
    /// basic.ack (nack = false) or basic.nack from the broker: publisher confirms.
    Confirm {
        tag: u64,
        multiple: bool,
        nack: bool,
    },
    Header,
    /// A body frame; its first 8 bytes when it has them.
    Body(Option<[u8; 8]>),
    Heartbeat,
}

/// Splits the next whole frame off `buf` if it is a hot one. `None` means "not hot or not
/// complete": the caller hands the buffer to `decode_frame`.
pub fn take_hot(buf: &mut BytesMut) -> Option<Hot> {
    if buf.len() < 7 {
        return None;
    }
    let ty = buf[0];
    let channel = u16::from_be_bytes([buf[1], buf[2]]);
    let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]) as usize;
    // A frame that does not end in frame-end is not ours to skip: the codec reports it.
    if buf.len() < 7 + size + 1 || buf[7 + size] != FRAME_END {
        return None;
    }
    let p = &buf[7..7 + size];
    let hot = match ty {
        1 if p.len() >= 4 => match (u16::from_be_bytes([p[0], p[1]]), u16::from_be_bytes([p[2], p[3]])) {
            (60, 60) => {
                // consumer-tag (shortstr), then delivery-tag.
                let tl = *p.get(4)? as usize;
                let at = 5 + tl;
                Hot::Deliver { channel, tag: u64::from_be_bytes(p.get(at..at + 8)?.try_into().ok()?) }
            }
            (60, 80) | (60, 120) if p.len() >= 13 => Hot::Confirm {
                tag: u64::from_be_bytes(p[4..12].try_into().ok()?),
                multiple: p[12] & 1 != 0,
                nack: p[3] == 120,
            },
            _ => return None,
        },
        2 => Hot::Header,
        3 => Hot::Body(p.get(..8).map(|b| b.try_into().expect("8 bytes"))),
        8 => Hot::Heartbeat,
        _ => return None,
    };
    let _ = buf.split_to(7 + size + 1);
    Some(hot)
}

/// Appends one frame.
pub fn frame(out: &mut BytesMut, ty: u8, channel: u16, payload: &[u8]) {
    out.put_u8(ty);
    out.put_u16(channel);
    out.put_u32(payload.len() as u32);
    out.put_slice(payload);
    out.put_u8(FRAME_END);
}

pub fn method(out: &mut BytesMut, channel: u16, m: &AMQPClass) {
    warren_codec::encode_method(out, channel, m);
}

pub fn ack(out: &mut BytesMut, channel: u16, tag: u64, multiple: bool) {
    warren_codec::encode_ack(out, channel, tag, multiple);
}

/// One complete publish (method, header and body frames) to copy per message, with where its
/// body starts so the send time can be written into it.
pub struct PublishTemplate {
    pub bytes: Bytes,
    /// Offset of the body's first byte (None if the body is shorter than a timestamp).
    pub stamp_at: Option<usize>,
}

impl PublishTemplate {
    pub fn new(exchange: &str, routing_key: &str, size: usize, persistent: bool, frame_max: u32) -> PublishTemplate {
        use amq_protocol::protocol::basic::{AMQPMethod, Publish};
        let mut out = BytesMut::new();
        let publish =
            Publish { exchange: exchange.into(), routing_key: routing_key.into(), mandatory: false, immediate: false };
        method(&mut out, 1, &AMQPClass::Basic(AMQPMethod::Publish(publish)));
        let props =
            if persistent { BasicProperties::default().with_delivery_mode(2) } else { BasicProperties::default() };
        frame(&mut out, 2, 1, &ContentHeader::new(60, size as u64, props).raw);
        let max_body = if frame_max == 0 { usize::MAX } else { frame_max as usize - 8 };
        let body = vec![b'x'; size];
        let mut stamp_at = None;
        for (i, chunk) in body.chunks(max_body).enumerate() {
            if i == 0 && size >= 8 {
                stamp_at = Some(out.len() + 7);
            }
            frame(&mut out, 3, 1, chunk);
        }
        PublishTemplate { bytes: out.freeze(), stamp_at }
    }

    /// Appends one copy stamped with `now_ns`.
    pub fn append(&self, out: &mut BytesMut, now_ns: u64) {
        let at = out.len();
        out.extend_from_slice(&self.bytes);
        if let Some(s) = self.stamp_at {
            out[at + s..at + s + 8].copy_from_slice(&now_ns.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::protocol::basic::{AMQPMethod, Deliver};
    use warren_codec::{decode_frame, Frame, Method};

    #[test]
    fn a_deliver_is_read_by_hand_as_amq_protocol_would_write_it() {
        let mut buf = BytesMut::new();
        let d = Deliver {
            consumer_tag: "ctag-1".into(),
            delivery_tag: 77,
            redelivered: false,
            exchange: "ex".into(),
            routing_key: "rk".into(),
        };
        method(&mut buf, 3, &AMQPClass::Basic(AMQPMethod::Deliver(d)));
        frame(&mut buf, 2, 3, &[0; 14]);
        frame(&mut buf, 3, 3, &42u64.to_le_bytes());
        ack(&mut buf, 1, 9, true);
        assert_eq!(take_hot(&mut buf), Some(Hot::Deliver { channel: 3, tag: 77 }));
        assert_eq!(take_hot(&mut buf), Some(Hot::Header));
        assert_eq!(take_hot(&mut buf), Some(Hot::Body(Some(42u64.to_le_bytes()))));
        assert_eq!(take_hot(&mut buf), Some(Hot::Confirm { tag: 9, multiple: true, nack: false }));
        assert!(buf.is_empty());
    }

    #[test]
    fn other_and_partial_frames_are_left_for_the_codec() {
        let mut buf = BytesMut::new();
        method(
            &mut buf,
            0,
            &AMQPClass::Connection(amq_protocol::protocol::connection::AMQPMethod::CloseOk(Default::default())),
        );
        assert_eq!(take_hot(&mut buf), None);
        assert_eq!(buf.len(), 12, "left in place");
        let mut partial = BytesMut::from(&[3u8, 0, 1, 0, 0, 0, 8, 1, 2][..]);
        assert_eq!(take_hot(&mut partial), None);
        let mut bad_end = BytesMut::from(&[8u8, 0, 0, 0, 0, 0, 0, 0x00][..]);
        assert_eq!(take_hot(&mut bad_end), None, "a heartbeat without frame-end is the codec's error to report");
        assert!(decode_frame(&mut bad_end, 4096).is_err());
        let mut heartbeat = BytesMut::from(&[8u8, 0, 0, 0, 0, 0, 0, FRAME_END][..]);
        assert_eq!(take_hot(&mut heartbeat), Some(Hot::Heartbeat));
    }

    #[test]
    fn the_template_is_a_valid_publish_split_at_frame_max() {
        let t = PublishTemplate::new("", "q", 10_000, true, 4096);
        let mut buf = BytesMut::new();
        t.append(&mut buf, 0x0102_0304_0506_0708);
        let Some(Frame::Method { method: Method::Publish(p), .. }) = decode_frame(&mut buf, 4096).unwrap() else {
            panic!("publish first")
        };
        assert_eq!(&p.routing_key[..], b"q");
        let Some(Frame::Header { header, .. }) = decode_frame(&mut buf, 4096).unwrap() else { panic!("then header") };
        assert_eq!((header.body_size, header.delivery_mode()), (10_000, 2));
        let mut body = Vec::new();
        while let Some(Frame::Body { payload, .. }) = decode_frame(&mut buf, 4096).unwrap() {
            assert!(payload.len() <= 4088);
            body.extend_from_slice(&payload);
        }
        assert_eq!(body.len(), 10_000);
        assert_eq!(body[..8], 0x0102_0304_0506_0708u64.to_le_bytes());
    }
}
