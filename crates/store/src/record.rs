//! The on-disk form of a message: everything needed to deliver it again byte for byte.
//!
//! `[exchange len u8][exchange][routing key len u8][routing key][header len u32][raw content
//! header][body]`. The raw header carries every property exactly as published. This is the
//! payload of a message record in the log (`warren-log` frames it with a length and a CRC).
use bytes::{BufMut, Bytes};
use std::sync::Arc;
use warren_broker::Message;
use warren_codec::ContentHeader;

/// What the store hands the log to write: a message, or (when migrating an old data
/// directory) a record already in this form.
pub enum Entry {
    Message(Arc<Message>),
    Encoded(Vec<u8>),
}

impl warren_log::Payload for Entry {
    fn encoded_len(&self) -> usize {
        match self {
            Entry::Message(m) => encoded_len(m),
            Entry::Encoded(raw) => raw.len(),
        }
    }

    fn write_to(&self, buf: &mut Vec<u8>) {
        match self {
            Entry::Message(m) => encode_into(m, buf),
            Entry::Encoded(raw) => buf.extend_from_slice(raw),
        }
    }
}

/// Bytes [`encode_into`] appends for `m`.
pub fn encoded_len(m: &Message) -> usize {
    6 + m.exchange.len() + m.routing_key.len() + m.header.raw.len() + m.body.len()
}

pub fn encode_into(m: &Message, v: &mut Vec<u8>) {
    v.reserve(encoded_len(m));
    v.put_u8(m.exchange.len() as u8);
    v.put_slice(&m.exchange);
    v.put_u8(m.routing_key.len() as u8);
    v.put_slice(&m.routing_key);
    v.put_u32(m.header.raw.len() as u32);
    v.put_slice(&m.header.raw);
    v.put_slice(&m.body);
}

/// Decodes a record; None if it is truncated or its header does not parse. The message's
/// parts are slices of `b`: nothing is copied.
pub fn decode(b: Bytes) -> Option<Message> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<Bytes> {
        b.get(at..at + n)?;
        let out = b.slice(at..at + n);
        at += n;
        Some(out)
    };
    let el = *take(1)?.first()? as usize;
    let exchange = take(el)?;
    let rl = *take(1)?.first()? as usize;
    let routing_key = take(rl)?;
    let hl = u32::from_be_bytes(take(4)?.as_ref().try_into().ok()?) as usize;
    let header = ContentHeader::decode(take(hl)?).ok()?;
    let body = b.slice(at..);
    if body.len() as u64 != header.body_size {
        return None;
    }
    std::str::from_utf8(&exchange).ok()?;
    std::str::from_utf8(&routing_key).ok()?;
    Some(Message { exchange, routing_key, header, body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::protocol::BasicProperties;

    #[test]
    fn round_trip_and_truncation() {
        let props = BasicProperties::default().with_delivery_mode(2).with_message_id("m-1".into());
        let m = Message {
            exchange: Bytes::from_static(b"ex"),
            routing_key: Bytes::from_static(b"rk.1"),
            header: ContentHeader::new(60, 5, props),
            body: Bytes::from_static(b"hello"),
        };
        let mut raw = Vec::new();
        encode_into(&m, &mut raw);
        assert_eq!(raw.len(), encoded_len(&m));
        let back = decode(Bytes::from(raw.clone())).expect("decodes");
        assert_eq!(back.exchange, m.exchange);
        assert_eq!(back.routing_key, m.routing_key);
        assert_eq!(back.header.raw, m.header.raw);
        assert_eq!(back.body, m.body);
        for cut in 0..raw.len() {
            assert!(decode(Bytes::copy_from_slice(&raw[..cut])).is_none(), "truncated at {cut} must not decode");
        }
    }
}
