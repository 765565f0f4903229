//! Shared harness for the integration tests in `tests/`.
//!
//! `start()` runs a Warren broker in-process on an ephemeral loopback port, on its own
//! Tokio runtime thread, and stops it when the returned [`TestBroker`] is dropped.
//!
//! Setting `WARREN_TEST_EXTERNAL=HOST:PORT` points every test at an already running broker
//! instead (guest/guest, vhost `/`). That is how the suite is checked against RabbitMQ
//! itself: the expectations in these tests are RabbitMQ's behaviour, not ours.
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;

pub mod client_program;
pub mod lapin_util;

pub use warren_server::Config;

/// A running broker for one test.
pub struct TestBroker {
    pub addr: SocketAddr,
    /// The broker's data directory (in-process brokers only); removed on drop unless kept.
    pub data_dir: Option<std::path::PathBuf>,
    keep_data: bool,
    store: Option<std::sync::Arc<warren_store::Store>>,
    alarms: Option<warren_server::alarm::AlarmHandle>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestBroker {
    /// `amqp://guest:guest@HOST:PORT/%2f`
    pub fn uri(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.addr)
    }
    /// `HOST:PORT`
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }
    /// Stops the broker (as a clean shutdown would) and keeps its data directory, for a
    /// restart with [`start_in`].
    pub fn stop_keeping_data(mut self) -> std::path::PathBuf {
        self.keep_data = true;
        self.data_dir.clone().expect("an in-process broker has a data directory")
    }

    /// Makes the broker's disk writes fail (or work again), as a full or broken disk would.
    /// In-process brokers only.
    pub fn inject_write_failures(&self, on: bool) {
        self.store.as_ref().expect("an in-process broker").inject_write_failures(on);
    }

    /// The broker's resource alarms, to move their thresholds (in-process brokers only).
    pub fn alarms(&self) -> &warren_server::alarm::AlarmHandle {
        self.alarms.as_ref().expect("an in-process broker")
    }

    /// True when the tests run against an external broker (`WARREN_TEST_EXTERNAL`).
    pub fn is_external(&self) -> bool {
        self.thread.is_none()
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let (Some(dir), false) = (&self.data_dir, self.keep_data) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Starts a broker with the test defaults (see [`Config::for_tests`]).
pub fn start() -> TestBroker {
    start_with(|_| {})
}

/// Starts an in-process broker on an existing data directory (a restart).
pub fn start_in(dir: std::path::PathBuf, tweak: impl FnOnce(&mut Config)) -> TestBroker {
    start_with(|c| {
        c.data_dir = dir;
        tweak(c);
    })
}

/// The environment variable that points the suites at another broker (`HOST:PORT`).
const EXTERNAL: &str = "WARREN_TEST_EXTERNAL";

/// True (after saying why on stderr) when the suites run against an external broker, for tests
/// that need the warren binary or process itself and so cannot run against another broker.
pub fn skip_against_external(why: &str) -> bool {
    let external = std::env::var(EXTERNAL).is_ok();
    if external {
        eprintln!("skipped: {why}");
    }
    external
}

/// Starts a broker after `tweak` has adjusted the test config (heartbeat, frame_max, users...).
/// With `WARREN_TEST_EXTERNAL` set, `tweak` is ignored.
pub fn start_with(tweak: impl FnOnce(&mut Config)) -> TestBroker {
    start_on_workers(2, tweak)
}

/// As [`start_with`], on a runtime of `workers` threads (1 stands for a one-CPU machine,
/// where tokio's default runtime has a single worker).
pub fn start_on_workers(workers: usize, tweak: impl FnOnce(&mut Config)) -> TestBroker {
    if let Ok(ext) = std::env::var(EXTERNAL) {
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&ext)
            .expect("WARREN_TEST_EXTERNAL must be HOST:PORT")
            .next()
            .expect("WARREN_TEST_EXTERNAL resolved to no address");
        return TestBroker {
            addr,
            data_dir: None,
            keep_data: true,
            store: None,
            alarms: None,
            stop: None,
            thread: None,
        };
    }
    let mut config = Config::for_tests();
    tweak(&mut config);
    let data_dir = Some(config.data_dir.clone());
    let (addr_tx, addr_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
            .expect("test runtime");
        rt.block_on(async move {
            let server = warren_server::Server::bind(config).await.expect("bind test broker");
            addr_tx.send((server.amqp_addrs()[0], server.store().clone(), server.alarms())).expect("report address");
            server
                .run(async {
                    let _ = stop_rx.await;
                })
                .await;
        });
    });
    let (addr, store, alarms) = addr_rx.recv().expect("test broker failed to start");
    TestBroker {
        addr,
        data_dir,
        keep_data: false,
        store: Some(store),
        alarms: Some(alarms),
        stop: Some(stop_tx),
        thread: Some(thread),
    }
}

/// The `warren` binary next to the test executables (the README's test command builds it
/// first: `cargo test` alone does not build another package's binaries).
pub fn warren_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let bin = exe.parent().and_then(|deps| deps.parent()).expect("target dir").join("warren");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --bin warren` (the README's test command does)",
        bin.display()
    );
    bin
}

/// The real `warren` process, for tests of what only a process shows (signals, exit codes,
/// kill -9).
pub struct BrokerProcess {
    pub child: std::process::Child,
    /// `HOST:PORT` it listens on, read from its log.
    pub addr: String,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl BrokerProcess {
    /// Starts `warren` on `data_dir`, listening on an ephemeral loopback port, and waits until
    /// it listens. Its log (stderr) is collected in the background.
    pub fn spawn(data_dir: &std::path::Path) -> BrokerProcess {
        let dir = data_dir.as_os_str();
        Self::spawn_args(&["--amqp-listen".as_ref(), "127.0.0.1:0".as_ref(), "--data-dir".as_ref(), dir])
    }

    /// Starts `warren` with a config file, listening on a free port, on `data_dir` (the flags
    /// override the file's listeners and data directory).
    pub fn spawn_with_config(config: &std::path::Path, data_dir: &std::path::Path) -> BrokerProcess {
        Self::spawn_args(&[
            "--config".as_ref(),
            config.as_os_str(),
            "--amqp-listen".as_ref(),
            "127.0.0.1:0".as_ref(),
            "--data-dir".as_ref(),
            data_dir.as_os_str(),
        ])
    }

    /// Starts `warren` with these arguments (which must make it listen) and waits until it does.
    pub fn spawn_args(args: &[&std::ffi::OsStr]) -> BrokerProcess {
        use std::io::BufRead;
        let mut child = std::process::Command::new(warren_binary())
            .args(args)
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start warren");
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let addr = loop {
            let line = lines.next().expect("warren exited before listening").expect("read log");
            log.lock().unwrap().push(line.clone());
            if let Some(rest) = line.split("AMQP listener started addr=").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        // Keep draining the log so the broker never blocks on a full pipe.
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        BrokerProcess { child, addr, log }
    }

    /// The log so far, one line per entry.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}
