//! consumer_timeout: a delivery left unacknowledged too long closes its channel (RabbitMQ 3.10+).
//!
//! RabbitMQ stamps each delivery with the time and checks the oldest on a periodic tick. Here
//! the connection ticks every channel on a timer, each tick advances the channel's counter, and
//! a delivery is stamped with the counter, not the time: no clock read per message. A delivery
//! made between ticks `e` and `e + 1` is at least `(E - e - 1) * tick` old at tick `E` (timers
//! fire late, never early), so it is declared timed out once `E - e > ticks`, where `ticks *
//! tick >= timeout`: never before the timeout, and at most two ticks after it.
use crate::channel::Channel;
use std::time::Duration;
use warren_codec::{AmqpError, ReplyCode};

/// The check's period for a timeout: a quarter of it, within [10 ms, 1 min]. RabbitMQ checks
/// once a minute; a quarter keeps short test timeouts close to their value.
const TICK_MIN_MS: u64 = 10;
const TICK_MAX_MS: u64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerTimeout {
    /// The configured timeout, milliseconds (quoted in the error text).
    pub timeout_ms: u64,
    /// How often the connection calls [`Channel::consumer_timeout_tick`].
    pub tick: Duration,
    /// Whole ticks that cover the timeout.
    ticks: u32,
}

impl ConsumerTimeout {
    pub fn new(timeout_ms: u64) -> Self {
        let tick_ms = (timeout_ms / 4).clamp(TICK_MIN_MS, TICK_MAX_MS);
        let ticks = u32::try_from(timeout_ms.div_ceil(tick_ms)).unwrap_or(u32::MAX - 1);
        ConsumerTimeout { timeout_ms, tick: Duration::from_millis(tick_ms), ticks }
    }

    /// RabbitMQ's channel exception, word for word (no failing method: 0/0).
    pub fn error(&self, channel: u16) -> AmqpError {
        AmqpError::new(
            ReplyCode::PreconditionFailed,
            format!(
                "delivery acknowledgement on channel {channel} timed out. Timeout value used: {} ms. \
                 This timeout value can be configured, see consumers doc guide to learn more",
                self.timeout_ms
            ),
        )
    }
}

impl Channel {
    /// One tick of the connection's consumer-timeout timer. Returns true when the oldest
    /// unacknowledged delivery has outlived the timeout (the caller closes the channel).
    pub fn consumer_timeout_tick(&mut self, t: &ConsumerTimeout) -> bool {
        self.timeout_ticks = self.timeout_ticks.wrapping_add(1);
        self.unacked.oldest_stamp().is_some_and(|stamp| self.timeout_ticks.wrapping_sub(stamp) > t.ticks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_is_a_quarter_within_bounds_and_ticks_cover_the_timeout() {
        for ms in [1, 9, 10, 40, 100, 1000, 1_800_000, 3_600_000, 100_000_000_000] {
            let t = ConsumerTimeout::new(ms);
            let tick = t.tick.as_millis() as u64;
            assert!((TICK_MIN_MS..=TICK_MAX_MS).contains(&tick), "{ms}: tick {tick}");
            assert!(t.ticks as u64 * tick >= ms, "{ms}: {} ticks of {tick} ms", t.ticks);
        }
        assert_eq!(ConsumerTimeout::new(1000).tick, Duration::from_millis(250));
        assert_eq!(ConsumerTimeout::new(1_800_000).tick, Duration::from_secs(60), "RabbitMQ's one minute");
        assert_eq!(ConsumerTimeout::new(1_800_000).ticks, 30);
    }

    #[test]
    fn error_is_rabbitmqs() {
        let e = ConsumerTimeout::new(1_800_000).error(1);
        assert_eq!(e.code, ReplyCode::PreconditionFailed);
        assert_eq!((e.class_id, e.method_id), (0, 0));
        assert_eq!(
            e.text,
            "PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out. Timeout value used: 1800000 ms. \
             This timeout value can be configured, see consumers doc guide to learn more"
        );
    }

    #[test]
    fn an_idle_channel_never_times_out() {
        let t = ConsumerTimeout::new(40);
        let mut ch = Channel::new(1);
        assert!((0..1000).all(|_| !ch.consumer_timeout_tick(&t)));
    }
}
