//! Publisher confirms.
//!
//! A publish is confirmed once every queue it reached holds it safely: at once for
//! transient messages (memory), after the store's group commit for persistent messages in
//! durable queues. Confirms are sent in publish order, so a transient publish queued
//! behind a persistent one waits for it; in the common case a whole read pass of
//! publishes is confirmed by one `basic.ack(multiple)`.
use crate::channel::{Channel, Mode};
use crate::context::Io;
use std::collections::VecDeque;
use warren_codec::{encode_ack, encode_nack, AmqpError, ReplyCode};

#[derive(Default)]
pub struct Confirms {
    /// Tag of the last publish seen (tags start at 1).
    published: u64,
    /// Publishes not yet confirmable, oldest first: (tag, waits for the store).
    waiting: VecDeque<(u64, bool)>,
    /// Highest tag whose ack is owed and not yet sent.
    owed: Option<u64>,
    /// Highest tag already confirmed to the client.
    sent: u64,
}

impl Confirms {
    /// Assigns the next publish's tag and notes whether it waits for the store.
    pub fn publish(&mut self, needs_sync: bool) -> u64 {
        self.published += 1;
        let tag = self.published;
        if !needs_sync && self.waiting.is_empty() {
            self.owed = Some(tag);
        } else {
            self.waiting.push_back((tag, needs_sync));
        }
        tag
    }

    fn encode_owed(&mut self, ch: u16, io: &mut Io) {
        if let Some(tag) = self.owed.take() {
            // Like RabbitMQ, `multiple` only when the ack covers more than one publish.
            encode_ack(io.out.tail(), ch, tag, tag > self.sent + 1);
            self.sent = tag;
        }
    }
}

impl Channel {
    pub(crate) fn confirm_select(&mut self) -> Result<(), AmqpError> {
        match self.mode {
            Mode::Tx(_) => Err(AmqpError::new(ReplyCode::PreconditionFailed, "cannot switch from tx to confirm mode")),
            Mode::Confirm(_) => Ok(()),
            Mode::Plain => {
                self.mode = Mode::Confirm(Confirms::default());
                Ok(())
            }
        }
    }

    /// Sends the acks owed since the last flush, as one frame.
    pub fn flush(&mut self, io: &mut Io) {
        if let Mode::Confirm(c) = &mut self.mode {
            c.encode_owed(self.id, io);
        }
    }

    /// The store reports that everything submitted up to `token` is on disk (`ok`) or could
    /// not be written. For a confirm channel `token` is a publish tag; for a transaction it
    /// is the commit's marker.
    pub fn on_durable(&mut self, token: u64, ok: bool, io: &mut Io) -> Result<(), AmqpError> {
        let ch = self.id;
        match &mut self.mode {
            Mode::Confirm(c) => {
                while let Some(&(tag, needs_sync)) = c.waiting.front() {
                    if needs_sync && tag > token {
                        break;
                    }
                    c.waiting.pop_front();
                    if ok || !needs_sync {
                        c.owed = Some(tag);
                    } else {
                        // Acks owed so far go first, then this publish is refused.
                        c.encode_owed(ch, io);
                        encode_nack(io.out.tail(), ch, tag, false, false);
                        c.sent = tag;
                    }
                }
                // No read pass may follow (the publisher may be waiting on its window), so
                // the acks go out now.
                c.encode_owed(ch, io);
                Ok(())
            }
            Mode::Tx(_) => self.commit_durable(ok, io),
            Mode::Plain => Ok(()),
        }
    }
}
