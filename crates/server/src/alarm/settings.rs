//! The alarm thresholds as configured: RabbitMQ's `vm_memory_high_watermark` and
//! `disk_free_limit`, their byte units, and how each turns into a limit in bytes.
//!
//! In `rabbitmq.toml` they read as in `rabbitmq.conf`, TOML's dotted keys doing the work:
//! `vm_memory_high_watermark.relative = 0.4` or `vm_memory_high_watermark.absolute = "1GiB"`,
//! `disk_free_limit.absolute = "50MB"` or `disk_free_limit.relative = 1.0`.
use serde::{Deserialize, Deserializer};

/// RabbitMQ's default `vm_memory_high_watermark.relative`.
pub const DEFAULT_MEMORY_WATERMARK: f64 = 0.4;
/// RabbitMQ's default `disk_free_limit.absolute`: 50 MB (decimal, as RabbitMQ counts it).
pub const DEFAULT_DISK_FREE_LIMIT: u64 = 50_000_000;
/// RabbitMQ's default `memory_monitor_interval`, milliseconds.
pub const DEFAULT_MEMORY_MONITOR_INTERVAL: u64 = 2500;

/// How much memory the broker may use before publishers are blocked.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "Choice")]
pub enum MemoryWatermark {
    /// A fraction of the total memory available (0.0 blocks every publish, as in RabbitMQ).
    Relative(f64),
    /// Bytes; capped at the total memory available, as RabbitMQ caps it.
    Absolute(u64),
}

/// How much free disk space `data_dir`'s file system must keep before publishers are blocked.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "Choice")]
pub enum DiskFreeLimit {
    /// Bytes.
    Absolute(u64),
    /// A multiple of the total memory available (RabbitMQ's `mem_relative`).
    Relative(f64),
}

impl Default for MemoryWatermark {
    fn default() -> Self {
        MemoryWatermark::Relative(DEFAULT_MEMORY_WATERMARK)
    }
}

impl Default for DiskFreeLimit {
    fn default() -> Self {
        DiskFreeLimit::Absolute(DEFAULT_DISK_FREE_LIMIT)
    }
}

impl MemoryWatermark {
    /// The limit in bytes for a machine (or cgroup) with `total` bytes of memory.
    pub fn limit(&self, total: u64) -> u64 {
        match *self {
            MemoryWatermark::Relative(f) => (f * total as f64) as u64,
            MemoryWatermark::Absolute(b) => b.min(total),
        }
    }

    /// Rejects fractions RabbitMQ would not run with (it falls back to a default and logs;
    /// a config file with a typo is better refused).
    pub fn check(&self) -> Result<(), String> {
        match *self {
            MemoryWatermark::Relative(f) if !(0.0..=1.0).contains(&f) => {
                Err(format!("vm_memory_high_watermark.relative must be between 0.0 and 1.0, not {f}"))
            }
            _ => Ok(()),
        }
    }
}

impl DiskFreeLimit {
    /// The limit in bytes, given the total memory (for the relative form).
    pub fn limit(&self, total_memory: u64) -> u64 {
        match *self {
            DiskFreeLimit::Absolute(b) => b,
            DiskFreeLimit::Relative(f) => (f * total_memory as f64).round() as u64,
        }
    }

    pub fn check(&self) -> Result<(), String> {
        match *self {
            DiskFreeLimit::Relative(f) if !(f.is_finite() && f >= 0.0) => {
                Err(format!("disk_free_limit.relative must be a non-negative number, not {f}"))
            }
            _ => Ok(()),
        }
    }
}

/// The TOML table: exactly one of `relative` and `absolute`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Choice {
    relative: Option<f64>,
    absolute: Option<Bytes>,
}

impl Choice {
    fn one(self) -> Result<Result<f64, u64>, String> {
        match (self.relative, self.absolute) {
            (Some(r), None) => Ok(Ok(r)),
            (None, Some(Bytes(b))) => Ok(Err(b)),
            (Some(_), Some(_)) => Err("set either `relative` or `absolute`, not both".into()),
            (None, None) => Err("needs `relative` or `absolute`".into()),
        }
    }
}

impl TryFrom<Choice> for MemoryWatermark {
    type Error = String;
    fn try_from(c: Choice) -> Result<Self, String> {
        Ok(c.one()?.map_or_else(MemoryWatermark::Absolute, MemoryWatermark::Relative))
    }
}

impl TryFrom<Choice> for DiskFreeLimit {
    type Error = String;
    fn try_from(c: Choice) -> Result<Self, String> {
        Ok(c.one()?.map_or_else(DiskFreeLimit::Absolute, DiskFreeLimit::Relative))
    }
}

/// A byte count: a TOML integer, or a string with one of RabbitMQ's units.
struct Bytes(u64);

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a number of bytes, or a string such as \"50MB\" or \"1GiB\"")
        })? {
            Raw::Int(n) => Ok(Bytes(n)),
            Raw::Text(s) => parse_information_unit(&s).map(Bytes).map_err(serde::de::Error::custom),
        }
    }
}

/// Parses `"1024"`, `"50MB"`, `"1GiB"`... with the units RabbitMQ's
/// `rabbit_resource_monitor_misc:parse_information_unit` accepts: `k`/`K`/`kiB`/`KiB`/`kib`/
/// `KIB` (1024), the same for `m`…`MiB` and `g`…`GiB`, and the decimal `kB`/`KB`/`kb`/`Kb`
/// (1000), `MB`…, `GB`….
pub fn parse_information_unit(s: &str) -> Result<u64, String> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = s.split_at(digits);
    let bad = || format!("invalid byte size {s:?}: expected digits with an optional unit (kB, MB, GB, kiB, MiB, GiB)");
    let n: u64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match unit {
        "" => 1,
        "k" | "K" | "kiB" | "KiB" | "kib" | "KIB" => 1 << 10,
        "m" | "M" | "MiB" | "mib" | "MIB" => 1 << 20,
        "g" | "G" | "GiB" | "gib" | "GIB" => 1 << 30,
        "kB" | "KB" | "kb" | "Kb" => 1_000,
        "MB" | "mB" | "mb" | "Mb" => 1_000_000,
        "GB" | "gB" | "gb" | "Gb" => 1_000_000_000,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(|| format!("byte size {s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    struct T {
        vm_memory_high_watermark: Option<MemoryWatermark>,
        disk_free_limit: Option<DiskFreeLimit>,
    }

    fn parse(text: &str) -> Result<T, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn units_are_rabbitmqs() {
        assert_eq!(parse_information_unit("1234"), Ok(1234));
        assert_eq!(parse_information_unit("50MB"), Ok(50_000_000));
        assert_eq!(parse_information_unit("2kB"), Ok(2_000));
        assert_eq!(parse_information_unit("3GB"), Ok(3_000_000_000));
        assert_eq!(parse_information_unit("1GiB"), Ok(1 << 30));
        assert_eq!(parse_information_unit("512MiB"), Ok(512 << 20));
        assert_eq!(parse_information_unit("4k"), Ok(4096));
        assert_eq!(parse_information_unit("2G"), Ok(2 << 30));
        for bad in ["", "MB", "1.5GB", "1 GB", "10TB", "-1", "1gigabyte"] {
            assert!(parse_information_unit(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_information_unit("99999999999999999999GB").is_err());
    }

    #[test]
    fn dotted_keys_read_as_in_rabbitmq_conf() {
        let t = parse("vm_memory_high_watermark.relative = 0.6\ndisk_free_limit.absolute = \"2GB\"").unwrap();
        assert_eq!(t.vm_memory_high_watermark, Some(MemoryWatermark::Relative(0.6)));
        assert_eq!(t.disk_free_limit, Some(DiskFreeLimit::Absolute(2_000_000_000)));
        let t = parse("vm_memory_high_watermark.absolute = 1073741824\ndisk_free_limit.relative = 1.5").unwrap();
        assert_eq!(t.vm_memory_high_watermark, Some(MemoryWatermark::Absolute(1 << 30)));
        assert_eq!(t.disk_free_limit, Some(DiskFreeLimit::Relative(1.5)));
        let t = parse("vm_memory_high_watermark.absolute = \"1GiB\"").unwrap();
        assert_eq!(t.vm_memory_high_watermark, Some(MemoryWatermark::Absolute(1 << 30)));
    }

    #[test]
    fn ambiguous_or_malformed_tables_are_errors() {
        let both = parse("vm_memory_high_watermark.relative = 0.4\nvm_memory_high_watermark.absolute = 1").unwrap_err();
        assert!(both.contains("not both"), "{both}");
        let neither = parse("[disk_free_limit]").unwrap_err();
        assert!(neither.contains("needs `relative` or `absolute`"), "{neither}");
        assert!(parse("disk_free_limit.mem_relative = 1.0").is_err());
        assert!(parse("disk_free_limit = 50").is_err());
        let unit = parse("disk_free_limit.absolute = \"50 furlongs\"").unwrap_err();
        assert!(unit.contains("invalid byte size"), "{unit}");
        assert!(parse("vm_memory_high_watermark.absolute = -5").is_err());
    }

    #[test]
    fn out_of_range_fractions_fail_the_check() {
        assert!(MemoryWatermark::Relative(0.0).check().is_ok());
        assert!(MemoryWatermark::Relative(1.0).check().is_ok());
        assert!(MemoryWatermark::Relative(1.5).check().is_err());
        assert!(MemoryWatermark::Relative(-0.1).check().is_err());
        assert!(MemoryWatermark::Relative(f64::NAN).check().is_err());
        assert!(DiskFreeLimit::Relative(2.0).check().is_ok());
        assert!(DiskFreeLimit::Relative(-1.0).check().is_err());
        assert!(DiskFreeLimit::Relative(f64::INFINITY).check().is_err());
    }

    #[test]
    fn limits_in_bytes() {
        let gib = 1u64 << 30;
        assert_eq!(MemoryWatermark::Relative(0.4).limit(10 * gib), 4 * gib);
        assert_eq!(MemoryWatermark::Relative(0.0).limit(10 * gib), 0);
        // An absolute watermark above the memory there is means all of it (RabbitMQ: min).
        assert_eq!(MemoryWatermark::Absolute(64 * gib).limit(8 * gib), 8 * gib);
        assert_eq!(MemoryWatermark::Absolute(1).limit(8 * gib), 1);
        assert_eq!(DiskFreeLimit::Absolute(50_000_000).limit(8 * gib), 50_000_000);
        assert_eq!(DiskFreeLimit::Relative(1.5).limit(2 * gib), 3 * gib);
    }
}
