//! Waiting for another thread (the store's writer, a page-in) without stalling the async runtime.
//!
//! Submitting to the writer blocks when its queue is full (that is the back-pressure on
//! publishers), and metadata writes and page-ins block until the writer replies. These calls
//! come from connection tasks on tokio workers, often under a queue lock; a worker blocked
//! in them stopped every other connection scheduled on it. gdb showed exactly that on a
//! one-worker runtime: the only worker parked in `SyncSender::send` while a paging queue's
//! publisher waited for the disk, and nothing else on the broker moved.
use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `wait`, which blocks on the writer. On a multi-threaded tokio runtime the worker's
/// other tasks are first handed to another thread (`block_in_place`), so only the caller
/// waits; elsewhere (the writer's own tests, plain threads) it just blocks.
pub fn off_worker<R>(wait: impl FnOnce() -> R) -> R {
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(wait),
        _ => wait(),
    }
}
