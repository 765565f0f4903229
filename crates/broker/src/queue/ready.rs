//! The ready list of a queue: messages in sequence order.
use super::QueuedMessage;
use std::collections::VecDeque;

/// Ready messages, ordered by sequence number. Appends go to the back; requeued messages
/// (older sequence numbers) are put back where they belong, which is almost always the front.
#[derive(Default)]
pub(super) struct Ready {
    items: VecDeque<QueuedMessage>,
}

impl Ready {
    pub fn push_back(&mut self, m: QueuedMessage) {
        self.items.push_back(m);
    }

    pub fn pop_front(&mut self) -> Option<QueuedMessage> {
        self.items.pop_front()
    }

    pub fn insert_by_seq(&mut self, m: QueuedMessage) {
        match self.items.front() {
            None => self.items.push_back(m),
            Some(f) if m.seq < f.seq => self.items.push_front(m),
            _ => {
                let at = self.items.partition_point(|x| x.seq < m.seq);
                self.items.insert(at, m);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn clear(&mut self) {
        self.items.clear();
    }
}
