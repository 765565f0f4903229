//! The `warren` process itself: SIGTERM closes every connection with 320 CONNECTION_FORCED and
//! exits 0; a data directory it cannot use is a clear error and a non-zero exit, not a panic.
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

mod raw;
use raw::{Ending, Raw};

/// The `warren` binary next to this test's executable (built by `cargo test --workspace`).
fn warren_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let bin = exe.parent().and_then(|deps| deps.parent()).expect("target dir").join("warren");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --bin warren` (the README's test command does)",
        bin.display()
    );
    bin
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_closes_connections_with_320_and_exits_cleanly() {
    if std::env::var("WARREN_TEST_EXTERNAL").is_ok() {
        eprintln!("skipped: runs the warren binary itself");
        return;
    }
    let data = tempdir("shutdown");
    let mut child = Command::new(warren_binary())
        .args(["--amqp-listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start warren");
    // The log says where it listens.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("warren exited before listening").expect("read log");
        let plain = strip_ansi(&line);
        if let Some(rest) = plain.split("AMQP listener started addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let log_drain = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());

    let mut raw = Raw::open(&addr).await;
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("run kill");
    assert!(status.success());
    match raw.ending_within(Duration::from_secs(10)).await {
        Ending::Close(c) => {
            assert_eq!(c.reply_code, 320, "{c:?}");
            assert_eq!(
                c.reply_text.as_str(),
                "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"
            );
        }
        other => panic!("expected connection.close 320, got {other:?}"),
    }
    let exit = wait_with_timeout(&mut child, Duration::from_secs(10));
    assert_eq!(exit.code(), Some(0), "warren must exit 0 after SIGTERM");
    let log = log_drain.join().unwrap().join("\n");
    assert!(!log.contains("panicked"), "{log}");
    assert!(log.contains("shutdown complete"), "{log}");
    let _ = std::fs::remove_dir_all(&data);
}

fn wait_with_timeout(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let start = std::time::Instant::now();
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("warren did not exit within {limit:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn unusable_data_dir_is_a_clear_error_not_a_panic() {
    if std::env::var("WARREN_TEST_EXTERNAL").is_ok() {
        eprintln!("skipped: runs the warren binary itself");
        return;
    }
    // A path below a regular file can never be created, even by root (chmod would not stop root).
    let base = tempdir("baddir");
    std::fs::create_dir_all(&base).unwrap();
    let file = base.join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let data = file.join("data");
    let out = Command::new(warren_binary())
        .args(["--amqp-listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .output()
        .expect("run warren");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "must fail: {stderr}");
    assert_eq!(out.status.code(), Some(73), "EX_CANTCREAT for an unusable data directory: {stderr}");
    assert!(stderr.contains("cannot use data directory") && stderr.contains(&*data.to_string_lossy()), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let _ = std::fs::remove_dir_all(&base);
}
