//! Fairness: one connection publishing as fast as its socket takes bytes must not keep the
//! broker from serving the others, even on a one-worker runtime (what tokio gives a one-CPU
//! machine by default).
//!
//! Found with the transient benchmark on one worker: the consumer's basic.qos sat unread in
//! its socket for seconds while the publisher's connection task kept the only worker, so the
//! queue filled with no consumer attached and started paging.
mod common_b;

use common_b::raw::{encode_publish, Raw};
use common_b::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// With connection tasks yielding every 256 KiB of input this took 0.2 s (debug build);
/// before that change it ran into this bound. It only has to separate the two.
const BOUND: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_publisher_does_not_starve_other_connections() {
    if warren_it::skip_against_external("needs a one-worker broker runtime") {
        return;
    }
    let b = warren_it::start_on_workers(1, |_| {});
    let Raw { reader: _keep_open, writer: mut flood } = Raw::open(&b.host_port()).await;
    // Unroutable publishes: the broker does the per-message work and keeps nothing.
    let mut batch = Vec::new();
    for _ in 0..1_000 {
        batch = encode_publish(batch, 1, "amq.direct", "nowhere", false, b"x");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flooding = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut batches = 0u64;
            while !stop.load(Ordering::Relaxed) {
                flood.write_raw(&batch).await;
                batches += 1;
            }
            batches
        })
    };
    // Let the flood fill the broker-side socket buffer first.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let t0 = Instant::now();
    let conn = tokio::time::timeout(BOUND, async {
        let conn = connect(&b).await;
        let ch = conn.create_channel().await.expect("channel.open");
        declare_queue(&ch, "fairness").await;
        conn
    })
    .await;
    let took = t0.elapsed();
    stop.store(true, Ordering::Relaxed);
    let batches = flooding.await.expect("flooding task");
    assert!(
        conn.is_ok(),
        "connect + channel.open + queue.declare took over {BOUND:?} while another connection published"
    );
    // The flood really ran alongside (it was not itself blocked), so the measurement means something.
    assert!(batches > 10, "the flooding publisher only wrote {batches} batches of 1,000 messages");
    eprintln!("served in {took:?} while the flood wrote {batches} batches");
}
