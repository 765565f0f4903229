//! Broker configuration: embedded defaults, then `rabbitmq.toml`, then command-line flags.
//!
//! Every key has a default, so a missing file (or an empty one) runs the broker exactly as
//! RabbitMQ runs out of the box: guest/guest on vhost `/`, AMQP on 5672 on every address.
use crate::alarm::{DiskFreeLimit, MemoryWatermark};
pub use crate::limit::Limit;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Errors from reading or checking the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// One user allowed to log in. Later issues move users into the metadata store.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    pub password: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// The whole configuration. Field names are the keys of `rabbitmq.toml`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// AMQP listeners. The default binds 5672 on every IPv4 and every IPv6 address.
    pub amqp_listen: Vec<SocketAddr>,
    /// Management HTTP listener (served from a later issue; reserved here).
    pub mgmt_listen: SocketAddr,
    /// Where durable state lives.
    pub data_dir: PathBuf,
    /// Virtual hosts created at start.
    pub vhosts: Vec<String>,
    /// Users allowed to log in (PLAIN and AMQPLAIN).
    pub users: Vec<UserConfig>,
    /// Heartbeat interval the server proposes in connection.tune, seconds (0 disables).
    pub heartbeat: u16,
    /// Largest frame the server accepts, bytes, proposed in connection.tune.
    pub frame_max: u32,
    /// Channels a connection may have open at once, proposed in connection.tune.
    pub channel_max: u16,
    /// Largest message body accepted, bytes (RabbitMQ's `max_message_size`).
    pub max_message_size: u64,
    /// Per-connection limit on encoded outbound bytes waiting for the socket; past it the
    /// broker stops reading from that connection until the peer catches up.
    pub max_outbound_buffer: usize,
    /// A queue that has consumers and more ready messages than this makes its publishers
    /// pause reading (TCP back-pressure) until it drains below half of it.
    pub queue_flow_threshold: usize,
    /// Bytes of ready messages one queue keeps in memory; the rest is paged to disk.
    pub queue_memory_window: usize,
    /// Bytes of ready messages all queues together keep in memory before paging.
    pub memory_limit: usize,
    /// Bytes of the store's page cache (sled).
    pub store_cache: u64,
    /// Bytes at which a message log segment file stops taking records (RabbitMQ's message store
    /// file size, `msg_store_file_size_limit`). Segments are zero-filled to this size when
    /// created, so that syncs do not grow the file.
    pub msg_store_file_size_limit: u64,

    // Limits and timeouts (RabbitMQ's names, units and defaults).
    /// Milliseconds a client has from connecting to connection.open-ok; then the socket is
    /// closed without a word, as RabbitMQ does.
    pub handshake_timeout: u64,
    /// Connections the node accepts at once (`"infinity"`: no limit). Counted from accept;
    /// checked at connection.open, which is refused with 530 past it.
    pub connection_max: Limit,
    /// Milliseconds a delivery may stay unacknowledged before its channel is closed with
    /// 406 (`"infinity"`: never).
    pub consumer_timeout: Limit,
    /// Largest frame accepted before tune-ok has set frame_max, bytes: bounds what a client
    /// can make the broker buffer and parse (client properties, SASL response) before it
    /// has logged in.
    pub initial_frame_max: u32,

    // Resource alarms (memory and disk watermarks, connection.blocked).
    /// Memory the broker may use before publishing connections are blocked.
    pub vm_memory_high_watermark: MemoryWatermark,
    /// Milliseconds between checks of the broker's memory use.
    pub memory_monitor_interval: u64,
    /// Free space `data_dir`'s file system must keep before publishing connections are blocked.
    pub disk_free_limit: DiskFreeLimit,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            amqp_listen: vec!["0.0.0.0:5672".parse().unwrap(), "[::]:5672".parse().unwrap()],
            mgmt_listen: "0.0.0.0:15672".parse().unwrap(),
            data_dir: PathBuf::from("./data"),
            vhosts: vec!["/".into()],
            users: vec![UserConfig {
                name: "guest".into(),
                password: "guest".into(),
                tags: vec!["administrator".into()],
            }],
            heartbeat: 60,
            frame_max: 131_072,
            channel_max: 2047,
            max_message_size: 128 * 1024 * 1024,
            max_outbound_buffer: 4 * 1024 * 1024,
            queue_flow_threshold: 50_000,
            queue_memory_window: 16 * 1024 * 1024,
            memory_limit: 256 * 1024 * 1024,
            store_cache: 64 * 1024 * 1024,
            msg_store_file_size_limit: 16 * 1024 * 1024,

            // Limits and timeouts.
            handshake_timeout: 10_000,
            connection_max: Limit::Infinity,
            consumer_timeout: Limit::Value(1_800_000),
            initial_frame_max: 4096,

            // Resource alarms.
            vm_memory_high_watermark: MemoryWatermark::default(),
            memory_monitor_interval: crate::alarm::settings::DEFAULT_MEMORY_MONITOR_INTERVAL,
            disk_free_limit: DiskFreeLimit::default(),
        }
    }
}

impl Config {
    /// Defaults for in-process tests: loopback only, an ephemeral port, a fresh data
    /// directory under the system temp dir (the caller removes it).
    pub fn for_tests() -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "warren-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        Config {
            amqp_listen: vec!["127.0.0.1:0".parse().unwrap()],
            mgmt_listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir,
            store_cache: 8 * 1024 * 1024,
            // Every test broker zero-fills a segment and a spare: keep that small.
            msg_store_file_size_limit: 1024 * 1024,
            ..Config::default()
        }
    }

    /// Reads `path`. Keys not in the file keep their defaults; unknown keys are an error.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        Self::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse { path: path.into(), source },
            other => other,
        })
    }

    /// Parses TOML text and checks it.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Config =
            toml::from_str(text).map_err(|source| ConfigError::Parse { path: PathBuf::new(), source })?;
        config.validate()?;
        Ok(config)
    }

    /// Rejects values the broker cannot run with.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.amqp_listen.is_empty() {
            return Err(ConfigError::Invalid("amqp_listen needs at least one address".into()));
        }
        // 4096 is the spec's frame_min_size; smaller cannot carry a connection.start.
        if self.frame_max < 4096 {
            return Err(ConfigError::Invalid("frame_max must be at least 4096".into()));
        }
        if self.msg_store_file_size_limit < 64 * 1024 || self.msg_store_file_size_limit > u32::MAX as u64 {
            return Err(ConfigError::Invalid("msg_store_file_size_limit must be between 65536 and 4294967295".into()));
        }
        if self.channel_max == 0 {
            return Err(ConfigError::Invalid("channel_max must be at least 1".into()));
        }
        if self.vhosts.is_empty() {
            return Err(ConfigError::Invalid("vhosts needs at least one virtual host".into()));
        }
        if self.users.is_empty() {
            return Err(ConfigError::Invalid("users needs at least one user".into()));
        }
        if self.initial_frame_max < 4096 {
            return Err(ConfigError::Invalid("initial_frame_max must be at least 4096".into()));
        }
        if self.handshake_timeout == 0 {
            return Err(ConfigError::Invalid("handshake_timeout must be at least 1 (milliseconds)".into()));
        }
        if self.consumer_timeout == Limit::Value(0) {
            return Err(ConfigError::Invalid(
                "consumer_timeout must be at least 1 (milliseconds), or \"infinity\" to disable it".into(),
            ));
        }
        // Resource alarms.
        self.vm_memory_high_watermark.check().map_err(ConfigError::Invalid)?;
        self.disk_free_limit.check().map_err(ConfigError::Invalid)?;
        if self.memory_monitor_interval == 0 {
            return Err(ConfigError::Invalid("memory_monitor_interval must be at least 1 (milliseconds)".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
    }

    #[test]
    fn the_shipped_rabbitmq_toml_is_the_defaults() {
        let shipped = include_str!("../../../rabbitmq.toml");
        assert_eq!(Config::from_toml(shipped).unwrap(), Config::default());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        assert!(matches!(Config::from_toml("no_such_key = 1"), Err(ConfigError::Parse { .. })));
        assert!(matches!(Config::from_toml("frame_max = 10"), Err(ConfigError::Invalid(_))));
        assert!(matches!(Config::from_toml("heartbeat = \"x\""), Err(ConfigError::Parse { .. })));
    }

    #[test]
    fn limits_take_integers_or_infinity() {
        let c =
            Config::from_toml("connection_max = 5\nconsumer_timeout = \"infinity\"\nhandshake_timeout = 250").unwrap();
        assert_eq!(
            (c.connection_max, c.consumer_timeout, c.handshake_timeout),
            (Limit::Value(5), Limit::Infinity, 250)
        );
        assert!(matches!(Config::from_toml("handshake_timeout = 0"), Err(ConfigError::Invalid(_))));
        assert!(matches!(Config::from_toml("consumer_timeout = 0"), Err(ConfigError::Invalid(_))));
        assert!(matches!(Config::from_toml("connection_max = -1"), Err(ConfigError::Parse { .. })));
        assert!(matches!(Config::from_toml("initial_frame_max = 4095"), Err(ConfigError::Invalid(_))));
    }

    /// The heartbeat travels as a 16-bit field in connection.tune: a larger value cannot be
    /// proposed, so it is a config error rather than silently truncated.
    #[test]
    fn heartbeat_is_bounded_by_its_wire_type() {
        assert_eq!(Config::from_toml("heartbeat = 65535").unwrap().heartbeat, 65535);
        assert!(matches!(Config::from_toml("heartbeat = 65536"), Err(ConfigError::Parse { .. })));
        assert!(matches!(Config::from_toml("heartbeat = -1"), Err(ConfigError::Parse { .. })));
    }

    #[test]
    fn alarm_thresholds_read_as_in_rabbitmq_conf_and_are_checked() {
        let c = Config::from_toml(
            "vm_memory_high_watermark.absolute = \"2GiB\"\nmemory_monitor_interval = 1000\n\
             disk_free_limit.relative = 1.5",
        )
        .unwrap();
        assert_eq!(c.vm_memory_high_watermark, MemoryWatermark::Absolute(2 << 30));
        assert_eq!(c.memory_monitor_interval, 1000);
        assert_eq!(c.disk_free_limit, DiskFreeLimit::Relative(1.5));
        let invalid = |t: &str| matches!(Config::from_toml(t), Err(ConfigError::Invalid(_)));
        assert!(invalid("vm_memory_high_watermark.relative = 1.2"));
        assert!(invalid("disk_free_limit.relative = -1.0"));
        assert!(invalid("memory_monitor_interval = 0"));
        let parse_error = |t: &str| matches!(Config::from_toml(t), Err(ConfigError::Parse { .. }));
        assert!(parse_error("disk_free_limit.absolute = \"50 MB\""));
        assert!(parse_error("vm_memory_high_watermark = 0.4"), "the bare RabbitMQ 3.x classic-config form");
    }
}
