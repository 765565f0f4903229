//! Interop with the official RabbitMQ Java client (amqp-client 5.x).
//!
//! Compiles `tests/java/WarrenJavaTest.java` against the Debian jars and runs it against the test
//! broker. The Java program holds the checks (routing, properties, confirms, tx, qos, reply codes,
//! ...), prints `PASS`/`FAIL` per check and a `java: N passed, M failed` summary; this test streams
//! that output and fails unless every check passed. `tests/java/WarrenJavaBlocked.java` checks the
//! client's BlockedListener against the resource alarms, which this side raises and clears when
//! the program asks. Needs a JDK, amqp-client and slf4j: run `tests/install-deps.sh` once
//! (missing tools are a failure here, not a silent skip).
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use warren_it::client_program::{run_dialog, run_streaming, scratch_dir, summary};
use warren_server::alarm::MemoryWatermark;

const SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/java/WarrenJavaTest.java");
const BLOCKED_SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/java/WarrenJavaBlocked.java");
/// amqp-client 5.0.0 needs slf4j-api at runtime; slf4j-nop keeps slf4j from warning on stderr.
const JARS: [&str; 3] =
    ["/usr/share/java/amqp-client.jar", "/usr/share/java/slf4j-api.jar", "/usr/share/java/slf4j-nop.jar"];
/// Number of checks in WarrenJavaTest.java; a summary with fewer passes means checks went missing.
const EXPECTED_PASSES: usize = 16;
/// Whole-run bound: each client call inside has its own 5 s timeout, so this only trips on a hang.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

const INSTALL_HINT: &str = "run `bash tests/install-deps.sh` (as root) to install the JDK, \
                            amqp-client and slf4j (Debian packages)";

/// Compiles `source` into a fresh directory; returns it and the classpath to run with.
fn compile(source: &str, what: &str) -> (std::path::PathBuf, String) {
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

    let classes = scratch_dir(Path::new(env!("CARGO_TARGET_TMPDIR")), what);
    let javac = Command::new("javac")
        .arg("-d")
        .arg(&classes)
        .arg("-cp")
        .arg(&classpath)
        .arg(source)
        .output()
        .expect("spawn javac");
    assert!(
        javac.status.success(),
        "javac failed ({}):\n{}{}",
        javac.status,
        String::from_utf8_lossy(&javac.stdout),
        String::from_utf8_lossy(&javac.stderr)
    );
    let run_classpath = format!("{}:{classpath}", classes.display());
    (classes, run_classpath)
}

#[test]
fn java_client_interop() {
    let (classes, classpath) = compile(SOURCE, "java-client");
    let broker = warren_it::start();
    let mut java = Command::new("java");
    java.arg("-cp")
        .arg(&classpath)
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

/// The Java client's BlockedListener hears handleBlocked("low on memory") when the memory alarm
/// goes off under a publishing connection, then handleUnblocked when it clears.
#[test]
fn java_blocked_listener_fires() {
    if warren_it::skip_against_external("moves the broker's memory watermark") {
        return;
    }
    let (classes, classpath) = compile(BLOCKED_SOURCE, "java-blocked");
    let broker = warren_it::start();
    let alarms = broker.alarms().clone();
    let mut java = Command::new("java");
    java.arg("-cp")
        .arg(&classpath)
        .arg("WarrenJavaBlocked")
        .arg(broker.addr.ip().to_string())
        .arg(broker.addr.port().to_string());
    let (status, stdout) = run_dialog(java, RUN_TIMEOUT, |line| {
        let (watermark, reply) = match line {
            "READY" => (MemoryWatermark::Absolute(1), "ALARM_ON"),
            "BLOCKED" => (MemoryWatermark::Relative(1.0), "ALARM_OFF"),
            _ => return None,
        };
        alarms.set_vm_memory_high_watermark(watermark).expect("valid watermark");
        Some(reply.to_string())
    });
    drop(broker);
    let _ = std::fs::remove_dir_all(&classes);

    let (passed, failed) = summary(&stdout, "java-blocked").unwrap_or_else(|| {
        panic!("no `java-blocked: N passed, M failed` line (exit {status}):\n{}", stdout.join("\n"))
    });
    assert_eq!((passed, failed), (1, 0), "output:\n{}", stdout.join("\n"));
    assert!(status.success(), "java exited with {status}");
}
