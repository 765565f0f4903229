//! The ready list of a queue: messages in sequence order, the oldest in memory and, when
//! the queue is longer than its memory window, the rest paged out to the store.
use super::QueuedMessage;
use std::collections::VecDeque;

/// Ready messages. `items` (in memory, sorted by seq) come first; then `disk_count`
/// messages that live only in the store, with sequence numbers from `disk_from` on.
/// Paging always happens at the tail, so the paged part is one contiguous seq range and
/// costs no memory per message.
#[derive(Default)]
pub(super) struct Ready {
    items: VecDeque<QueuedMessage>,
    pub mem_bytes: usize,
    pub disk_count: usize,
    pub disk_from: u64,
}

impl Ready {
    pub fn push_back(&mut self, m: QueuedMessage) {
        debug_assert_eq!(self.disk_count, 0, "memory must not get ahead of the paged tail");
        self.mem_bytes += m.message.memory_size();
        self.items.push_back(m);
    }

    /// Appends a message that was written to the store only.
    pub fn push_paged(&mut self, seq: u64) {
        if self.disk_count == 0 {
            self.disk_from = seq;
        }
        self.disk_count += 1;
    }

    pub fn pop_front(&mut self) -> Option<QueuedMessage> {
        let m = self.items.pop_front()?;
        self.mem_bytes -= m.message.memory_size();
        Some(m)
    }

    /// Messages loaded back from the store, in order, continuing `items`.
    pub fn extend_loaded(&mut self, loaded: impl IntoIterator<Item = QueuedMessage>, next_disk_seq: u64, n: usize) {
        for m in loaded {
            self.mem_bytes += m.message.memory_size();
            self.items.push_back(m);
        }
        self.disk_count -= n;
        self.disk_from = next_disk_seq;
    }

    pub fn insert_by_seq(&mut self, m: QueuedMessage) {
        self.mem_bytes += m.message.memory_size();
        match self.items.front() {
            None => self.items.push_back(m),
            Some(f) if m.seq < f.seq => self.items.push_front(m),
            _ => {
                let at = self.items.partition_point(|x| x.seq < m.seq);
                self.items.insert(at, m);
            }
        }
    }

    pub fn in_memory(&self) -> usize {
        self.items.len()
    }

    pub fn len(&self) -> usize {
        self.items.len() + self.disk_count
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Empties the list; returns the in-memory messages (their store entries, if any, must
    /// be removed by the caller, as must the paged tail).
    pub fn clear(&mut self) -> VecDeque<QueuedMessage> {
        self.mem_bytes = 0;
        self.disk_count = 0;
        std::mem::take(&mut self.items)
    }
}
