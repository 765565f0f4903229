//! The log proper: appends, settlements, marks, group commit, page-in jobs.
//!
//! One log serves every queue of the node, so one group commit (one `fdatasync` of the
//! active segment, plus one per `.ack` file the group settled in) makes every publish of
//! the group durable, however many queues they went to. Records carry (queue, seq), the
//! queue's own position, which is what a follower will acknowledge when the log is shipped.
//!
//! Only one thread uses a `Log` (the store's writer); it takes `&mut self` throughout.
use crate::index::{IdMap, Loc, QueueIndex, MAX_PAYLOAD};
use crate::read::{ReadItem, ReadJob};
use crate::record::{self, Kind, HEADER};
use crate::segment::{self, Segment};
use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// What the log stores for a message: its length and its bytes, written at commit time, so a
/// message settled before its group commits is never encoded at all.
pub trait Payload {
    fn encoded_len(&self) -> usize;
    fn write_to(&self, buf: &mut Vec<u8>);
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// A segment takes no more records past this size; a bigger record gets one of its own.
    pub segment_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        // RabbitMQ's message store uses 16 MiB files: small enough that a settled stretch of
        // the backlog gives its disk back soon, large enough that rolling is rare.
        Options { segment_bytes: 16 << 20 }
    }
}

/// A queue's part of the log, as recovery or [`Log::summary`] reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueSummary {
    pub live: usize,
    pub first_seq: u64,
    pub max_seq: u64,
    pub mark: u64,
}

struct Pending<P> {
    queue: u64,
    seq: u64,
    persistent: bool,
    /// None once settled before its group was written.
    payload: Option<P>,
}

/// Group buffer bytes after which they are written out mid-group, to bound its memory.
const BUF_FLUSH: usize = 1 << 20;

pub struct Log<P> {
    pub(crate) dir: PathBuf,
    pub(crate) opts: Options,
    pub(crate) segs: BTreeMap<u32, Segment>,
    pub(crate) active: u32,
    pub(crate) queues: IdMap<QueueIndex>,
    pending: Vec<Pending<P>>,
    /// Indices into `pending` per queue, in seq order, to settle unwritten messages.
    pending_by_queue: IdMap<Vec<usize>>,
    dirty_marks: IdMap<u64>,
    pub(crate) buf: Vec<u8>,
    /// Segments written since the last sync.
    written: Vec<u32>,
    /// Records that must survive a restart (persistent messages, marks) were written since
    /// the last sync.
    pub(crate) needs_sync: bool,
    /// Segments whose `.ack` file was appended to since settlements were last synced.
    acks_unsynced: Vec<u32>,
    /// Segments with nothing live, deleted after the next sync.
    pub(crate) doomed: Vec<u32>,
    /// A write failed: the active segment's tail is suspect, so the next write starts a new one.
    pub(crate) broken: bool,
    /// Records encoded into `buf` and indexed, not yet written. If the write fails they are
    /// taken out of the index again and go back to `pending`, to be written by a later commit:
    /// a confirm waiting behind one of them must not be sent until it is on disk, and its
    /// put may have gone in an earlier group than the confirm's wait.
    in_buf: Vec<Pending<P>>,
    /// Marks encoded into `buf`, put back in `dirty_marks` if the write fails.
    marks_in_buf: Vec<(u64, u64)>,
    /// Length of the active segment's summary when `buf` was last written out.
    summary_at_flush: usize,
    /// The id the next segment gets (past every file found at open, readable or not).
    pub(crate) next_id: u32,
    /// Fault injection: while set, every write fails as a full or broken disk's would.
    fail_writes: bool,
    /// Zero-filled files for new segments.
    spares: crate::spare::Spares,
}

impl<P: Payload> Log<P> {
    pub(crate) fn empty(dir: PathBuf, opts: Options) -> Log<P> {
        Log {
            spares: crate::spare::Spares::new(&dir, opts.segment_bytes),
            dir,
            opts,
            segs: BTreeMap::new(),
            active: 0,
            queues: IdMap::default(),
            pending: Vec::new(),
            pending_by_queue: IdMap::default(),
            dirty_marks: IdMap::default(),
            buf: Vec::new(),
            written: Vec::new(),
            needs_sync: false,
            acks_unsynced: Vec::new(),
            doomed: Vec::new(),
            broken: false,
            in_buf: Vec::new(),
            marks_in_buf: Vec::new(),
            summary_at_flush: 0,
            next_id: 1,
            fail_writes: false,
        }
    }

    /// Queues message `seq` of `queue` for the next write. Sequence numbers of one queue
    /// must grow (a queue assigns them and submits under one lock): settling and reading
    /// find messages by binary search.
    pub fn put(&mut self, queue: u64, seq: u64, persistent: bool, payload: P) {
        assert!(
            payload.encoded_len() <= MAX_PAYLOAD,
            "message of {} bytes exceeds the log's record limit",
            payload.encoded_len()
        );
        debug_assert!(
            self.queues.get(&queue).is_none_or(|q| q.max_seq < seq || q.live() == 0),
            "queue {queue} put seq {seq} out of order"
        );
        self.pending_by_queue.entry(queue).or_default().push(self.pending.len());
        self.pending.push(Pending { queue, seq, persistent, payload: Some(payload) });
    }

    /// Settles message `seq` of `queue` (acked, rejected, dropped). Unknown or already
    /// settled messages are ignored.
    pub fn settle(&mut self, queue: u64, seq: u64) {
        if let Some(ix) = self.pending_by_queue.get(&queue) {
            if let Ok(i) = ix.binary_search_by_key(&seq, |&i| self.pending[i].seq) {
                self.pending[ix[i]].payload = None;
                return;
            }
        }
        if let Some(loc) = self.queues.get_mut(&queue).and_then(|q| q.settle(seq)) {
            self.settle_loc(loc);
        }
    }

    /// Settles every message of `queue` from `from` on (a purge of the paged tail).
    pub fn settle_from(&mut self, queue: u64, from: u64) {
        self.drop_pending(queue, |seq| seq >= from);
        let locs = self.queues.get_mut(&queue).map(|q| q.settle_from(from)).unwrap_or_default();
        for loc in locs {
            self.settle_loc(loc);
        }
    }

    /// Forgets a deleted queue. Writes no settlements: its records die with its metadata,
    /// and recovery settles records of queues that no longer exist.
    pub fn drop_queue(&mut self, queue: u64) {
        self.drop_pending(queue, |_| true);
        self.dirty_marks.remove(&queue);
        let Some(mut q) = self.queues.remove(&queue) else { return };
        for loc in q.drain_live() {
            self.release(loc);
        }
    }

    /// Records that every message of `queue` up to `seq` has been delivered.
    pub fn mark(&mut self, queue: u64, seq: u64) {
        let q = self.queues.entry(queue).or_default();
        if seq > q.mark {
            q.mark = seq;
            self.dirty_marks.insert(queue, seq);
        }
    }

    fn drop_pending(&mut self, queue: u64, which: impl Fn(u64) -> bool) {
        if let Some(ix) = self.pending_by_queue.get(&queue) {
            for &i in ix {
                if which(self.pending[i].seq) {
                    self.pending[i].payload = None;
                }
            }
        }
    }

    /// A live record stopped being live: persistent ones get a settlement entry.
    pub(crate) fn settle_loc(&mut self, loc: Loc) {
        if loc.persistent() {
            if let Some(seg) = self.segs.get_mut(&loc.seg) {
                seg.note_settled(loc.offset);
            }
        }
        self.release(loc);
    }

    /// One fewer live record in its segment; an empty segment other than the active one goes.
    fn release(&mut self, loc: Loc) {
        let Some(seg) = self.segs.get_mut(&loc.seg) else { return };
        debug_assert!(seg.live > 0, "segment {} released more records than it holds", seg.id);
        seg.remove_live(loc.len());
        if seg.live == 0 && seg.id != self.active {
            self.doomed.push(seg.id);
        }
    }

    pub(crate) fn active_len(&self) -> u64 {
        self.segs.get(&self.active).map_or(0, |s| s.size) + self.buf.len() as u64
    }

    /// Writes everything queued (records, marks) to the segment files; not synced. If that
    /// fails, what was not written stays queued for the next write, which starts a new segment.
    pub fn write(&mut self) -> io::Result<()> {
        let r = self.write_inner();
        if r.is_err() {
            self.broken = true;
            self.undo_buffer();
        }
        r
    }

    fn write_inner(&mut self) -> io::Result<()> {
        if self.broken || !self.segs.contains_key(&self.active) {
            self.roll()?;
            self.broken = false;
        }
        self.pending_by_queue.clear();
        let mut todo = std::mem::take(&mut self.pending).into_iter();
        while let Some(p) = todo.next() {
            if p.payload.is_none() {
                continue;
            }
            if let Err((e, p)) = self.append(p) {
                self.pending.push(p);
                self.pending.extend(todo);
                return Err(e);
            }
        }
        for (queue, seq) in std::mem::take(&mut self.dirty_marks) {
            if let Err(e) = self.make_room(HEADER) {
                self.dirty_marks.insert(queue, seq);
                return Err(e);
            }
            self.encode_mark(queue, seq);
        }
        self.flush_buf()
    }

    /// Encodes one record into the buffer and indexes it.
    fn append(&mut self, p: Pending<P>) -> Result<(), (io::Error, Pending<P>)> {
        let payload = p.payload.as_ref().expect("settled records are skipped");
        let len = payload.encoded_len();
        if let Err(e) = self.make_room(HEADER + len) {
            return Err((e, p));
        }
        let kind = if p.persistent { Kind::Persistent } else { Kind::Transient };
        let offset = self.active_len() as u32;
        record::encode(&mut self.buf, kind, p.queue, p.seq, len, |b| payload.write_to(b));
        let seg = self.segs.get_mut(&self.active).expect("active segment exists");
        if p.persistent {
            // Transient records are dead at the next start: recovery has no use for them, and
            // a paging queue then costs no summary memory per message.
            seg.note_record(kind, p.queue, p.seq, offset, len as u32);
        }
        seg.add_live(len as u32);
        let loc = Loc::new(p.seq, self.active, offset, len as u32, p.persistent);
        self.queues.entry(p.queue).or_default().push(loc);
        self.needs_sync |= p.persistent;
        self.in_buf.push(p);
        Ok(())
    }

    /// A write failed: the records in the buffer are not on disk. Out of the index with them,
    /// and back to the front of the queue of records to write.
    pub(crate) fn undo_buffer(&mut self) {
        self.buf.clear();
        if let Some(seg) = self.segs.get_mut(&self.active) {
            seg.summary.truncate(self.summary_at_flush);
        }
        let mut back = std::mem::take(&mut self.in_buf);
        for p in &back {
            if let Some(loc) = self.queues.get_mut(&p.queue).and_then(|q| q.settle(p.seq)) {
                self.release(loc);
            }
        }
        back.append(&mut self.pending);
        self.pending = back;
        for (i, p) in self.pending.iter().enumerate() {
            self.pending_by_queue.entry(p.queue).or_default().push(i);
        }
        for (queue, seq) in std::mem::take(&mut self.marks_in_buf) {
            let m = self.dirty_marks.entry(queue).or_default();
            *m = (*m).max(seq);
        }
    }

    fn encode_mark(&mut self, queue: u64, seq: u64) {
        let offset = self.active_len() as u32;
        record::encode(&mut self.buf, Kind::Mark, queue, seq, 0, |_| {});
        let seg = self.segs.get_mut(&self.active).expect("active segment exists");
        seg.note_record(Kind::Mark, queue, seq, offset, 0);
        self.marks_in_buf.push((queue, seq));
        self.needs_sync = true;
    }

    /// Makes sure the next record of `total` bytes fits: writes the buffer out when it is big,
    /// and starts a new segment when the active one is full (unless it is empty: a record
    /// larger than a segment gets one of its own).
    fn make_room(&mut self, total: usize) -> io::Result<()> {
        if self.active_len() + total as u64 > self.opts.segment_bytes && self.active_len() > 0 {
            self.flush_buf()?;
            self.roll()?;
        } else if self.buf.len() >= BUF_FLUSH {
            self.flush_buf()?;
        }
        Ok(())
    }

    pub(crate) fn flush_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if self.fail_writes {
            return Err(io::Error::other("injected write failure"));
        }
        let seg = self.segs.get_mut(&self.active).expect("active segment exists");
        seg.file.write_all_at(&self.buf, seg.size)?;
        seg.size += self.buf.len() as u64;
        if !self.written.contains(&seg.id) {
            self.written.push(seg.id);
        }
        self.buf.clear();
        self.in_buf.clear();
        self.marks_in_buf.clear();
        self.summary_at_flush = seg.summary.len();
        if self.buf.capacity() > 4 * BUF_FLUSH {
            self.buf = Vec::new();
        }
        Ok(())
    }

    /// Seals the active segment and starts the next, beginning with every queue's
    /// delivered mark, so that older segments never hold the only copy of a mark.
    pub(crate) fn roll(&mut self) -> io::Result<()> {
        debug_assert!(self.buf.is_empty());
        let next = self.next_id;
        if let Some(old) = self.segs.get_mut(&self.active) {
            if let Err(e) = old.seal(&self.dir) {
                tracing::warn!(segment = old.id, error = %e, "could not write a segment summary");
            }
            if old.live == 0 {
                self.doomed.push(old.id);
            }
        }
        let seg = Segment::create(&self.dir, next, &self.spares)?;
        self.next_id = next + 1;
        std::fs::File::open(&self.dir)?.sync_all()?;
        self.segs.insert(next, seg);
        self.active = next;
        self.summary_at_flush = 0;
        let marks: Vec<(u64, u64)> =
            self.queues.iter().filter(|(_, q)| q.mark > 0).map(|(&id, q)| (id, q.mark)).collect();
        for (queue, seq) in marks {
            self.encode_mark(queue, seq);
            self.dirty_marks.remove(&queue);
        }
        Ok(())
    }

    /// Makes the records written so far durable, deletes segments with nothing live, and
    /// appends this group's settlements to the `.ack` files; syncs those too when
    /// `settlements` (a transaction's commit waits for its acks; a confirm does not, and
    /// RabbitMQ does not sync acks either: a lost ack is a redelivery, never a loss).
    ///
    /// Data before settlements, so a crash can lose a settlement but never leave one
    /// without the data it refers to. Segments with nothing live are deleted once the data is
    /// synced, before the other settlements are written: their own settlements need not be,
    /// the records are gone. So a full disk, on which even settlement entries cannot be
    /// appended, still gets space back as consumers drain it.
    pub fn sync(&mut self, settlements: bool) -> io::Result<()> {
        if std::mem::take(&mut self.needs_sync) {
            for id in std::mem::take(&mut self.written) {
                if let Some(seg) = self.segs.get(&id) {
                    if let Err(e) = seg.file.sync_data() {
                        // After a failed fsync the kernel may have dropped the dirty pages, and a
                        // retry can report success for data that is gone: never trust this
                        // segment's tail again, start a new one.
                        self.needs_sync = true;
                        self.broken = true;
                        return Err(e);
                    }
                }
            }
        }
        self.written.clear();
        for id in std::mem::take(&mut self.doomed) {
            if id != self.active {
                if let Some(seg) = self.segs.remove(&id) {
                    seg.delete(&self.dir);
                }
            }
        }
        for seg in self.segs.values_mut() {
            // On failure the entries stay in `ack_buf` for the next commit to retry.
            if seg.write_acks(&self.dir)? && !self.acks_unsynced.contains(&seg.id) {
                self.acks_unsynced.push(seg.id);
            }
        }
        if settlements {
            while let Some(&id) = self.acks_unsynced.last() {
                if let Some(f) = self.segs.get(&id).and_then(|s| s.acks.as_ref()) {
                    f.sync_data()?;
                }
                self.acks_unsynced.pop();
            }
        }
        Ok(())
    }

    /// Makes every write fail (until called with false), for tests of what clients see when
    /// the disk does.
    pub fn inject_write_failures(&mut self, on: bool) {
        self.fail_writes = on;
    }

    /// Records or marks wait to be written (a write failed and they wait for the next).
    pub fn has_unwritten(&self) -> bool {
        self.pending.iter().any(|p| p.payload.is_some()) || !self.dirty_marks.is_empty()
    }

    /// Settlements are written but not yet synced.
    pub fn settlements_unsynced(&self) -> bool {
        !self.acks_unsynced.is_empty()
    }

    /// `write` then `sync`: one group commit. The sync runs even when the write failed: what
    /// was written before is still made durable, and settled segments are still deleted, so
    /// a full disk gets space back as queues drain although new records cannot be written.
    /// (That is safe because no settlement waits on a put of its own group: a message moved
    /// between queues is settled in its old queue only once its new record is durable.)
    pub fn commit_group(&mut self, settlements: bool) -> io::Result<()> {
        let written = self.write();
        let synced = self.sync(settlements);
        written.and(synced)
    }

    /// A group commit that makes settlements durable too.
    pub fn commit(&mut self) -> io::Result<()> {
        self.commit_group(true)
    }

    /// Takes up to `max` live messages of `queue` from `from` on, to be read by the caller's
    /// reader thread. Writes what is queued first, so the job sees every earlier put; if that
    /// write fails, the job still covers what is on disk, and the error is returned beside it
    /// (a full disk must not stop a queue from draining).
    /// Transient messages are settled now: once read back they live in memory only.
    pub fn take(&mut self, queue: u64, from: u64, max: usize) -> (ReadJob, io::Result<()>) {
        let written = self.write();
        let locs: Vec<Loc> = self.queues.get(&queue).map(|q| q.live_from(from, max).collect()).unwrap_or_default();
        let mut next_from = locs.last().map_or(from, |l| l.seq + 1);
        let mut items = Vec::with_capacity(locs.len());
        for loc in &locs {
            let Some(seg) = self.segs.get(&loc.seg) else { continue };
            items.push(ReadItem::file(loc.seq, loc.persistent(), seg.file.clone(), loc.offset, loc.len()));
            if !loc.persistent() {
                if let Some(l) = self.queues.get_mut(&queue).and_then(|q| q.settle(loc.seq)) {
                    self.release(l);
                }
            }
        }
        // Records a failed write left queued come after everything written (they are newer);
        // read them from memory. Persistent ones stay queued: they still have to reach disk.
        let mut covered = locs.len();
        if let Some(ix) = self.pending_by_queue.get(&queue) {
            for &i in ix {
                let p = &mut self.pending[i];
                if covered >= max || p.seq < from {
                    continue;
                }
                let Some(payload) = &p.payload else { continue };
                let mut bytes = Vec::with_capacity(payload.encoded_len());
                payload.write_to(&mut bytes);
                items.push(ReadItem::memory(p.seq, p.persistent, bytes.into()));
                covered += 1;
                next_from = p.seq + 1;
                if !p.persistent {
                    p.payload = None;
                }
            }
        }
        (ReadJob { queue, items, covered, next_from }, written)
    }

    /// What the log holds for `queue`.
    pub fn summary(&self, queue: u64) -> Option<QueueSummary> {
        let q = self.queues.get(&queue)?;
        Some(QueueSummary { live: q.live(), first_seq: q.first_live().unwrap_or(0), max_seq: q.max_seq, mark: q.mark })
    }

    /// Segment files on disk, and their bytes (for tests and statistics).
    pub fn disk_usage(&self) -> (usize, u64) {
        (self.segs.len(), self.segs.values().map(|s| s.size).sum())
    }

    /// Queues the log holds anything for.
    pub fn queue_ids(&self) -> Vec<u64> {
        self.queues.keys().copied().collect()
    }

    pub(crate) fn segment_path(&self, id: u32) -> PathBuf {
        segment::data_path(&self.dir, id)
    }
}
