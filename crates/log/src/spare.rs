//! Segment files are written into space that already exists.
//!
//! On ext4 an `fdatasync` after an append that grew the file also commits the file's new
//! size and blocks through the journal; after a write into blocks already allocated and
//! written, it flushes only the data. Measured on this project's machines (16 KiB writes, one
//! `fdatasync` each): 2,607 µs appending, 1,425 µs into `fallocate`d space (its extents still
//! change from unwritten to written), 320 µs into zero-filled space. A group commit is one of
//! those syncs, so segments are filled with zeros before they take records, as PostgreSQL
//! does with its WAL segments.
//!
//! Zero-filling 16 MiB takes tens of milliseconds, too long to stall a group commit, so a
//! background thread keeps one zero-filled spare ready (`next.spare`); a new segment takes it
//! with a rename, and only when none is ready is one filled in place. Recovery ignores spares
//! and the zeros after a segment's last record.
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Sender};

fn spare_path(dir: &Path) -> PathBuf {
    dir.join("next.spare")
}

/// Writes `bytes` of zeros into `f` and syncs it.
pub fn zero_fill(f: &mut File, bytes: u64) -> io::Result<()> {
    let zeros = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        f.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    f.sync_all()
}

/// Keeps a zero-filled spare segment file ready in a log directory.
pub struct Spares {
    dir: PathBuf,
    bytes: u64,
    /// Asks the filler thread for a new spare.
    ask: Option<Sender<()>>,
}

impl Spares {
    pub fn new(dir: &Path, bytes: u64) -> Spares {
        let _ = std::fs::remove_file(dir.join("next.spare.tmp"));
        let (ask, asked) = channel::<()>();
        let (d, b) = (dir.to_path_buf(), bytes);
        let spawned = std::thread::Builder::new().name("warren-log-spare".into()).spawn(move || {
            while asked.recv().is_ok() {
                if spare_path(&d).exists() {
                    continue;
                }
                let tmp = d.join("next.spare.tmp");
                let made = File::create(&tmp)
                    .and_then(|mut f| zero_fill(&mut f, b))
                    .and_then(|()| std::fs::rename(&tmp, spare_path(&d)));
                if let Err(e) = made {
                    // A full disk: segments are then filled in place, or fail to be created.
                    let _ = std::fs::remove_file(&tmp);
                    tracing::debug!(error = %e, "could not prepare a spare log segment");
                }
            }
        });
        Spares { dir: dir.to_path_buf(), bytes, ask: spawned.ok().map(|_| ask) }
    }

    /// Creates the data file at `path`, zero-filled: the spare if one is ready, else filled
    /// now. Then asks for the next spare.
    pub fn take(&self, path: &Path) -> io::Result<File> {
        let file = match std::fs::rename(spare_path(&self.dir), path) {
            Ok(()) => OpenOptions::new().read(true).write(true).open(path)?,
            Err(_) => {
                let mut f = OpenOptions::new().read(true).write(true).create_new(true).open(path)?;
                if let Err(e) = zero_fill(&mut f, self.bytes) {
                    // No room to fill it: use it unfilled (appends) rather than not at all.
                    tracing::debug!(error = %e, "could not zero-fill a new log segment");
                    f.set_len(0)?;
                }
                f
            }
        };
        if let Some(ask) = &self.ask {
            let _ = ask.send(());
        }
        Ok(file)
    }
}
