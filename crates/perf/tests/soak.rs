//! The soak program itself, run short (20 s, 50 connections, one broker kill) so that it is
//! tested on every run; the 30-minute soak is run by hand (docs/perf-tool.md).
use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;
use warren_it::client_program::{run_streaming, scratch_dir};

fn result_fields(lines: &[String]) -> HashMap<String, String> {
    let line = lines.iter().find(|l| l.starts_with("RESULT soak ")).expect("a RESULT line");
    line.split_whitespace().skip(2).filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect()
}

fn n(f: &HashMap<String, String>, k: &str) -> f64 {
    f.get(k).unwrap_or_else(|| panic!("{k} missing from {f:?}")).parse().unwrap()
}

#[test]
fn a_short_soak_through_a_broker_kill_loses_nothing_and_leaks_no_descriptor() {
    if warren_it::skip_against_external("starts and kills the warren binary itself") {
        return;
    }
    let dir = scratch_dir(env!("CARGO_TARGET_TMPDIR").as_ref(), "soak");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warren-soak"));
    cmd.arg("--warren").arg(warren_it::warren_binary()).arg("--dir").arg(&dir);
    cmd.args([
        "--time",
        "20",
        "--connections",
        "50",
        "--broker-kills",
        "1",
        "--client-kill-every",
        "2",
        "--rate",
        "20",
    ]);
    // Generous: the run is 20 s of traffic, then the stop, the drain and the shutdown.
    let (status, lines) = run_streaming(cmd, Duration::from_secs(300));
    let f = result_fields(&lines);
    assert!(status.success(), "the soak reported a failure (see its FAILED lines): {f:?}");
    for k in ["lost", "resurrected", "duplicates", "corrupt", "refused"] {
        assert_eq!(n(&f, k), 0.0, "{k}: {f:?}");
    }
    assert_eq!(n(&f, "broker_kills"), 1.0);
    assert!(n(&f, "client_kills") >= 3.0, "a kill every 2 s or so: {f:?}");
    assert!(n(&f, "sessions") > 50.0, "killed clients reconnected: {f:?}");
    assert!(n(&f, "confirmed") >= 500.0 && n(&f, "settled") >= 250.0, "the run must exercise something: {f:?}");
    assert!(n(&f, "acks") > 0.0 && n(&f, "rejects") > 0.0 && n(&f, "requeues") > 0.0 && n(&f, "commits") > 0.0);
    assert!(n(&f, "transient_confirmed") > 0.0, "{f:?}");
    // The standing backlog (2,000 messages, all published before the kill at 10 s) was recovered.
    assert!(n(&f, "expected") >= 1000.0 && n(&f, "crossed_kill") >= 1000.0, "{f:?}");
    // The program checks the descriptors in detail (and fails the run); the sockets at least
    // must be exactly those of a broker nobody is connected to.
    assert_eq!(n(&f, "fds_sockets_end"), n(&f, "fds_sockets_baseline"), "{f:?}");
    assert!(n(&f, "rss_max_mib") > 0.0, "the broker's memory was sampled: {f:?}");
    assert!(!dir.join("data").exists(), "a passing run removes its directory");
}

/// The checker can fail: a broker that loses its message log at the kill loses the confirmed
/// messages that were not yet settled, the standing backlog above all.
#[test]
fn losing_the_message_log_at_the_kill_is_reported_as_lost_messages() {
    if warren_it::skip_against_external("starts and kills the warren binary itself") {
        return;
    }
    let dir = scratch_dir(env!("CARGO_TARGET_TMPDIR").as_ref(), "soak-lose");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warren-soak"));
    cmd.arg("--warren").arg(warren_it::warren_binary()).arg("--dir").arg(&dir);
    cmd.args(["--time", "12", "--connections", "50", "--broker-kills", "1", "--rate", "20", "--lose-log-at-kill"]);
    let (status, lines) = run_streaming(cmd, Duration::from_secs(300));
    let f = result_fields(&lines);
    assert_eq!(status.code(), Some(1), "the run must fail: {f:?}");
    assert!(n(&f, "lost") >= 100.0, "the standing backlog is gone: {f:?}");
    assert!(dir.join("data").exists(), "a failing run keeps its directory for a look");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_broker_binary_is_an_error_not_a_verdict() {
    let dir = scratch_dir(env!("CARGO_TARGET_TMPDIR").as_ref(), "soak-missing");
    let out = Command::new(env!("CARGO_BIN_EXE_warren-soak"))
        .args(["--warren", "/nonexistent/warren", "--time", "1", "--dir"])
        .arg(&dir)
        .output()
        .expect("warren-soak runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot start /nonexistent/warren"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("RESULT"));
}
