//! Consumers. Those on durable queues tell the ledger every delivery and every settlement, and
//! how each settlement became known processed: a later reply on the same channel, or a
//! tx.commit-ok. Those on transient queues only count.
use crate::body;
use crate::ctx::Stats;
use crate::error::SoakError;
use crate::session::Session;
use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use std::time::Duration;

/// How often a consumer proves its settlements processed (and looks at the stop signal).
const TICK: Duration = Duration::from_millis(100);
/// Acks are sent with `multiple` once this many are owed.
const MULTI_ACK: usize = 8;
/// A transaction commits once it holds this many settlements.
const TX_SIZE: usize = 10;
/// An empty basic.get waits this long before the next.
const EMPTY_WAIT: Duration = Duration::from_millis(20);

/// What a consumer does with a delivery, in percent: ack, nack with requeue, reject without
/// requeue; the rest are nacks without requeue.
const ACK: u64 = 80;
const REQUEUE: u64 = 88;
const REJECT: u64 = 94;

/// The delivery's id, after telling the ledger (and counting a damaged body).
fn delivered(s: &Session, d: &Delivery) -> Option<u64> {
    Stats::add(&s.ctx.stats.consumed, 1);
    match body::check(&d.data) {
        Some(id) => {
            s.ctx.ledger().delivered(id, s.epoch);
            Some(id)
        }
        None => {
            Stats::add(&s.ctx.stats.corrupt, 1);
            None
        }
    }
}

/// A synchronous method on the consumer's channel that changes nothing: its reply comes after
/// everything sent on the channel before it was processed.
async fn round_trip(s: &Session) -> Result<(), SoakError> {
    let passive = QueueDeclareOptions { passive: true, ..Default::default() };
    s.ch.queue_declare(s.queue.as_str().into(), passive, FieldTable::default()).await?;
    Ok(())
}

/// Acks, settled outside transactions: sent, then proven processed by a round trip.
#[derive(Default)]
struct Owed {
    /// Acks not sent yet (they go out with `multiple` up to the last tag).
    acks: Vec<u64>,
    last_tag: u64,
    /// Sent, not yet known processed.
    unproven: Vec<u64>,
}

impl Owed {
    async fn send_acks(&mut self, s: &Session) -> Result<(), SoakError> {
        if self.acks.is_empty() {
            return Ok(());
        }
        s.ctx.ledger().settling(&self.acks);
        Stats::add(&s.ctx.stats.acks, self.acks.len() as u64);
        s.ch.basic_ack(self.last_tag, BasicAckOptions { multiple: true }).await?;
        self.unproven.append(&mut self.acks);
        Ok(())
    }

    async fn prove(&mut self, s: &Session) -> Result<(), SoakError> {
        self.send_acks(s).await?;
        if !self.unproven.is_empty() {
            round_trip(s).await?;
            s.ctx.ledger().processed(s.epoch, std::mem::take(&mut self.unproven));
        }
        Ok(())
    }
}

/// basic.consume with manual acks (prefetch 0 = unlimited).
pub async fn acking(mut s: Session, prefetch: u16) -> Result<(), SoakError> {
    if prefetch > 0 {
        s.ch.basic_qos(prefetch, BasicQosOptions::default()).await?;
    }
    let opts = BasicConsumeOptions::default();
    let mut consumer = s.ch.basic_consume(s.queue.as_str().into(), "".into(), opts, FieldTable::default()).await?;
    let mut owed = Owed::default();
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            d = consumer.next() => {
                let d = d.ok_or(SoakError::Timeout("consumer stream ended"))??;
                let tag = d.delivery_tag;
                let Some(id) = delivered(&s, &d) else {
                    s.ch.basic_reject(tag, BasicRejectOptions { requeue: false }).await?;
                    continue;
                };
                let action = s.rng.below(100);
                if action < ACK {
                    owed.acks.push(id);
                    owed.last_tag = tag;
                    if owed.acks.len() >= MULTI_ACK {
                        owed.send_acks(&s).await?;
                    }
                } else if action < REQUEUE {
                    Stats::add(&s.ctx.stats.requeues, 1);
                    s.ch.basic_nack(tag, BasicNackOptions { multiple: false, requeue: true }).await?;
                } else {
                    s.ctx.ledger().settling(&[id]);
                    Stats::add(&s.ctx.stats.rejects, 1);
                    if action < REJECT {
                        s.ch.basic_reject(tag, BasicRejectOptions { requeue: false }).await?;
                    } else {
                        s.ch.basic_nack(tag, BasicNackOptions { multiple: false, requeue: false }).await?;
                    }
                    owed.unproven.push(id);
                }
            }
            _ = tick.tick() => {
                owed.prove(&s).await?;
                if s.stopping() {
                    return Ok(());
                }
            }
        }
    }
}

/// basic.consume with prefetch 20; acks and rejects in transactions of ten.
pub async fn transactional(mut s: Session) -> Result<(), SoakError> {
    s.ch.tx_select().await?;
    s.ch.basic_qos(20, BasicQosOptions::default()).await?;
    let opts = BasicConsumeOptions::default();
    let mut consumer = s.ch.basic_consume(s.queue.as_str().into(), "".into(), opts, FieldTable::default()).await?;
    let mut in_tx: Vec<u64> = Vec::new();
    // Anything in the transaction, a requeue included (it takes effect only at the commit).
    let mut dirty = false;
    let mut tick = tokio::time::interval(TICK);
    loop {
        let commit = tokio::select! {
            d = consumer.next() => {
                let d = d.ok_or(SoakError::Timeout("consumer stream ended"))??;
                let tag = d.delivery_tag;
                dirty = true;
                let Some(id) = delivered(&s, &d) else {
                    s.ch.basic_reject(tag, BasicRejectOptions { requeue: false }).await?;
                    continue;
                };
                let action = s.rng.below(100);
                if action < 5 {
                    Stats::add(&s.ctx.stats.requeues, 1);
                    s.ch.basic_nack(tag, BasicNackOptions { multiple: false, requeue: true }).await?;
                } else {
                    s.ctx.ledger().settling(&[id]);
                    if action < 90 {
                        Stats::add(&s.ctx.stats.acks, 1);
                        s.ch.basic_ack(tag, BasicAckOptions::default()).await?;
                    } else {
                        Stats::add(&s.ctx.stats.rejects, 1);
                        s.ch.basic_reject(tag, BasicRejectOptions { requeue: false }).await?;
                    }
                    in_tx.push(id);
                }
                in_tx.len() >= TX_SIZE
            }
            _ = tick.tick() => dirty || s.stopping(),
        };
        if commit {
            s.ch.tx_commit().await?;
            Stats::add(&s.ctx.stats.commits, 1);
            s.ctx.ledger().committed(&in_tx);
            in_tx.clear();
            dirty = false;
            if s.stopping() {
                return Ok(());
            }
        }
    }
}

/// basic.get with manual acks: ack, reject with requeue, reject without.
pub async fn getter(mut s: Session) -> Result<(), SoakError> {
    let mut unproven = Vec::new();
    while !s.stopping() {
        let got = s.ch.basic_get(s.queue.as_str().into(), BasicGetOptions { no_ack: false }).await?;
        // The reply came after everything this channel sent before it.
        s.ctx.ledger().processed(s.epoch, std::mem::take(&mut unproven));
        let Some(m) = got else {
            tokio::time::sleep(EMPTY_WAIT).await;
            continue;
        };
        let tag = m.delivery.delivery_tag;
        let Some(id) = delivered(&s, &m.delivery) else {
            s.ch.basic_reject(tag, BasicRejectOptions { requeue: false }).await?;
            continue;
        };
        let action = s.rng.below(100);
        if action < 10 {
            Stats::add(&s.ctx.stats.requeues, 1);
            s.ch.basic_reject(tag, BasicRejectOptions { requeue: true }).await?;
            continue;
        }
        s.ctx.ledger().settling(&[id]);
        if action < 95 {
            Stats::add(&s.ctx.stats.acks, 1);
            s.ch.basic_ack(tag, BasicAckOptions::default()).await?;
        } else {
            Stats::add(&s.ctx.stats.rejects, 1);
            s.ch.basic_reject(tag, BasicRejectOptions { requeue: false }).await?;
        }
        unproven.push(id);
    }
    if !unproven.is_empty() {
        round_trip(&s).await?;
        s.ctx.ledger().processed(s.epoch, unproven);
    }
    Ok(())
}

/// basic.consume with no-ack (transient queues only: a message in flight to a client that dies
/// is gone, as in RabbitMQ, so the ledger could not account for it).
pub async fn auto_ack(s: Session) -> Result<(), SoakError> {
    let opts = BasicConsumeOptions { no_ack: true, ..Default::default() };
    let mut consumer = s.ch.basic_consume(s.queue.as_str().into(), "".into(), opts, FieldTable::default()).await?;
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            d = consumer.next() => {
                let d = d.ok_or(SoakError::Timeout("consumer stream ended"))??;
                count_transient(&s, &d);
            }
            _ = tick.tick() => if s.stopping() { return Ok(()) },
        }
    }
}

/// basic.get with no-ack (transient queues only, as [`auto_ack`]).
pub async fn auto_get(s: Session) -> Result<(), SoakError> {
    while !s.stopping() {
        match s.ch.basic_get(s.queue.as_str().into(), BasicGetOptions { no_ack: true }).await? {
            Some(m) => count_transient(&s, &m.delivery),
            None => tokio::time::sleep(EMPTY_WAIT).await,
        }
    }
    Ok(())
}

fn count_transient(s: &Session, d: &Delivery) {
    Stats::add(&s.ctx.stats.consumed, 1);
    if body::check(&d.data).is_none() {
        Stats::add(&s.ctx.stats.corrupt, 1);
    }
}
