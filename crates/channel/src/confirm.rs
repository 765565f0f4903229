//! Publisher confirms.
use crate::channel::{Channel, Mode};
use crate::context::Io;
use warren_codec::{encode_ack, AmqpError, ReplyCode};

/// Confirm-mode bookkeeping. Messages are confirmed in publish order, so one number says
/// everything: acks for all tags up to `confirmed` are owed to the client. They go out as
/// a single basic.ack(multiple) at the end of each pass over the socket's input instead of
/// one frame per message.
#[derive(Default)]
pub struct Confirms {
    /// Tag of the last publish seen (tags start at 1).
    published: u64,
    /// Highest tag whose confirm is owed and not yet sent.
    owed: Option<u64>,
    /// Highest tag already confirmed to the client.
    sent: u64,
}

impl Confirms {
    /// Assigns the next publish's tag.
    pub fn next_tag(&mut self) -> u64 {
        self.published += 1;
        self.published
    }

    /// Everything up to `tag` is safe: it will be acked on the next flush.
    pub fn confirm_upto(&mut self, tag: u64) {
        self.owed = Some(self.owed.map_or(tag, |t| t.max(tag)));
    }
}

impl Channel {
    pub(crate) fn confirm_select(&mut self) -> Result<(), AmqpError> {
        match self.mode {
            Mode::Tx(_) => Err(AmqpError::new(
                ReplyCode::PreconditionFailed,
                "cannot switch from tx to confirm mode",
            )),
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
            if let Some(tag) = c.owed.take() {
                // Like RabbitMQ, `multiple` only when the ack covers more than one publish.
                encode_ack(io.out.tail(), self.id, tag, tag > c.sent + 1);
                c.sent = tag;
            }
        }
    }
}
