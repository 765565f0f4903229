//! The broker's resident memory and open file descriptors, from /proc (Linux).
use std::path::Path;

/// VmRSS in KiB, or None once the process is gone.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// The broker's open descriptors, by what they point at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fds {
    /// Listening and connection sockets.
    pub sockets: u64,
    /// Files of the message log (`DATA_DIR/log`): one per live segment and settlement file, so
    /// their number follows the backlog rather than the number of connections.
    pub log: u64,
    /// Descriptors of files that were deleted: a leak, whatever they were.
    pub deleted: u64,
    /// Everything else (sled's files, the runtime's epoll and eventfds, stdio).
    pub other: u64,
}

impl Fds {
    pub fn total(&self) -> u64 {
        self.sockets + self.log + self.deleted + self.other
    }

    /// Back to `baseline`: the same sockets and other descriptors, none to a deleted file. The
    /// log's may differ by the segments that live now and did not then (or the reverse).
    pub fn back_to(&self, baseline: &Fds) -> bool {
        self.sockets == baseline.sockets && self.other == baseline.other && self.deleted == 0
    }
}

/// Counts `pid`'s descriptors, or None once the process is gone.
pub fn fds(pid: u32, data_dir: &Path) -> Option<Fds> {
    let log_dir = data_dir.join("log");
    let mut f = Fds::default();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        // A descriptor closed between the listing and the readlink is simply not counted.
        let Ok(target) = std::fs::read_link(entry.path()) else { continue };
        let text = target.to_string_lossy();
        if text.starts_with("socket:") {
            f.sockets += 1;
        } else if text.ends_with(" (deleted)") {
            f.deleted += 1;
        } else if target.starts_with(&log_dir) {
            f.log += 1;
        } else {
            f.other += 1;
        }
    }
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_this_process() {
        let me = std::process::id();
        assert!(rss_kib(me).unwrap() > 0);
        let dir = std::env::temp_dir();
        let before = fds(me, &dir).unwrap();
        let sock = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let after = fds(me, &dir).unwrap();
        assert_eq!(after.sockets, before.sockets + 1);
        assert!(!after.back_to(&before));
        drop(sock);
        assert!(fds(me, &dir).unwrap().back_to(&before));
        assert_eq!(rss_kib(u32::MAX), None);
    }
}
