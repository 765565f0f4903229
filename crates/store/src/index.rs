//! The writer's in-memory index of stored segments: for each queue, its segments by first
//! sequence number, how many messages each holds and which of them are settled.
//!
//! With it, settling a message needs no read of the tree, and a segment is deleted the moment
//! its last message is settled. It costs one bit per stored message plus a few dozen bytes
//! per segment.
use crate::segment::Removed;
use std::collections::{BTreeMap, HashMap};

pub struct SegInfo {
    pub count: u32,
    pub removed: Removed,
}

impl SegInfo {
    /// Messages not yet settled.
    pub fn live(&self) -> u32 {
        self.count - self.removed.count()
    }
}

#[derive(Default)]
pub struct Index {
    queues: HashMap<u64, BTreeMap<u64, SegInfo>>,
}

impl Index {
    pub fn insert(&mut self, queue_id: u64, first: u64, info: SegInfo) {
        self.queues.entry(queue_id).or_default().insert(first, info);
    }

    /// The segment holding message `seq`, as (first seq, info).
    pub fn find_mut(&mut self, queue_id: u64, seq: u64) -> Option<(u64, &mut SegInfo)> {
        let (&first, info) = self.queues.get_mut(&queue_id)?.range_mut(..=seq).next_back()?;
        (seq < first + info.count as u64).then_some((first, info))
    }

    pub fn get(&self, queue_id: u64, first: u64) -> Option<&SegInfo> {
        self.queues.get(&queue_id)?.get(&first)
    }

    pub fn get_mut(&mut self, queue_id: u64, first: u64) -> Option<&mut SegInfo> {
        self.queues.get_mut(&queue_id)?.get_mut(&first)
    }

    pub fn remove(&mut self, queue_id: u64, first: u64) -> Option<SegInfo> {
        let segs = self.queues.get_mut(&queue_id)?;
        let info = segs.remove(&first);
        if segs.is_empty() {
            self.queues.remove(&queue_id);
        }
        info
    }

    /// First sequence numbers of the queue's segments holding messages from `from` on, in order.
    pub fn firsts_from(&self, queue_id: u64, from: u64) -> Vec<u64> {
        let Some(segs) = self.queues.get(&queue_id) else { return Vec::new() };
        let straddling = segs.range(..from).next_back().filter(|(f, i)| from < **f + i.count as u64);
        straddling.map(|(f, _)| *f).into_iter().chain(segs.range(from..).map(|(f, _)| *f)).collect()
    }

    pub fn queue(&self, queue_id: u64) -> Option<&BTreeMap<u64, SegInfo>> {
        self.queues.get(&queue_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(count: u32) -> SegInfo {
        SegInfo { count, removed: Removed::default() }
    }

    #[test]
    fn finds_segments_by_any_of_their_sequence_numbers() {
        let mut ix = Index::default();
        ix.insert(1, 10, seg(5)); // 10..=14
        ix.insert(1, 20, seg(2)); // 20..=21
        assert_eq!(ix.find_mut(1, 12).map(|(f, _)| f), Some(10));
        assert!(ix.find_mut(1, 15).is_none(), "a gap between segments");
        assert!(ix.find_mut(1, 9).is_none() && ix.find_mut(2, 10).is_none());
        assert_eq!(ix.firsts_from(1, 0), [10, 20]);
        assert_eq!(ix.firsts_from(1, 14), [10, 20]);
        assert_eq!(ix.firsts_from(1, 15), [20]);
        assert_eq!(ix.firsts_from(1, 22), [] as [u64; 0]);
        ix.remove(1, 10);
        ix.remove(1, 20);
        assert!(ix.queue(1).is_none(), "an empty queue leaves no entry behind");
    }
}
