//! The in-memory index of live message records: per queue, where each of its messages is.
//!
//! A queue appends in sequence order, so its records form runs of (nearly) consecutive
//! sequence numbers in one segment. The index keeps those runs as chunks: a first sequence
//! number and segment for the chunk, then 8 bytes per message (offset, length, flags), where
//! slot `i` is seq `first + i`. Finding a message is a binary search over chunks and an index
//! into one; settling marks its slot, and a chunk goes once nothing in it is live. 8 bytes per
//! stored message (a few more where seqs skip), whatever its size: a backlog of 10 million
//! costs about 80 MB here.
use std::collections::VecDeque;
use std::hash::{BuildHasherDefault, Hasher};

/// Where one message record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    pub seq: u64,
    pub seg: u32,
    pub offset: u32,
    /// Payload length, with [`PERSISTENT`] and [`SETTLED`] in the top bits.
    len_flags: u32,
}

const PERSISTENT: u32 = 1 << 31;
const SETTLED: u32 = 1 << 30;
/// Largest payload a record may have (flags take the top bits of the length).
pub const MAX_PAYLOAD: usize = (SETTLED - 1) as usize;

impl Loc {
    pub fn new(seq: u64, seg: u32, offset: u32, len: u32, persistent: bool) -> Loc {
        debug_assert!(len as usize <= MAX_PAYLOAD);
        Loc { seq, seg, offset, len_flags: len | if persistent { PERSISTENT } else { 0 } }
    }

    pub fn len(&self) -> u32 {
        self.len_flags & !(PERSISTENT | SETTLED)
    }

    pub fn persistent(&self) -> bool {
        self.len_flags & PERSISTENT != 0
    }
}

/// One message's place in its chunk; a gap in the seqs is a slot that is settled already.
#[derive(Clone, Copy)]
struct Slot {
    offset: u32,
    len_flags: u32,
}

const GAP: Slot = Slot { offset: 0, len_flags: SETTLED };

impl Slot {
    fn live(&self) -> bool {
        self.len_flags & SETTLED == 0
    }
}

/// Consecutive seqs of one queue in one segment.
struct Chunk {
    first: u64,
    seg: u32,
    live: u32,
    slots: Vec<Slot>,
}

impl Chunk {
    fn next(&self) -> u64 {
        self.first + self.slots.len() as u64
    }

    fn loc(&self, i: usize) -> Loc {
        let s = self.slots[i];
        Loc { seq: self.first + i as u64, seg: self.seg, offset: s.offset, len_flags: s.len_flags }
    }
}

/// A chunk takes at most this many slots, so that one is never a large allocation.
const CHUNK_SLOTS: usize = 4096;
/// A skip of fewer seqs than this is filled with empty slots rather than starting a chunk.
const MAX_FILL: u64 = 8;

#[derive(Default)]
pub struct QueueIndex {
    chunks: VecDeque<Chunk>,
    live: usize,
    /// Highest sequence number the log has seen for the queue (live or not).
    pub max_seq: u64,
    /// Delivered-up-to mark.
    pub mark: u64,
    /// Records found at recovery, in segment order; [`QueueIndex::sort`] indexes them.
    staged: Vec<Loc>,
}

impl QueueIndex {
    /// Adds a record; a queue appends in sequence order.
    pub fn push(&mut self, loc: Loc) {
        self.max_seq = self.max_seq.max(loc.seq);
        self.forget_settled_tail(loc.seq);
        let slot = Slot { offset: loc.offset, len_flags: loc.len_flags };
        let fits = self.chunks.back().is_some_and(|c| {
            c.seg == loc.seg && loc.seq >= c.next() && loc.seq - c.next() < MAX_FILL && c.slots.len() < CHUNK_SLOTS
        });
        if fits {
            let c = self.chunks.back_mut().expect("checked");
            while c.next() < loc.seq {
                c.slots.push(GAP);
            }
            c.slots.push(slot);
            c.live += 1;
        } else {
            debug_assert!(self.chunks.back().is_none_or(|c| loc.seq >= c.next()), "seq {} out of order", loc.seq);
            self.chunks.push_back(Chunk { first: loc.seq, seg: loc.seg, live: 1, slots: vec![slot] });
        }
        self.live += 1;
    }

    /// Drops settled slots from `seq` on at the end of the last chunk: a record whose write
    /// failed was settled out of the index, and comes back when it is written again.
    fn forget_settled_tail(&mut self, seq: u64) {
        let Some(c) = self.chunks.back_mut() else { return };
        if seq >= c.next() || seq < c.first {
            return;
        }
        let at = (seq - c.first) as usize;
        if c.slots[at..].iter().all(|s| !s.live()) {
            c.slots.truncate(at);
            if c.slots.is_empty() {
                self.chunks.pop_back();
            }
        }
    }

    /// Adds a record found at recovery, in any order.
    pub fn stage(&mut self, loc: Loc) {
        self.max_seq = self.max_seq.max(loc.seq);
        self.staged.push(loc);
    }

    /// Indexes the staged records in sequence order, and returns duplicates (a message copied
    /// whose old copy was not yet settled when the broker stopped): all but the first of each
    /// seq, for the caller to settle.
    pub fn sort(&mut self) -> Vec<Loc> {
        let mut staged = std::mem::take(&mut self.staged);
        staged.sort_unstable_by_key(|l| (l.seq, l.seg, l.offset));
        let mut dups = Vec::new();
        let mut last = None;
        for l in staged {
            if last == Some(l.seq) {
                dups.push(l);
            } else {
                last = Some(l.seq);
                self.push(l);
            }
        }
        dups
    }

    /// The chunk that would hold `seq`.
    fn chunk_of(&self, seq: u64) -> Option<usize> {
        self.chunks.partition_point(|c| c.first <= seq).checked_sub(1)
    }

    /// Marks message `seq` settled; returns where it was, if it was live.
    pub fn settle(&mut self, seq: u64) -> Option<Loc> {
        let ci = self.chunk_of(seq)?;
        let i = (seq - self.chunks[ci].first) as usize;
        let loc = self.settle_slot(ci, i)?;
        if self.chunks[ci].live == 0 {
            self.chunks.remove(ci);
        }
        Some(loc)
    }

    fn settle_slot(&mut self, ci: usize, i: usize) -> Option<Loc> {
        let c = &mut self.chunks[ci];
        let s = c.slots.get_mut(i).filter(|s| s.live())?;
        s.len_flags |= SETTLED;
        c.live -= 1;
        self.live -= 1;
        Some(c.loc(i))
    }

    /// Settles every live message from `from` on; returns them.
    pub fn settle_from(&mut self, from: u64) -> Vec<Loc> {
        let start = self.chunk_of(from).unwrap_or(0);
        let mut out = Vec::new();
        for ci in start..self.chunks.len() {
            let first = self.chunks[ci].first;
            let skip = from.saturating_sub(first) as usize;
            for i in skip..self.chunks[ci].slots.len() {
                out.extend(self.settle_slot(ci, i));
            }
        }
        self.chunks.retain(|c| c.live > 0);
        out
    }

    /// Up to `max` live messages from `from` on, in order.
    pub fn live_from(&self, from: u64, max: usize) -> impl Iterator<Item = Loc> + '_ {
        let start = self.chunk_of(from).unwrap_or(0);
        self.chunks
            .range(start..)
            .flat_map(move |c| {
                let skip = from.saturating_sub(c.first) as usize;
                (skip..c.slots.len()).filter(|&i| c.slots[i].live()).map(|i| c.loc(i))
            })
            .take(max)
    }

    /// Every live message (to drop a deleted queue's).
    pub fn drain_live(&mut self) -> Vec<Loc> {
        self.live = 0;
        let chunks = std::mem::take(&mut self.chunks);
        chunks.iter().flat_map(|c| (0..c.slots.len()).filter(|&i| c.slots[i].live()).map(|i| c.loc(i))).collect()
    }

    /// Every live message of the queue that sits in segment `seg`, in order.
    pub fn live_in(&self, seg: u32) -> Vec<Loc> {
        self.chunks
            .iter()
            .filter(|c| c.seg == seg)
            .flat_map(|c| (0..c.slots.len()).filter(|&i| c.slots[i].live()).map(|i| c.loc(i)))
            .collect()
    }

    /// Points every chunk in segment `from` at its copies in segment `to`: `moved` gives the
    /// new offset of each live message of those chunks, in seq order (what
    /// [`QueueIndex::live_in`] listed). A chunk stays one segment's, so a chunk moves whole.
    pub fn relocate(&mut self, from: u32, to: u32, moved: &[(u64, u32)]) {
        for c in self.chunks.iter_mut().filter(|c| c.seg == from) {
            for i in 0..c.slots.len() {
                if !c.slots[i].live() {
                    continue;
                }
                let seq = c.first + i as u64;
                match moved.binary_search_by_key(&seq, |m| m.0) {
                    Ok(m) => c.slots[i].offset = moved[m].1,
                    Err(_) => debug_assert!(false, "live seq {seq} of segment {from} not moved"),
                }
            }
            c.seg = to;
        }
    }

    pub fn live(&self) -> usize {
        self.live
    }

    /// First live seq.
    pub fn first_live(&self) -> Option<u64> {
        self.live_from(0, 1).next().map(|l| l.seq)
    }
}

/// Queue ids are small integers handed out in order: a multiply spreads them into the high
/// bits the hash table probes with, and costs a fraction of SipHash on a path taken for every
/// message put and settled.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys reach this hasher; this path exists to satisfy the trait.
        for &b in bytes {
            self.0 = (self.0 << 8 | b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map keyed by queue id.
pub type IdMap<V> = std::collections::HashMap<u64, V, BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(seq: u64) -> Loc {
        Loc::new(seq, 1, seq as u32 * 10, 5, true)
    }

    fn seqs(q: &QueueIndex) -> Vec<u64> {
        q.live_from(0, usize::MAX).map(|l| l.seq).collect()
    }

    #[test]
    fn settle_finds_by_seq_across_gaps_and_chunks() {
        let mut q = QueueIndex::default();
        for s in [1, 2, 3, 5, 8, 100, 101] {
            q.push(loc(s));
        }
        assert_eq!(q.chunks.len(), 2, "small skips share a chunk, a large one starts another");
        assert_eq!(q.settle(3).map(|l| (l.seq, l.offset, l.len(), l.persistent())), Some((3, 30, 5, true)));
        assert!(q.settle(3).is_none(), "settling twice is a no-op");
        assert!(q.settle(4).is_none() && q.settle(50).is_none(), "not messages of the queue");
        assert_eq!(q.live(), 6);
        q.settle(1);
        q.settle(2);
        assert_eq!(q.first_live(), Some(5));
        assert_eq!(q.live_from(6, 10).map(|l| l.seq).collect::<Vec<_>>(), [8, 100, 101]);
        assert_eq!(q.settle_from(8).iter().map(|l| l.seq).collect::<Vec<_>>(), [8, 100, 101]);
        assert_eq!((q.live(), q.max_seq, seqs(&q)), (1, 101, vec![5]));
        q.settle(5);
        assert!(q.chunks.is_empty(), "a chunk with nothing live is dropped");
    }

    #[test]
    fn a_new_segment_or_a_full_chunk_starts_a_chunk() {
        let mut q = QueueIndex::default();
        for s in 0..(CHUNK_SLOTS as u64 + 10) {
            q.push(loc(s));
        }
        q.push(Loc::new(CHUNK_SLOTS as u64 + 10, 2, 0, 5, false));
        assert_eq!(q.chunks.len(), 3);
        let l = q.settle(CHUNK_SLOTS as u64 + 10).unwrap();
        assert_eq!((l.seg, l.persistent()), (2, false));
        assert_eq!(q.drain_live().len(), CHUNK_SLOTS + 10);
        assert_eq!(q.live(), 0);
    }

    #[test]
    fn sort_orders_and_reports_duplicates() {
        let mut q = QueueIndex::default();
        for s in [5, 6, 1, 5, 2] {
            q.stage(loc(s));
        }
        let dups = q.sort();
        assert_eq!(dups.len(), 1);
        assert_eq!(seqs(&q), [1, 2, 5, 6]);
        assert_eq!(q.live(), 4);
        assert!(Loc::new(1, 1, 1, MAX_PAYLOAD as u32, false).len() as usize == MAX_PAYLOAD);
    }
}
