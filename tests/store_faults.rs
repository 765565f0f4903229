//! Store faults, with a real client: a full disk, a damaged segment, a torn tail, an
//! unreadable segment file. In each case the broker keeps serving what it can, nacks what it
//! could not make durable, never confirms a message it did not write, and (when writes fail)
//! raises the disk alarm until they work again.
//!
//! The full-disk test mounts a small tmpfs, so it needs root (as the README's test command
//! does anyway).
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

async fn confirming_channel(b: &warren_it::TestBroker, queue: &str) -> (Connection, Channel) {
    let conn = Connection::connect(&b.uri(), ConnectionProperties::default()).await.expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    ch.queue_declare(queue.into(), durable, FieldTable::default()).await.unwrap();
    (conn, ch)
}

/// Publishes one persistent message and returns whether the broker confirmed it.
async fn publish(ch: &Channel, queue: &str, body: &[u8]) -> bool {
    let props = BasicProperties::default().with_delivery_mode(2);
    let c = ch.basic_publish("".into(), queue.into(), BasicPublishOptions::default(), body, props).await.unwrap();
    c.await.unwrap().is_ack()
}

/// Takes (and acks) everything in the queue; returns the bodies.
async fn drain(ch: &Channel, queue: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(m) = ch.basic_get(queue.into(), BasicGetOptions::default()).await.unwrap() {
        m.ack(BasicAckOptions::default()).await.unwrap();
        out.push(m.delivery.data.clone());
    }
    out
}

fn body(i: usize, size: usize) -> Vec<u8> {
    let mut b = format!("{i:08}").into_bytes();
    b.resize(size, b'x');
    b
}

/// A tmpfs of `mib` MiB, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(mib: u32) -> Tmpfs {
        let dir = std::env::temp_dir().join(format!("warren-fullfs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting a tmpfs needs root (the README's test command runs as root)");
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

impl Tmpfs {
    /// Gives the filesystem a new size, as an operator growing a full disk would.
    fn resize(&self, mib: u32) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={mib}m")])
            .arg(&self.0)
            .status()
            .expect("run mount");
        assert!(status.success(), "remounting the tmpfs failed");
    }
}

/// Publishes 256 KiB persistent messages numbered from `from` until one is nacked; returns
/// the numbers of those confirmed.
async fn fill_until_nacked(ch: &Channel, queue: &str, from: usize) -> BTreeSet<usize> {
    let mut confirmed = BTreeSet::new();
    for i in from..from + 400 {
        if !publish(ch, queue, &body(i, 256 << 10)).await {
            return confirmed;
        }
        confirmed.insert(i);
    }
    panic!("{} confirmed and the disk never filled", confirmed.len());
}

fn missing(confirmed: &BTreeSet<usize>, bodies: &[Vec<u8>]) -> Vec<usize> {
    let got: BTreeSet<usize> = indices(bodies).into_iter().collect();
    confirmed.difference(&got).copied().collect()
}

/// Waits (up to 20 s) until the broker's disk alarm is `on`.
async fn disk_alarm_becomes(b: &warren_it::TestBroker, on: bool) {
    for _ in 0..200 {
        if b.alarms().status().disk_alarm == on {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the disk alarm did not turn {}", if on { "on" } else { "off" });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_nacks_what_it_cannot_write_and_recovers_as_the_queue_drains() {
    if warren_it::skip_against_external("fills the broker's own disk") {
        return;
    }
    let fs = Tmpfs::mount(24);
    let dir = fs.0.join("data");
    // No free-space limit: the disk alarm here comes from the failed writes themselves.
    let no_limit = |c: &mut warren_it::Config| c.disk_free_limit = warren_server::alarm::DiskFreeLimit::Absolute(0);
    let b = warren_it::start_with(|c| {
        c.data_dir = dir.clone();
        no_limit(c);
    });
    let (_pconn, pub_ch) = confirming_channel(&b, "full.q").await;
    let confirmed = fill_until_nacked(&pub_ch, "full.q", 0).await;
    assert!(confirmed.len() > 10, "only {} confirmed before the disk was full", confirmed.len());

    // A write that failed raises the disk alarm: the publisher is blocked, and its next
    // message waits instead of being confirmed.
    disk_alarm_becomes(&b, true).await;
    let props = BasicProperties::default().with_delivery_mode(2);
    let held = pub_ch
        .basic_publish("".into(), "full.q".into(), BasicPublishOptions::default(), &body(5000, 100), props)
        .await
        .unwrap();
    let mut held = tokio::spawn(held);
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(500), &mut held).await.is_err(),
        "a publish during the disk alarm must wait"
    );

    // Consumers go on: every confirmed message is delivered from another connection...
    let (_cconn, ch) = confirming_channel(&b, "full.q").await;
    let drained = drain(&ch, "full.q").await;
    assert_eq!(missing(&confirmed, &drained), [] as [usize; 0], "confirmed messages not delivered");
    // ...and once drained, the settled segments are deleted, the writer's retry succeeds, the
    // alarm clears and the held publish is confirmed.
    disk_alarm_becomes(&b, false).await;
    let confirm = tokio::time::timeout(std::time::Duration::from_secs(20), held).await;
    assert!(
        confirm.expect("the held publish was answered").unwrap().unwrap().is_ack(),
        "the held publish is confirmed"
    );

    // Full again; then every confirmed message must be on disk, not just in memory: stop,
    // grow the disk (sled needs room to open), start on the same directory.
    let mut confirmed = fill_until_nacked(&pub_ch, "full.q", 1000).await;
    if !indices(&drained).contains(&5000) {
        // Unless the drain took it: the alarm can clear while the drain is still going.
        confirmed.insert(5000);
    }
    drop((pub_ch, ch));
    let dir = b.stop_keeping_data();
    fs.resize(64);
    let b = warren_it::start_in(dir, no_limit);
    let (_conn, ch) = confirming_channel(&b, "full.q").await;
    let lost = missing(&confirmed, &drain(&ch, "full.q").await);
    assert!(lost.is_empty(), "confirmed messages lost after a full disk and a restart: {lost:?}");
}

/// Publishes `n` confirmed persistent messages to `queue`, stops the broker, and returns its
/// data directory and the log's segment files.
async fn fill_and_stop(queue: &str, n: usize) -> (PathBuf, Vec<PathBuf>) {
    let b = warren_it::start();
    let (_conn, ch) = confirming_channel(&b, queue).await;
    for i in 0..n {
        assert!(publish(&ch, queue, &body(i, 100)).await);
    }
    drop(ch);
    let dir = b.stop_keeping_data();
    let segs = segments(&dir);
    (dir, segs)
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

/// The segment holding message `i`'s body, and the body's offset in it.
fn find(segs: &[PathBuf], i: usize) -> (PathBuf, usize) {
    let needle = format!("{i:08}xxxx");
    for s in segs {
        let data = std::fs::read(s).unwrap();
        if let Some(at) = data.windows(needle.len()).position(|w| w == needle.as_bytes()) {
            return (s.clone(), at);
        }
    }
    panic!("message {i} not in any segment");
}

/// The numbers of the numbered messages among `bodies`.
fn indices(bodies: &[Vec<u8>]) -> Vec<usize> {
    bodies.iter().filter_map(|m| std::str::from_utf8(m.get(..8)?).ok()?.parse().ok()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_record_loses_that_message_only() {
    if warren_it::skip_against_external("damages the broker's own files") {
        return;
    }
    let (dir, segs) = fill_and_stop("dmg.q", 20).await;
    let (seg, at) = find(&segs, 7);
    let mut data = std::fs::read(&seg).unwrap();
    data[at + 50] ^= 0x40;
    std::fs::write(&seg, data).unwrap();
    let b = warren_it::start_in(dir, |_| {});
    let (_conn, ch) = confirming_channel(&b, "dmg.q").await;
    let want: Vec<usize> = (0..20).filter(|&i| i != 7).collect();
    assert_eq!(indices(&drain(&ch, "dmg.q").await), want);
    assert!(publish(&ch, "dmg.q", b"after").await, "the broker keeps serving");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_torn_tail_is_cut_and_the_rest_recovered() {
    if warren_it::skip_against_external("damages the broker's own files") {
        return;
    }
    let (dir, segs) = fill_and_stop("torn.q", 10).await;
    // The last message's record cut in half, as a write interrupted by a crash leaves it.
    let (seg, at) = find(&segs, 9);
    std::fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(at as u64 + 30).unwrap();
    let b = warren_it::start_in(dir.clone(), |_| {});
    let (_conn, ch) = confirming_channel(&b, "torn.q").await;
    assert_eq!(indices(&drain(&ch, "torn.q").await), (0..9).collect::<Vec<_>>());
    assert!(std::fs::metadata(&seg).map_or(true, |m| m.len() <= at as u64), "the torn record is cut off the file");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_segment_does_not_stop_the_broker() {
    if warren_it::skip_against_external("damages the broker's own files") {
        return;
    }
    let (dir, segs) = fill_and_stop("unread.q", 5).await;
    // Another queue's messages in a later segment, then the first segment made unreadable
    // (a directory in its place: even root cannot read that as a file).
    let b = warren_it::start_in(dir, |_| {});
    let (_conn, ch) = confirming_channel(&b, "unread.other").await;
    assert!(publish(&ch, "unread.other", &body(42, 100)).await);
    drop(ch);
    let dir = b.stop_keeping_data();
    let (seg, _) = find(&segs, 0);
    let aside = seg.with_extension("aside");
    std::fs::rename(&seg, &aside).unwrap();
    std::fs::create_dir(&seg).unwrap();
    let b = warren_it::start_in(dir, |_| {});
    let (_conn, ch) = confirming_channel(&b, "unread.other").await;
    assert_eq!(indices(&drain(&ch, "unread.other").await), [42], "the readable segments are served");
    assert!(publish(&ch, "unread.other", b"after").await, "and the broker takes new messages");
    assert!(seg.is_dir(), "the unreadable file is left for an operator, not deleted");
}
