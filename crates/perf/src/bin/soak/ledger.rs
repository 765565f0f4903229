//! The ledger: what happened to every persistent message, and what the broker therefore owes.
//!
//! Message ids are 1, 2, 3... in publish order, so a state is one byte per id.
//!
//! - **confirmed**: the broker sent basic.ack for the publish; the message is on disk.
//! - **settled**: an ack or a reject without requeue is known to be on disk. For a settlement in
//!   a transaction that is its tx.commit-ok. Outside one it takes two steps (see
//!   docs/architecture.md, "Durability"): a later reply on the same channel shows the broker
//!   processed it (the store's `Remove` was submitted), and then the confirm of a persistent
//!   publish *sent after that reply arrived*, to the same broker process, shows it synced: the
//!   store's writer applies operations in submission order and fires a confirm only after
//!   syncing everything before it. The clock orders the two: a settlement is stamped with the
//!   clock when its reply arrives, a publish takes a ticket from it before it is sent.
//! - **in doubt**: a settlement was sent but is not (yet) known durable: its connection or the
//!   broker died first. The message may be there or not. A later delivery of it proves the
//!   settlement did not happen (there is only one copy), and clears the doubt.
//!
//! At the end, a confirmed message that is neither settled nor in doubt must be in its queue
//! exactly once, and a settled one must not be there at all.
use std::collections::{HashMap, VecDeque};

const CONFIRMED: u8 = 1;
const SETTLED: u8 = 2;
const DOUBT: u8 = 4;

/// Settlements a reply has shown processed, waiting for a later confirm from the same broker.
struct Processed {
    epoch: u32,
    stamp: u64,
    ids: Vec<u64>,
}

#[derive(Default)]
pub struct Ledger {
    /// Index `id - 1`.
    state: Vec<u8>,
    clock: u64,
    /// The broker process now running (1 for the first, +1 per restart).
    epoch: u32,
    /// Oldest stamp first (stamps are taken under the ledger's lock, so they only grow).
    processed: VecDeque<Processed>,
    /// Deliveries of a message after its settlement was known durable.
    resurrected_live: u64,
    /// Messages published before the latest broker start (they were on disk at a kill).
    published_before_restart: u64,
    /// Deliveries of such messages by the broker started after the kill.
    crossed_kill: u64,
}

/// A persistent publish about to be sent.
#[derive(Clone, Copy, Debug)]
pub struct Ticket {
    pub id: u64,
    pub epoch: u32,
    pub clock: u64,
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger { epoch: 1, ..Default::default() }
    }

    /// The next persistent message, to be published to broker `epoch`.
    pub fn next_publish(&mut self, epoch: u32) -> Ticket {
        self.state.push(0);
        Ticket { id: self.state.len() as u64, epoch, clock: self.tick() }
    }

    /// A clock value for a publish the ledger does not track (the barrier at the end): its
    /// confirm is passed to [`Ledger::proof`].
    pub fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    pub fn published(&self) -> u64 {
        self.state.len() as u64
    }

    /// The broker confirmed `t`: its message is durable, and so is every settlement that
    /// broker had processed before `t` was sent.
    pub fn confirmed(&mut self, t: Ticket) {
        self.set(t.id, CONFIRMED);
        self.proof(t.epoch, t.clock);
    }

    /// A confirm from broker `epoch` of a publish that took clock value `clock`.
    pub fn proof(&mut self, epoch: u32, clock: u64) {
        while let Some(front) = self.processed.front() {
            if front.epoch == epoch && front.stamp < clock {
                let p = self.processed.pop_front().expect("front exists");
                for id in p.ids {
                    self.settle(id);
                }
            } else if front.epoch < self.epoch {
                // Processed by a broker that was killed before a confirm proved it: stays in doubt.
                self.processed.pop_front();
            } else {
                break;
            }
        }
    }

    /// A delivery of `id` from broker `epoch` arrived. Returns false if it was already known
    /// settled, which the broker must never do (the ledger counts it as resurrected).
    pub fn delivered(&mut self, id: u64, epoch: u32) -> bool {
        if epoch == self.epoch && id <= self.published_before_restart {
            self.crossed_kill += 1;
        }
        let Some(s) = self.state_mut(id) else { return true };
        if *s & SETTLED != 0 {
            self.resurrected_live += 1;
            return false;
        }
        // It is here again, so any earlier settlement of it did not take effect.
        *s &= !DOUBT;
        true
    }

    /// Settlements (ack, or reject without requeue) about to be sent: in doubt until proven.
    pub fn settling(&mut self, ids: &[u64]) {
        for &id in ids {
            if self.get(id) & SETTLED == 0 {
                self.set(id, DOUBT);
            }
        }
    }

    /// A reply from broker `epoch` arrived after these settlements were sent on its channel.
    pub fn processed(&mut self, epoch: u32, ids: Vec<u64>) {
        if ids.is_empty() || epoch != self.epoch {
            return;
        }
        self.processed.push_back(Processed { epoch, stamp: self.clock, ids });
    }

    /// A tx.commit-ok arrived for these settlements.
    pub fn committed(&mut self, ids: &[u64]) {
        for &id in ids {
            self.settle(id);
        }
    }

    /// The broker was killed and broker `epoch` is about to start: what its predecessor
    /// processed without a proof stays in doubt.
    pub fn broker_restarted(&mut self, epoch: u32) {
        self.epoch = epoch;
        self.published_before_restart = self.published();
        self.processed.retain(|p| p.epoch >= epoch);
    }

    fn settle(&mut self, id: u64) {
        if let Some(s) = self.state_mut(id) {
            *s = (*s | SETTLED) & !DOUBT;
        }
    }

    fn get(&self, id: u64) -> u8 {
        id.checked_sub(1).and_then(|i| self.state.get(i as usize)).copied().unwrap_or(0)
    }

    fn set(&mut self, id: u64, bit: u8) {
        if let Some(s) = self.state_mut(id) {
            *s |= bit;
        }
    }

    fn state_mut(&mut self, id: u64) -> Option<&mut u8> {
        self.state.get_mut(id.checked_sub(1)? as usize)
    }

    /// Checks what the durable queues held at the end (id → copies) against the ledger.
    pub fn verdict(&self, drained: &HashMap<u64, u32>) -> Verdict {
        let mut v = Verdict { resurrected: self.resurrected_live, ..Default::default() };
        v.crossed_kill = self.crossed_kill
            + drained
                .iter()
                .filter(|(&id, _)| id <= self.published_before_restart)
                .map(|(_, &c)| u64::from(c))
                .sum::<u64>();
        for (i, &s) in self.state.iter().enumerate() {
            let id = i as u64 + 1;
            let copies = drained.get(&id).copied().unwrap_or(0);
            v.confirmed += u64::from(s & CONFIRMED != 0);
            v.settled += u64::from(s & SETTLED != 0);
            v.in_doubt += u64::from(s & DOUBT != 0);
            if s & SETTLED != 0 {
                v.resurrected += u64::from(copies > 0);
            } else if s & DOUBT == 0 {
                if s & CONFIRMED != 0 {
                    v.expected += 1;
                    v.lost += u64::from(copies == 0);
                } else {
                    v.unconfirmed_present += u64::from(copies > 0);
                }
                // Duplicates are allowed only where a settlement was in doubt.
                v.duplicates += u64::from(copies > 1);
            }
        }
        v.unknown = drained.keys().filter(|&&id| id == 0 || id > self.published()).count() as u64;
        v.present = drained.values().map(|&c| u64::from(c)).sum();
        v
    }
}

/// The end-of-run comparison of the durable queues with the ledger.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub confirmed: u64,
    pub settled: u64,
    pub in_doubt: u64,
    /// Confirmed, never settled, not in doubt: must be there.
    pub expected: u64,
    /// Copies found in the queues.
    pub present: u64,
    pub lost: u64,
    /// Settled messages delivered again during the run or found at the end.
    pub resurrected: u64,
    pub duplicates: u64,
    /// Unconfirmed publishes that made it (allowed: the confirm was in flight).
    pub unconfirmed_present: u64,
    /// Ids the ledger never issued.
    pub unknown: u64,
    /// Deliveries (and drained copies) of messages published before the latest broker kill,
    /// by a broker started after it: how much the kills had in flight.
    pub crossed_kill: u64,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        self.lost == 0 && self.resurrected == 0 && self.duplicates == 0 && self.unknown == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drained(ids: &[u64]) -> HashMap<u64, u32> {
        let mut m = HashMap::new();
        for &id in ids {
            *m.entry(id).or_insert(0) += 1;
        }
        m
    }

    #[test]
    fn a_confirmed_message_nobody_settled_must_be_there() {
        let mut l = Ledger::new();
        let a = l.next_publish(1);
        let b = l.next_publish(1);
        l.confirmed(a);
        l.confirmed(b);
        let v = l.verdict(&drained(&[a.id]));
        assert_eq!((v.expected, v.lost), (2, 1));
        assert!(!v.ok());
        assert!(l.verdict(&drained(&[a.id, b.id])).ok());
        assert_eq!(l.verdict(&drained(&[a.id, b.id, b.id])).duplicates, 1);
    }

    #[test]
    fn an_ack_is_settled_only_by_a_confirm_sent_after_its_reply() {
        let mut l = Ledger::new();
        let a = l.next_publish(1);
        l.confirmed(a);
        let early = l.next_publish(1); // sent before the ack's reply arrived
        l.settling(&[a.id]);
        l.processed(1, vec![a.id]);
        l.confirmed(early);
        assert_eq!(l.verdict(&drained(&[])).in_doubt, 1, "a confirm of an earlier publish proves nothing");
        let late = l.next_publish(1);
        l.confirmed(late);
        let v = l.verdict(&drained(&[early.id, late.id]));
        assert_eq!((v.settled, v.in_doubt, v.lost), (1, 0, 0));
        assert_eq!(l.verdict(&drained(&[a.id, early.id, late.id])).resurrected, 1);
    }

    #[test]
    fn a_confirm_from_the_next_broker_proves_nothing_about_the_killed_one() {
        let mut l = Ledger::new();
        let a = l.next_publish(1);
        l.confirmed(a);
        l.settling(&[a.id]);
        l.processed(1, vec![a.id]);
        l.broker_restarted(2);
        let b = l.next_publish(2);
        l.confirmed(b);
        let v = l.verdict(&drained(&[b.id]));
        assert_eq!((v.settled, v.in_doubt, v.lost), (0, 1, 0), "either outcome is fine for a");
        // A late reply from the killed broker is not taken as processed by the new one.
        l.processed(1, vec![b.id]);
        let c = l.next_publish(2);
        l.confirmed(c);
        assert_eq!(l.verdict(&drained(&[b.id, c.id])).settled, 0);
        // a was published before the restart: its delivery now crossed the kill.
        l.delivered(a.id, 2);
        l.delivered(c.id, 2);
        assert_eq!(l.verdict(&drained(&[a.id, c.id])).crossed_kill, 2);
    }

    #[test]
    fn a_redelivery_clears_the_doubt_and_a_settled_one_is_resurrection() {
        let mut l = Ledger::new();
        let a = l.next_publish(1);
        l.confirmed(a);
        l.settling(&[a.id]);
        assert_eq!(l.verdict(&drained(&[])).lost, 0, "in doubt: may be gone");
        assert!(l.delivered(a.id, 1));
        assert_eq!(l.verdict(&drained(&[])).lost, 1, "delivered again, so the settlement did not happen");
        l.settling(&[a.id]);
        l.committed(&[a.id]);
        assert!(!l.delivered(a.id, 1));
        assert_eq!(l.verdict(&drained(&[])).resurrected, 1);
    }

    #[test]
    fn ids_never_issued_are_reported() {
        let mut l = Ledger::new();
        let a = l.next_publish(1);
        let v = l.verdict(&drained(&[a.id, 7, 0]));
        assert_eq!((v.unknown, v.unconfirmed_present, v.present), (2, 1, 3));
    }
}
