//! The two roles: producers publish (in batches, within the confirm window and the rate)
//! and consumers consume (acking with `multiple`), recording publish-to-deliver latency.
use crate::conn::{send_close, Conn, In, Reader};
use crate::error::PerfError;
use crate::frames::{self, Hot, PublishTemplate};
use crate::stats::{histogram, now_ns, Stats};
use crate::uri::AmqpUri;
use amq_protocol::protocol::{connection, AMQPClass};
use bytes::BytesMut;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

pub struct ProducerSpec {
    /// "" = the default exchange, which routes by queue name.
    pub exchange: String,
    /// The routing keys, used in turn: the queues' names, which are also their binding keys on
    /// `exchange`. One producer can feed many queues (10,000 queues from 100 connections).
    pub queues: Vec<String>,
    pub size: usize,
    pub persistent: bool,
    /// Unconfirmed messages allowed in flight; 0 = no confirms.
    pub confirm: u64,
    /// Messages per second; 0 = as fast as the broker takes them.
    pub rate: u64,
    pub count: Option<u64>,
}

/// Publishes per write: enough to amortise the syscall, few enough to keep latency honest.
const BATCH: u64 = 64;

pub async fn producer(
    uri: AmqpUri,
    spec: ProducerSpec,
    stats: Arc<Stats>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), PerfError> {
    let mut c = Conn::open(&uri).await?;
    if spec.confirm > 0 {
        c.confirm_select().await?;
    }
    let tpls: Vec<PublishTemplate> = spec
        .queues
        .iter()
        .map(|q| PublishTemplate::new(&spec.exchange, q, spec.size, spec.persistent, c.frame_max))
        .collect();
    let mut next_tpl = 0usize;
    let Conn { reader, mut writer, .. } = c;
    let settled = Arc::new(AtomicU64::new(0));
    let progress = Arc::new(Notify::new());
    let mut listen = tokio::spawn(confirms(reader, stats.clone(), settled.clone(), progress.clone()));
    let start = Instant::now();
    let mut published = 0u64;
    let mut buf = BytesMut::with_capacity(tpls[0].bytes.len() * BATCH as usize);
    // Set when a write could not be finished after a stop: the broker then holds half a
    // frame, so the connection can only be dropped, not closed politely.
    let mut torn = false;
    let result = async {
        loop {
            if listen.is_finished() {
                // The broker closed the connection or channel: that error ends the run.
                return match (&mut listen).await {
                    Ok(Err(e)) => Err(e),
                    _ => Err(PerfError::Protocol("connection reader stopped".into())),
                };
            }
            if *stop.borrow() || spec.count.is_some_and(|n| published >= n) {
                return Ok(());
            }
            let mut n = BATCH.min(spec.count.map_or(u64::MAX, |c| c - published));
            if spec.confirm > 0 {
                let room = spec.confirm.saturating_sub(published - settled.load(Relaxed));
                if room == 0 {
                    tokio::select! {
                        _ = progress.notified() => {}
                        _ = stop.changed() => {}
                    }
                    continue;
                }
                n = n.min(room);
            }
            if spec.rate > 0 {
                let due = (start.elapsed().as_secs_f64() * spec.rate as f64) as u64;
                if published >= due {
                    let next = Duration::from_secs_f64((published + 1) as f64 / spec.rate as f64);
                    tokio::select! {
                        _ = tokio::time::sleep_until((start + next).into()) => {}
                        _ = stop.changed() => {}
                    }
                    continue;
                }
                n = n.min(due - published);
            }
            buf.clear();
            let now = now_ns();
            for _ in 0..n {
                tpls[next_tpl].append(&mut buf, now);
                next_tpl = (next_tpl + 1) % tpls.len();
            }
            // Awaiting the write is the back-pressure: a broker that stops reading stops us.
            let write = writer.write_all(&buf);
            tokio::pin!(write);
            tokio::select! {
                r = &mut write => {
                    if let Err(e) = r {
                        return Err(why_lost(&mut listen, e).await);
                    }
                }
                _ = stop.changed() => {
                    // Finish the batch if the broker takes it soon (it is not counted: the run
                    // is over), so that the connection can still be closed politely.
                    torn = !matches!(tokio::time::timeout(CLOSE_WAIT, write).await, Ok(Ok(())));
                    return Ok(());
                }
            }
            published += n;
            stats.counters.published.fetch_add(n, Relaxed);
        }
    }
    .await;
    if spec.confirm > 0 && result.is_ok() {
        // Let the last confirms arrive (the caller decides how long to wait for them).
        while settled.load(Relaxed) < published && !*stop.borrow() && !listen.is_finished() {
            tokio::select! {
                _ = progress.notified() => {}
                _ = stop.changed() => {}
            }
        }
    }
    if result.is_ok() && !torn {
        // connection.close and its close-ok (which the reader task waits for) tell us that the
        // broker has read every publish, so a --count run without confirms loses none at exit.
        let _ = send_close(&mut writer).await;
        let _ = tokio::time::timeout(CLOSE_WAIT, &mut listen).await;
    }
    listen.abort();
    result
}

/// How long to wait for connection.close-ok at the end of a run.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// A write failed: if the broker closed the connection first, its reply code and text say
/// more than the socket error, so give the reader a moment to have read them.
async fn why_lost(listen: &mut JoinHandle<Result<(), PerfError>>, e: std::io::Error) -> PerfError {
    match tokio::time::timeout(Duration::from_secs(1), listen).await {
        Ok(Ok(Err(closed @ PerfError::Closed { .. }))) => closed,
        _ => PerfError::Io(e),
    }
}

/// Reads the producer's connection: confirms (ack/nack, multiple) move the settled mark;
/// a close from the broker ends the run with its code; close-ok (to our close) ends it well.
async fn confirms(
    r: Reader,
    stats: Arc<Stats>,
    settled: Arc<AtomicU64>,
    progress: Arc<Notify>,
) -> Result<(), PerfError> {
    let e = read_confirms(r, &stats, &settled, &progress).await;
    // Wake the producer wherever it waits, so that it sees this task has ended.
    progress.notify_one();
    e
}

async fn read_confirms(mut r: Reader, stats: &Stats, settled: &AtomicU64, progress: &Notify) -> Result<(), PerfError> {
    loop {
        match r.next().await? {
            In::Hot(Hot::Confirm { tag, multiple, nack }) => {
                let prev = settled.load(Relaxed);
                let upto = if multiple { tag } else { tag.max(prev) };
                if upto > prev {
                    settled.store(upto, Relaxed);
                    let counter = if nack { &stats.counters.nacked } else { &stats.counters.confirmed };
                    counter.fetch_add(upto - prev, Relaxed);
                    progress.notify_one();
                }
            }
            In::Method(AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))) => return Ok(()),
            _ => {}
        }
    }
}

pub struct ConsumerSpec {
    /// Consumed on one channel (one basic.consume each), so one connection can drain many.
    pub queues: Vec<String>,
    pub prefetch: u16,
    pub autoack: bool,
    /// Ack (multiple) every this many deliveries; see [`ack_every`].
    pub ack_every: u64,
}

/// How many deliveries one ack (with multiple) covers: `--multi-ack`, by default a quarter of
/// the prefetch, and never more than the prefetch, or the consumer would wait for deliveries
/// that the broker holds back until it acks.
pub fn ack_every(multi_ack: Option<u64>, prefetch: u16) -> u64 {
    let prefetch = u64::from(prefetch);
    let n = multi_ack.unwrap_or(prefetch / 4).max(1);
    if prefetch == 0 {
        n
    } else {
        n.min(prefetch)
    }
}

pub async fn consumer(
    uri: AmqpUri,
    spec: ConsumerSpec,
    stats: Arc<Stats>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), PerfError> {
    let mut c = Conn::open(&uri).await?;
    for q in &spec.queues {
        c.consume(q, spec.prefetch, spec.autoack).await?;
    }
    stats.subscribed.fetch_add(1, Relaxed);
    let mut local = histogram();
    let mut last_merge = Instant::now();
    let (mut unacked, mut last_tag, mut want_body) = (0u64, 0u64, false);
    let mut out = BytesMut::new();
    loop {
        // Reader::next is cancel-safe (bytes read stay in its buffer), so stopping here loses
        // nothing that the close below would need.
        let frame = tokio::select! {
            f = c.reader.next() => f?,
            _ = stop.changed() => break,
        };
        match frame {
            In::Hot(Hot::Deliver { channel, tag }) => {
                stats.counters.consumed.fetch_add(1, Relaxed);
                want_body = true;
                unacked += 1;
                last_tag = tag;
                if !spec.autoack && unacked >= spec.ack_every {
                    out.clear();
                    frames::ack(&mut out, channel, tag, true);
                    c.writer.write_all(&out).await?;
                    unacked = 0;
                }
            }
            In::Hot(Hot::Body(stamp)) if want_body => {
                want_body = false;
                if let Some(sent) = stamp.map(u64::from_le_bytes) {
                    local.saturating_record(now_ns().saturating_sub(sent) / 1000);
                }
                if local.len() >= 1024 || last_merge.elapsed() > Duration::from_millis(100) {
                    stats.merge(&mut local);
                    last_merge = Instant::now();
                }
            }
            _ => {}
        }
    }
    stats.merge(&mut local);
    if unacked > 0 {
        // What was counted as consumed is acked, or closing would requeue it: a --drain would
        // report an empty queue that is not.
        out.clear();
        frames::ack(&mut out, 1, last_tag, true);
        c.writer.write_all(&out).await?;
    }
    c.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ack_every;

    #[test]
    fn one_ack_never_covers_more_than_the_prefetch() {
        assert_eq!(ack_every(None, 1000), 250, "a quarter of the prefetch by default");
        assert_eq!(ack_every(None, 2), 1, "at least one");
        assert_eq!(ack_every(Some(1), 1000), 1);
        assert_eq!(ack_every(Some(100), 10), 10, "else the consumer would wait forever");
        assert_eq!(ack_every(Some(0), 10), 1);
        assert_eq!(ack_every(Some(5000), 0), 5000, "prefetch 0 is unlimited");
        assert_eq!(ack_every(None, 0), 1);
    }
}
