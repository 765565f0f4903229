//! Warren's message log: where persistent messages (and transient ones paged out of memory)
//! live on disk. It knows nothing of AMQP: a record is (kind, queue id, sequence number,
//! payload bytes).
//!
//! - **Segments**: append-only files of records, each with a length and a CRC ([`record`]),
//!   rolled at a fixed size ([`Options::segment_bytes`]); a segment is deleted as soon as none
//!   of its messages is live, and one that is mostly settled and no longer drained has its
//!   live records copied forward first (`compact.rs`), so disk use follows the backlog.
//! - **Settled-message index**: an `.ack` file beside each segment lists the offsets of its
//!   records that were settled (acked, rejected, purged), so settling never rewrites data.
//! - **Group commit**: the caller batches operations, then [`Log::commit`] writes them and
//!   syncs each touched file once.
//! - **Positions**: every record carries its queue's sequence number, the position a
//!   replica will acknowledge when the cluster ships this log.
//! - **Recovery** ([`Log::open`]) rebuilds the in-memory index from the segments (or their
//!   `.idx` summaries), checking CRCs and cutting a torn tail.
//! - **Page-in**: [`Log::take`] hands out a [`ReadJob`] that another thread runs with `pread`.
mod compact;
#[cfg(test)]
mod compact_tests;
mod index;
mod log;
mod read;
mod record;
mod recover;
mod segment;
mod spare;
#[cfg(test)]
mod tests;

pub use log::{Log, Options, Payload, QueueSummary};
pub use read::{ReadJob, ReadRecord};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("message log {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}
