//! basic.ack / nack / reject / recover: settling deliveries.
use crate::channel::{Channel, Mode};
use crate::context::ConnCtx;
use crate::unacked::Unacked;
use std::sync::Arc;
use warren_broker::{Consumer, QueueHandle, QueuedMessage};
use warren_codec::{AmqpError, ReplyCode};

/// How a delivery is settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settle {
    Ack,
    /// Rejected without requeue: dropped (dead-lettering attaches here later).
    Drop,
    Requeue,
}

impl Settle {
    pub fn reject(requeue: bool) -> Self {
        if requeue {
            Settle::Requeue
        } else {
            Settle::Drop
        }
    }
}

impl Channel {
    pub(crate) fn settle(&mut self, _ctx: &ConnCtx, tag: u64, multiple: bool, how: Settle) -> Result<(), AmqpError> {
        let entries = self
            .unacked
            .take(tag, multiple)
            .ok_or_else(|| AmqpError::new(ReplyCode::PreconditionFailed, format!("unknown delivery tag {tag}")))?;
        if let Mode::Tx(tx) = &mut self.mode {
            tx.settles.push((entries, how));
        } else {
            self.apply_settle(entries, how);
        }
        Ok(())
    }

    /// Returns credit to the consumers and hands the messages back to their queues, one
    /// call per queue rather than per message.
    pub(crate) fn apply_settle(&mut self, entries: Vec<Unacked>, how: Settle) {
        let mut per_queue: Vec<(QueueHandle, Vec<QueuedMessage>)> = Vec::new();
        // Credit goes back once per run of entries from the same consumer (usually the whole
        // batch of a multiple ack): each give-back is two compare-and-swap loops on counters
        // the dispatching queue also touches.
        let mut run: Option<(Arc<Consumer>, u32)> = None;
        for u in entries {
            if let Some(c) = u.consumer {
                match &mut run {
                    Some((rc, n)) if Arc::ptr_eq(rc, &c) => *n += 1,
                    _ => {
                        if let Some((rc, n)) = run.replace((c, 1)) {
                            rc.settle(n);
                        }
                    }
                }
            }
            match per_queue.iter_mut().find(|(q, _)| *q == u.queue) {
                Some((_, v)) => v.push(u.message),
                None => per_queue.push((u.queue, vec![u.message])),
            }
        }
        if let Some((c, n)) = run {
            c.settle(n);
        }
        for (q, msgs) in per_queue {
            match how {
                Settle::Requeue => q.requeue(msgs),
                Settle::Ack | Settle::Drop => q.settle(&msgs),
            }
        }
        // A global prefetch shares credit across queues: any of them may now dispatch.
        if self.channel_credit.limit() > 0 {
            self.kick_queues();
        }
    }

    /// basic.recover: requeue every unacked delivery (RabbitMQ supports only requeue=true).
    pub(crate) fn recover(&mut self, requeue: bool) -> Result<(), AmqpError> {
        if !requeue {
            return Err(AmqpError::new(ReplyCode::NotImplemented, "requeue=false"));
        }
        let all = self.unacked.take_all();
        self.apply_settle(all, Settle::Requeue);
        Ok(())
    }
}
