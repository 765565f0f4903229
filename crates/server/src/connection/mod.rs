//! One client connection: a single task that owns the socket, the channels and their state.
//!
//! The loop reads whatever the socket has, handles every whole frame, drains the mailbox
//! of deliveries from queues, and writes everything produced with vectored writes: one
//! pass, one batch of syscalls, no per-frame flush. Reading pauses (TCP back-pressure)
//! while the outbound buffer is over its bound or a queue we publish to is flow-blocked,
//! and while a resource alarm blocks it (`throttle.rs`).
mod channel_map;
mod consumer_timeout;
mod count;
mod dispatch;
mod handshake;
mod io;
mod mailbox;
mod throttle;
mod transport;

use crate::auth::Users;
use crate::config::Config;
use bytes::BytesMut;
use channel_map::ChannelMap;
pub use count::ConnectionCount;
use handshake::{Handshake, HandshakeError, Opened};
use mailbox::{Event, Mailbox};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use throttle::Throttle;
use tokio::sync::broadcast;
pub use transport::{ScriptedStream, Transport};
use warren_broker::{Broker, QueueHandle};
use warren_channel::{Channel, ConnCtx, ConsumerTimeout, Io};
use warren_codec::{encode_heartbeat, AmqpError, OutBuf};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Everything a connection task needs from the server.
#[derive(Clone)]
pub struct Shared {
    pub config: Arc<Config>,
    pub users: Arc<Users>,
    pub broker: Arc<Broker>,
    pub broker_store: Option<Arc<dyn warren_broker::MessageStore>>,
    /// Connections alive on the node (`connection_max`).
    pub connections: Arc<ConnectionCount>,
    /// The resource alarms (memory, disk): publishers are blocked while one is on.
    pub alarms: Arc<crate::alarm::Alarms>,
}

/// A channel and whether we are waiting for the client's channel.close-ok.
pub(crate) struct Slot {
    pub chan: Channel,
    pub closing: bool,
}

/// Where the connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Open,
    /// We sent connection.close and wait for close-ok (or a timeout).
    Closing,
    /// Done: flush what is queued and drop the socket.
    Done,
}

pub(crate) struct Connection<S> {
    pub stream: S,
    pub peer: SocketAddr,
    pub ctx: ConnCtx,
    pub channel_max: u16,
    pub heartbeat: u16,
    pub inbuf: BytesMut,
    pub out: OutBuf,
    pub channels: ChannelMap<Slot>,
    pub mailbox: Arc<Mailbox>,
    pub blocked: Vec<QueueHandle>,
    pub phase: Phase,
    pub close_deadline: Option<Instant>,
    pub last_read: Instant,
    pub last_write: Instant,
    pub max_outbound: usize,
    /// consumer_timeout, None when it is "infinity".
    pub consumer_timeout: Option<ConsumerTimeout>,
    /// Current read-buffer growth step (see `io::read_available`).
    read_chunk: usize,
    events: Vec<Event>,
    /// Resource-alarm blocking (connection.blocked / unblocked).
    pub throttle: Throttle,
}

/// How long we wait for connection.close-ok after sending connection.close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs one accepted connection until it closes.
pub async fn serve(stream: impl Transport, peer: SocketAddr, shared: Shared, mut shutdown: broadcast::Receiver<()>) {
    // Held until this function returns, whichever way the connection ends.
    let _counted = shared.connections.enter();
    let mut inbuf = BytesMut::with_capacity(io::READ_CHUNK_MIN);
    let mut out = OutBuf::new();
    let hs = Handshake {
        stream: &stream,
        peer,
        inbuf: &mut inbuf,
        out: &mut out,
        config: &shared.config,
        users: &shared.users,
        broker: &shared.broker,
        connections: &shared.connections,
    };
    let opened: Opened = tokio::select! {
        r = hs.run() => match r {
            Ok(o) => o,
            Err(HandshakeError::Refused(e)) => {
                tracing::warn!(%peer, code = e.code.code(), reason = %e.text, "connection refused during handshake");
                return;
            }
            Err(e) => {
                tracing::info!(%peer, error = %e, "connection closed during handshake");
                return;
            }
        },
        _ = shutdown.recv() => return,
    };
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let vhost = shared.broker.vhost(&opened.vhost).expect("vhost checked during handshake");
    let mailbox = Mailbox::new(shared.config.max_outbound_buffer);
    tracing::info!(%peer, conn = id, user = %opened.user, vhost = %opened.vhost,
        name = opened.client_name.as_deref().unwrap_or(""), "connection opened");
    let ctx = ConnCtx {
        id,
        user: opened.user,
        broker: shared.broker.clone(),
        vhost,
        frame_max: opened.frame_max,
        max_message_size: shared.config.max_message_size,
        cancel_notify: opened.cancel_notify,
        sink: mailbox.clone(),
        durable: shared.broker_store.clone().map(|s| (s, mailbox.clone() as Arc<dyn warren_broker::DurableListener>)),
    };
    let now = Instant::now();
    let mut conn = Connection {
        stream,
        peer,
        ctx,
        channel_max: opened.channel_max,
        heartbeat: opened.heartbeat,
        inbuf,
        out,
        channels: ChannelMap::default(),
        mailbox,
        blocked: Vec::new(),
        phase: Phase::Open,
        close_deadline: None,
        last_read: now,
        last_write: now,
        max_outbound: shared.config.max_outbound_buffer,
        consumer_timeout: shared.config.consumer_timeout.value().map(ConsumerTimeout::new),
        read_chunk: io::READ_CHUNK_MIN,
        events: Vec::new(),
        throttle: Throttle::new(shared.alarms.clone(), opened.blocked_notify),
    };
    let reason = conn.run(&mut shutdown).await;
    conn.release_all();
    shared.broker.connection_closed(id);
    tracing::info!(%peer, conn = id, reason = %reason, "connection closed");
}

impl<S: Transport> Connection<S> {
    /// Input handled before a busy connection lets the worker run other tasks.
    ///
    /// tokio's cooperative budget only forces a yield after 128 socket polls, and one of our
    /// read passes takes up to 512 KiB: a publisher writing flat out could hold a worker for
    /// 64 MiB of input. With one worker (one CPU) that starved every other connection: a
    /// consumer's basic.qos still sat unread in its socket six seconds in, while the queue it
    /// was about to drain filled and paged (`ss` showed the 19 bytes in Recv-Q).
    const YIELD_AFTER_BYTES: usize = 256 * 1024;

    /// The main loop. Returns why the connection ended.
    async fn run(&mut self, shutdown: &mut broadcast::Receiver<()>) -> String {
        let hb = (self.heartbeat > 0).then(|| Duration::from_secs(self.heartbeat as u64));
        // Send a heartbeat when we have been silent for half the interval; give up on the
        // peer after two intervals without a byte from it (RabbitMQ's rule).
        let mut ticker = tokio::time::interval(hb.map_or(Duration::from_secs(3600), |h| h / 2));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let timeouts = self.consumer_timeout;
        let period = timeouts.map_or(Duration::from_secs(3600), |t| t.tick);
        let mut timeout_ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        timeout_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reason = String::from("closed");
        let mut since_yield = 0usize;
        // Frames a client pipelined behind connection.open came in with the handshake's reads;
        // no readiness event will announce them again. (Found by the connection fuzz target.)
        if !self.inbuf.is_empty() {
            if let Some(r) = self.handle_input() {
                reason = r;
            }
            self.drain_mailbox();
        }
        loop {
            if let Err(e) = self.flush() {
                return format!("write failed: {e}");
            }
            if self.phase == Phase::Done && self.out.is_empty() {
                return reason;
            }
            // A connection blocked by an alarm reads again to close (RabbitMQ: once closing).
            let alarm_blocked = self.throttle.is_blocked() && self.phase == Phase::Open;
            let want_read = self.may_read();
            let deadline = self.close_deadline;
            tokio::select! {
                _ = shutdown.recv(), if self.phase == Phase::Open => {
                    reason = "broker shutdown".into();
                    self.connection_error(AmqpError::new(
                        warren_codec::ReplyCode::ConnectionForced,
                        "broker forced connection closure with reason 'shutdown'",
                    ));
                }
                r = self.stream.readable(), if want_read => {
                    if let Err(e) = r {
                        return format!("read failed: {e}");
                    }
                    // Read and parse in steps of at most one chunk, so that the read buffer
                    // stays about one chunk big however much the peer sends; a pass ends at
                    // READ_PASS_MAX, when the socket is drained, or when something says stop
                    // reading (a flow gate, an alarm, a full outbound buffer). With 512 KiB read
                    // before parsing, 1,000 publishers held 430 MB of read buffers.
                    let mut pass = 0;
                    loop {
                        match io::read_available(&self.stream, &mut self.inbuf, &mut self.read_chunk, io::READ_CHUNK) {
                            Ok(0) => return if self.phase == Phase::Open { "client closed the socket".into() } else { reason },
                            Ok(n) => {
                                self.last_read = Instant::now();
                                if let Some(r) = self.handle_input() {
                                    reason = r;
                                }
                                pass += n;
                                if n < io::READ_CHUNK || pass >= io::READ_PASS_MAX || !self.may_read() {
                                    break;
                                }
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                            Err(e) => return format!("read failed: {e}"),
                        }
                    }
                    since_yield += pass;
                    if since_yield >= Self::YIELD_AFTER_BYTES {
                        since_yield = 0;
                        tokio::task::yield_now().await;
                    }
                }
                _ = self.mailbox.notified() => {}
                r = self.stream.writable(), if !self.out.is_empty() => {
                    if let Err(e) = r {
                        return format!("write failed: {e}");
                    }
                }
                _ = wait_flow(&self.blocked, self.consumes()), if !self.blocked.is_empty() => {
                    // Released or timed out: go on either way. A publish to a queue that is
                    // still over its threshold blocks us again. Input parsing stopped at the
                    // gate comes first: no readiness event will announce it again.
                    self.blocked.clear();
                    // Not reading was our choice: the peer's silence meant nothing.
                    self.last_read = Instant::now();
                    if !self.inbuf.is_empty() {
                        if let Some(r) = self.handle_input() {
                            reason = r;
                        }
                    }
                }
                _ = self.throttle.alarms.cleared(), if alarm_blocked => {
                    self.throttle.unblock(&mut self.out);
                    // We were not reading, so the peer's silence meant nothing.
                    self.last_read = Instant::now();
                    // Frames that arrived before the block are still in the buffer.
                    if let Some(r) = self.handle_input() {
                        reason = r;
                    }
                }
                _ = ticker.tick(), if hb.is_some() => {
                    let h = hb.unwrap_or_default();
                    // RabbitMQ pauses its heartbeat monitor while it does not read.
                    if !alarm_blocked && self.last_read.elapsed() > h * 2 {
                        return format!("missed heartbeats from client, timeout: {}s", h.as_secs());
                    }
                    if self.last_write.elapsed() >= h / 2 {
                        encode_heartbeat(self.out.tail());
                    }
                }
                _ = timeout_ticker.tick(), if timeouts.is_some() && self.phase == Phase::Open => {
                    if let Some(t) = &timeouts {
                        self.check_consumer_timeouts(t);
                    }
                }
                _ = sleep_until(deadline), if deadline.is_some() => {
                    return "timed out waiting for connection.close-ok".into();
                }
            }
            self.drain_mailbox();
        }
    }

    /// Whether to read from the socket: not once done, nor while the outbound buffer is full
    /// (the peer is not reading), a queue we publish to is flow-gated, or an alarm blocks us.
    fn may_read(&self) -> bool {
        let alarm_blocked = self.throttle.is_blocked() && self.phase == Phase::Open;
        self.phase != Phase::Done && self.out.len() < self.max_outbound && self.blocked.is_empty() && !alarm_blocked
    }

    /// Whether any channel of this connection has a consumer.
    fn consumes(&self) -> bool {
        self.channels.values().any(|slot| slot.chan.has_consumers())
    }

    /// Writes what the socket takes now and publishes the outbound size to the mailbox.
    fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() && io::write_available(&self.stream, &mut self.out)? > 0 {
            self.last_write = Instant::now();
        }
        self.mailbox.set_out_bytes(self.out.len());
        // Queues skipped our consumers while we were congested: now that we have room,
        // ask them to dispatch again.
        if self.out.len() < self.max_outbound / 2 && self.mailbox.take_skipped() {
            for slot in self.channels.values() {
                slot.chan.kick_queues();
            }
        }
        Ok(())
    }

    /// Encodes the deliveries and cancellations queues have left in the mailbox.
    fn drain_mailbox(&mut self) {
        self.mailbox.drain(&mut self.events);
        if self.events.is_empty() {
            return;
        }
        let mut io = Io { out: &mut self.out, blocked: &mut self.blocked };
        let mut failed = Vec::new();
        for ev in self.events.drain(..) {
            match ev {
                Event::Deliver(d) => match self.channels.get_mut(&d.consumer.channel) {
                    Some(slot) if !slot.closing => slot.chan.deliver(&self.ctx, d, &mut io),
                    _ => {
                        d.consumer.settle(1);
                        d.queue.return_undelivered(d.message, !d.consumer.no_ack);
                    }
                },
                Event::Cancelled(c) => {
                    if let Some(slot) = self.channels.get_mut(&c.channel) {
                        slot.chan.broker_cancelled(&self.ctx, &c, &mut io);
                    }
                }
                Event::Durable { channel, token, ok } => {
                    if let Some(slot) = self.channels.get_mut(&channel).filter(|s| !s.closing) {
                        if let Err(e) = slot.chan.on_durable(token, ok, &mut io) {
                            failed.push((channel, e));
                        }
                    }
                }
            }
        }
        for (ch, e) in failed {
            self.channel_error(ch, e);
        }
        self.mailbox.set_out_bytes(self.out.len());
    }

    /// Requeues every channel's unacked deliveries and cancels its consumers.
    fn release_all(&mut self) {
        for (_, mut slot) in self.channels.drain() {
            slot.chan.release(&self.ctx);
        }
        // Deliveries still in the mailbox never reached the client: give them back.
        self.mailbox.drain(&mut self.events);
        for ev in self.events.drain(..) {
            if let Event::Deliver(d) = ev {
                d.consumer.settle(1);
                d.queue.return_undelivered(d.message, !d.consumer.no_ack);
            }
        }
    }
}

/// Waits for the first blocking queue's flow gate to open, or a timeout.
///
/// A connection that also consumes must not wait long: the acks that would drain the queue
/// may be in the very socket it stopped reading (self-deadlock), so it takes another read pass
/// after 50 ms. A publish-only connection waits for the gate itself (re-checking every second),
/// so that a thousand blocked publishers do not each push a full read pass every 50 ms into
/// queues that are already behind.
async fn wait_flow(blocked: &[QueueHandle], consumes: bool) {
    if let Some(q) = blocked.first() {
        let wait = if consumes { Duration::from_millis(50) } else { Duration::from_secs(1) };
        let _ = tokio::time::timeout(wait, q.flow_released()).await;
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(d) = deadline {
        tokio::time::sleep_until(d.into()).await;
    }
}
