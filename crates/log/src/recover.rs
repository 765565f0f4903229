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
        let mut orphans = 0usize;
        for id in ids {
            orphans += log.load_segment(id, Some(id) == last, known)?;
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
                    if is_last {
                        tracing::warn!(segment = id, at = good, dropped = size - good as u64, "torn write at the log's tail cut off");
                        file.set_len(good as u64).map_err(err)?;
                        file.sync_all().map_err(err)?;
                    } else {
                        tracing::error!(segment = id, at = good, lost_bytes = size - good as u64,
                            "damaged record in a log segment: the rest of that segment is lost");
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
            if is_last {
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
                    q.push(Loc::new(e.seq, id, e.offset, e.len, true));
                    seg.live += 1;
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
            seg.live = seg.live.saturating_sub(1);
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
            let f = OpenOptions::new().write(true).open(&path).map_err(|source| LogError::Io { path: path.clone(), source })?;
            f.set_len(good as u64).map_err(|source| LogError::Io { path: path.clone(), source })?;
        }
        Ok(offsets.into_iter().collect())
    }

    /// The data file of segment `id` (for tests that damage it).
    pub fn path_of_segment(&self, id: u32) -> std::path::PathBuf {
        self.segment_path(id)
    }
}

/// The records of a data file that pass their checks, and the length of that good prefix.
fn scan(data: &[u8]) -> (Vec<Summary>, usize) {
    let mut out = Vec::new();
    let mut at = 0usize;
    while let Some(h) = record::parse_header(&data[at..]) {
        let end = at + HEADER + h.len as usize;
        let whole = data.get(at..end).is_some_and(|r| record::verify(&h, r));
        if !whole || Kind::from_u8(h.kind).is_none() {
            break;
        }
        out.push(Summary { kind: h.kind, queue: h.queue, seq: h.seq, offset: at as u32, len: h.len });
        at = end;
    }
    (out, at)
}
