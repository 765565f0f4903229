//! The in-memory index of live message records: per queue, where each of its messages is.
//!
//! A queue's entries are in sequence order (a queue appends in order), so finding one is a
//! binary search, and settling marks it; settled entries are dropped once they reach the
//! front. 24 bytes per stored message, whatever its size.
use std::collections::VecDeque;

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

    pub fn settled(&self) -> bool {
        self.len_flags & SETTLED != 0
    }
}

#[derive(Default)]
pub struct QueueIndex {
    locs: VecDeque<Loc>,
    live: usize,
    /// Highest sequence number the log has seen for the queue (live or not).
    pub max_seq: u64,
    /// Delivered-up-to mark.
    pub mark: u64,
}

impl QueueIndex {
    /// Adds a record. A queue appends in sequence order, so this is a push at the back;
    /// recovery merges segments in any order and then calls [`QueueIndex::sort`].
    pub fn push(&mut self, loc: Loc) {
        self.max_seq = self.max_seq.max(loc.seq);
        self.live += 1;
        self.locs.push_back(loc);
    }

    /// Restores sequence order after recovery pushed records segment by segment, and
    /// returns duplicates (a message copied by compaction whose old copy was not yet settled
    /// when the broker stopped): all but the first of each seq, for the caller to settle.
    pub fn sort(&mut self) -> Vec<Loc> {
        self.locs.make_contiguous().sort_by_key(|l| (l.seq, l.seg, l.offset));
        let mut dups = Vec::new();
        let mut kept: VecDeque<Loc> = VecDeque::with_capacity(self.locs.len());
        for l in self.locs.drain(..) {
            if kept.back().is_some_and(|k: &Loc| k.seq == l.seq) {
                dups.push(l);
            } else {
                kept.push_back(l);
            }
        }
        self.live -= dups.len();
        self.locs = kept;
        dups
    }

    /// Marks message `seq` settled; returns where it was, if it was live.
    pub fn settle(&mut self, seq: u64) -> Option<Loc> {
        let i = self.locs.binary_search_by_key(&seq, |l| l.seq).ok()?;
        let loc = self.settle_at(i)?;
        self.trim_front();
        Some(loc)
    }

    fn settle_at(&mut self, i: usize) -> Option<Loc> {
        let l = &mut self.locs[i];
        if l.settled() {
            return None;
        }
        l.len_flags |= SETTLED;
        self.live -= 1;
        Some(*l)
    }

    fn trim_front(&mut self) {
        while self.locs.front().is_some_and(Loc::settled) {
            self.locs.pop_front();
        }
    }

    /// Settles every live message from `from` on; returns them.
    pub fn settle_from(&mut self, from: u64) -> Vec<Loc> {
        let start = self.locs.partition_point(|l| l.seq < from);
        let out: Vec<Loc> = (start..self.locs.len()).filter_map(|i| self.settle_at(i)).collect();
        self.locs.truncate(start);
        self.trim_front();
        out
    }

    /// Up to `max` live messages from `from` on, in order.
    pub fn live_from(&self, from: u64, max: usize) -> impl Iterator<Item = Loc> + '_ {
        let start = self.locs.partition_point(|l| l.seq < from);
        self.locs.range(start..).filter(|l| !l.settled()).take(max).copied()
    }

    /// Every live message (to drop a deleted queue's).
    pub fn drain_live(&mut self) -> impl Iterator<Item = Loc> + '_ {
        self.live = 0;
        self.locs.drain(..).filter(|l| !l.settled())
    }

    pub fn live(&self) -> usize {
        self.live
    }

    /// First live seq.
    pub fn first_live(&self) -> Option<u64> {
        self.locs.iter().find(|l| !l.settled()).map(|l| l.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(seq: u64) -> Loc {
        Loc::new(seq, 1, seq as u32 * 10, 5, true)
    }

    #[test]
    fn settle_trims_the_front_and_finds_by_seq() {
        let mut q = QueueIndex::default();
        for s in [1, 2, 3, 5, 8] {
            q.push(loc(s));
        }
        assert_eq!(q.settle(3).map(|l| l.seq), Some(3));
        assert!(q.settle(3).is_none(), "settling twice is a no-op");
        assert!(q.settle(4).is_none(), "not a message of the queue");
        assert_eq!(q.live(), 4);
        q.settle(1);
        q.settle(2);
        assert_eq!(q.first_live(), Some(5));
        assert_eq!(q.live_from(0, 10).map(|l| l.seq).collect::<Vec<_>>(), [5, 8]);
        assert_eq!(q.settle_from(6).iter().map(|l| l.seq).collect::<Vec<_>>(), [8]);
        assert_eq!((q.live(), q.max_seq), (1, 8));
    }

    #[test]
    fn sort_orders_and_reports_duplicates() {
        let mut q = QueueIndex::default();
        for s in [5, 6, 1, 5, 2] {
            q.push(loc(s));
        }
        let dups = q.sort();
        assert_eq!(dups.len(), 1);
        assert_eq!(q.live_from(0, 10).map(|l| l.seq).collect::<Vec<_>>(), [1, 2, 5, 6]);
        assert_eq!(q.live(), 4);
        assert!(Loc::new(1, 1, 1, MAX_PAYLOAD as u32, false).len() as usize == MAX_PAYLOAD);
    }
}
