//! Opening a log: reading what its segments hold back into the index.
//!
//! A sealed segment is read from its `.idx` summary when that is whole, otherwise from its
//! data, record by record, checking each CRC. The last segment (the one being written when
//! the broker stopped) is always read from its data; a record that fails its check there is
//! a torn write, and the file is cut before it. Damage in an older segment loses the rest of
//! that segment only, and is logged.
use crate::index::Loc;
use crate::log::{Log, Options, Payload};
use crate::record::{self, Kind, HEADER};
use crate::segment::{self, Segment, Summary};
use crate::LogError;
use std::collections::HashSet;
use std::fs::OpenOptions;
use std::path::Path;

impl<P: Payload> Log<P> {
    /// Opens (creating if needed) the log in `dir`. `known` says which queue ids still exist:
    /// records of other queues are settled, so that a later queue given the same id cannot
    /// inherit them. Starts a fresh active segment.
    pub fn open(dir: &Path, opts: Options, known: &dyn Fn(u64) -> bool) -> Result<Log<P>, LogError> {
        let io_err = |source| LogError::Io { path: dir.into(), source };
        std::fs::create_dir_all(dir).map_err(io_err)?;
        let mut ids: Vec<u32> = std::fs::read_dir(dir)
            .map_err(io_err)?
            .filter_map(|e| e.ok()?.file_name().to_str().and_then(segment::parse_data_name))
            .collect();
        ids.sort_unstable();
        let mut log = Log::empty(dir.into(), opts);
        let last = ids.last().copied();
        log.next_id = last.map_or(1, |id| id + 1);
        let mut orphans = 0usize;
        for id in ids {
            match log.load_segment(id, Some(id) == last, known) {
                Ok(n) => orphans += n,
                // Serve what can be read: the file stays, untouched, for an operator to look at.
                Err(e) => {
                    tracing::error!(segment = id, error = %e, "log segment unreadable: its messages are not recovered")
                }
            }
        }
        let mut dups = Vec::new();
        for q in log.queues.values_mut() {
            dups.extend(q.sort());
        }
        for loc in dups {
            log.settle_recovered(loc);
        }
        for seg in log.segs.values() {
            if seg.live == 0 {
                log.doomed.push(seg.id);
            }
        }
        if orphans > 0 {
            tracing::info!(records = orphans, "settling stored messages of deleted queues");
        }
        // The new active segment begins with every mark; then settlements, then deletions.
        log.roll().map_err(io_err)?;
        log.needs_sync = true;
        log.commit().map_err(io_err)?;
        Ok(log)
    }

    /// Indexes one segment; returns how many records of unknown queues it settled.
    fn load_segment(&mut self, id: u32, is_last: bool, known: &dyn Fn(u64) -> bool) -> Result<usize, LogError> {
        let path = segment::data_path(&self.dir, id);
        let err = |source| LogError::Io { path: path.clone(), source };
        let file = OpenOptions::new().read(true).write(true).open(&path).map_err(err)?;
        let mut size = file.metadata().map_err(err)?.len();
        let summary = match (is_last, std::fs::read(segment::idx_path(&self.dir, id))) {
            (false, Ok(raw)) => segment::read_summary(&raw, size),
            _ => None,
        };
        let entries = match summary {
            Some(s) => s,
            None => {
                let data = std::fs::read(&path).map_err(err)?;
                let (entries, good) = scan(&data);
                if (good as u64) < size {
                    // Nothing valid after `good`: the zeros a segment is filled with before it
                    // is written, or the tail of a write that never finished (in the last
                    // segment), or damage at the end of an older one.
                    if data[good..].iter().any(|&b| b != 0) {
                        tracing::warn!(
                            segment = id,
                            at = good,
                            dropped = size - good as u64,
                            "incomplete records at a segment's end cut off"
                        );
                    }
                    if is_last {
                        file.set_len(good as u64).map_err(err)?;
                        file.sync_all().map_err(err)?;
                    }
                    size = good as u64;
                }
                entries
            }
        };
        let settled = self.read_acks(id)?;
        let mut seg = Segment::with_file(id, file, size);
        let mut orphans = 0;
        for e in &entries {
            let Some(kind) = Kind::from_u8(e.kind) else { continue };
            if is_last && kind != Kind::Transient {
                seg.note_record(kind, e.queue, e.seq, e.offset, e.len);
            }
            if !known(e.queue) {
                if kind == Kind::Persistent && !settled.contains(&e.offset) {
                    seg.note_settled(e.offset);
                    orphans += 1;
                }
                continue;
            }
            let q = self.queues.entry(e.queue).or_default();
            match kind {
                Kind::Mark => q.mark = q.mark.max(e.seq),
                Kind::Transient => q.max_seq = q.max_seq.max(e.seq),
                Kind::Persistent if settled.contains(&e.offset) => q.max_seq = q.max_seq.max(e.seq),
                Kind::Persistent => {
                    q.stage(Loc::new(e.seq, id, e.offset, e.len, true));
                    seg.add_live(e.len);
                }
            }
        }
        self.segs.insert(id, seg);
        Ok(orphans)
    }

    /// Settles a duplicate found at recovery (and already out of its queue's index).
    fn settle_recovered(&mut self, loc: Loc) {
        if let Some(seg) = self.segs.get_mut(&loc.seg) {
            seg.note_settled(loc.offset);
            seg.remove_live(loc.len());
        }
    }

    fn read_acks(&self, id: u32) -> Result<HashSet<u32>, LogError> {
        let path = segment::ack_path(&self.dir, id);
        let raw = match std::fs::read(&path) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashSet::new()),
            Err(source) => return Err(LogError::Io { path, source }),
        };
        let (offsets, good) = segment::parse_acks(&raw);
        if good < raw.len() {
            tracing::warn!(segment = id, at = good, "torn settlement entry cut off");
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|source| LogError::Io { path: path.clone(), source })?;
            f.set_len(good as u64).map_err(|source| LogError::Io { path: path.clone(), source })?;
        }
        Ok(offsets.into_iter().collect())
    }

    /// The data file of segment `id` (for tests that damage it).
    pub fn path_of_segment(&self, id: u32) -> std::path::PathBuf {
        self.segment_path(id)
    }
}

/// The records of a data file that pass their checks, and where the last of them ends.
///
/// A record that fails its check is either a torn write (the tail of the last write, with
/// nothing valid after it) or damage in the middle (a flipped bit, a bad sector). For the
/// second, the scan looks for the next offset where a whole, valid record starts and goes on
/// from there, so one damaged record does not take every later, confirmed one with it.
fn scan(data: &[u8]) -> (Vec<Summary>, usize) {
    let mut out = Vec::new();
    let (mut at, mut end) = (0usize, 0usize);
    while at < data.len() {
        match record_at(data, at) {
            Some(next) => {
                let h = record::parse_header(&data[at..]).expect("checked by record_at");
                out.push(Summary { kind: h.kind, queue: h.queue, seq: h.seq, offset: at as u32, len: h.len });
                at = next;
                end = next;
            }
            None => match (at + 1..data.len().saturating_sub(HEADER - 1)).find(|&p| record_at(data, p).is_some()) {
                Some(p) => {
                    tracing::error!(
                        at,
                        skipped = p - at,
                        "damaged bytes in a log segment skipped; the messages in them are lost"
                    );
                    at = p;
                }
                None => break,
            },
        }
    }
    (out, end)
}

/// If a whole, valid record starts at `at`, where it ends.
fn record_at(data: &[u8], at: usize) -> Option<usize> {
    let h = record::parse_header(data.get(at..)?)?;
    Kind::from_u8(h.kind)?;
    let end = at.checked_add(HEADER + h.len as usize)?;
    data.get(at..end).filter(|r| record::verify(&h, r)).map(|_| end)
}
