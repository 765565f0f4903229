//! Compaction: a sealed segment that is mostly settled, and no longer being drained, has its
//! live records copied to the active segment and is deleted.
//!
//! Deleting only segments with nothing live would let one long-lived message keep a whole
//! 16 MiB segment, and disk use would stop following the backlog. A segment qualifies when less
//! than half of its bytes are live and none of its records was settled between two calls (the
//! writer calls about once a second): a segment that consumers are still draining is left to
//! them, since copying records that are about to be settled is wasted writing. Copying at most
//! half a segment to free a whole one is the trade RabbitMQ's message store makes at its 50%
//! garbage ratio.
//!
//! Order, for crash safety: the copies are written and synced; only then does the index point
//! at them; then the old files are unlinked and the directory synced. A crash before the unlink
//! is durable leaves two live copies of each moved record, and recovery keeps one and settles
//! the other ([`crate::index::QueueIndex::sort`]). A copy is settled only in a later group, after
//! that directory sync, so recovery never finds a live old copy of a message settled since.
use crate::index::Loc;
use crate::log::{Log, Payload};
use crate::record::{self, Kind, HEADER};
use crate::segment::Segment;
use std::io;
use std::os::unix::fs::FileExt;

impl<P: Payload> Log<P> {
    /// Some sealed segment is less than half live: the writer should call [`Log::compact`].
    pub fn may_compact(&self) -> bool {
        self.segs.values().any(|s| sparse(s, self.active))
    }

    /// Reclaims one cold, mostly settled segment, if there is one: its live records are copied
    /// to the active segment and it is deleted. Returns whether a segment was reclaimed. Call
    /// between group commits, about once a second: a segment is cold when nothing in it was
    /// settled since the previous call. Does nothing while writes fail or wait.
    pub fn compact(&mut self) -> io::Result<bool> {
        let active = self.active;
        let mut victim: Option<(u32, u64)> = None;
        for s in self.segs.values_mut() {
            let cold = !std::mem::take(&mut s.touched);
            if cold && sparse(s, active) && victim.is_none_or(|(_, b)| s.live_bytes < b) {
                victim = Some((s.id, s.live_bytes));
            }
        }
        let Some((id, live_bytes)) = victim else { return Ok(false) };
        if self.broken || !self.buf.is_empty() || self.has_unwritten() || live_bytes > self.opts.segment_bytes {
            return Ok(false);
        }
        let file = self.segs[&id].file.clone();
        let mut queues: Vec<(u64, Vec<Loc>)> = Vec::new();
        for (&queue, ix) in self.queues.iter() {
            let locs = ix.live_in(id);
            if !locs.is_empty() {
                queues.push((queue, locs));
            }
        }
        // Read every live record first: a read error (not damage) leaves the segment as it is.
        let mut records: Vec<(u64, Loc, Vec<u8>)> = Vec::new();
        let mut damaged = Vec::new();
        for (queue, locs) in &queues {
            for loc in locs {
                let mut raw = vec![0; HEADER + loc.len() as usize];
                file.read_exact_at(&mut raw, loc.offset as u64)?;
                let ok = record::parse_header(&raw)
                    .filter(|h| h.queue == *queue && h.seq == loc.seq && h.len == loc.len())
                    .is_some_and(|h| record::verify(&h, &raw));
                if ok {
                    records.push((*queue, *loc, raw));
                } else {
                    damaged.push((*queue, *loc));
                }
            }
        }
        for (queue, loc) in damaged {
            // Page-in would drop it too; settling it lets the segment go.
            tracing::error!(queue, seq = loc.seq, segment = id, "message record fails its CRC; message lost");
            if let Some(l) = self.queues.get_mut(&queue).and_then(|q| q.settle(loc.seq)) {
                self.settle_loc(l);
            }
        }
        if self.active_len() + live_bytes > self.opts.segment_bytes {
            if let Err(e) = self.roll() {
                self.broken = true;
                return Err(e);
            }
        }
        let seg = self.segs.get_mut(&self.active).expect("active segment exists");
        let (size0, summary0) = (seg.size, seg.summary.len());
        let mut moved: Vec<(u64, Vec<(u64, u32)>)> = Vec::new();
        for (queue, loc, raw) in &records {
            let offset = (seg.size + self.buf.len() as u64) as u32;
            self.buf.extend_from_slice(raw);
            if loc.persistent() {
                seg.note_record(Kind::Persistent, *queue, loc.seq, offset, loc.len());
            }
            match moved.last_mut() {
                Some((q, m)) if q == queue => m.push((loc.seq, offset)),
                _ => moved.push((*queue, vec![(loc.seq, offset)])),
            }
        }
        let marks_bytes = self.buf.len() as u64 - records.iter().map(|r| r.2.len() as u64).sum::<u64>();
        if let Err(e) = self.flush_buf() {
            self.broken = true;
            self.undo_buffer();
            return Err(e);
        }
        let seg = self.segs.get_mut(&self.active).expect("active segment exists");
        if let Err(e) = seg.file.sync_data() {
            // The copies may or may not be on disk; the index still points at the originals.
            // Cut the copies out of the segment's size and summary, so that sealing it drops
            // them and recovery never takes one for the live copy.
            seg.size = size0 + marks_bytes;
            seg.summary.truncate(summary0);
            self.broken = true;
            self.needs_sync = true;
            return Err(e);
        }
        let to = self.active;
        for (queue, m) in &moved {
            if let Some(q) = self.queues.get_mut(queue) {
                q.relocate(id, to, m);
            }
        }
        for (_, loc, _) in &records {
            self.segs.get_mut(&to).expect("active segment exists").add_live(loc.len());
        }
        if let Some(old) = self.segs.remove(&id) {
            debug_assert_eq!(old.live as usize, records.len(), "segment {id}: every live record moved");
            old.delete(&self.dir);
            std::fs::File::open(&self.dir)?.sync_all()?;
        }
        tracing::debug!(segment = id, moved = records.len(), bytes = live_bytes, "log segment compacted");
        Ok(true)
    }
}

/// Sealed, still holding something, and less than half live.
fn sparse(s: &Segment, active: u32) -> bool {
    s.id != active && s.live > 0 && s.live_bytes * 2 < s.size
}
