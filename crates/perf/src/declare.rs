//! `--declare-only`: how fast a broker declares queues, and what an idle queue costs it.
//!
//! The queues are split between `--producers` connections that declare at the same time, each
//! waiting for every declare-ok (a client that creates many queues does so), then held idle
//! while the broker's RSS is read, then deleted.
use crate::conn::Conn;
use crate::error::PerfError;
use crate::run::{generated_queue_name, rss_kib};
use crate::uri::AmqpUri;
use crate::Args;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

pub async fn run(uri: &AmqpUri, args: &Args) -> Result<(), PerfError> {
    let base = args.queue.clone().unwrap_or_else(generated_queue_name);
    let (n, conns) = (args.queues, args.producers.max(1));
    let rss_before = args.broker_pid.map(rss_kib);
    let mut tasks = JoinSet::new();
    let start = Instant::now();
    for c in 0..conns {
        let (uri, base, durable) = (uri.clone(), base.clone(), args.durable);
        tasks.spawn(async move {
            let mut conn = Conn::open(&uri).await?;
            for i in (c..n).step_by(conns) {
                conn.declare_queue(&format!("{base}-{i}"), durable, false).await?;
            }
            Ok::<Conn, PerfError>(conn)
        });
    }
    let mut open = Vec::with_capacity(conns);
    while let Some(done) = tasks.join_next().await {
        open.push(done.map_err(|e| PerfError::Protocol(format!("a declarer panicked: {e}")))??);
    }
    let declared_in = start.elapsed();
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs_f64(args.time.min(30.0))) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    let rss_after = args.broker_pid.map(rss_kib);
    let start = Instant::now();
    for (c, conn) in open.iter_mut().enumerate() {
        for i in (c..n).step_by(conns) {
            conn.delete_queue(&format!("{base}-{i}")).await?;
        }
    }
    let deleted_in = start.elapsed();
    for c in open {
        c.close().await;
    }
    let per = match (rss_before, rss_after) {
        (Some(a), Some(b)) => format!(" kib_per_queue={:.2}", b.saturating_sub(a) as f64 / n as f64),
        _ => String::new(),
    };
    println!(
        "RESULT queues={n} durable={} connections={conns} declare_rate={} delete_rate={}{per}",
        args.durable,
        crate::stats::rate(n as u64, declared_in),
        crate::stats::rate(n as u64, deleted_in)
    );
    Ok(())
}
