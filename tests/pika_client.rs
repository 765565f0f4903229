//! Interop with pika, the Python AMQP 0-9-1 client.
//!
//! Runs `tests/python/test_pika.py HOST PORT` against the test broker. The Python program holds
//! the checks (server-named queues, amq.fanout/amq.topic routing, basic.get counts, properties,
//! confirms + mandatory returns, nack, reply codes, RPC, tx), prints `PASS`/`FAIL` per check and
//! a `pika: N passed, M failed` summary; this test streams that output and fails unless every
//! check passed. Needs pika: run `tests/install-deps.sh` once (a missing pika is a failure here,
//! not a silent skip).
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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

/// Runs `cmd`, echoing its stdout and stderr into the test output line by line as they come,
/// and kills it if it runs past `timeout`. Returns the exit status and the stdout lines.
fn run_streaming(mut cmd: Command, timeout: Duration) -> (ExitStatus, Vec<String>) {
    let mut child =
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn client program");
    let (tx, rx) = mpsc::channel::<(bool, String)>();
    let readers = [
        forward(child.stdout.take().expect("stdout"), false, tx.clone()),
        forward(child.stderr.take().expect("stderr"), true, tx),
    ];
    let deadline = Instant::now() + timeout;
    let mut stdout = Vec::new();
    // Ends when both pipes close (the process exited) or the deadline passes.
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((false, line)) => {
                println!("{line}");
                stdout.push(line);
            }
            Ok((true, line)) => eprintln!("{line}"),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("client program still running after {timeout:?}; output so far:\n{}", stdout.join("\n"));
            }
        }
    }
    for r in readers {
        let _ = r.join();
    }
    (child.wait().expect("wait for client program"), stdout)
}

fn forward(
    pipe: impl Read + Send + 'static,
    is_stderr: bool,
    tx: mpsc::Sender<(bool, String)>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send((is_stderr, line)).is_err() {
                break;
            }
        }
    })
}

/// Parses the last `PREFIX: N passed, M failed` line.
fn summary(lines: &[String], prefix: &str) -> Option<(usize, usize)> {
    let line = lines.iter().rev().find_map(|l| l.strip_prefix(prefix)?.strip_prefix(": "))?;
    let (passed, failed) = line.split_once(" passed, ")?;
    let failed = failed.strip_suffix(" failed")?;
    Some((passed.parse().ok()?, failed.parse().ok()?))
}
