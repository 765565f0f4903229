//! How many connections the node holds, for `connection_max`.
//!
//! A connection counts from the moment its socket is accepted until its task ends, however it
//! ends (a guard decrements on drop), as RabbitMQ counts its listener's active connections:
//! a client still in the handshake takes a place too.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Default)]
pub struct ConnectionCount(AtomicUsize);

/// One counted connection; dropping it gives the place back.
pub struct Counted(Arc<ConnectionCount>);

impl ConnectionCount {
    /// Counts a new connection.
    pub fn enter(self: &Arc<Self>) -> Counted {
        self.0.fetch_add(1, Ordering::Relaxed);
        Counted(self.clone())
    }

    /// Connections alive now, this one included.
    pub fn current(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_until_dropped() {
        let c = Arc::new(ConnectionCount::default());
        let a = c.enter();
        let b = c.enter();
        assert_eq!(c.current(), 2);
        drop(a);
        assert_eq!(c.current(), 1);
        drop(b);
        assert_eq!(c.current(), 0);
    }
}
