//! The `warren` process itself: SIGTERM closes every connection with 320 CONNECTION_FORCED and
//! exits 0; a data directory it cannot use is a clear error and a non-zero exit, not a panic.
use std::process::Command;
use std::time::Duration;

mod raw;
use raw::{Ending, Raw};

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_closes_connections_with_320_and_exits_cleanly() {
    if warren_it::skip_against_external("runs the warren binary itself") {
        return;
    }
    let data = tempdir("shutdown");
    let mut broker = warren_it::BrokerProcess::spawn(&data);
    let addr = broker.addr.clone();
    let mut raw = Raw::open(&addr).await;
    let status = Command::new("kill").args(["-TERM", &broker.child.id().to_string()]).status().expect("run kill");
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
    let exit = wait_with_timeout(&mut broker.child, Duration::from_secs(10));
    assert_eq!(exit.code(), Some(0), "warren must exit 0 after SIGTERM");
    std::thread::sleep(Duration::from_millis(100)); // let the log reader take the last lines
    let log = broker.log();
    assert!(!log.contains("panicked"), "{log}");
    assert!(log.contains("shutdown complete"), "{log}");
    let _ = std::fs::remove_dir_all(&data);
}

/// SIGTERM sent the moment the listener is logged still shuts down cleanly. The handler used to be
/// installed only when the shutdown future was first polled, just after that log line, and a
/// signal in between killed the process outright: 21 of 30 such runs died by the signal before
/// the fix. Most likely also why the test above once saw EOF instead of 320 in CI.
#[test]
fn sigterm_right_after_the_listener_starts_exits_cleanly() {
    if warren_it::skip_against_external("runs the warren binary itself") {
        return;
    }
    for round in 0..5 {
        let data = tempdir(&format!("early-term-{round}"));
        let mut broker = warren_it::BrokerProcess::spawn(&data);
        let status = Command::new("kill").args(["-TERM", &broker.child.id().to_string()]).status().expect("run kill");
        assert!(status.success());
        let exit = wait_with_timeout(&mut broker.child, Duration::from_secs(10));
        assert_eq!(exit.code(), Some(0), "round {round}: warren must exit 0 after an early SIGTERM, got {exit:?}");
        let _ = std::fs::remove_dir_all(&data);
    }
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

#[test]
fn unusable_data_dir_is_a_clear_error_not_a_panic() {
    if warren_it::skip_against_external("runs the warren binary itself") {
        return;
    }
    // A path below a regular file can never be created, even by root (chmod would not stop root).
    let base = tempdir("baddir");
    std::fs::create_dir_all(&base).unwrap();
    let file = base.join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let data = file.join("data");
    let out = Command::new(warren_it::warren_binary())
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

#[tokio::test(flavor = "multi_thread")]
async fn config_file_is_read_and_flags_override_it() {
    if warren_it::skip_against_external("runs the warren binary itself") {
        return;
    }
    let base = tempdir("config");
    std::fs::create_dir_all(&base).unwrap();
    let file = base.join("rabbitmq.toml");
    // The file sets a user and a data dir; the flags below override the listener and data dir.
    std::fs::write(
        &file,
        format!(
            "amqp_listen = [\"127.0.0.1:1\"]\ndata_dir = \"{}\"\n[[users]]\nname = \"alice\"\npassword = \"s3cret\"\n",
            base.join("from-file").display()
        ),
    )
    .unwrap();
    let flag_dir = base.join("from-flag");
    let mut broker = warren_it::BrokerProcess::spawn_with_config(&file, &flag_dir);
    let addr = broker.addr.clone();
    let props = lapin::ConnectionProperties::default();
    let alice = lapin::Connection::connect(&format!("amqp://alice:s3cret@{addr}/%2f"), props.clone()).await;
    assert!(alice.is_ok(), "the file's user must log in: {:?}", alice.err());
    let guest = lapin::Connection::connect(&format!("amqp://guest:guest@{addr}/%2f"), props).await;
    assert!(guest.is_err(), "the file's users replace the embedded guest");
    assert!(flag_dir.join("sled").exists(), "--data-dir overrides the file's data_dir");
    assert!(!base.join("from-file").exists());
    let _ = broker.child.kill();
    let _ = broker.child.wait();

    // A config file with an unknown key is an error message and EX_CONFIG, not a panic.
    std::fs::write(&file, "no_such_key = 1\n").unwrap();
    let out = Command::new(warren_it::warren_binary()).arg("--config").arg(&file).output().expect("run warren");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("invalid config file") && stderr.contains("no_such_key"), "{stderr}");
    let _ = std::fs::remove_dir_all(&base);
}
