//! Interop with the official RabbitMQ Java client (amqp-client 5.x).
//!
//! Compiles `tests/java/WarrenJavaTest.java` against the Debian jars and runs it against the test
//! broker. The Java program holds the checks (routing, properties, confirms, tx, qos, reply codes,
//! ...), prints `PASS`/`FAIL` per check and a `java: N passed, M failed` summary; this test streams
//! that output and fails unless every check passed. Needs a JDK, amqp-client and slf4j: run
//! `tests/install-deps.sh` once (missing tools are a failure here, not a silent skip).
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/java/WarrenJavaTest.java");
/// amqp-client 5.0.0 needs slf4j-api at runtime; slf4j-nop keeps slf4j from warning on stderr.
const JARS: [&str; 3] =
    ["/usr/share/java/amqp-client.jar", "/usr/share/java/slf4j-api.jar", "/usr/share/java/slf4j-nop.jar"];
/// Number of checks in WarrenJavaTest.java; a summary with fewer passes means checks went missing.
const EXPECTED_PASSES: usize = 16;
/// Whole-run bound: each client call inside has its own 5 s timeout, so this only trips on a hang.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

const INSTALL_HINT: &str = "run `bash tests/install-deps.sh` (as root) to install the JDK, \
                            amqp-client and slf4j (Debian packages)";

#[test]
fn java_client_interop() {
    for jar in JARS {
        assert!(Path::new(jar).exists(), "{jar} is missing: {INSTALL_HINT}");
    }
    for tool in ["javac", "java"] {
        let found = Command::new(tool)
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(found, "`{tool}` is not runnable: {INSTALL_HINT}");
    }
    let classpath = JARS.join(":");

    let classes = scratch_dir("java-client");
    let javac = Command::new("javac")
        .arg("-d")
        .arg(&classes)
        .arg("-cp")
        .arg(&classpath)
        .arg(SOURCE)
        .output()
        .expect("spawn javac");
    assert!(
        javac.status.success(),
        "javac failed ({}):\n{}{}",
        javac.status,
        String::from_utf8_lossy(&javac.stdout),
        String::from_utf8_lossy(&javac.stderr)
    );

    let broker = warren_it::start();
    let mut java = Command::new("java");
    java.arg("-cp")
        .arg(format!("{}:{classpath}", classes.display()))
        .arg("WarrenJavaTest")
        .arg(broker.addr.ip().to_string())
        .arg(broker.addr.port().to_string());
    let (status, stdout) = run_streaming(java, RUN_TIMEOUT);
    drop(broker);
    let _ = std::fs::remove_dir_all(&classes);

    let failures: Vec<&str> = stdout.iter().filter(|l| l.starts_with("FAIL ")).map(String::as_str).collect();
    let (passed, failed) = summary(&stdout, "java")
        .unwrap_or_else(|| panic!("no `java: N passed, M failed` line (exit {status}):\n{}", stdout.join("\n")));
    assert_eq!(failed, 0, "Java client checks failed:\n{}", failures.join("\n"));
    assert!(passed >= EXPECTED_PASSES, "only {passed} Java checks passed, expected {EXPECTED_PASSES}");
    assert!(status.success(), "java exited with {status}");
}

/// A fresh directory under Cargo's per-target scratch space.
fn scratch_dir(what: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{what}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
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
