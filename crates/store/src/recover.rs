//! Reading durable state back at start: metadata from sled, and each durable queue's part
//! of the message log.
use crate::meta::{BindingRow, ExchangeRow, QueueRow};
use crate::StoreError;
use warren_broker::queue::RecoveredState;
use warren_broker::Recovered;

/// Reads the metadata records. A record that does not parse is logged and skipped: a damaged
/// entry never stops the broker from starting.
pub(crate) fn metadata(meta: &sled::Tree) -> Result<Recovered, StoreError> {
    let mut r = Recovered::default();
    for item in meta.iter() {
        let (k, v) = item?;
        let parse_err =
            |what: &str| tracing::error!(key = %String::from_utf8_lossy(&k), "unreadable {what} record skipped");
        match k.get(..2).unwrap_or_default() {
            b"v/" => r.vhosts.push(String::from_utf8_lossy(&k[2..]).into_owned()),
            b"e/" => match serde_json::from_slice::<ExchangeRow>(&v).ok().and_then(ExchangeRow::into_meta) {
                Some(m) => r.exchanges.push(m),
                None => parse_err("exchange"),
            },
            b"q/" => match serde_json::from_slice::<QueueRow>(&v) {
                Ok(q) => r.queues.push((q.into_meta(), RecoveredState::default())),
                Err(_) => parse_err("queue"),
            },
            b"b/" => match serde_json::from_slice::<BindingRow>(&v) {
                Ok(b) => r.bindings.push(b.into_record()),
                Err(_) => parse_err("binding"),
            },
            // Delivered marks of the sled segment store, moved into the log by `migrate`.
            b"d/" => {}
            _ => parse_err("unknown"),
        }
    }
    Ok(r)
}

/// Fills in each queue's stored messages from the log.
pub(crate) fn queues(r: &mut Recovered, log: &warren_log::Log<crate::record::Entry>) {
    for (m, s) in &mut r.queues {
        if let Some(q) = log.summary(m.id) {
            *s = RecoveredState { count: q.live, first_seq: q.first_seq, last_seq: q.max_seq, delivered_upto: q.mark };
        }
    }
}
