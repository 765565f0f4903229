//! Interop with pika, the Python AMQP 0-9-1 client.
//!
//! Runs `tests/python/test_pika.py HOST PORT` against the test broker. The Python program holds
//! the checks (server-named queues, amq.fanout/amq.topic routing, basic.get counts, properties,
//! confirms + mandatory returns, nack, reply codes, RPC, tx), prints `PASS`/`FAIL` per check and
//! a `pika: N passed, M failed` summary; this test streams that output and fails unless every
//! check passed. Needs pika: run `tests/install-deps.sh` once (a missing pika is a failure here,
//! not a silent skip).
use std::process::Command;
use std::time::Duration;
use warren_it::client_program::{run_streaming, summary};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/test_pika.py");
/// Number of checks in test_pika.py; a summary with fewer passes means checks went missing.
const EXPECTED_PASSES: usize = 12;
/// Whole-run bound: each client call inside has its own 5 s timeout, so this only trips on a hang.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

#[test]
fn pika_client_interop() {
    let probe = Command::new("python3").args(["-c", "import pika"]).output().unwrap_or_else(|e| {
        panic!("cannot run python3 ({e}): install Python 3, then run `bash tests/install-deps.sh`")
    });
    assert!(
        probe.status.success(),
        "pika is not importable by python3 ({}): run `bash tests/install-deps.sh` to install it",
        String::from_utf8_lossy(&probe.stderr).trim()
    );

    let broker = warren_it::start();
    let mut python = Command::new("python3");
    python
        // Unbuffered, so PASS/FAIL lines stream as the checks run.
        .arg("-u")
        .arg(SCRIPT)
        .arg(broker.addr.ip().to_string())
        .arg(broker.addr.port().to_string());
    let (status, stdout) = run_streaming(python, RUN_TIMEOUT);
    drop(broker);

    let failures: Vec<&str> = stdout.iter().filter(|l| l.starts_with("FAIL ")).map(String::as_str).collect();
    let (passed, failed) = summary(&stdout, "pika")
        .unwrap_or_else(|| panic!("no `pika: N passed, M failed` line (exit {status}):\n{}", stdout.join("\n")));
    assert_eq!(failed, 0, "pika checks failed:\n{}", failures.join("\n"));
    assert!(passed >= EXPECTED_PASSES, "only {passed} pika checks passed, expected {EXPECTED_PASSES}");
    assert!(status.success(), "test_pika.py exited with {status}");
}
