//! The end of a run, once every client has left: a barrier that proves the last settlements
//! durable, and the drain of every durable queue.
use crate::body;
use crate::ctx::Ctx;
use crate::error::SoakError;
use lapin::options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use std::collections::HashMap;

const BARRIER_QUEUE: &str = "soak-barrier";

async fn connect(addr: &str) -> Result<Connection, SoakError> {
    Ok(Connection::connect(&format!("amqp://guest:guest@{addr}/%2f"), ConnectionProperties::default()).await?)
}

/// One persistent publish, sent after every client has stopped, and its confirm: every
/// settlement the running broker processed is on disk once it arrives (see the ledger).
pub async fn barrier(addr: &str, ctx: &Ctx, epoch: u32) -> Result<(), SoakError> {
    let conn = connect(addr).await?;
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    ch.queue_declare(BARRIER_QUEUE.into(), durable, FieldTable::default()).await?;
    let clock = ctx.ledger().tick();
    let props = BasicProperties::default().with_delivery_mode(2);
    let confirm =
        ch.basic_publish("".into(), BARRIER_QUEUE.into(), BasicPublishOptions::default(), b"barrier", props).await?;
    if !confirm.await?.is_ack() {
        return Err(SoakError::Broker("the barrier publish was nacked".into()));
    }
    ctx.ledger().proof(epoch, clock);
    ch.queue_delete(BARRIER_QUEUE.into(), Default::default()).await?;
    conn.close(200, "OK".into()).await?;
    Ok(())
}

/// What the durable queues hold: copies per id, and bodies that failed their check.
pub struct Drained {
    pub copies: HashMap<u64, u32>,
    pub corrupt: u64,
}

/// Takes everything out of `queues` (basic.get with no-ack until empty).
pub async fn drain(addr: &str, queues: &[String]) -> Result<Drained, SoakError> {
    let conn = connect(addr).await?;
    let ch = conn.create_channel().await?;
    let mut d = Drained { copies: HashMap::new(), corrupt: 0 };
    for q in queues {
        while let Some(m) = ch.basic_get(q.as_str().into(), BasicGetOptions { no_ack: true }).await? {
            match body::check(&m.delivery.data) {
                Some(id) => *d.copies.entry(id).or_insert(0) += 1,
                None => d.corrupt += 1,
            }
        }
        let passive = QueueDeclareOptions { passive: true, ..Default::default() };
        let left = ch.queue_declare(q.as_str().into(), passive, FieldTable::default()).await?.message_count();
        if left != 0 {
            return Err(SoakError::Broker(format!("{q} still holds {left} messages after get-empty")));
        }
    }
    conn.close(200, "OK".into()).await?;
    Ok(d)
}
