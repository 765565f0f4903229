//! One soak run: start the broker, start the clients, kill clients and the broker on schedule,
//! stop, prove and drain, judge, print the RESULT line.
use crate::broker::Broker;
use crate::ctx::{Ctx, Gate, Stats};
use crate::error::SoakError;
use crate::ledger::Ledger;
use crate::procfs::{self, Fds};
use crate::relay::Relay;
use crate::report::{Sample, Series};
use crate::rng::Rng;
use crate::{drain, session, Args};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long the broker gets to close the clients' sockets, or to exit after SIGTERM.
const PATIENCE: Duration = Duration::from_secs(30);

/// Runs the soak; Ok(true) if every check passed.
pub async fn run(args: Args) -> Result<bool, SoakError> {
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
    });
    let mut rng = Rng::new(seed);
    let binary = match &args.warren {
        Some(b) => b.clone(),
        None => std::env::current_exe()?.with_file_name("warren"),
    };
    let dir =
        args.dir.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("warren-soak-{}", std::process::id())));
    let data_dir = dir.join("data");
    if data_dir.exists() {
        return Err(SoakError::Broker(format!(
            "{} exists; a soak starts on a fresh data directory",
            data_dir.display()
        )));
    }
    std::fs::create_dir_all(&dir)?;
    let log = dir.join("warren.log");
    eprintln!("soak: seed {seed}, broker {}, data {}, log {}", binary.display(), data_dir.display(), log.display());

    let mut broker = tokio::task::block_in_place(|| Broker::start(&binary, &data_dir, &log))?;
    let baseline_first = baseline(&broker).await?;
    let mut baseline_last = baseline_first;
    let pid = Arc::new(AtomicU32::new(broker.pid()));
    let (gate_tx, gate) = watch::channel(Gate { epoch: 1, up: true });
    let relay = Arc::new(Relay::start(broker.addr.clone(), gate.clone()).await?);
    let ctx = Arc::new(Ctx {
        ledger: Mutex::new(Ledger::new()),
        stats: Stats::default(),
        gate,
        // lapin keeps 64 frames of buffer per connection, zeroed: at the broker's 128 KiB
        // frame_max that is 8 MiB per client. 16 KiB frames keep 100 clients under 100 MiB, and
        // split the larger bodies into several frames.
        uri: format!("amqp://guest:guest@{}/%2f?frame_max=16384", relay.addr),
        durable: (0..args.durable_queues).map(|i| format!("soak-durable-{i}")).collect(),
        transient: (0..args.transient_queues).map(|i| format!("soak-transient-{i}")).collect(),
        backlog: "soak-backlog".into(),
        backlog_left: AtomicU64::new(args.backlog),
        rate: args.rate,
        max_size: args.max_size,
    });

    let start = Instant::now();
    let (stop_tx, stop) = watch::channel(false);
    let series = Series::default();
    let sampler =
        tokio::spawn(sample(series.clone(), pid.clone(), ctx.clone(), data_dir.clone(), start, args.sample_every));
    let mut slots = tokio::task::JoinSet::new();
    for i in 0..args.connections {
        slots.spawn(session::run(i, ctx.clone(), stop.clone(), rng.fork()));
    }
    let killer =
        tokio::spawn(kill_clients(relay.clone(), ctx.clone(), stop.clone(), args.client_kill_every, rng.fork()));

    // The traffic phase: broker kills on schedule, a progress line every 10 s.
    let total = Duration::from_secs_f64(args.time);
    let kill_at: Vec<Duration> = (1..=args.broker_kills).map(|k| total * k / (args.broker_kills + 1)).collect();
    let mut kills_done = 0;
    let mut crashed = None;
    let mut next_line = Duration::from_secs(10);
    while start.elapsed() < total {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(status) = broker.exited() {
            crashed = Some(status);
            break;
        }
        if kills_done < kill_at.len() && start.elapsed() >= kill_at[kills_done] {
            kills_done += 1;
            let epoch = broker.starts + 1;
            gate_tx.send_replace(Gate { epoch: broker.starts, up: false });
            pid.store(0, Ordering::Relaxed);
            tokio::task::block_in_place(|| broker.kill9())?;
            if args.lose_log_at_kill {
                std::fs::remove_dir_all(data_dir.join("log"))?;
            }
            ctx.ledger().broker_restarted(epoch);
            let t = Instant::now();
            tokio::task::block_in_place(|| broker.restart())?;
            eprintln!(
                "soak: {:.0}s: broker killed (SIGKILL) and restarted in {:.2}s",
                start.elapsed().as_secs_f64(),
                t.elapsed().as_secs_f64()
            );
            baseline_last = baseline(&broker).await?;
            pid.store(broker.pid(), Ordering::Relaxed);
            gate_tx.send_replace(Gate { epoch, up: true });
        }
        if start.elapsed() >= next_line {
            next_line += Duration::from_secs(10);
            eprintln!("{}", progress(&ctx, &relay, &series, start));
        }
    }
    let traffic_secs = start.elapsed().as_secs_f64();

    // Stop: every client finishes politely (commits, proves its last settlements, closes).
    let _ = stop_tx.send(true);
    let _ = killer.await;
    let joined =
        tokio::time::timeout(Duration::from_secs(60), async { while slots.join_next().await.is_some() {} }).await;
    if joined.is_err() {
        eprintln!("soak: {} client slots did not stop within 60 s; aborted", slots.len());
        slots.abort_all();
    }
    let mut failures = Vec::new();
    if let Some(status) = crashed {
        failures.push(format!("the broker exited by itself ({status}); see {}", log.display()));
    }
    let epoch = broker.starts;
    let mut fds_end = None;
    let mut verdict = None;
    let mut drain_corrupt = 0;
    if crashed.is_none() {
        drain::barrier(&broker.addr, &ctx, epoch).await?;
        // The broker requeues a closed client's unacked messages as it closes its socket.
        wait_for_fds(&broker, &baseline_last).await;
        let durable: Vec<String> = ctx.durable.iter().chain([&ctx.backlog]).cloned().collect();
        let drained = drain::drain(&broker.addr, &durable).await?;
        drain_corrupt = drained.corrupt;
        verdict = Some(ctx.ledger().verdict(&drained.copies));
        fds_end = Some(wait_for_fds(&broker, &baseline_last).await);
    }
    sampler.abort();
    let rss_end = procfs::rss_kib(broker.pid());
    if crashed.is_none() {
        match tokio::task::block_in_place(|| broker.terminate(PATIENCE)) {
            Ok(status) if status.success() => {}
            Ok(status) => failures.push(format!("the broker exited with {status} after SIGTERM")),
            Err(e) => failures.push(e.to_string()),
        }
    }
    if broker.panicked() {
        failures.push(format!("the broker's log shows a panic; see {}", log.display()));
    }

    let s = &ctx.stats;
    let corrupt = Stats::get(&s.corrupt) + drain_corrupt;
    if corrupt > 0 {
        failures.push(format!("{corrupt} message bodies were damaged"));
    }
    let refused = Stats::get(&s.protocol_errors);
    if refused > 0 {
        failures.push(format!("the broker closed {refused} channels or connections with a reply code"));
    }
    let v = verdict.unwrap_or_default();
    if crashed.is_none() && !v.ok() {
        failures.push(format!("ledger check failed: {v:?}"));
    }
    let fds_end = fds_end.unwrap_or_default();
    if crashed.is_none() && !fds_end.back_to(&baseline_last) {
        failures.push(format!(
            "descriptors not back to the baseline: {baseline_last:?} after start, {fds_end:?} at the end"
        ));
    }
    let ((f0, f1), (l0, l1)) = Series::windows(traffic_secs);
    let per_minute: Vec<String> = series.rss_per_minute().iter().map(|m| format!("{m:.0}")).collect();
    eprintln!("soak: broker RSS, largest per minute (MiB): {}", per_minute.join(" "));
    let per_start: Vec<String> =
        series.rss_per_start().iter().map(|[a, m, z]| format!("{a:.1} / {m:.1} / {z:.1}")).collect();
    eprintln!("soak: broker RSS per process, first / largest / last sample (MiB): {}", per_start.join(", "));
    eprintln!("soak: descriptors after the first start {baseline_first:?}, after the last {baseline_last:?}, at the end {fds_end:?}");
    let ledger = ctx.ledger();
    println!(
        "RESULT soak seconds={traffic_secs:.0} connections={} published={} persistent={} confirmed={} \
         transient_confirmed={} nacked={} consumed={} acks={} rejects={} requeues={} commits={} settled={} \
         in_doubt={} crossed_kill={} expected={} recovered={} lost={} resurrected={} duplicates={} unconfirmed_recovered={} \
         corrupt={corrupt} refused={refused} sessions={} client_kills={} broker_kills={kills_done} rss_first_mib={:.1} \
         rss_last_mib={:.1} rss_max_mib={:.1} rss_end_mib={:.1} fds_baseline={} fds_end={} \
         fds_sockets_baseline={} fds_sockets_end={} fds_log_baseline={} fds_log_end={}",
        args.connections,
        ledger.published() + Stats::get(&s.transient_published),
        ledger.published(),
        v.confirmed,
        Stats::get(&s.transient_confirmed),
        Stats::get(&s.publish_nacked),
        Stats::get(&s.consumed),
        Stats::get(&s.acks),
        Stats::get(&s.rejects),
        Stats::get(&s.requeues),
        Stats::get(&s.commits),
        v.settled,
        v.in_doubt,
        v.crossed_kill,
        v.expected,
        v.present,
        v.lost,
        v.resurrected,
        v.duplicates,
        v.unconfirmed_present,
        Stats::get(&s.sessions),
        Stats::get(&s.client_kills),
        series.rss_mean(f0, f1),
        series.rss_mean(l0, l1),
        series.rss_max(),
        rss_end.unwrap_or(0) as f64 / 1024.0,
        baseline_last.total(),
        fds_end.total(),
        baseline_last.sockets,
        fds_end.sockets,
        baseline_last.log,
        fds_end.log,
    );
    for f in &failures {
        eprintln!("soak: FAILED: {f}");
    }
    if failures.is_empty() && !args.keep {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("soak: kept {}", dir.display());
    }
    Ok(failures.is_empty())
}

/// The broker's descriptors once it has settled after a start, before any client is let in.
async fn baseline(broker: &Broker) -> Result<Fds, SoakError> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    procfs::fds(broker.pid(), &broker.data_dir).ok_or_else(|| SoakError::Broker("exited right after starting".into()))
}

/// Polls until the broker's descriptors are back to `baseline` (at most [`PATIENCE`]); returns
/// the last count.
async fn wait_for_fds(broker: &Broker, baseline: &Fds) -> Fds {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = procfs::fds(broker.pid(), &broker.data_dir).unwrap_or_default();
        if now.back_to(baseline) || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sample(series: Series, pid: Arc<AtomicU32>, ctx: Arc<Ctx>, data_dir: PathBuf, start: Instant, every: f64) {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(every.max(0.1)));
    loop {
        tick.tick().await;
        let p = pid.load(Ordering::Relaxed);
        if p == 0 {
            continue; // being restarted
        }
        let (Some(rss_kib), Some(fds)) = (procfs::rss_kib(p), procfs::fds(p, Path::new(&data_dir))) else { continue };
        let epoch = ctx.gate.borrow().epoch;
        series.push(Sample { at: start.elapsed().as_secs_f64(), epoch, rss_kib, fds: fds.total() });
    }
}

/// Every `every` seconds (±50 %), kills 1 to 3 random client connections.
async fn kill_clients(relay: Arc<Relay>, ctx: Arc<Ctx>, stop: watch::Receiver<bool>, every: f64, mut rng: Rng) {
    if every <= 0.0 {
        return;
    }
    let base = Duration::from_secs_f64(every);
    loop {
        let wait = base / 2 + base.mul_f64(rng.below(1000) as f64 / 1000.0);
        tokio::time::sleep(wait).await;
        if *stop.borrow() {
            return;
        }
        if !ctx.gate.borrow().up {
            continue;
        }
        for _ in 0..1 + rng.below(3) {
            if relay.kill_one(&mut rng) {
                Stats::add(&ctx.stats.client_kills, 1);
            }
        }
    }
}

fn progress(ctx: &Ctx, relay: &Relay, series: &Series, start: Instant) -> String {
    let s = &ctx.stats;
    let last = series.last();
    format!(
        "soak: {:.0}s broker#{} live={} published={} consumed={} sessions={} client_kills={} rss={:.1}MiB fds={}",
        start.elapsed().as_secs_f64(),
        ctx.gate.borrow().epoch,
        relay.live(),
        ctx.ledger().published() + Stats::get(&s.transient_published),
        Stats::get(&s.consumed),
        Stats::get(&s.sessions),
        Stats::get(&s.client_kills),
        last.map(|l| l.rss_kib as f64 / 1024.0).unwrap_or(0.0),
        last.map(|l| l.fds).unwrap_or(0),
    )
}
