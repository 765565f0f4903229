//! Deliveries a channel has sent and the client has not settled yet.
use std::collections::VecDeque;
use std::sync::Arc;
use warren_broker::{Consumer, QueueHandle, QueuedMessage};

pub struct Unacked {
    pub tag: u64,
    pub queue: QueueHandle,
    pub message: QueuedMessage,
    /// None for basic.get deliveries, which hold no consumer credit.
    pub consumer: Option<Arc<Consumer>>,
    /// The channel's consumer-timeout tick count when this was delivered (a coarse clock
    /// that costs no clock read per delivery; see `timeout.rs`).
    pub stamp: u32,
}

/// Delivery tags only grow, so entries stay sorted by tag: a lookup is a binary search,
/// settled entries become holes, and holes at the front are dropped. Acks in order (the
/// common case) are O(1) each.
#[derive(Default)]
pub struct UnackedList {
    slots: VecDeque<(u64, Option<Unacked>)>,
    live: usize,
}

impl UnackedList {
    pub fn push(&mut self, u: Unacked) {
        debug_assert!(self.slots.back().is_none_or(|(t, _)| *t < u.tag));
        self.slots.push_back((u.tag, Some(u)));
        self.live += 1;
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.live
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Takes the entries a settle (ack/nack/reject) names, or None if `tag` is not an
    /// outstanding delivery (RabbitMQ: 406 unknown delivery tag). `tag` 0 with `multiple`
    /// means every outstanding delivery.
    pub fn take(&mut self, tag: u64, multiple: bool) -> Option<Vec<Unacked>> {
        if multiple && tag == 0 {
            return Some(self.take_all());
        }
        let i = self.slots.binary_search_by_key(&tag, |(t, _)| *t).ok()?;
        self.slots[i].1.as_ref()?;
        let taken: Vec<Unacked> = if multiple {
            self.slots.range_mut(..=i).filter_map(|(_, s)| s.take()).collect()
        } else {
            self.slots[i].1.take().into_iter().collect()
        };
        self.live -= taken.len();
        while matches!(self.slots.front(), Some((_, None))) {
            self.slots.pop_front();
        }
        Some(taken)
    }

    /// Puts back entries taken earlier (a rolled-back transaction), keeping tag order.
    pub fn restore(&mut self, entries: Vec<Unacked>) {
        if entries.is_empty() {
            return;
        }
        let mut all = self.take_all();
        all.extend(entries);
        all.sort_unstable_by_key(|u| u.tag);
        for u in all {
            self.push(u);
        }
    }

    /// The stamp of the oldest outstanding delivery. Entries are in delivery order and holes
    /// at the front are dropped, so it is the front entry's.
    pub fn oldest_stamp(&self) -> Option<u32> {
        self.slots.front().and_then(|(_, u)| u.as_ref()).map(|u| u.stamp)
    }

    pub fn take_all(&mut self) -> Vec<Unacked> {
        self.live = 0;
        self.slots.drain(..).filter_map(|(_, s)| s).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // QueueHandle cannot be built outside the broker crate without a broker, so these tests
    // exercise the tag bookkeeping through a real (in-memory) queue.
    fn list(tags: &[u64]) -> UnackedList {
        use warren_broker::{Broker, BrokerSettings, InMemoryOnly, QueueDeclare};
        let b = Broker::new(BrokerSettings::default(), Box::new(InMemoryOnly), None);
        let v = b.add_vhost("/").unwrap();
        let q = b.declare_queue(&v, 1, &QueueDeclare { name: "q".into(), ..Default::default() }).unwrap().queue;
        let mut l = UnackedList::default();
        for &t in tags {
            let message = std::sync::Arc::new(warren_broker::Message {
                exchange: Default::default(),
                routing_key: Default::default(),
                header: warren_codec::ContentHeader::new(60, 0, Default::default()),
                body: Default::default(),
            });
            l.push(Unacked {
                tag: t,
                queue: q.clone(),
                message: QueuedMessage { seq: t, message, redelivered: false, stored: false },
                consumer: None,
                stamp: t as u32,
            });
        }
        l
    }

    fn tags(v: &[Unacked]) -> Vec<u64> {
        v.iter().map(|u| u.tag).collect()
    }

    #[test]
    fn single_multiple_and_all() {
        let mut l = list(&[1, 2, 4, 5, 7]);
        assert_eq!(tags(&l.take(4, false).unwrap()), [4]);
        assert!(l.take(4, false).is_none(), "acking twice is unknown tag");
        assert!(l.take(3, false).is_none(), "never delivered");
        assert_eq!(tags(&l.take(5, true).unwrap()), [1, 2, 5]);
        assert_eq!(l.len(), 1);
        assert_eq!(tags(&l.take(0, true).unwrap()), [7]);
        assert!(l.is_empty());
    }

    #[test]
    fn oldest_stamp_follows_the_front() {
        let mut l = list(&[1, 2, 4]);
        assert_eq!(l.oldest_stamp(), Some(1));
        l.take(2, false).unwrap();
        assert_eq!(l.oldest_stamp(), Some(1), "a hole behind the front changes nothing");
        l.take(1, false).unwrap();
        assert_eq!(l.oldest_stamp(), Some(4), "holes at the front are skipped");
        l.take_all();
        assert_eq!(l.oldest_stamp(), None);
    }
}
