//! The log as a whole: commit, reopen, settle, roll, damage.
use crate::{Log, Options, Payload};
use std::path::Path;

pub(crate) struct Body(Vec<u8>);

impl Payload for Body {
    fn encoded_len(&self) -> usize {
        self.0.len()
    }
    fn write_to(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&self.0);
    }
}

pub(crate) fn body(q: u64, seq: u64) -> Body {
    Body(format!("q{q}-m{seq}").into_bytes())
}

pub(crate) fn open(dir: &Path, segment_bytes: u64, known: &dyn Fn(u64) -> bool) -> Log<Body> {
    Log::open(dir, Options { segment_bytes }, known).unwrap()
}

pub(crate) fn all(_: u64) -> bool {
    true
}

/// Everything live in `queue`, read back through a page-in job.
pub(crate) fn read_all(log: &mut Log<Body>, queue: u64) -> Vec<(u64, String)> {
    let (job, written) = log.take(queue, 0, usize::MAX);
    written.unwrap();
    job.run().into_iter().map(|r| (r.seq, String::from_utf8(r.payload.to_vec()).unwrap())).collect()
}

#[test]
fn committed_messages_and_marks_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), 1 << 20, &all);
    for seq in 1..=5 {
        log.put(1, seq, true, body(1, seq));
    }
    log.put(2, 1, false, body(2, 1)); // transient: gone at restart
    log.mark(1, 3);
    log.commit().unwrap();
    drop(log);
    let mut log = open(dir.path(), 1 << 20, &all);
    let s = log.summary(1).unwrap();
    assert_eq!((s.live, s.first_seq, s.max_seq, s.mark), (5, 1, 5, 3));
    assert_eq!(log.summary(2).map(|s| s.live), Some(0), "transient records are dead after a restart");
    assert_eq!(read_all(&mut log, 1)[4], (5, "q1-m5".into()));
}

#[test]
fn settled_messages_stay_settled_and_empty_segments_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), 4096, &all);
    for seq in 1..=400 {
        log.put(7, seq, true, body(7, seq));
    }
    log.commit().unwrap();
    let (segments, bytes) = log.disk_usage();
    assert!(segments > 3 && bytes > 8000, "400 records roll several 4 KiB segments: {segments} {bytes}");
    for seq in 1..=390 {
        log.settle(7, seq);
    }
    log.commit().unwrap();
    let (after, after_bytes) = log.disk_usage();
    assert!(after <= 3 && after_bytes < bytes / 4, "disk use follows the backlog: {after} segments, {after_bytes} B");
    drop(log);
    let mut log = open(dir.path(), 4096, &all);
    let seqs: Vec<u64> = read_all(&mut log, 7).into_iter().map(|(s, _)| s).collect();
    assert_eq!(seqs, (391..=400).collect::<Vec<_>>());
}

#[test]
fn a_message_settled_before_its_group_commits_is_never_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), 1 << 20, &all);
    let before = log.disk_usage().1;
    log.put(1, 1, true, body(1, 1));
    log.settle(1, 1);
    log.commit().unwrap();
    assert_eq!(log.disk_usage().1, before);
    assert_eq!(log.summary(1).map_or(0, |s| s.live), 0);
}

#[test]
fn a_torn_tail_loses_only_the_unfinished_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), 1 << 20, &all);
    for seq in 1..=3 {
        log.put(1, seq, true, body(1, seq));
    }
    log.commit().unwrap();
    let active = *log.segs.keys().next_back().unwrap();
    let path = log.path_of_segment(active);
    let len = log.segs[&active].size;
    drop(log);
    // Cut the last record short, leaving the zeros the file was filled with after it.
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(&[0; 3], len - 3).unwrap();
    drop(f);
    let mut log = open(dir.path(), 1 << 20, &all);
    let seqs: Vec<u64> = read_all(&mut log, 1).into_iter().map(|(s, _)| s).collect();
    assert_eq!(seqs, [1, 2]);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), len - 30, "the file is cut after the last whole record");
}

#[test]
fn a_corrupt_record_is_detected_when_read_and_at_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), 1 << 20, &all);
    for seq in 1..=3 {
        log.put(1, seq, true, body(1, seq));
    }
    log.commit().unwrap();
    let active = *log.segs.keys().next_back().unwrap();
    let path = log.path_of_segment(active);
    // Flip one payload byte of the second record (each is 25 + 5 bytes).
    let mut data = std::fs::read(&path).unwrap();
    let second = data.windows(5).position(|w| w == b"q1-m2").unwrap();
    data[second] ^= 0xff;
    std::fs::write(&path, &data).unwrap();
    let seqs: Vec<u64> = read_all(&mut log, 1).into_iter().map(|(s, _)| s).collect();
    assert_eq!(seqs, [1, 3], "a page-in read checks the CRC and skips the damaged message");
    drop(log);
    // At recovery it is the last segment, which is always scanned: the scan skips the
    // damaged record and finds the next valid one.
    let mut log = open(dir.path(), 1 << 20, &all);
    let seqs: Vec<u64> = read_all(&mut log, 1).into_iter().map(|(s, _)| s).collect();
    assert_eq!(seqs, [1, 3], "damage in the middle loses that record, not the ones after it");
}

#[test]
fn records_of_deleted_queues_are_settled_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), 1 << 20, &all);
    log.put(5, 1, true, body(5, 1));
    log.put(6, 1, true, body(6, 1));
    log.commit().unwrap();
    log.drop_queue(5);
    log.commit().unwrap();
    drop(log);
    // Queue 5 is gone from the metadata: its record is settled at recovery...
    let log = open(dir.path(), 1 << 20, &|q| q != 5);
    assert!(log.summary(5).is_none());
    drop(log);
    // ...so a new queue that is given id 5 later does not inherit it.
    let log = open(dir.path(), 1 << 20, &all);
    assert_eq!(log.summary(5).map_or(0, |s| s.live), 0);
    assert_eq!(log.summary(6).map(|s| s.live), Some(1));
}

#[test]
fn transient_pages_are_consumed_when_read_and_purges_settle_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), 1 << 20, &all);
    for seq in 1..=10 {
        log.put(3, seq, seq % 2 == 0, body(3, seq));
    }
    let (job, written) = log.take(3, 0, 4);
    written.unwrap();
    assert_eq!((job.covered, job.next_from), (4, 5));
    let got: Vec<(u64, bool)> = job.run().iter().map(|r| (r.seq, r.persistent)).collect();
    assert_eq!(got, [(1, false), (2, true), (3, false), (4, true)]);
    assert_eq!(log.summary(3).unwrap().live, 8, "the two transient ones read back are no longer in the log");
    log.settle_from(3, 7);
    assert_eq!(log.summary(3).unwrap().live, 4);
    log.commit().unwrap();
    drop(log);
    let mut log = open(dir.path(), 1 << 20, &all);
    let seqs: Vec<u64> = read_all(&mut log, 3).into_iter().map(|(s, _)| s).collect();
    assert_eq!(seqs, [2, 4, 6], "persistent survivors only; the purged tail stays purged");
}

#[test]
fn marks_survive_the_deletion_of_the_segment_that_held_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), 2048, &all);
    log.put(1, 1, true, body(1, 1));
    log.mark(1, 1);
    log.commit().unwrap();
    for seq in 2..=200 {
        log.put(2, seq, true, body(2, seq));
    }
    log.commit().unwrap();
    log.settle(1, 1);
    log.commit().unwrap();
    drop(log);
    let log = open(dir.path(), 2048, &all);
    assert_eq!(log.summary(1).map(|s| s.mark), Some(1));
}

#[test]
fn a_record_larger_than_a_segment_gets_one_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), 1024, &all);
    log.put(1, 1, true, Body(vec![7; 10_000]));
    log.put(1, 2, true, body(1, 2));
    log.commit().unwrap();
    drop(log);
    let mut log = open(dir.path(), 1024, &all);
    let got = read_all(&mut log, 1);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].1.len(), 10_000);
}

#[test]
fn a_failed_write_keeps_its_records_queued_and_the_next_write_starts_a_new_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), 1 << 20, &all);
    log.put(1, 1, true, body(1, 1));
    log.commit().unwrap();
    // Swap the active segment's file for a read-only handle: every write to it now fails.
    let active = log.active;
    let path = log.path_of_segment(active);
    let seg = log.segs.get_mut(&active).unwrap();
    seg.file = std::sync::Arc::new(std::fs::File::open(&path).unwrap());
    log.put(1, 2, true, body(1, 2));
    log.put(2, 1, false, body(2, 1));
    assert!(log.commit().is_err(), "the write must fail");
    assert_eq!(log.summary(1).unwrap().live, 1, "a record that was not written is not in the index");
    // A page-in meanwhile still finds it (from memory), and the transient one is consumed.
    assert_eq!(read_all(&mut log, 2), [(1, "q2-m1".to_string())]);
    log.put(1, 3, true, body(1, 3));
    log.commit().unwrap();
    assert_ne!(log.active, active, "the segment with the suspect tail takes no more records");
    drop(log);
    let mut log = open(dir.path(), 1 << 20, &all);
    let seqs: Vec<u64> = read_all(&mut log, 1).into_iter().map(|(s, _)| s).collect();
    assert_eq!(seqs, [1, 2, 3], "the record whose write failed was written by the next commit");
    assert_eq!(log.summary(2).map_or(0, |s| s.live), 0, "the transient one read back was never written");
}

#[test]
fn an_unreadable_segment_is_skipped_and_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), 1 << 20, &all);
    log.put(1, 1, true, body(1, 1));
    log.commit().unwrap();
    drop(log);
    // A directory where a later segment's file would be: unreadable as a segment.
    std::fs::create_dir(crate::segment::data_path(dir.path(), 9)).unwrap();
    let mut log = open(dir.path(), 1 << 20, &all);
    assert!(log.active > 9, "new segments are numbered past every file found");
    assert_eq!(read_all(&mut log, 1).len(), 1);
}
