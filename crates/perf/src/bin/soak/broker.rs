//! The broker under test: the real `warren` binary, started on one data directory and one
//! port, killed with SIGKILL and started again on both.
use crate::error::SoakError;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// Recovery of a large backlog happens before the listener opens.
const START_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Broker {
    binary: PathBuf,
    pub data_dir: PathBuf,
    log_path: PathBuf,
    child: Child,
    /// `127.0.0.1:PORT`; the same port for every start.
    pub addr: String,
    /// Set once any start's log has shown a panic.
    panicked: Arc<AtomicBool>,
    pub starts: u32,
}

impl Broker {
    /// Starts `binary` on a fresh port; its log goes to `log_path`.
    pub fn start(binary: &Path, data_dir: &Path, log_path: &Path) -> Result<Broker, SoakError> {
        let panicked = Arc::new(AtomicBool::new(false));
        let (child, addr) = spawn(binary, data_dir, "127.0.0.1:0", log_path, &panicked)?;
        Ok(Broker {
            binary: binary.into(),
            data_dir: data_dir.into(),
            log_path: log_path.into(),
            child,
            addr,
            panicked,
            starts: 1,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts the same binary again, on the same directory and port (after [`Broker::kill9`]).
    pub fn restart(&mut self) -> Result<(), SoakError> {
        let (child, addr) = spawn(&self.binary, &self.data_dir, &self.addr, &self.log_path, &self.panicked)?;
        if addr != self.addr {
            return Err(SoakError::Broker(format!("restarted on {addr}, not {}", self.addr)));
        }
        self.child = child;
        self.starts += 1;
        Ok(())
    }

    /// SIGKILL, as a power cut or the OOM killer would; returns once the process is reaped.
    pub fn kill9(&mut self) -> Result<(), SoakError> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// The broker exited by itself (a crash), if it did.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, then waits up to `patience` for a clean exit (SIGKILL after that).
    pub fn terminate(&mut self, patience: Duration) -> Result<ExitStatus, SoakError> {
        Command::new("kill").args(["-TERM", &self.pid().to_string()]).status()?;
        let deadline = std::time::Instant::now() + patience;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if std::time::Instant::now() > deadline {
                self.kill9()?;
                return Err(SoakError::Broker(format!("did not exit within {patience:?} of SIGTERM")));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn panicked(&self) -> bool {
        self.panicked.load(Ordering::Relaxed)
    }
}

impl Drop for Broker {
    /// A run that ends early on an error must not leave the broker running.
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.kill9();
        }
    }
}

/// Starts warren and waits until it logs its listener; a thread then copies the rest of its log
/// to `log_path` (appending: every start goes to the same file) and watches it for panics.
fn spawn(
    binary: &Path,
    data_dir: &Path,
    listen: &str,
    log_path: &Path,
    panicked: &Arc<AtomicBool>,
) -> Result<(Child, String), SoakError> {
    let mut log = std::fs::OpenOptions::new().create(true).append(true).open(log_path)?;
    let mut child = Command::new(binary)
        .args(["--amqp-listen", listen, "--data-dir"])
        .arg(data_dir)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| SoakError::Broker(format!("cannot start {}: {e}", binary.display())))?;
    let stderr = child.stderr.take().expect("stderr is piped");
    let (addr_tx, addr_rx) = mpsc::channel();
    let panicked = panicked.clone();
    std::thread::spawn(move || {
        let mut addr_tx = Some(addr_tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = writeln!(log, "{line}");
            if line.contains("panicked") {
                panicked.store(true, Ordering::Relaxed);
            }
            if let Some(rest) = line.split("AMQP listener started addr=").nth(1) {
                if let Some(tx) = addr_tx.take() {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_string());
                }
            }
        }
    });
    match addr_rx.recv_timeout(START_TIMEOUT) {
        Ok(addr) => Ok((child, addr)),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(SoakError::Broker(format!(
                "{} did not listen within {START_TIMEOUT:?}; see {}",
                binary.display(),
                log_path.display()
            )))
        }
    }
}
