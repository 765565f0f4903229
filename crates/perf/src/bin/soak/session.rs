//! One client slot: a connection with one role, opened again every time it dies (a kill of the
//! client, or of the broker), until the run stops.
use crate::ctx::{Ctx, Gate, Stats};
use crate::error::SoakError;
use crate::rng::Rng;
use crate::{consume, publish};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// What a slot does. Every ten slots (a "row") hold one of each, on one durable and one
/// transient queue, so every durable queue sees every kind of consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Persistent messages with confirms to a durable queue (the ledger's messages).
    Persistent,
    /// Transient messages with confirms to a non-durable queue.
    Transient,
    /// basic.consume with manual acks, prefetch (0 = unlimited); acks (often with multiple),
    /// nacks with requeue, rejects and nacks without.
    Consumer { prefetch: u16 },
    /// basic.consume with acks and rejects in transactions.
    TxConsumer,
    /// basic.get with acks, rejects with and without requeue.
    Getter,
    /// basic.consume with no-ack, on a transient queue.
    AutoAck,
    /// basic.get with no-ack, on a transient queue.
    AutoGet,
}

const ROW: [Role; 10] = [
    Role::Persistent,
    Role::Consumer { prefetch: 50 },
    Role::Persistent,
    Role::TxConsumer,
    Role::Transient,
    Role::Getter,
    Role::Persistent,
    Role::Consumer { prefetch: 0 },
    Role::AutoAck,
    Role::AutoGet,
];

pub fn role_of(slot: usize) -> Role {
    ROW[slot % ROW.len()]
}

/// A live session: the broker process it talks to, its channel, its queue.
pub struct Session {
    pub ctx: Arc<Ctx>,
    pub epoch: u32,
    pub ch: Channel,
    pub queue: String,
    pub stop: watch::Receiver<bool>,
    pub rng: Rng,
}

impl Session {
    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }
}

/// Runs slot `slot` until `stop`.
pub async fn run(slot: usize, ctx: Arc<Ctx>, stop: watch::Receiver<bool>, mut rng: Rng) {
    let role = role_of(slot);
    let row = slot / ROW.len();
    let on_transient = matches!(role, Role::Transient | Role::AutoAck | Role::AutoGet);
    let queue =
        if on_transient { &ctx.transient[row % ctx.transient.len()] } else { &ctx.durable[row % ctx.durable.len()] }
            .clone();
    while !*stop.borrow() {
        let Some((conn, epoch)) = open(&ctx, &stop).await else { return };
        Stats::add(&ctx.stats.sessions, 1);
        let result = session(role, &conn, epoch, &ctx, &queue, &stop, rng.fork()).await;
        match result {
            Ok(()) => {
                // Stopped: leave politely, so the broker requeues what is unacked at once.
                let _ = tokio::time::timeout(Duration::from_secs(10), conn.close(200, "OK".into())).await;
                return;
            }
            Err(e) => {
                Stats::add(&ctx.stats.session_errors, 1);
                // Kills end sessions with I/O errors; a reply code means the broker refused
                // something this traffic never should be refused.
                if let SoakError::Amqp(le) = &e {
                    if let lapin::ErrorKind::ProtocolError(p) = le.kind() {
                        if ctx.stats.protocol_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < 5 {
                            eprintln!(
                                "soak: slot {slot} ({role:?}): the broker closed with {} {}",
                                p.get_id(),
                                p.get_message()
                            );
                        }
                    }
                }
                // Dropping it closes it if it is still open; lapin's I/O thread ends with its socket.
                drop(conn);
                tokio::time::sleep(Duration::from_millis(50 + rng.below(400))).await;
            }
        }
    }
}

async fn session(
    role: Role,
    conn: &Connection,
    epoch: u32,
    ctx: &Arc<Ctx>,
    queue: &str,
    stop: &watch::Receiver<bool>,
    rng: Rng,
) -> Result<(), SoakError> {
    let ch = conn.create_channel().await?;
    let durable = !matches!(role, Role::Transient | Role::AutoAck | Role::AutoGet);
    let opts = QueueDeclareOptions { durable, ..Default::default() };
    // Every session declares its queue: a non-durable one is gone after a broker restart.
    ch.queue_declare(queue.into(), opts, FieldTable::default()).await?;
    if role == Role::Persistent {
        ch.queue_declare(ctx.backlog.as_str().into(), opts, FieldTable::default()).await?;
    }
    let s = Session { ctx: ctx.clone(), epoch, ch, queue: queue.into(), stop: stop.clone(), rng };
    match role {
        Role::Persistent => publish::run(s, true).await,
        Role::Transient => publish::run(s, false).await,
        Role::Consumer { prefetch } => consume::acking(s, prefetch).await,
        Role::TxConsumer => consume::transactional(s).await,
        Role::Getter => consume::getter(s).await,
        Role::AutoAck => consume::auto_ack(s).await,
        Role::AutoGet => consume::auto_get(s).await,
    }
}

/// Connects through the relay to the broker process that is up, and returns its epoch; None
/// once the run stops.
async fn open(ctx: &Ctx, stop: &watch::Receiver<bool>) -> Option<(Connection, u32)> {
    let mut backoff = Duration::from_millis(50);
    loop {
        if *stop.borrow() {
            return None;
        }
        let gate = *ctx.gate.borrow();
        if gate.up {
            let connect = Connection::connect(&ctx.uri, ConnectionProperties::default());
            if let Ok(Ok(conn)) = tokio::time::timeout(Duration::from_secs(10), connect).await {
                // If the broker was killed and restarted meanwhile, this connection may be to
                // the next one: the epoch it would stamp the ledger with could be wrong.
                if *ctx.gate.borrow() == (Gate { epoch: gate.epoch, up: true }) {
                    return Some((conn, gate.epoch));
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_millis(500));
    }
}
