//! Page-in reads: a batch of record locations taken from the index, read with `pread`
//! by whichever thread runs the job (never the writer, never under a queue lock).
use crate::record::{self, HEADER};
use bytes::{Bytes, BytesMut};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// One record to read.
pub struct ReadItem {
    pub seq: u64,
    pub persistent: bool,
    from: Source,
}

enum Source {
    File {
        file: Arc<File>,
        offset: u64,
        len: u32,
    },
    /// A record not yet on disk (a write failed and it waits to be written again).
    Memory(Bytes),
}

/// The messages of one queue that a page-in reads, in sequence order.
pub struct ReadJob {
    pub queue: u64,
    pub items: Vec<ReadItem>,
    /// How many of the queue's live messages this job covers (read or found damaged).
    pub covered: usize,
    /// The sequence number the next page-in starts from.
    pub next_from: u64,
}

/// A record read back.
pub struct ReadRecord {
    pub seq: u64,
    pub persistent: bool,
    pub payload: Bytes,
}

impl ReadItem {
    pub(crate) fn file(seq: u64, persistent: bool, file: Arc<File>, offset: u32, len: u32) -> ReadItem {
        ReadItem { seq, persistent, from: Source::File { file, offset: offset as u64, len } }
    }

    pub(crate) fn memory(seq: u64, persistent: bool, payload: Bytes) -> ReadItem {
        ReadItem { seq, persistent, from: Source::Memory(payload) }
    }
}

impl ReadJob {
    /// Reads every record, checking each one's CRC and that it is the message the index said.
    /// Damaged or unreadable records are logged and left out: that message is lost, the rest
    /// of the queue is not.
    pub fn run(&self) -> Vec<ReadRecord> {
        let mut out = Vec::with_capacity(self.items.len());
        for it in &self.items {
            let (file, offset, len) = match &it.from {
                Source::Memory(payload) => {
                    out.push(ReadRecord { seq: it.seq, persistent: it.persistent, payload: payload.clone() });
                    continue;
                }
                Source::File { file, offset, len } => (file, *offset, *len),
            };
            let mut buf = BytesMut::zeroed(HEADER + len as usize);
            if let Err(e) = file.read_exact_at(&mut buf, offset) {
                tracing::error!(queue = self.queue, seq = it.seq, error = %e, "message read failed; message lost");
                continue;
            }
            let ok = record::parse_header(&buf)
                .filter(|h| h.queue == self.queue && h.seq == it.seq && h.len == len)
                .is_some_and(|h| record::verify(&h, &buf));
            if !ok {
                tracing::error!(queue = self.queue, seq = it.seq, offset, "message record fails its CRC; message lost");
                continue;
            }
            let payload = buf.split_off(HEADER).freeze();
            out.push(ReadRecord { seq: it.seq, persistent: it.persistent, payload });
        }
        out
    }
}
