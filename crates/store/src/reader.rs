//! The reader thread: runs page-in reads that the writer prepared, decodes the messages, and
//! hands them to the queue that asked. A disk that is slow to read delays the queues that
//! page, not the writer's group commits and not the runtime's workers.
use crate::record;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use warren_broker::{LoadDone, Loaded, StoredMessage};
use warren_log::ReadJob;

pub struct ReadRequest {
    pub job: ReadJob,
    pub done: LoadDone,
}

pub fn run(rx: Receiver<ReadRequest>) {
    while let Ok(ReadRequest { job, done }) = rx.recv() {
        let mut messages = Vec::with_capacity(job.items.len());
        for r in job.run() {
            match record::decode(r.payload) {
                Some(m) => messages.push(StoredMessage { seq: r.seq, message: Arc::new(m), persistent: r.persistent }),
                None => {
                    tracing::error!(queue_id = job.queue, seq = r.seq, "stored message does not decode; message lost")
                }
            }
        }
        done(Loaded { messages, covered: job.covered, next_from: job.next_from });
    }
}
