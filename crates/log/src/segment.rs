//! One segment: a data file of records, its settled-message index (`.ack`) and, once sealed,
//! a summary of its records (`.idx`) so that recovery need not read the data.
//!
//! Files: `{id:010}.seg`, `{id:010}.ack`, `{id:010}.idx`. A segment is deleted, all three files
//! at once, when none of its message records is live any more; that is how disk use follows
//! the backlog. The `.ack` file is what makes settling durable without rewriting data:
//! append-only 8-byte entries `[record offset u32][crc of those 4 bytes u32]`.
use crate::record::Kind;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub fn data_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{id:010}.seg"))
}

pub fn ack_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{id:010}.ack"))
}

pub fn idx_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{id:010}.idx"))
}

/// The segment id named by a data file, if `name` is one.
pub fn parse_data_name(name: &str) -> Option<u32> {
    name.strip_suffix(".seg")?.parse().ok()
}

pub struct Segment {
    pub id: u32,
    /// Shared with page-in reads in flight, which keep reading a segment deleted under them.
    pub file: Arc<File>,
    /// Bytes of records (the end of the file, where the next write goes).
    pub size: u64,
    /// Message records not yet settled.
    pub live: u32,
    /// Bytes of those records (header and payload), to tell a mostly settled segment.
    pub live_bytes: u64,
    /// A record was settled since compaction last looked: the segment is still being drained,
    /// and copying what is left would race the consumers that are about to settle it.
    pub touched: bool,
    /// Opened on the first settlement.
    pub acks: Option<File>,
    /// Settlement entries of the current group, appended at commit.
    pub ack_buf: Vec<u8>,
    /// One summary entry per record, written as the `.idx` file when the segment is sealed.
    pub summary: Vec<u8>,
}

/// One `.idx` entry: kind, queue, seq, offset, payload length.
pub const SUMMARY_ENTRY: usize = 1 + 8 + 8 + 4 + 4;

impl Segment {
    /// A new, empty segment whose file is zero-filled (see [`crate::spare`]).
    pub fn create(dir: &Path, id: u32, spares: &crate::spare::Spares) -> io::Result<Segment> {
        Ok(Segment::with_file(id, spares.take(&data_path(dir, id))?, 0))
    }

    pub fn with_file(id: u32, file: File, size: u64) -> Segment {
        Segment {
            id,
            file: Arc::new(file),
            size,
            live: 0,
            live_bytes: 0,
            touched: false,
            acks: None,
            ack_buf: Vec::new(),
            summary: Vec::new(),
        }
    }

    /// One more live record of `len` payload bytes.
    pub fn add_live(&mut self, len: u32) {
        self.live += 1;
        self.live_bytes += (crate::record::HEADER + len as usize) as u64;
    }

    /// One fewer live record of `len` payload bytes.
    pub fn remove_live(&mut self, len: u32) {
        self.live = self.live.saturating_sub(1);
        self.live_bytes = self.live_bytes.saturating_sub((crate::record::HEADER + len as usize) as u64);
        self.touched = true;
    }

    pub fn note_settled(&mut self, offset: u32) {
        push_ack(&mut self.ack_buf, offset);
    }

    pub fn note_record(&mut self, kind: Kind, queue: u64, seq: u64, offset: u32, len: u32) {
        let s = &mut self.summary;
        s.push(kind as u8);
        s.extend_from_slice(&queue.to_le_bytes());
        s.extend_from_slice(&seq.to_le_bytes());
        s.extend_from_slice(&offset.to_le_bytes());
        s.extend_from_slice(&len.to_le_bytes());
    }

    /// Appends this group's settlements to the `.ack` file (not synced).
    pub fn write_acks(&mut self, dir: &Path) -> io::Result<bool> {
        if self.ack_buf.is_empty() {
            return Ok(false);
        }
        if self.acks.is_none() {
            self.acks = Some(OpenOptions::new().create(true).append(true).open(ack_path(dir, self.id))?);
        }
        use std::io::Write;
        let f = self.acks.as_mut().expect("opened above");
        // On failure part of the buffer may be in the file; the retry rewrites all of it, which
        // only repeats entries (settling an offset twice is harmless; a torn one is cut at open).
        f.write_all(&self.ack_buf)?;
        self.ack_buf.clear();
        Ok(true)
    }

    /// Writes the `.idx` summary of a segment that takes no more records. Not synced: a missing
    /// or damaged summary only makes recovery read the data file instead.
    pub fn seal(&mut self, dir: &Path) -> io::Result<()> {
        // The zeros past the last record are not needed any more: give them back.
        self.file.set_len(self.size)?;
        let mut out = std::mem::take(&mut self.summary);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&crc.to_le_bytes());
        std::fs::write(idx_path(dir, self.id), out)
    }

    /// Removes the segment's files.
    pub fn delete(self, dir: &Path) {
        for p in [data_path(dir, self.id), ack_path(dir, self.id), idx_path(dir, self.id)] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(file = %p.display(), error = %e, "could not remove a settled segment file"),
            }
        }
    }
}

pub fn push_ack(buf: &mut Vec<u8>, offset: u32) {
    let b = offset.to_le_bytes();
    buf.extend_from_slice(&b);
    buf.extend_from_slice(&crc32fast::hash(&b).to_le_bytes());
}

/// Offsets settled in an `.ack` file's bytes. A torn last entry, or one whose check fails,
/// ends the list: entries are appended in order, so nothing after damage can be trusted.
pub fn parse_acks(raw: &[u8]) -> (Vec<u32>, usize) {
    let mut out = Vec::with_capacity(raw.len() / 8);
    for (i, e) in raw.chunks(8).enumerate() {
        let ok = e.len() == 8 && crc32fast::hash(&e[..4]).to_le_bytes() == e[4..8];
        if !ok {
            return (out, i * 8);
        }
        out.push(u32::from_le_bytes(e[..4].try_into().expect("4 bytes")));
    }
    let n = out.len() * 8;
    (out, n)
}

/// One record as a summary lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub kind: u8,
    pub queue: u64,
    pub seq: u64,
    pub offset: u32,
    pub len: u32,
}

/// Reads a sealed segment's `.idx`, if it is whole and describes a data file of `data_len`.
pub fn read_summary(raw: &[u8], data_len: u64) -> Option<Vec<Summary>> {
    let body_len = raw.len().checked_sub(12)?;
    let (body, tail) = raw.split_at(body_len);
    let size = u64::from_le_bytes(tail[..8].try_into().ok()?);
    let crc = u32::from_le_bytes(tail[8..12].try_into().ok()?);
    if size != data_len || crc32fast::hash(body) != crc || body.len() % SUMMARY_ENTRY != 0 {
        return None;
    }
    let entries = body.chunks_exact(SUMMARY_ENTRY).map(|e| Summary {
        kind: e[0],
        queue: u64::from_le_bytes(e[1..9].try_into().expect("8 bytes")),
        seq: u64::from_le_bytes(e[9..17].try_into().expect("8 bytes")),
        offset: u32::from_le_bytes(e[17..21].try_into().expect("4 bytes")),
        len: u32::from_le_bytes(e[21..25].try_into().expect("4 bytes")),
    });
    Some(entries.collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_entries_stop_at_damage() {
        let mut b = Vec::new();
        for off in [0, 25, 1000] {
            push_ack(&mut b, off);
        }
        assert_eq!(parse_acks(&b), (vec![0, 25, 1000], 24));
        assert_eq!(parse_acks(&b[..20]), (vec![0, 25], 16), "a torn last entry is dropped");
        b[9] ^= 1;
        assert_eq!(parse_acks(&b).0, vec![0], "a damaged entry ends the list");
    }

    #[test]
    fn summary_round_trips_and_checks_size_and_crc() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Segment::create(dir.path(), 3, &crate::spare::Spares::new(dir.path(), 4096)).unwrap();
        s.note_record(Kind::Persistent, 9, 1, 0, 10);
        s.note_record(Kind::Mark, 9, 1, 35, 0);
        s.size = 60;
        s.seal(dir.path()).unwrap();
        let raw = std::fs::read(idx_path(dir.path(), 3)).unwrap();
        let got = read_summary(&raw, 60).unwrap();
        assert_eq!(got[1], Summary { kind: 3, queue: 9, seq: 1, offset: 35, len: 0 });
        assert!(read_summary(&raw, 61).is_none(), "a data file that grew after sealing is not described");
        let mut bad = raw.clone();
        bad[3] ^= 1;
        assert!(read_summary(&bad, 60).is_none());
    }
}
