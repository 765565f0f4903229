//! Transactions (tx.select / commit / rollback) over publishes and settlements.
use crate::ack::Settle;
use crate::channel::{Channel, Mode};
use crate::context::{ConnCtx, Io};
use crate::unacked::Unacked;
use amq_protocol::protocol::{tx, AMQPClass};
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

/// The token a transaction's commit waits on in the store (publish tags never reach it).
pub const TX_COMMIT_TOKEN: u64 = u64::MAX;

fn not_transactional() -> AmqpError {
    AmqpError::new(ReplyCode::PreconditionFailed, "channel is not transactional")
}

impl Channel {
    pub(crate) fn tx_select(&mut self) -> Result<(), AmqpError> {
        match self.mode {
            Mode::Confirm(_) => {
                Err(AmqpError::new(ReplyCode::PreconditionFailed, "cannot switch from confirm to tx mode"))
            }
            Mode::Tx(_) => Ok(()),
            Mode::Plain => {
                self.mode = Mode::Tx(TxBuffer::default());
                Ok(())
            }
        }
    }

    /// Applies the transaction's publishes, then its settlements, and starts a new one.
    /// Returns true when commit-ok must wait for the store to flush what it wrote (the
    /// store reports back through `Channel::on_durable` with [`TX_COMMIT_TOKEN`]).
    pub(crate) fn tx_commit(&mut self, ctx: &ConnCtx, io: &mut Io) -> Result<bool, AmqpError> {
        let Mode::Tx(tx) = &mut self.mode else { return Err(not_transactional()) };
        let tx = std::mem::take(tx);
        let mut needs_sync = false;
        for (exchange, msg, mandatory) in tx.publishes {
            needs_sync |= self.enqueue(ctx, &exchange, msg, mandatory, io);
        }
        // Settlements remove stored entries through the same ordered writer, so one flush
        // covers the whole transaction.
        let settles_stored = tx.settles.iter().any(|(e, _)| e.iter().any(|u| u.message.stored));
        for (entries, how) in tx.settles {
            self.apply_settle(entries, how);
        }
        Ok(needs_sync || settles_stored)
    }

    /// The store flushed (or failed to flush) a committed transaction: now commit-ok.
    pub(crate) fn commit_durable(&mut self, ok: bool, io: &mut Io) -> Result<(), AmqpError> {
        if !ok {
            return Err(AmqpError::new(ReplyCode::InternalError, "could not write the transaction to disk").on(90, 20));
        }
        let ok = AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {}));
        crate::channel::reply(io, self.id, ok);
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
