//! Reading durable state back at start.
use crate::meta::{BindingRow, ExchangeRow, QueueRow};
use crate::{keys, StoreError};
use std::collections::HashMap;
use warren_broker::queue::RecoveredState;
use warren_broker::Recovered;

/// Reads metadata and counts each durable queue's stored messages. Paged transient
/// messages are dropped (RabbitMQ drops transient messages on restart), and so are entries
/// of queues that no longer exist. A record that does not parse is logged and skipped: a
/// damaged entry never stops the broker from starting.
pub(crate) fn recover(meta: &sled::Tree, persistent: &sled::Tree, paged: &sled::Tree) -> Result<Recovered, StoreError> {
    paged.clear()?;
    let mut r = Recovered::default();
    let mut delivered: HashMap<u64, u64> = HashMap::new();
    for item in meta.iter() {
        let (k, v) = item?;
        let parse_err =
            |what: &str| tracing::error!(key = %String::from_utf8_lossy(&k), "unreadable {what} record skipped");
        match &k[..2] {
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
            b"d/" => {
                if let (Ok(id), Ok(seq)) =
                    (k[2..].try_into().map(u64::from_be_bytes), v.as_ref().try_into().map(u64::from_be_bytes))
                {
                    delivered.insert(id, seq);
                }
            }
            _ => parse_err("unknown"),
        }
    }
    let index: HashMap<u64, usize> = r.queues.iter().enumerate().map(|(i, (m, _))| (m.id, i)).collect();
    let mut orphans = Vec::new();
    for k in persistent.iter().keys() {
        let k = k?;
        let Some((qid, seq)) = keys::parse_entry(&k) else {
            orphans.push(k);
            continue;
        };
        match index.get(&qid) {
            Some(&i) => {
                let s = &mut r.queues[i].1;
                if s.count == 0 {
                    s.first_seq = seq;
                }
                s.count += 1;
                s.last_seq = seq;
            }
            None => orphans.push(k),
        }
    }
    if !orphans.is_empty() {
        tracing::warn!(count = orphans.len(), "removing stored messages of queues that no longer exist");
        for k in orphans {
            persistent.remove(k)?;
        }
    }
    for (m, s) in &mut r.queues {
        s.delivered_upto = delivered.get(&m.id).copied().unwrap_or(0);
    }
    Ok(r)
}
