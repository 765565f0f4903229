//! Segments: the messages one queue received in one write group, stored under one sled key.
//!
//! sled's cost is per operation (every insert copies the leaf it lands in), not per byte, so
//! a key per message made the writer thread the limit on persistent throughput: three tree
//! operations per message (put, delivered mark, remove) at ~2 µs each. A segment turns a
//! group's puts for a queue into one insert, and its removals into one bitmap write.
//!
//! Value layout: `[count u32 BE]` then, per message, `[len u32 BE][record]` (see
//! [`crate::record`]). The messages have consecutive sequence numbers from the key's
//! `first_seq`. Which of them are settled is kept in memory ([`Removed`]) and, for persistent
//! segments, in the segment's ack key beside it.
use crate::record;
use warren_broker::Message;

/// A segment stops growing at this size; a bigger message gets a segment of its own.
pub const MAX_SEGMENT_BYTES: usize = 64 << 10;

/// A segment being filled during a group; written when the group ends.
pub struct Builder {
    pub first: u64,
    pub count: u32,
    pub removed: Removed,
    buf: Vec<u8>,
}

impl Builder {
    pub fn new(first: u64) -> Builder {
        Builder { first, count: 0, removed: Removed::default(), buf: vec![0; 4] }
    }

    /// The sequence number the next message must have to join this segment.
    pub fn next_seq(&self) -> u64 {
        self.first + self.count as u64
    }

    /// Whether message `seq` of `m` can be appended here.
    pub fn accepts(&self, seq: u64, m: &Message) -> bool {
        seq == self.next_seq() && (self.count == 0 || self.buf.len() + record::encoded_len(m) <= MAX_SEGMENT_BYTES)
    }

    pub fn push(&mut self, m: &Message) {
        self.buf.extend_from_slice(&(record::encoded_len(m) as u32).to_be_bytes());
        record::encode_into(m, &mut self.buf);
        self.count += 1;
    }

    pub fn contains(&self, seq: u64) -> bool {
        seq >= self.first && seq < self.next_seq()
    }

    /// The value to store.
    pub fn finish(mut self) -> (u64, u32, Removed, Vec<u8>) {
        self.buf[..4].copy_from_slice(&self.count.to_be_bytes());
        (self.first, self.count, self.removed, self.buf)
    }
}

/// The count a segment value declares (None if it is too short to have one).
pub fn declared_count(value: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(value.get(..4)?.try_into().ok()?))
}

/// The records of a segment value, in order. Stops (logging) at the first one whose framing
/// runs past the end: the messages after a truncation are lost, the ones before are kept.
pub fn records(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let declared = declared_count(value).unwrap_or(0);
    let mut at = 4usize;
    let mut n = 0u32;
    std::iter::from_fn(move || {
        if n == declared {
            return None;
        }
        let len = value.get(at..at + 4).map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")) as usize);
        let rec = len.and_then(|len| value.get(at + 4..at + 4 + len));
        match rec {
            Some(r) => {
                at += 4 + r.len();
                n += 1;
                Some(r)
            }
            None => {
                tracing::error!(declared, readable = n, "truncated segment: the rest of its messages are lost");
                n = declared;
                None
            }
        }
    })
}

/// Which messages of a segment are settled: a bitmap by offset from `first_seq`.
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct Removed {
    words: Vec<u64>,
    ones: u32,
}

impl Removed {
    /// Marks `offset`; false if it already was.
    pub fn set(&mut self, offset: u32) -> bool {
        let (w, b) = ((offset / 64) as usize, offset % 64);
        if self.words.len() <= w {
            self.words.resize(w + 1, 0);
        }
        let was = self.words[w] & (1 << b) != 0;
        self.words[w] |= 1 << b;
        self.ones += u32::from(!was);
        !was
    }

    pub fn get(&self, offset: u32) -> bool {
        self.words.get((offset / 64) as usize).is_some_and(|w| w & (1 << (offset % 64)) != 0)
    }

    /// How many offsets are marked.
    pub fn count(&self) -> u32 {
        self.ones
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    /// Reads a stored bitmap, keeping only offsets below `count` (anything else is damage).
    pub fn from_bytes(raw: &[u8], count: u32) -> Removed {
        let mut r = Removed::default();
        for (i, chunk) in raw.chunks_exact(8).enumerate() {
            let w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            for b in 0..64 {
                let offset = i as u32 * 64 + b;
                if w & (1 << b) != 0 && offset < count {
                    r.set(offset);
                }
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::protocol::BasicProperties;
    use bytes::Bytes;
    use warren_codec::ContentHeader;

    fn msg(body: &'static str) -> Message {
        Message {
            exchange: Bytes::new(),
            routing_key: Bytes::from_static(b"q"),
            header: ContentHeader::new(60, body.len() as u64, BasicProperties::default()),
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    #[test]
    fn builder_round_trips_and_truncation_keeps_the_prefix() {
        let mut b = Builder::new(10);
        for body in ["a", "bb", "ccc"] {
            assert!(b.accepts(b.next_seq(), &msg(body)));
            b.push(&msg(body));
        }
        assert!(!b.accepts(14, &msg("gap")), "sequence numbers must be consecutive");
        let (first, count, _, value) = b.finish();
        assert_eq!((first, count, declared_count(&value)), (10, 3, Some(3)));
        let bodies: Vec<Bytes> = records(&value).map(|r| record::decode(r).unwrap().body).collect();
        assert_eq!(bodies, ["a", "bb", "ccc"]);
        assert_eq!(records(&value[..value.len() - 1]).count(), 2, "a cut last record is lost, not the rest");
    }

    #[test]
    fn removed_bitmap_counts_and_round_trips() {
        let mut r = Removed::default();
        assert!(r.set(0) && r.set(70) && !r.set(70));
        assert_eq!(r.count(), 2);
        assert!(r.get(70) && !r.get(69) && !r.get(500));
        assert_eq!(Removed::from_bytes(&r.to_bytes(), 128), r);
        assert_eq!(Removed::from_bytes(&r.to_bytes(), 64).count(), 1, "offsets past the count are ignored");
    }
}
