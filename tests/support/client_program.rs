//! Running a client test program (the Java and pika suites) and reading its summary line.
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A fresh directory under `base` (tests pass Cargo's per-target scratch space,
/// `CARGO_TARGET_TMPDIR`, which only integration tests see).
pub fn scratch_dir(base: &Path, what: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let dir = base.join(format!("{what}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Runs `cmd`, echoing its stdout and stderr into the test output line by line as they come,
/// and kills it if it runs past `timeout`. Returns the exit status and the stdout lines.
pub fn run_streaming(cmd: Command, timeout: Duration) -> (ExitStatus, Vec<String>) {
    run_dialog(cmd, timeout, |_| None)
}

/// [`run_streaming`] for a program that talks to the test: each stdout line is passed to
/// `answer`, and what it returns (if anything) is written to the program's stdin as a line.
pub fn run_dialog(
    mut cmd: Command,
    timeout: Duration,
    mut answer: impl FnMut(&str) -> Option<String>,
) -> (ExitStatus, Vec<String>) {
    use std::io::Write;
    let mut child =
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn client program");
    let mut stdin = child.stdin.take();
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
                if let (Some(reply), Some(pipe)) = (answer(&line), stdin.as_mut()) {
                    // A program that already exited closed its end; its output says why.
                    let _ = writeln!(pipe, "{reply}").and_then(|_| pipe.flush());
                }
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
    drop(stdin);
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
pub fn summary(lines: &[String], prefix: &str) -> Option<(usize, usize)> {
    let line = lines.iter().rev().find_map(|l| l.strip_prefix(prefix)?.strip_prefix(": "))?;
    let (passed, failed) = line.split_once(" passed, ")?;
    let failed = failed.strip_suffix(" failed")?;
    Some((passed.parse().ok()?, failed.parse().ok()?))
}
