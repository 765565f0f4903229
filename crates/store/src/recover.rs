//! Reading durable state back at start.
use crate::index::{Index, SegInfo};
use crate::meta::{BindingRow, ExchangeRow, QueueRow};
use crate::segment::{self, Removed};
use crate::{keys, StoreError};
use std::collections::HashMap;
use warren_broker::queue::RecoveredState;
use warren_broker::Recovered;

/// Reads metadata, indexes each durable queue's stored segments and counts their unsettled
/// messages. Entries of queues that no longer exist are removed. (Paged transient messages
/// were in spill files, which the store empties at every start: RabbitMQ drops transient
/// messages on restart too.) A record that does not parse is logged and skipped: a
/// damaged entry never stops the broker from starting.
pub(crate) fn recover(meta: &sled::Tree, persistent: &sled::Tree) -> Result<(Recovered, Index), StoreError> {
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
    let queue_at: HashMap<u64, usize> = r.queues.iter().enumerate().map(|(i, (m, _))| (m.id, i)).collect();
    let mut index = Index::default();
    let mut drop_keys = Vec::new();
    for item in persistent.iter() {
        let (k, v) = item?;
        if let Some((qid, first)) = keys::parse_entry(&k).filter(|(q, _)| queue_at.contains_key(q)) {
            match segment::declared_count(&v) {
                Some(count) if count > 0 => index.insert(qid, first, SegInfo { count, removed: Removed::default() }),
                _ => {
                    tracing::error!(queue_id = qid, first, "unreadable segment header: segment dropped");
                    drop_keys.push(k);
                }
            }
        } else if let Some((qid, first)) = keys::parse_acks(&k) {
            // Sorted right after its segment, which is therefore already indexed (or gone).
            match index.get_mut(qid, first) {
                Some(info) => info.removed = Removed::from_bytes(&v, info.count),
                None => drop_keys.push(k),
            }
        } else {
            // A queue that no longer exists, or a key of no known shape.
            drop_keys.push(k);
        }
    }
    for (&qid, &i) in &queue_at {
        let Some(segs) = index.queue(qid) else { continue };
        let s = &mut r.queues[i].1;
        let mut empty = Vec::new();
        for (&first, info) in segs {
            if info.live() == 0 {
                empty.push(first);
                continue;
            }
            if s.count == 0 {
                s.first_seq = first + (0..info.count).find(|o| !info.removed.get(*o)).unwrap_or(0) as u64;
            }
            s.count += info.live() as usize;
            s.last_seq = first + info.count as u64 - 1;
        }
        for first in empty {
            index.remove(qid, first);
            drop_keys.extend([keys::entry(qid, first).as_slice().into(), keys::acks(qid, first).as_slice().into()]);
        }
    }
    if !drop_keys.is_empty() {
        tracing::info!(count = drop_keys.len(), "removing stored entries of deleted queues and settled segments");
        for k in drop_keys {
            persistent.remove(k)?;
        }
    }
    for (m, s) in &mut r.queues {
        s.delivered_upto = delivered.get(&m.id).copied().unwrap_or(0);
    }
    Ok((r, index))
}
