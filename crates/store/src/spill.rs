//! Spill files: transient messages paged out of memory, one append-only file per queue.
//!
//! A queue pages at its tail and reads back from its head, in sequence order, and transient
//! messages never need to survive a restart, so a plain file written at the end and read from
//! a moving offset is all paging needs. It used to be a sled tree: every page-out and read-back
//! was then a tree operation, and the churn of writing and deleting paged data made sled 0.34
//! deadlock under load (docs/performance.md, change 5).
//!
//! Record: `[seq u64 BE][len u32 BE][record]` (see [`crate::record`]). Nothing is fsynced.
use crate::record;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use warren_broker::Message;

/// Largest framing buffer a spill keeps between messages.
const SCRATCH_KEEP: usize = 64 << 10;

/// Bytes read back per `pread`.
const READ_CHUNK: usize = 256 << 10;

pub struct Spill {
    path: PathBuf,
    writer: BufWriter<File>,
    reader: File,
    /// Where the next unread record starts.
    read_at: u64,
    /// Bytes appended so far (the end of the file, once the writer is flushed).
    end: u64,
    /// One record being framed, reused so that spilling allocates nothing per message.
    scratch: Vec<u8>,
}

impl Spill {
    pub fn create(dir: &Path, queue_id: u64) -> io::Result<Spill> {
        let path = dir.join(format!("{queue_id}.spill"));
        // Appends go to the end whatever the reads do; reads are positional (pread), so the
        // two never share a file offset.
        File::create(&path)?;
        let file = OpenOptions::new().append(true).open(&path)?;
        let reader = File::open(&path)?;
        Ok(Spill {
            path,
            writer: BufWriter::with_capacity(64 << 10, file),
            reader,
            read_at: 0,
            end: 0,
            scratch: Vec::new(),
        })
    }

    pub fn append(&mut self, seq: u64, m: &Message) -> io::Result<()> {
        let buf = &mut self.scratch;
        buf.clear();
        buf.extend_from_slice(&seq.to_be_bytes());
        buf.extend_from_slice(&(record::encoded_len(m) as u32).to_be_bytes());
        record::encode_into(m, buf);
        self.writer.write_all(buf)?;
        self.end += buf.len() as u64;
        if buf.capacity() > SCRATCH_KEEP {
            // One large message must not pin its size in every queue's spill for good.
            self.scratch = Vec::new();
        }
        Ok(())
    }

    /// Whether every record has been read back.
    pub fn is_drained(&self) -> bool {
        self.read_at == self.end
    }

    /// Up to `max` unread records with sequence numbers from `from` on, without consuming them:
    /// (seq, message, offset just past the record). Records before `from` are skipped.
    pub fn peek(&mut self, from: u64, max: usize) -> io::Result<Vec<(u64, Message, u64)>> {
        self.writer.flush()?;
        let mut out = Vec::new();
        // One pread per 256 KiB, not two per record: a drain reads thousands of records.
        let mut chunk: Vec<u8> = Vec::new();
        let mut chunk_at = self.read_at;
        let mut at = self.read_at;
        while out.len() < max && at < self.end {
            let (seq, len) = {
                let head = self.window(&mut chunk, &mut chunk_at, at, 12)?;
                let seq = u64::from_be_bytes(head[..8].try_into().expect("8 bytes"));
                (seq, u32::from_be_bytes(head[8..12].try_into().expect("4 bytes")) as usize)
            };
            let rec = self.window(&mut chunk, &mut chunk_at, at, 12 + len)?;
            let decoded = (seq >= from).then(|| record::decode(&rec[12..]));
            at += 12 + len as u64;
            match decoded {
                None => {}
                Some(Some(m)) => out.push((seq, m, at)),
                Some(None) => tracing::error!(seq, "corrupt spilled record skipped"),
            }
        }
        Ok(out)
    }

    /// The `n` bytes at file offset `at`, from `chunk` (which holds the file from `chunk_at`),
    /// reading a new chunk from `at` when they are not all in it.
    fn window<'a>(&self, chunk: &'a mut Vec<u8>, chunk_at: &mut u64, at: u64, n: usize) -> io::Result<&'a [u8]> {
        let rel = (at - *chunk_at) as usize;
        if at < *chunk_at || rel + n > chunk.len() {
            let size = (n.max(READ_CHUNK) as u64).min(self.end - at) as usize;
            chunk.resize(size, 0);
            self.reader.read_exact_at(chunk, at)?;
            *chunk_at = at;
            return Ok(&chunk[..n]);
        }
        Ok(&chunk[rel..rel + n])
    }

    /// Marks everything before `offset` read. Once all is read, the file is emptied so that a
    /// queue that pages and drains over and over does not grow it.
    pub fn consume_to(&mut self, offset: u64) -> io::Result<()> {
        self.read_at = offset;
        if self.is_drained() {
            self.clear()?;
        }
        Ok(())
    }

    /// Drops every unread record.
    pub fn clear(&mut self) -> io::Result<()> {
        self.writer.flush()?;
        self.writer.get_ref().set_len(0)?;
        self.read_at = 0;
        self.end = 0;
        Ok(())
    }

    pub fn remove(self) {
        let path = self.path.clone();
        drop(self);
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::protocol::BasicProperties;
    use bytes::Bytes;
    use warren_codec::ContentHeader;

    fn msg(body: &str) -> Message {
        Message {
            exchange: Bytes::new(),
            routing_key: Bytes::from_static(b"q"),
            header: ContentHeader::new(60, body.len() as u64, BasicProperties::default()),
            body: Bytes::copy_from_slice(body.as_bytes()),
        }
    }

    fn bodies(v: &[(u64, Message, u64)]) -> Vec<(u64, String)> {
        v.iter().map(|(s, m, _)| (*s, String::from_utf8(m.body.to_vec()).unwrap())).collect()
    }

    #[test]
    fn reads_back_in_order_and_empties_the_file_when_drained() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spill::create(dir.path(), 7).unwrap();
        for seq in [3, 4, 9] {
            s.append(seq, &msg(&format!("m{seq}"))).unwrap();
        }
        let first = s.peek(0, 2).unwrap();
        assert_eq!(bodies(&first), [(3, "m3".into()), (4, "m4".into())]);
        assert_eq!(bodies(&s.peek(0, 2).unwrap()), bodies(&first), "peeking consumes nothing");
        s.consume_to(first[0].2).unwrap();
        assert_eq!(bodies(&s.peek(5, 10).unwrap()), [(9, "m9".into())], "records before `from` are skipped");
        let rest = s.peek(0, 10).unwrap();
        s.consume_to(rest.last().unwrap().2).unwrap();
        assert!(s.is_drained());
        assert_eq!(std::fs::metadata(dir.path().join("7.spill")).unwrap().len(), 0);
        s.append(10, &msg("again")).unwrap();
        assert_eq!(bodies(&s.peek(0, 10).unwrap()), [(10, "again".into())], "reusable after draining");
        s.clear().unwrap();
        assert!(s.peek(0, 10).unwrap().is_empty());
        s.remove();
        assert!(!dir.path().join("7.spill").exists());
    }

    #[test]
    fn records_across_and_larger_than_a_read_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spill::create(dir.path(), 1).unwrap();
        let big = "b".repeat(READ_CHUNK + 1000);
        for seq in 1..=3000u64 {
            let body = if seq == 1500 { big.clone() } else { format!("{seq:0>200}") };
            s.append(seq, &msg(&body)).unwrap();
        }
        let got = s.peek(0, 10_000).unwrap();
        assert_eq!(got.len(), 3000);
        for (i, (seq, m, _)) in got.iter().enumerate() {
            assert_eq!(*seq, i as u64 + 1);
            let want = if *seq == 1500 { big.clone() } else { format!("{seq:0>200}") };
            assert_eq!(m.body, want.as_bytes(), "record {seq}");
        }
        s.consume_to(got[2000].2).unwrap();
        assert_eq!(s.peek(0, 1).unwrap()[0].0, 2002, "reading resumes mid-file");
    }
}
