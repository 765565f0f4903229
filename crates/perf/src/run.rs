//! One run: set up the queues, start the roles, print progress, decide when it is over,
//! print the summary.
use crate::conn::Conn;
use crate::error::PerfError;
use crate::roles::{ack_every, consumer, producer, ConsumerSpec, ProducerSpec};
use crate::stats::{progress_line, Stats, Summary};
use crate::uri::AmqpUri;
use crate::Args;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// A --count or --drain run with no progress for this long is reported as stalled.
const STALL: Duration = Duration::from_secs(10);
/// A --drain run ends once nothing has arrived for this long (the queue is empty).
const DRAIN_IDLE: Duration = Duration::from_secs(2);

pub async fn run(args: Args) -> Result<(), PerfError> {
    let uri: AmqpUri = args.uri.parse()?;
    if let Some(n) = args.connections {
        return connections(&uri, n, &args).await;
    }
    if args.declare_only {
        return crate::declare::run(&uri, &args).await;
    }
    let mut admin = Conn::open(&uri).await?;
    let generated = args.queue.is_none();
    let base = args.queue.clone().unwrap_or_else(generated_queue_name);
    let queues: Vec<String> =
        if args.queues == 1 { vec![base] } else { (0..args.queues).map(|i| format!("{base}-{i}")).collect() };
    let mut backlog = 0u64;
    for q in &queues {
        // A drain consumes what is there: the queue must exist, whatever it was declared with.
        backlog += u64::from(admin.declare_queue(q, args.durable, args.drain).await?);
    }
    if !args.exchange.is_empty() && !args.drain {
        admin.declare_exchange(&args.exchange, args.durable).await?;
        for q in &queues {
            admin.bind_queue(q, &args.exchange, q).await?;
        }
    }
    let stats = Arc::new(Stats::default());
    let (stop_tx, stop) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let producers = if args.drain { 0 } else { args.producers };
    // A drain is timed from the first subscription: the backlog is already there.
    let drain_start = Instant::now();
    for i in 0..args.consumers {
        let spec = ConsumerSpec {
            queues: share(&queues, i, args.consumers),
            prefetch: args.prefetch,
            autoack: args.autoack,
            ack_every: ack_every(args.multi_ack, args.prefetch),
        };
        tasks.spawn(consumer(uri.clone(), spec, stats.clone(), stop.clone()));
    }
    if !args.drain {
        // Consumers subscribe first, so the first messages do not sit in the queue: a thousand
        // consumers take longer to connect than a fixed head start (200 ms left most of 1,000
        // unsubscribed while their producers already published). At most 30 s.
        let want = args.consumers as u64;
        let deadline = Instant::now() + Duration::from_secs(30);
        while stats.subscribed.load(std::sync::atomic::Ordering::Relaxed) < want && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    for i in 0..producers {
        let spec = ProducerSpec {
            exchange: args.exchange.clone(),
            queues: share(&queues, i, producers),
            size: args.size,
            persistent: args.persistent,
            confirm: args.confirm,
            rate: args.rate,
            count: args.count,
        };
        tasks.spawn(producer(uri.clone(), spec, stats.clone(), stop.clone()));
    }
    let start = if args.drain { drain_start } else { Instant::now() };
    let (end, outcome) = watch_run(&args, producers, backlog, &stats, &mut tasks, start).await;
    let elapsed = end - start;
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    let summary = Summary {
        producers,
        consumers: args.consumers,
        size: args.size,
        counts: stats.counters.snapshot(),
        elapsed,
        latency: stats.total(),
    };
    if generated && !args.drain {
        for q in &queues {
            let _ = admin.delete_queue(q).await;
        }
    }
    admin.close().await;
    eprintln!("{}", summary.human());
    println!("{}", summary.result_line());
    outcome
}

/// Prints progress once a second until the run is over; returns when the measured part of it
/// ended, and a role's error if one failed.
async fn watch_run(
    args: &Args,
    producers: usize,
    backlog: u64,
    stats: &Stats,
    tasks: &mut JoinSet<Result<(), PerfError>>,
    start: Instant,
) -> (Instant, Result<(), PerfError>) {
    // Checks every 100 ms; a line every second on the second; a timed run ends on its deadline.
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let second = Duration::from_secs(1);
    let mut line = tokio::time::interval_at((start + second).into(), second);
    let timed = !args.drain && args.count.is_none();
    let deadline = tokio::time::sleep_until((start + Duration::from_secs_f64(args.time.max(0.0))).into());
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(deadline, ctrl_c);
    let (mut at_line, mut at_tick) = (stats.counters.snapshot(), stats.counters.snapshot());
    let (mut last_line, mut last_change) = (start, Instant::now());
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = line.tick() => {
                let now = stats.counters.snapshot();
                if !args.quiet {
                    let delta = [0, 1, 2, 3].map(|i| now[i] - at_line[i]);
                    eprintln!("{}", progress_line(start.elapsed(), delta, last_line.elapsed(), &stats.take_interval()));
                }
                (at_line, last_line) = (now, Instant::now());
            }
            _ = &mut deadline, if timed => return (Instant::now(), Ok(())),
            _ = &mut ctrl_c => return (Instant::now(), Ok(())),
            Some(done) = tasks.join_next() => {
                match done {
                    Ok(Err(e)) => return (Instant::now(), Err(e)),
                    Err(e) if e.is_panic() => {
                        return (Instant::now(), Err(PerfError::Protocol(format!("a role panicked: {e}"))));
                    }
                    _ => {}
                }
            }
        }
        let now = stats.counters.snapshot();
        if now != at_tick {
            (at_tick, last_change) = (now, Instant::now());
        }
        let [published, confirmed, nacked, consumed] = now;
        if args.drain {
            if consumed >= backlog {
                return (Instant::now(), Ok(()));
            }
            if last_change.elapsed() > DRAIN_IDLE {
                // The queue ran dry before the backlog counted at the start (someone else took
                // some): the drain ended with the last delivery, not after the wait.
                return (last_change, Ok(()));
            }
        } else if let Some(count) = args.count {
            let all = count * producers as u64;
            let settled = args.confirm == 0 || confirmed + nacked >= all;
            let consumed_all = args.consumers == 0 || consumed >= all;
            if published >= all && settled && consumed_all {
                return (Instant::now(), Ok(()));
            }
            if last_change.elapsed() > STALL {
                let why =
                    format!("stalled: published {published}, confirmed {confirmed}, consumed {consumed} of {all}");
                return (Instant::now(), Err(PerfError::Protocol(why)));
            }
        }
    }
}

/// Opens `n` idle connections with a channel each, holds them, and reports the broker's memory
/// per connection when its pid is given.
async fn connections(uri: &AmqpUri, n: usize, args: &Args) -> Result<(), PerfError> {
    let rss_before = args.broker_pid.map(rss_kib);
    let start = Instant::now();
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(Conn::open(uri).await?);
    }
    let opened = start.elapsed();
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs_f64(args.time.min(30.0))) => {}
        // Ctrl-C only shortens the hold: the connections are still measured and closed.
        _ = tokio::signal::ctrl_c() => {}
    }
    let rss_after = args.broker_pid.map(rss_kib);
    let per = match (rss_before, rss_after) {
        (Some(a), Some(b)) => format!(" kib_per_conn={:.1}", b.saturating_sub(a) as f64 / n as f64),
        _ => String::new(),
    };
    for c in conns {
        c.close().await;
    }
    println!("RESULT connections={n} open_rate={}{per}", crate::stats::rate(n as u64, opened));
    Ok(())
}

/// The queues role `i` of `n` works on: every n-th one from the i-th when there are at least
/// as many queues as roles (100 producers feeding 10,000 queues), else the one it falls on.
fn share(queues: &[String], i: usize, n: usize) -> Vec<String> {
    if queues.len() >= n {
        queues.iter().skip(i).step_by(n).cloned().collect()
    } else {
        vec![queues[i % queues.len()].clone()]
    }
}

/// `warren-perf-` and 8 hex digits. RandomState is seeded at random per process, which keeps
/// concurrent runs (from one host or several) apart without a dependency on a random crate.
pub(crate) fn generated_queue_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    let r = std::collections::hash_map::RandomState::new().build_hasher().finish();
    format!("warren-perf-{:08x}", r as u32)
}

pub(crate) fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_share_the_queues_between_them() {
        let qs: Vec<String> = (0..10).map(|i| format!("q{i}")).collect();
        assert_eq!(share(&qs, 1, 4), ["q1", "q5", "q9"]);
        let all: usize = (0..4).map(|i| share(&qs, i, 4).len()).sum();
        assert_eq!(all, 10, "every queue has exactly one role");
        assert_eq!(share(&qs[..2], 3, 4), ["q1"], "more roles than queues: several per queue");
    }

    #[test]
    fn generated_queue_names_are_prefixed_and_differ() {
        let (a, b) = (generated_queue_name(), generated_queue_name());
        assert!(a.starts_with("warren-perf-") && a.len() == "warren-perf-".len() + 8, "{a}");
        assert!(a["warren-perf-".len()..].chars().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_ne!(a, b);
    }
}
