//! Compaction: a long-lived message stops pinning its segment, and nothing is lost or comes
//! back whichever step a crash or a failed write interrupts.
use crate::tests::{all, body, open, read_all};
use std::path::Path;

const SEG: u64 = 4096;

/// Queue 8 gets one message, then queue 7 fills several segments and is drained: the first
/// segment is left holding queue 8's message among settled records.
fn straggler(dir: &Path) -> crate::Log<crate::tests::Body> {
    let mut log = open(dir, SEG, &all);
    log.put(8, 1, true, body(8, 1));
    log.put(8, 2, false, body(8, 2));
    for seq in 1..=400 {
        log.put(7, seq, true, body(7, seq));
    }
    log.commit().unwrap();
    for seq in 1..=400 {
        log.settle(7, seq);
    }
    log.commit().unwrap();
    log
}

#[test]
fn a_long_lived_message_does_not_keep_its_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = straggler(dir.path());
    let (segments, bytes) = log.disk_usage();
    assert!(log.may_compact(), "the first segment is mostly settled");
    assert!(!log.compact().unwrap(), "records of it were settled since the last look: not cold yet");
    assert!(log.compact().unwrap(), "cold now");
    let (after, after_bytes) = log.disk_usage();
    assert!(
        after < segments && after_bytes < bytes,
        "{segments} segments {bytes} B became {after} and {after_bytes} B"
    );
    assert!(!log.may_compact());
    assert_eq!(
        read_all(&mut log, 8),
        vec![(1, "q8-m1".into()), (2, "q8-m2".into())],
        "both moved, paged transient too"
    );
    drop(log);
    let mut log = open(dir.path(), SEG, &all);
    assert_eq!(read_all(&mut log, 8), vec![(1, "q8-m1".into())], "the persistent copy is found at recovery");
    log.settle(8, 1);
    log.commit().unwrap();
    drop(log);
    let log = open(dir.path(), SEG, &all);
    assert_eq!(log.summary(8).map_or(0, |s| s.live), 0, "settling the copy settles the message");
}

#[test]
fn a_segment_still_being_drained_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), SEG, &all);
    for seq in 1..=200 {
        log.put(7, seq, true, body(7, seq));
    }
    log.commit().unwrap();
    let mut next = 1;
    // A consumer settles a few every round: the head segment never goes cold.
    for _ in 0..20 {
        for _ in 0..5 {
            log.settle(7, next);
            next += 1;
        }
        log.commit().unwrap();
        assert!(!log.compact().unwrap(), "settled since the last look");
    }
}

#[test]
fn a_crash_before_the_old_segment_is_gone_leaves_one_live_copy() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = straggler(dir.path());
    let kept: Vec<(std::path::PathBuf, Vec<u8>)> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_stem().and_then(|s| s.to_str()) == Some("0000000001"))
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    assert!(!kept.is_empty());
    log.compact().unwrap();
    assert!(log.compact().unwrap());
    drop(log);
    for (p, raw) in &kept {
        std::fs::write(p, raw).unwrap();
    }
    let mut log = open(dir.path(), SEG, &all);
    assert_eq!(read_all(&mut log, 8), vec![(1, "q8-m1".into())], "one copy, not two");
    log.settle(8, 1);
    log.commit().unwrap();
    drop(log);
    let log = open(dir.path(), SEG, &all);
    assert_eq!(log.summary(8).map_or(0, |s| s.live), 0, "the other copy was settled at recovery");
}

#[test]
fn a_failed_copy_leaves_the_message_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = straggler(dir.path());
    log.compact().unwrap();
    log.inject_write_failures(true);
    assert!(log.compact().is_err());
    log.inject_write_failures(false);
    assert_eq!(read_all(&mut log, 8)[0], (1, "q8-m1".into()), "still read from the old segment");
    log.commit().unwrap();
    log.compact().unwrap();
    assert!(log.compact().unwrap(), "the next try moves it");
    drop(log);
    let mut log = open(dir.path(), SEG, &all);
    assert_eq!(read_all(&mut log, 8), vec![(1, "q8-m1".into())]);
}
