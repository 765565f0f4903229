//! Transactions (tx.select / commit / rollback) over publishes and settlements.
use crate::ack::Settle;
use crate::channel::{Channel, Mode};
use crate::context::{ConnCtx, Io};
use crate::unacked::Unacked;
use std::sync::Arc;
use warren_broker::exchange::Exchange;
use warren_broker::Message;
use warren_codec::{AmqpError, ReplyCode};

/// What a transaction holds until commit.
#[derive(Default)]
pub struct TxBuffer {
    pub publishes: Vec<(Arc<Exchange>, Arc<Message>, bool)>,
    /// Settlements already checked against the unacked list (so an unknown tag fails at
    /// once, as in RabbitMQ) and taken out of it; rollback puts them back.
    pub settles: Vec<(Vec<Unacked>, Settle)>,
}

fn not_transactional() -> AmqpError {
    AmqpError::new(
        ReplyCode::PreconditionFailed,
        "channel is not transactional",
    )
}

impl Channel {
    pub(crate) fn tx_select(&mut self) -> Result<(), AmqpError> {
        match self.mode {
            Mode::Confirm(_) => Err(AmqpError::new(
                ReplyCode::PreconditionFailed,
                "cannot switch from confirm to tx mode",
            )),
            Mode::Tx(_) => Ok(()),
            Mode::Plain => {
                self.mode = Mode::Tx(TxBuffer::default());
                Ok(())
            }
        }
    }

    /// Applies the transaction's publishes, then its settlements, and starts a new one.
    pub(crate) fn tx_commit(&mut self, ctx: &ConnCtx, io: &mut Io) -> Result<(), AmqpError> {
        let Mode::Tx(tx) = &mut self.mode else {
            return Err(not_transactional());
        };
        let tx = std::mem::take(tx);
        for (exchange, msg, mandatory) in tx.publishes {
            self.enqueue(ctx, &exchange, msg, mandatory, io);
        }
        for (entries, how) in tx.settles {
            self.apply_settle(entries, how);
        }
        Ok(())
    }

    /// Drops the transaction's publishes; its settlements are undone (the deliveries are
    /// unacked again), as RabbitMQ does.
    pub(crate) fn tx_rollback(&mut self) -> Result<(), AmqpError> {
        let Mode::Tx(tx) = &mut self.mode else {
            return Err(not_transactional());
        };
        let tx = std::mem::take(tx);
        let restored: Vec<Unacked> = tx.settles.into_iter().flat_map(|(e, _)| e).collect();
        self.unacked.restore(restored);
        Ok(())
    }
}
