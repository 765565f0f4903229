//! The connection's side of consumer_timeout: on each tick of its timer, every open channel
//! checks its oldest unacknowledged delivery, and those past the timeout are closed with 406
//! (their unacked messages requeued, as on any channel close).
use super::{Connection, Transport};
use warren_channel::ConsumerTimeout;

impl<S: Transport> Connection<S> {
    pub(super) fn check_consumer_timeouts(&mut self, t: &ConsumerTimeout) {
        let expired: Vec<u16> = self
            .channels
            .iter_mut()
            .filter(|(_, slot)| !slot.closing)
            .filter_map(|(&ch, slot)| slot.chan.consumer_timeout_tick(t).then_some(ch))
            .collect();
        for ch in expired {
            tracing::warn!(peer = %self.peer, conn = self.ctx.id, channel = ch, timeout_ms = t.timeout_ms,
                "consumer timed out waiting for delivery acknowledgement");
            self.channel_error(ch, t.error(ch));
        }
    }
}
