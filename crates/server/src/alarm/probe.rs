//! Reading the figures the alarms compare: total memory, the broker's resident memory, and
//! the free space of the data directory's file system.
//!
//! RabbitMQ shells out to `ps` and `df`; the same numbers are a file read or one syscall away.
use std::path::Path;

/// Where the monitor gets its readings (a trait so the alarm logic can be tested with
/// made-up figures). `None` means the figure cannot be read on this system.
pub trait Probe: Send {
    /// Memory the broker may use in all: the machine's, or its cgroup's limit if lower.
    fn total_memory(&self) -> Option<u64>;
    /// The broker's resident set size (RabbitMQ's default `rss` calculation strategy).
    fn used_memory(&self) -> Option<u64>;
    /// Bytes available to an unprivileged user on `dir`'s file system (what `df` reports).
    fn disk_free(&self, dir: &Path) -> Option<u64>;
}

/// The running system.
pub struct System;

impl Probe for System {
    fn total_memory(&self) -> Option<u64> {
        let machine = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| parse_meminfo_total(&s));
        match (machine, cgroup_memory_limit()) {
            (Some(m), Some(c)) => Some(m.min(c)),
            (m, c) => m.or(c),
        }
    }

    fn used_memory(&self) -> Option<u64> {
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        Some(parse_statm_resident(&statm)? * page_size()?)
    }

    fn disk_free(&self, dir: &Path) -> Option<u64> {
        statvfs_available(dir)
    }
}

/// `MemTotal:  16318076 kB` → bytes.
pub fn parse_meminfo_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut fields = line["MemTotal:".len()..].split_whitespace();
    let n: u64 = fields.next()?.parse().ok()?;
    match fields.next() {
        Some("kB") => n.checked_mul(1024),
        None => Some(n),
        Some(_) => None,
    }
}

/// `/proc/self/statm` is "size resident shared text lib data dt", in pages.
pub fn parse_statm_resident(statm: &str) -> Option<u64> {
    statm.split_whitespace().nth(1)?.parse().ok()
}

/// A cgroup memory limit file: a number of bytes, or `max` (v2) for none.
pub fn parse_cgroup_limit(text: &str) -> Option<u64> {
    let t = text.trim();
    if t == "max" {
        return None;
    }
    t.parse().ok()
}

/// The memory limit of the cgroup this process runs in (v2, else v1), if it has one.
///
/// `/proc/self/cgroup` names the group; inside a container the group's own directory is
/// usually mounted as the root, so the root is tried after the named path.
fn cgroup_memory_limit() -> Option<u64> {
    let groups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let read = |p: String| std::fs::read_to_string(p).ok().and_then(|t| parse_cgroup_limit(&t));
    for line in groups.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let path = path.trim_end_matches('/');
        if controllers.is_empty() {
            if let Some(l) =
                read(format!("/sys/fs/cgroup{path}/memory.max")).or_else(|| read("/sys/fs/cgroup/memory.max".into()))
            {
                return Some(l);
            }
        } else if controllers.split(',').any(|c| c == "memory") {
            let v1 = |p: &str| read(format!("/sys/fs/cgroup/memory{p}/memory.limit_in_bytes"));
            if let Some(l) = v1(path).or_else(|| v1("")) {
                return Some(l);
            }
        }
    }
    None
}

#[cfg(target_os = "linux")]
fn page_size() -> Option<u64> {
    // SAFETY: sysconf only reads a system constant.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    (n > 0).then_some(n as u64)
}

#[cfg(not(target_os = "linux"))]
fn page_size() -> Option<u64> {
    None
}

#[cfg(unix)]
fn statvfs_available(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: `path` is a NUL-terminated string that outlives the call; statvfs only writes
    // the struct it is given.
    let st = unsafe {
        let mut st = std::mem::zeroed::<libc::statvfs>();
        if libc::statvfs(path.as_ptr(), &mut st) != 0 {
            return None;
        }
        st
    };
    // Blocks available to unprivileged users, in fragment-size units (what df's "Available" is).
    (st.f_bavail as u64).checked_mul(st.f_frsize as u64)
}

#[cfg(not(unix))]
fn statvfs_available(_dir: &Path) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let meminfo = "MemTotal:       16318076 kB\nMemFree:         1234567 kB\n";
        assert_eq!(parse_meminfo_total(meminfo), Some(16_318_076 * 1024));
        assert_eq!(parse_meminfo_total("MemFree: 1 kB\n"), None);
        assert_eq!(parse_statm_resident("123456 7890 456 12 0 3456 0\n"), Some(7890));
        assert_eq!(parse_statm_resident(""), None);
        assert_eq!(parse_cgroup_limit("max\n"), None);
        assert_eq!(parse_cgroup_limit("536870912\n"), Some(512 << 20));
        assert_eq!(parse_cgroup_limit("garbage"), None);
    }

    /// On the test machine itself every figure is there and plausible.
    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_system() {
        let total = System.total_memory().expect("total memory");
        let used = System.used_memory().expect("resident memory");
        assert!(used > 0 && used < total, "used {used} of {total}");
        let free = System.disk_free(&std::env::temp_dir()).expect("free disk space");
        assert!(free > 0);
        assert_eq!(System.disk_free(Path::new("/no/such/dir/for/warren")), None);
    }
}
