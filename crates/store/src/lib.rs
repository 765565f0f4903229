//! Warren's durability layer: metadata in sled, messages in the message log.
//!
//! sled's `meta` tree holds durable vhosts, exchanges, queues and bindings: small records,
//! rarely written. Messages (persistent ones, and transient ones paged out of memory) go to
//! `warren-log` under `log/`, Warren's own segment files.
//!
//! All writes go through one writer thread ([`writer`]) in submission order. It takes
//! whatever has queued up, applies it, commits the log once (one `fdatasync` per touched
//! file) and flushes sled when metadata changed and someone waits on it, and only then tells
//! the waiting publishers (confirms) or deletions that their data is on disk. Declarations
//! are answered once applied and flushed within 50 ms, and always before a confirm that
//! follows them. Page-in reads run on a
//! reader thread ([`reader`]).
mod keys;
mod meta;
mod migrate;
mod reader;
mod record;
mod recover;
#[cfg(test)]
mod tests;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;
use warren_broker::blocking;
use warren_broker::meta::MetaChange;
use warren_broker::{BrokerError, DurableListener, LoadDone, Message, MessageStore, MetadataLog};
use writer::{Op, Writer};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot use data directory {path}: {source}")]
    Dir { path: PathBuf, source: std::io::Error },
    #[error("cannot open the store in {path}: {source}")]
    Open { path: PathBuf, source: sled::Error },
    #[error("store read failed: {0}")]
    Read(#[from] sled::Error),
    #[error(transparent)]
    Log(#[from] warren_log::LogError),
}

/// Ops waiting for the writer. When the disk falls this far behind, submitters block:
/// back-pressure instead of an unbounded queue.
const QUEUE_DEPTH: usize = 65_536;

/// Told `false` when a write group fails (a full or broken disk), and `true` once one
/// succeeds with nothing left waiting to be written. The server raises its disk alarm on it.
pub type HealthListener = Box<dyn Fn(bool) + Send + Sync>;

pub struct Store {
    tx: SyncSender<Op>,
    health: Arc<parking_lot::Mutex<Option<HealthListener>>>,
    /// Fault injection for tests: while set, every group fails as a disk error would.
    fail_writes: Arc<std::sync::atomic::AtomicBool>,
    /// The writer thread; joined by [`Store::close`], after which the database (and its
    /// file lock) is released.
    writer: parking_lot::Mutex<Option<std::thread::JoinHandle<()>>>,
    /// sled's database file, which it holds an exclusive lock on while open.
    lock_file: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store in `dir`, reads back what it holds, and starts the
    /// writer. `cache_bytes` bounds sled's page cache.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<(Arc<Store>, warren_broker::Recovered), StoreError> {
        Store::open_with(dir, cache_bytes, warren_log::Options::default())
    }

    /// [`Store::open`] with the log's options (tests use small segments).
    pub fn open_with(
        dir: &Path,
        cache_bytes: u64,
        log_options: warren_log::Options,
    ) -> Result<(Arc<Store>, warren_broker::Recovered), StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir { path: dir.into(), source })?;
        // Fail early and clearly on a read-only directory, before sled does obscurely. A full
        // disk is no reason not to start: what is stored can still be served, and the disk
        // alarm holds publishers back until there is room.
        let probe = dir.join(".warren-write-probe");
        match std::fs::write(&probe, b"ok") {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => {
                tracing::warn!(dir = %dir.display(), "data directory is full");
            }
            Err(source) => return Err(StoreError::Dir { path: dir.into(), source }),
        }
        let _ = std::fs::remove_file(&probe);
        let open = |e| StoreError::Open { path: dir.into(), source: e };
        let db = sled::Config::new()
            .path(dir.join("sled"))
            .cache_capacity(cache_bytes)
            // We flush explicitly after every group; sled's timer flush adds nothing.
            .flush_every_ms(None)
            .open()
            .map_err(open)?;
        let meta = db.open_tree("meta").map_err(open)?;
        // Paged transient messages lived in this tree before spill files; nothing in it
        // survives a restart anyway.
        db.drop_tree("paged").map_err(open)?;
        // Spill files, before the log took paged transient messages too.
        let _ = std::fs::remove_dir_all(dir.join("spill"));
        let mut recovered = recover::metadata(&meta)?;
        let ids: std::collections::HashSet<u64> = recovered.queues.iter().map(|(m, _)| m.id).collect();
        let known = |id: u64| ids.contains(&id);
        let mut log = warren_log::Log::open(&dir.join("log"), log_options, &known)?;
        migrate::from_sled(&db, &meta, &mut log, &known).map_err(open)?;
        recover::queues(&mut recovered, &log);
        let (tx, rx) = sync_channel(QUEUE_DEPTH);
        let (read_tx, read_rx) = std::sync::mpsc::channel();
        let spawn_err = |source| StoreError::Dir { path: dir.into(), source };
        std::thread::Builder::new()
            .name("warren-reader".into())
            .spawn(move || reader::run(read_rx))
            .map_err(spawn_err)?;
        let fail_writes = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let health: Arc<parking_lot::Mutex<Option<HealthListener>>> = Default::default();
        let w = Writer {
            db,
            meta,
            log,
            reader: read_tx,
            fail_writes: fail_writes.clone(),
            health: health.clone(),
            meta_unflushed: None,
        };
        let handle =
            std::thread::Builder::new().name("warren-store".into()).spawn(move || w.run(rx)).map_err(spawn_err)?;
        let lock_file = dir.join("sled").join("db");
        let writer = parking_lot::Mutex::new(Some(handle));
        Ok((Arc::new(Store { tx, health, fail_writes, writer, lock_file }), recovered))
    }

    /// Calls `listener` whenever writing starts failing or works again.
    pub fn on_health_change(&self, listener: HealthListener) {
        *self.health.lock() = Some(listener);
    }

    /// Makes every following write group fail (until called with false), as a full or broken
    /// disk would: for tests of what publishers and clients see when writes fail.
    pub fn inject_write_failures(&self, on: bool) {
        // Submitted through the writer so it takes effect in order with other operations.
        let (done, wait) = sync_channel(1);
        let _ = self.tx.send(Op::SetFailure { on, done });
        let _ = wait.recv();
        debug_assert_eq!(self.fail_writes.load(std::sync::atomic::Ordering::SeqCst), on);
    }

    /// Applies and flushes everything submitted so far, stops the writer and releases the
    /// database. Later submissions are ignored. Idempotent.
    pub fn close(&self) {
        let _ = self.tx.send(Op::Shutdown);
        if let Some(h) = self.writer.lock().take() {
            let _ = h.join();
            self.wait_for_release();
        }
    }

    /// Waits (up to five seconds) until sled has let go of its file lock.
    ///
    /// The writer dropping the database is not quite the end of it: sled's I/O threads can
    /// hold its internals, and so the lock, a moment longer. A store opened on the same
    /// directory in that moment failed with "could not acquire lock" (twice in full test
    /// runs, each right after a close), so `close` does not return before the lock is free.
    fn wait_for_release(&self) {
        let Ok(file) = std::fs::File::open(&self.lock_file) else { return };
        let start = std::time::Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => return, // released again when `file` is dropped
                Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < Duration::from_secs(5) => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => {
                    tracing::warn!(file = %self.lock_file.display(), error = %e, "store lock still held after close");
                    return;
                }
            }
        }
    }

    fn send(&self, op: Op) {
        // The writer only stops when the process does; a failed send means shutdown.
        match self.tx.try_send(op) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(op)) => {
                let _ = blocking::off_worker(|| self.tx.send(op));
            }
        }
    }

    /// A metadata write. `flush`: answer only once it is on disk; otherwise once applied in
    /// order (it is flushed before anything submitted after it is confirmed durable).
    fn meta_op(&self, key: Vec<u8>, value: Option<Vec<u8>>, flush: bool) -> Result<(), BrokerError> {
        let (done, wait) = sync_channel(1);
        self.send(Op::Meta { key, value, flush, done });
        wait_done(wait)
    }

    /// Removes bindings whose source or destination is `name` (an exchange or a queue).
    fn purge_bindings(&self, vhost: &str, name: &str, is_exchange: bool) -> Result<(), BrokerError> {
        let prefix = keys::binding_prefix(vhost);
        let plen = prefix.len();
        let name = name.as_bytes().to_vec();
        let pred = move |k: &[u8]| {
            let mut parts = k[plen..].split(|&b| b == 0);
            let (source, kind, dest) = (parts.next(), parts.next(), parts.next());
            let dest_hit = dest == Some(&name[..]) && kind == Some(if is_exchange { b"e" } else { b"q" });
            (is_exchange && source == Some(&name[..])) || dest_hit
        };
        let (done, wait) = sync_channel(1);
        self.send(Op::MetaPurge { prefix, pred: Box::new(pred), done });
        wait_done(wait)
    }
}

fn wait_done(wait: std::sync::mpsc::Receiver<Result<(), String>>) -> Result<(), BrokerError> {
    match blocking::off_worker(|| wait.recv()) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(BrokerError::Internal(format!("metadata store write failed: {e}"))),
        Err(_) => Err(BrokerError::Internal("metadata store is shut down".into())),
    }
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("metadata records always serialise")
}

impl MetadataLog for Store {
    fn record(&self, change: &MetaChange) -> Result<(), BrokerError> {
        match change {
            // Declarations are answered once applied, as RabbitMQ answers them before its
            // Mnesia log is synced (clients redeclare on reconnect); deletions wait for the
            // flush, so that nothing deleted comes back, with its messages, after a crash.
            MetaChange::AddVHost { name } => self.meta_op(keys::vhost(name), Some(b"{}".to_vec()), true),
            MetaChange::DeclareExchange(m) if m.durable => {
                self.meta_op(keys::exchange(&m.vhost, &m.name), Some(json(&meta::ExchangeRow::from_meta(m))), false)
            }
            MetaChange::DeclareQueue(m) if m.durable && m.exclusive_owner.is_none() => {
                self.meta_op(keys::queue(&m.vhost, &m.name), Some(json(&meta::QueueRow::from_meta(m))), false)
            }
            MetaChange::DeclareExchange(_) | MetaChange::DeclareQueue(_) => Ok(()),
            MetaChange::DeleteExchange { vhost, name } => {
                self.purge_bindings(vhost, name, true)?;
                self.meta_op(keys::exchange(vhost, name), None, true)
            }
            MetaChange::DeleteQueue { vhost, name } => {
                self.purge_bindings(vhost, name, false)?;
                self.meta_op(keys::queue(vhost, name), None, true)
            }
            MetaChange::Bind(b) | MetaChange::Unbind(b) if !b.durable => Ok(()),
            MetaChange::Bind(b) | MetaChange::Unbind(b) => {
                let args = String::from_utf8(json(&b.arguments)).unwrap_or_default();
                let key = keys::binding(&b.vhost, &b.source, b.dest_is_exchange, &b.dest, &b.routing_key, &args);
                let value = matches!(change, MetaChange::Bind(_)).then(|| json(&meta::BindingRow::from_record(b)));
                let unbind = value.is_none();
                self.meta_op(key, value, unbind)
            }
        }
    }
}

impl MessageStore for Store {
    fn put(&self, queue_id: u64, seq: u64, message: &Arc<Message>, persistent: bool) {
        // The writer encodes it straight into its segment: no copy here.
        self.send(Op::Put { queue_id, seq, message: message.clone(), persistent });
    }

    fn remove(&self, queue_id: u64, seqs: &[u64]) {
        self.send(Op::Remove { queue_id, seqs: seqs.to_vec() });
    }

    fn remove_from(&self, queue_id: u64, from_seq: u64) {
        self.send(Op::RemoveFrom { queue_id, from: from_seq });
    }

    fn set_delivered(&self, queue_id: u64, seq: u64) {
        self.send(Op::Delivered { queue_id, seq });
    }

    fn notify_durable(&self, listener: Arc<dyn DurableListener>, channel: u16, token: u64) {
        self.send(Op::Notify { listener, channel, token, settlements: false });
    }

    fn notify_settled(&self, listener: Arc<dyn DurableListener>, channel: u16, token: u64) {
        self.send(Op::Notify { listener, channel, token, settlements: true });
    }

    fn load(&self, queue_id: u64, from_seq: u64, max: usize, done: LoadDone) {
        self.send(Op::Load { queue_id, from: from_seq, max, done });
    }
}
