//! Store round trips through a real data directory: recovery counts, ordering, damaged
//! records, failed writes, and the migration from the sled segment store.
use crate::Store;
use bytes::Bytes;
use std::sync::Arc;
use warren_broker::queue::QueueMeta;
use warren_broker::{Message, MessageStore, MetaChange, MetadataLog, StoredMessage};
use warren_codec::ContentHeader;

fn message(body: &str) -> Message {
    let props = amq_protocol::protocol::BasicProperties::default().with_delivery_mode(2);
    Message {
        exchange: Bytes::new(),
        routing_key: Bytes::from_static(b"q"),
        header: ContentHeader::new(60, body.len() as u64, props),
        body: Bytes::copy_from_slice(body.as_bytes()),
    }
}

/// Opens something on a sled directory right after the test dropped its own raw sled handle.
/// sled gives up its file lock when the last reference to its internals goes, which its I/O
/// threads may hold for a moment after the handle is dropped ("could not acquire lock ...
/// WouldBlock", seen once in a full workspace run): retry that error for up to five seconds,
/// fail on any other. (`Store::close` waits for the lock itself.)
fn when_unlocked<T, E: std::fmt::Display>(open: impl Fn() -> Result<T, E>) -> T {
    let start = std::time::Instant::now();
    loop {
        match open() {
            Ok(v) => return v,
            Err(e) if e.to_string().contains("could not acquire lock") && start.elapsed().as_secs() < 5 => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("open failed: {e}"),
        }
    }
}

/// Opens the store with small log segments (each is zero-filled when created).
fn open(dir: &std::path::Path) -> Result<(Arc<Store>, warren_broker::Recovered), crate::StoreError> {
    Store::open_with(dir, 1 << 20, warren_log::Options { segment_bytes: 256 << 10 })
}

/// A page-in, waited for.
fn load(store: &Store, queue: u64, from: u64, max: usize) -> Vec<StoredMessage> {
    let (tx, rx) = std::sync::mpsc::channel();
    store.load(queue, from, max, Box::new(move |l| tx.send(l).unwrap()));
    rx.recv_timeout(std::time::Duration::from_secs(10)).expect("page-in answered").messages
}

fn queue_meta(id: u64) -> QueueMeta {
    QueueMeta {
        id,
        name: "q".into(),
        vhost: "/".into(),
        durable: true,
        exclusive_owner: None,
        auto_delete: false,
        arguments: Default::default(),
    }
}

/// Writes a durable queue with `n` persistent messages and closes the store.
fn fill(dir: &std::path::Path, n: u64) {
    let (store, _) = open(dir).unwrap();
    store.record(&MetaChange::AddVHost { name: "/".into() }).unwrap();
    store.record(&MetaChange::DeclareQueue(queue_meta(7))).unwrap();
    for seq in 1..=n {
        store.put(7, seq, &Arc::new(message(&format!("m{seq}"))), true);
    }
    store.close();
}

#[test]
fn recovery_counts_entries_and_load_returns_them_in_order() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 100);
    let (store, rec) = open(dir.path()).unwrap();
    assert_eq!(rec.vhosts, ["/"]);
    let (meta, state) = &rec.queues[0];
    assert_eq!((meta.id, state.count, state.first_seq, state.last_seq), (7, 100, 1, 100));
    let got = load(&store, 7, 1, 1000);
    let bodies: Vec<String> = got.iter().map(|m| String::from_utf8(m.message.body.to_vec()).unwrap()).collect();
    assert_eq!(bodies, (1..=100).map(|i| format!("m{i}")).collect::<Vec<_>>());
    assert!(got.iter().all(|m| m.persistent));
    store.close();
}

#[test]
fn damaged_records_are_skipped_and_the_rest_recovered() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 10);
    // Damage the data behind the broker's back: one byte of message 5's body in the log,
    // and a metadata record that is not JSON.
    let log_dir = dir.path().join("log");
    let seg = std::fs::read_dir(&log_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| std::fs::read(p).unwrap().windows(2).any(|w| w == b"m5"))
        .expect("the segment holding m5");
    let mut data = std::fs::read(&seg).unwrap();
    let at = data.windows(2).position(|w| w == b"m5").unwrap();
    data[at + 1] = b'X';
    std::fs::write(&seg, data).unwrap();
    {
        let db = sled::Config::new().path(dir.path().join("sled")).flush_every_ms(None).open().unwrap();
        db.open_tree("meta").unwrap().insert(b"q/\0broken", b"not json").unwrap();
        db.flush().unwrap();
    }
    let (store, rec) = when_unlocked(|| open(dir.path()));
    assert_eq!(rec.queues.len(), 1, "the unreadable queue record is skipped, the good one kept");
    assert_eq!(rec.queues[0].1.count, 9, "the damaged record fails its CRC at recovery, the ones after it are kept");
    let seqs: Vec<u64> = load(&store, 7, 1, 1000).iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 6, 7, 8, 9, 10], "the damaged record is skipped, never fatal");
    store.close();
}

/// Records what the writer tells a waiting publisher: (token, durable or not).
struct Seen(parking_lot::Mutex<Vec<(u64, bool)>>);

impl warren_broker::DurableListener for Seen {
    fn durable(&self, _channel: u16, token: u64, ok: bool) {
        self.0.lock().push((token, ok));
    }
}

#[test]
fn a_failed_flush_is_reported_to_waiters() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path()).unwrap();
    let seen = Arc::new(Seen(parking_lot::Mutex::new(Vec::new())));
    store.put(1, 1, &Arc::new(message("a")), true);
    store.notify_durable(seen.clone(), 1, 1);
    // Let that group finish before failures start (a group succeeds or fails as a whole).
    while seen.0.lock().is_empty() {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    store.inject_write_failures(true);
    store.put(1, 2, &Arc::new(message("b")), true);
    store.notify_durable(seen.clone(), 1, 2);
    assert!(store.record(&MetaChange::AddVHost { name: "x".into() }).is_err(), "metadata writes fail too");
    store.inject_write_failures(false);
    store.put(1, 3, &Arc::new(message("c")), true);
    store.notify_durable(seen.clone(), 1, 3);
    store.close();
    assert_eq!(*seen.0.lock(), [(1, true), (2, false), (3, true)]);
}

/// A put whose write failed in one group must not be confirmed by a wait submitted in a later
/// group: the channel submits its wait after the put, and the writer may have taken the put's
/// group in between.
#[test]
fn a_wait_after_a_failed_write_is_told_of_it_until_the_write_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 0);
    let (store, _) = open(dir.path()).unwrap();
    let seen = Arc::new(Seen(parking_lot::Mutex::new(Vec::new())));
    store.inject_write_failures(true);
    store.put(7, 1, &Arc::new(message("lost?")), true);
    // A round trip through the writer: the put's group has been committed (and failed).
    assert!(load(&store, 7, 1, 10).len() == 1, "a page-in still sees the unwritten message");
    store.notify_durable(seen.clone(), 1, 1);
    while seen.0.lock().is_empty() {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    store.inject_write_failures(false);
    store.notify_durable(seen.clone(), 1, 2);
    store.close();
    assert_eq!(*seen.0.lock(), [(1, false), (2, true)]);
    let (store, rec) = open(dir.path()).unwrap();
    assert_eq!(rec.queues[0].1.count, 1, "the message was written once the disk worked again");
    store.close();
}

#[test]
fn settled_messages_stay_settled_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 10);
    let (store, rec) = open(dir.path()).unwrap();
    assert_eq!(rec.queues[0].1.count, 10);
    store.remove(7, &[1, 2, 5, 10]);
    store.close();
    let (store, rec) = open(dir.path()).unwrap();
    let (_, state) = &rec.queues[0];
    assert_eq!((state.count, state.first_seq, state.last_seq), (6, 3, 10));
    let seqs: Vec<u64> = load(&store, 7, 1, 100).iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [3, 4, 6, 7, 8, 9]);
    store.remove(7, &seqs);
    store.close();
    let (store, rec) = open(dir.path()).unwrap();
    assert_eq!(rec.queues[0].1.count, 0);
    store.close();
    let files: Vec<String> = std::fs::read_dir(dir.path().join("log"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".spare"))
        .collect();
    assert_eq!(files.len(), 1, "fully settled segments are deleted, only the new active one is left: {files:?}");
}

#[test]
fn persistent_and_paged_transient_entries_load_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path()).unwrap();
    store.record(&MetaChange::AddVHost { name: "/".into() }).unwrap();
    store.record(&MetaChange::DeclareQueue(queue_meta(7))).unwrap();
    // Persistent 1..=3, a paged transient 4, persistent 5..=6, all in one log.
    for seq in 1..=6 {
        let body = if seq == 4 { "t4".to_string() } else { format!("p{seq}") };
        store.put(7, seq, &Arc::new(message(&body)), seq != 4);
    }
    let got = load(&store, 7, 2, 100);
    let seen: Vec<(u64, bool)> = got.iter().map(|m| (m.seq, m.persistent)).collect();
    assert_eq!(seen, [(2, true), (3, true), (4, false), (5, true), (6, true)]);
    assert!(load(&store, 7, 4, 1).iter().all(|m| m.seq == 5), "a paged message is read back only once");
    store.remove_from(7, 3);
    assert_eq!(load(&store, 7, 1, 100).iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2]);
    store.close();
}

/// Holds the writer thread inside its durable callback until the test lets it go.
struct StallWriter(parking_lot::Mutex<Option<std::sync::mpsc::Receiver<()>>>);

impl warren_broker::DurableListener for StallWriter {
    fn durable(&self, _channel: u16, _token: u64, _ok: bool) {
        if let Some(released) = self.0.lock().take() {
            let _ = released.recv();
        }
    }
}

/// A submitter blocked on a full writer queue must not take its tokio worker with it: on a
/// one-worker runtime, another task has to keep running while the writer is stalled.
#[test]
fn a_full_writer_queue_blocks_only_the_submitter_not_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path()).unwrap();
    let (release, stalled) = std::sync::mpsc::channel::<()>();
    store.notify_durable(Arc::new(StallWriter(parking_lot::Mutex::new(Some(stalled)))), 1, 1);

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let submitter = store.clone();
    // No await inside: without the hand-off, this task would hold the only worker until the
    // writer moves again. Twice the queue depth plus a writer group is sure to fill it.
    let puts = 2 * crate::QUEUE_DEPTH as u64 + 8192;
    let filling = rt.spawn(async move {
        let m = Arc::new(message("paged"));
        for seq in 1..=puts {
            submitter.put(9, seq, &m, false);
        }
    });
    let (ran_tx, ran) = std::sync::mpsc::channel();
    rt.spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let _ = ran_tx.send(());
    });
    let other_task_ran = ran.recv_timeout(std::time::Duration::from_secs(10)).is_ok();
    drop(release);
    rt.block_on(filling).unwrap();
    assert!(other_task_ran, "a task on the same runtime did not run while the writer queue was full");
    assert_eq!(load(&store, 9, 1, 10).len(), 10, "the paged messages were written once the writer moved");
    store.close();
}

#[test]
fn a_sled_segment_store_is_migrated_once_at_start() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 0);
    {
        // What the sled segment store left: two segments of queue 7, the first with message
        // 2 settled, and a delivered mark at 3.
        use crate::migrate::old_format::{entry_key, segment};
        let db = sled::Config::new().path(dir.path().join("sled")).flush_every_ms(None).open().unwrap();
        let persistent = db.open_tree("persistent").unwrap();
        let first: Vec<Message> = (1..=3).map(|i| message(&format!("old{i}"))).collect();
        persistent.insert(entry_key(7, 1), segment(&first)).unwrap();
        persistent.insert([entry_key(7, 1), b"a".to_vec()].concat(), 0b010u64.to_le_bytes().to_vec()).unwrap();
        persistent.insert(entry_key(7, 4), segment(&[message("old4")])).unwrap();
        persistent.insert(entry_key(99, 1), segment(&[message("of a deleted queue")])).unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert([b"d/".as_slice(), &7u64.to_be_bytes()].concat(), &3u64.to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    for round in 0..2 {
        let (store, rec) = when_unlocked(|| open(dir.path()));
        let (_, state) = &rec.queues[0];
        assert_eq!((state.count, state.first_seq, state.last_seq, state.delivered_upto), (3, 1, 4, 3), "round {round}");
        let got: Vec<(u64, String)> = load(&store, 7, 1, 10)
            .iter()
            .map(|m| (m.seq, String::from_utf8(m.message.body.to_vec()).unwrap()))
            .collect();
        assert_eq!(got, [(1, "old1".into()), (3, "old3".into()), (4, "old4".into())]);
        store.close();
    }
    let db = when_unlocked(|| sled::Config::new().path(dir.path().join("sled")).flush_every_ms(None).open());
    assert!(db.open_tree("persistent").unwrap().is_empty(), "the old tree is emptied once migrated");
}
