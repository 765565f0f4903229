//! Runs the built warren-perf binary against a real Warren broker and checks its RESULT line.
use std::collections::HashMap;
use std::process::Command;

/// Runs warren-perf with `args` against `uri`; returns its RESULT fields (and the exit status).
fn perf(uri: &str, args: &[&str]) -> (bool, HashMap<String, String>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_warren-perf"))
        .arg("--uri")
        .arg(uri)
        .args(args)
        .output()
        .expect("warren-perf runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let fields = stdout
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.into(), v.into()))
                .collect()
        })
        .unwrap_or_default();
    (out.status.success(), fields, stderr)
}

fn n(f: &HashMap<String, String>, k: &str) -> u64 {
    f.get(k).unwrap_or_else(|| panic!("{k} missing from {f:?}")).parse().unwrap()
}

#[test]
fn count_run_with_confirms_delivers_everything_once() {
    let b = warren_it::start();
    let (ok, f, err) =
        perf(&b.uri(), &["--count", "5000", "--producers", "2", "--consumers", "2", "--confirm", "100", "--quiet"]);
    assert!(ok, "{err}");
    assert_eq!(n(&f, "published"), 10_000);
    assert_eq!(n(&f, "confirmed"), 10_000);
    assert_eq!(n(&f, "consumed"), 10_000);
    assert!(n(&f, "consume_rate") > 0 && n(&f, "p99_us") >= n(&f, "p50_us"), "{f:?}");
    assert!(n(&f, "max_us") > 0, "latency was measured: {f:?}");
}

#[test]
fn timed_run_reports_progress_and_rates() {
    let b = warren_it::start();
    let (ok, f, err) = perf(&b.uri(), &["--time", "2", "--rate", "2000", "--size", "64"]);
    assert!(ok, "{err}");
    assert!(err.lines().filter(|l| l.contains("published") && l.contains("/s")).count() >= 2, "progress lines: {err}");
    let published = n(&f, "published");
    assert!((2000..=5000).contains(&published), "about 2 s at 2000/s, got {published}");
    assert!(n(&f, "consumed") > 0);
}

#[test]
fn drain_empties_a_persistent_backlog() {
    let b = warren_it::start();
    let fill = [
        "--queue",
        "perf-backlog",
        "--durable",
        "--persistent",
        "--count",
        "3000",
        "--consumers",
        "0",
        "--confirm",
        "500",
        "--quiet",
    ];
    let (ok, f, err) = perf(&b.uri(), &fill);
    assert!(ok, "{err}");
    assert_eq!((n(&f, "confirmed"), n(&f, "consumed")), (3000, 0));
    let (ok, f, err) = perf(&b.uri(), &["--queue", "perf-backlog", "--drain", "--quiet"]);
    assert!(ok, "{err}");
    assert_eq!(n(&f, "consumed"), 3000);
}

#[test]
fn broker_errors_are_reported_with_their_code() {
    let b = warren_it::start();
    let uri = format!("{}/no-such-vhost", b.uri().trim_end_matches("/%2f").trim_end_matches('/'));
    let (ok, _, err) = perf(&uri, &["--time", "1"]);
    assert!(!ok);
    assert!(err.contains("530"), "{err}");
    let (ok, _, err) = perf("amqp://guest:guest@127.0.0.1:1", &["--time", "1"]);
    assert!(!ok);
    assert!(err.contains("cannot connect"), "{err}");
}

#[test]
fn timed_run_with_confirms_keeps_the_window() {
    let b = warren_it::start();
    let (ok, f, err) = perf(&b.uri(), &["--time", "2", "--producers", "1", "--consumers", "1", "--confirm", "100"]);
    assert!(ok, "{err}");
    let (published, confirmed) = (n(&f, "published"), n(&f, "confirmed"));
    assert!(published > 0 && n(&f, "confirm_rate") > 0 && n(&f, "consume_rate") > 0, "{f:?}");
    assert!(confirmed <= published && published - confirmed <= 100, "at most 100 unconfirmed: {f:?}");
    assert!(n(&f, "consumed") <= published, "{f:?}");
    let secs: f64 = f["seconds"].parse().unwrap();
    assert!((2.0..2.5).contains(&secs), "the run ends on its deadline: {f:?}");
}

#[test]
fn drain_acks_everything_it_counts() {
    let b = warren_it::start();
    // 1234 is not a multiple of the 250 deliveries one ack covers: the tail must be acked too,
    // or closing would requeue it. The fill has no confirms: closing politely must still get
    // every publish to the broker.
    let fill = ["--queue", "perf-tail", "--count", "1234", "--consumers", "0", "--quiet"];
    let (ok, f, err) = perf(&b.uri(), &fill);
    assert!(ok, "{err}");
    assert_eq!((n(&f, "published"), n(&f, "consumed")), (1234, 0));
    let (ok, f, err) = perf(&b.uri(), &["--queue", "perf-tail", "--drain", "--quiet"]);
    assert!(ok, "{err}");
    assert_eq!(n(&f, "consumed"), 1234);
    assert!(n(&f, "consume_rate") > 0);
    let (ok, f, err) = perf(&b.uri(), &["--queue", "perf-tail", "--drain", "--quiet"]);
    assert!(ok, "{err}");
    assert_eq!(n(&f, "consumed"), 0, "the first drain left nothing behind");
}

#[test]
fn publishes_through_a_named_exchange_to_several_queues() {
    let b = warren_it::start();
    for exchange in ["perf-direct", "amq.direct"] {
        let args = [
            "--exchange",
            exchange,
            "--queues",
            "2",
            "--producers",
            "2",
            "--consumers",
            "2",
            "--count",
            "1000",
            "--quiet",
        ];
        let (ok, f, err) = perf(&b.uri(), &args);
        assert!(ok, "{exchange}: {err}");
        assert_eq!((n(&f, "published"), n(&f, "consumed")), (2000, 2000), "{exchange}: {f:?}");
    }
    let (ok, _, err) = perf(&b.uri(), &["--exchange", "amq.missing", "--time", "1"]);
    assert!(!ok);
    assert!(err.contains("404"), "amq.* exchanges are only checked, not declared: {err}");
}

#[test]
fn a_multi_ack_larger_than_the_prefetch_does_not_stall() {
    let b = warren_it::start();
    let (ok, f, err) = perf(&b.uri(), &["--count", "500", "--prefetch", "10", "--multi-ack", "100", "--quiet"]);
    assert!(ok, "{err}");
    assert_eq!(n(&f, "consumed"), 500);
}

#[test]
fn bodies_larger_than_frame_max_are_split_and_timed() {
    let b = warren_it::start_with(|c| c.frame_max = 4096);
    let (ok, f, err) = perf(&b.uri(), &["--count", "300", "--size", "10000", "--confirm", "50", "--quiet"]);
    assert!(ok, "{err}");
    assert_eq!((n(&f, "confirmed"), n(&f, "consumed")), (300, 300));
    assert!(n(&f, "max_us") > 0, "the stamp in the first body frame was read: {f:?}");
}

#[test]
fn a_channel_closed_under_a_producer_ends_the_run_with_its_code() {
    let b = warren_it::start_with(|c| c.max_message_size = 1024);
    if b.is_external() {
        return; // the limit is set on the in-process broker only
    }
    let (ok, _, err) = perf(&b.uri(), &["--size", "4096", "--time", "3", "--quiet"]);
    assert!(!ok, "the broker refused every message");
    assert!(err.contains("broker closed the channel with 406"), "{err}");
}

/// The do-nothing broker answers the handshake and delivers every publish once, to the
/// consumer, with its body (so warren-perf can time it).
#[test]
fn latency_floor_forwards_every_publish_to_the_consumer() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let mut floor = Command::new(env!("CARGO_BIN_EXE_latency-floor")).arg(&addr).spawn().expect("latency-floor runs");
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "latency-floor did not listen");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (ok, f, err) =
        perf(&format!("amqp://guest:guest@{addr}/%2f"), &["--count", "2000", "--rate", "4000", "--quiet"]);
    let _ = floor.kill();
    let _ = floor.wait();
    assert!(ok, "{err}");
    assert_eq!(n(&f, "published"), 2000);
    assert_eq!(n(&f, "consumed"), 2000);
    assert!(n(&f, "max_us") > 0, "latency was measured: {f:?}");
}

#[test]
fn few_producers_feed_many_queues_and_few_consumers_drain_them() {
    let b = warren_it::start();
    let (ok, f, err) = perf(
        &b.uri(),
        &["--queues", "40", "--producers", "3", "--consumers", "2", "--count", "400", "--confirm", "50", "--quiet"],
    );
    assert!(ok, "{err}");
    assert_eq!(n(&f, "published"), 1200);
    assert_eq!(n(&f, "consumed"), 1200, "every queue had a consumer: {f:?}");
}

#[test]
fn declare_only_declares_holds_and_deletes_the_queues() {
    let b = warren_it::start();
    let (ok, f, err) = perf(
        &b.uri(),
        &["--declare-only", "--queues", "300", "--producers", "4", "--durable", "--queue", "decl", "--time", "0"],
    );
    assert!(ok, "{err}");
    assert_eq!(n(&f, "queues"), 300);
    assert!(n(&f, "declare_rate") > 0 && n(&f, "delete_rate") > 0, "{f:?}");
    // They are gone again: a passive declare of one is refused.
    let (ok, _, err) = perf(&b.uri(), &["--drain", "--queue", "decl-7", "--quiet"]);
    assert!(!ok && err.contains("404"), "decl-7 should not exist any more: {err}");
}
