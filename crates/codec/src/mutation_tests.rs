//! Mutated frames: whatever a client sends, decoding returns a frame or an error, never panics
//! and never overflows the stack. A cheap stand-in for fuzzing until a cargo-fuzz target exists:
//! valid frames of the methods that carry tables, with bytes flipped, inserted, dropped and
//! lengths rewritten, through `decode_frame` and, for headers, `ContentHeader::properties`.
use crate::test_util::{frame_bytes, full_properties, method_payload};
use crate::{decode_frame, ContentHeader, Frame};
use amq_protocol::protocol::{basic, exchange, queue, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable};
use bytes::BytesMut;

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let mut args = FieldTable::default();
    args.insert("x-message-ttl".into(), AMQPValue::LongInt(1000));
    let mut inner = FieldTable::default();
    inner.insert("k".into(), AMQPValue::LongString("v".into()));
    args.insert("nested".into(), AMQPValue::FieldTable(inner));
    let methods = [
        AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: "q".into(),
            passive: false,
            durable: true,
            exclusive: false,
            auto_delete: false,
            nowait: false,
            arguments: args.clone(),
        })),
        AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
            exchange: "x".into(),
            kind: "headers".into(),
            passive: false,
            durable: false,
            auto_delete: false,
            internal: false,
            nowait: false,
            arguments: args.clone(),
        })),
        AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: "q".into(),
            consumer_tag: "t".into(),
            no_local: false,
            no_ack: false,
            exclusive: false,
            nowait: false,
            arguments: args,
        })),
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "".into(),
            routing_key: "q".into(),
            mandatory: false,
            immediate: false,
        })),
        AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack { delivery_tag: 7, multiple: true })),
    ];
    let mut seeds: Vec<Vec<u8>> = methods.iter().map(|m| frame_bytes(1, 1, &method_payload(m))).collect();
    seeds.push(frame_bytes(2, 1, &ContentHeader::new(60, 3, full_properties()).raw));
    seeds
}

fn mutate(rng: &mut Rng, frame: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let at = 7 + rng.below(frame.len().saturating_sub(8).max(1));
        let last_payload = frame.len() - 2;
        match rng.below(5) {
            0 => frame[at.min(last_payload)] ^= 1 << rng.below(8),
            1 => frame[at.min(last_payload)] = [0, 0xFF, b'F', b'A', b'S'][rng.below(5)],
            2 => frame.insert(at.min(frame.len() - 1), rng.next() as u8),
            3 if frame.len() > 9 => {
                frame.remove(at.min(frame.len() - 2));
            }
            _ => {
                // A length field somewhere: four bytes of a big or small number.
                let n: u32 = [0, 1, 0x7F, 0xFFFF, 0xFFFF_FFFF][rng.below(5)];
                let at = at.min(frame.len().saturating_sub(5));
                frame[at..at + 4].copy_from_slice(&n.to_be_bytes());
            }
        }
    }
    // Keep the frame header's size honest so the payload itself gets decoded.
    let size = (frame.len() - 8) as u32;
    frame[3..7].copy_from_slice(&size.to_be_bytes());
    let last = frame.len() - 1;
    frame[last] = crate::FRAME_END;
}

#[test]
fn mutated_frames_decode_or_fail_cleanly() {
    let seeds = seeds();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut ok, mut err) = (0u32, 0u32);
    for _ in 0..100_000 {
        let mut frame = seeds[rng.below(seeds.len())].clone();
        mutate(&mut rng, &mut frame);
        let mut buf = BytesMut::from(&frame[..]);
        match decode_frame(&mut buf, 131_072) {
            Ok(Some(Frame::Header { header, .. })) => {
                // Whatever decoding accepted, the later re-parse must survive too.
                let _ = header.properties();
                let _ = header.user_id();
                ok += 1;
            }
            Ok(Some(_)) => ok += 1,
            Ok(None) => panic!("a whole frame was not decoded: {frame:?}"),
            Err(_) => err += 1,
        }
    }
    // Both outcomes were exercised, so the mutations neither always nor never broke frames.
    assert!(ok > 1_000 && err > 1_000, "ok {ok}, err {err}");
}
