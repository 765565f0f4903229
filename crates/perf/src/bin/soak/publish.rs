//! Publishers: at a steady rate, with confirms, a window of them outstanding.
use crate::body;
use crate::ctx::{Ctx, Stats};
use crate::error::SoakError;
use crate::ledger::Ticket;
use crate::session::Session;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::BasicProperties;
use lapin::PublisherConfirm;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Unconfirmed publishes per publisher.
const WINDOW: usize = 64;
/// Publishes go out in small bursts this often, which keeps the rate without a timer per message.
const TICK: Duration = Duration::from_millis(20);

/// Publishes until stopped; persistent messages are entered in the ledger.
pub async fn run(mut s: Session, persistent: bool) -> Result<(), SoakError> {
    s.ch.confirm_select(ConfirmSelectOptions::default()).await?;
    // The window: a bounded channel to a task that awaits the confirms in order.
    let (tx, rx) = mpsc::channel(WINDOW);
    let harvester = tokio::spawn(harvest(rx, s.ctx.clone()));
    let props = BasicProperties::default().with_delivery_mode(if persistent { 2 } else { 1 });
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut owed = 0.0;
    while !s.stopping() {
        tick.tick().await;
        owed += s.ctx.rate * TICK.as_secs_f64();
        while owed >= 1.0 {
            owed -= 1.0;
            let len = size(&mut s);
            let (ticket, body) = if persistent {
                let t = s.ctx.ledger().next_publish(s.epoch);
                (Some(t), body::make(t.id, len))
            } else {
                Stats::add(&s.ctx.stats.transient_published, 1);
                (None, body::make(0, len))
            };
            let queue = if persistent && s.ctx.take_backlog() { &s.ctx.backlog } else { &s.queue };
            let confirm = s
                .ch
                .basic_publish("".into(), queue.as_str().into(), BasicPublishOptions::default(), &body, props.clone())
                .await?;
            if tx.send((ticket, confirm)).await.is_err() {
                break; // the harvester saw the connection fail
            }
        }
    }
    drop(tx);
    // Stopped: the confirms still outstanding count too.
    match tokio::time::timeout(Duration::from_secs(30), harvester).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err(SoakError::Timeout("confirm harvester panicked")),
        Err(_) => Err(SoakError::Timeout("outstanding confirms")),
    }
}

/// Mostly small bodies, one in ten up to the largest size.
fn size(s: &mut Session) -> usize {
    let max = s.ctx.max_size.max(12) as u64;
    let cap = if s.rng.below(10) == 0 { max } else { max.min(512) };
    12 + s.rng.below(cap - 11) as usize
}

async fn harvest(mut rx: mpsc::Receiver<(Option<Ticket>, PublisherConfirm)>, ctx: Arc<Ctx>) -> Result<(), SoakError> {
    while let Some((ticket, confirm)) = rx.recv().await {
        if confirm.await?.is_ack() {
            match ticket {
                Some(t) => ctx.ledger().confirmed(t),
                None => Stats::add(&ctx.stats.transient_confirmed, 1),
            }
        } else {
            Stats::add(&ctx.stats.publish_nacked, 1);
        }
    }
    Ok(())
}
