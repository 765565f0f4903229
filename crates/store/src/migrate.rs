//! A one-time move of a data directory written by the sled segment store (Warren before
//! the message log) into the log.
//!
//! That store kept persistent messages in sled's `persistent` tree: one value per write
//! group and queue, key = queue id ‖ first seq (16 bytes, big-endian), value = `[count u32
//! BE]` then `[len u32 BE][record]` per message (the record format is unchanged, see
//! [`crate::record`]); beside it, key ‖ `a`, a little-endian bitmap of settled offsets.
//! Delivered marks were `d/` ‖ queue id keys in `meta`. At start, whatever is there is
//! appended to the log and committed, and only then removed from sled and flushed: a crash
//! in between migrates again, and recovery settles the duplicates.
use crate::record::Entry;
use warren_log::Log;

/// Moves every unsettled message and delivered mark of the queues `known` into `log`.
pub fn from_sled(
    db: &sled::Db,
    meta: &sled::Tree,
    log: &mut Log<Entry>,
    known: &dyn Fn(u64) -> bool,
) -> sled::Result<()> {
    let persistent = db.open_tree("persistent")?;
    let marks: Vec<(sled::IVec, sled::IVec)> = meta.scan_prefix(b"d/").collect::<Result<_, _>>()?;
    if persistent.is_empty() && marks.is_empty() {
        return Ok(());
    }
    let (mut moved, mut settled) = (0usize, Vec::new());
    let mut current: Option<(u64, u64, Vec<u8>)> = None;
    for item in persistent.iter() {
        let (k, v) = item?;
        if let Some((queue, first)) = parse_entry(&k) {
            // A segment's bitmap sorts right after it, so the segment is held until then.
            if let Some((q, f, seg)) = current.take() {
                moved += append(log, q, f, &seg, &[], known);
            }
            current = Some((queue, first, v.to_vec()));
        } else if let Some((queue, first)) = parse_acks(&k) {
            match current.take() {
                Some((q, f, seg)) if (q, f) == (queue, first) => moved += append(log, q, f, &seg, &v, known),
                other => current = other,
            }
        }
        settled.push(k);
    }
    if let Some((q, f, seg)) = current.take() {
        moved += append(log, q, f, &seg, &[], known);
    }
    for (k, v) in &marks {
        if let (Ok(id), Ok(seq)) =
            (k[2..].try_into().map(u64::from_be_bytes), v.as_ref().try_into().map(u64::from_be_bytes))
        {
            if known(id) {
                log.mark(id, seq);
            }
        }
    }
    log.commit().map_err(sled::Error::Io)?;
    for k in settled {
        persistent.remove(k)?;
    }
    for (k, _) in marks {
        meta.remove(k)?;
    }
    db.flush()?;
    tracing::info!(messages = moved, "migrated persistent messages from the sled segment store into the message log");
    Ok(())
}

/// Appends a segment's unsettled records; returns how many.
fn append(log: &mut Log<Entry>, queue: u64, first: u64, seg: &[u8], acks: &[u8], known: &dyn Fn(u64) -> bool) -> usize {
    if !known(queue) {
        return 0;
    }
    let mut n = 0;
    for (offset, rec) in records(seg).enumerate() {
        if !settled(acks, offset) {
            log.put(queue, first + offset as u64, true, Entry::Encoded(rec.to_vec()));
            n += 1;
        }
    }
    n
}

fn settled(bitmap: &[u8], offset: usize) -> bool {
    bitmap.get(offset / 8).is_some_and(|b| b & (1 << (offset % 8)) != 0)
}

fn parse_entry(k: &[u8]) -> Option<(u64, u64)> {
    if k.len() != 16 {
        return None;
    }
    Some((u64::from_be_bytes(k[..8].try_into().ok()?), u64::from_be_bytes(k[8..].try_into().ok()?)))
}

fn parse_acks(k: &[u8]) -> Option<(u64, u64)> {
    match k {
        [seg @ .., b'a'] if seg.len() == 16 => parse_entry(seg),
        _ => None,
    }
}

/// The records of an old segment value, stopping (logged) at one whose framing is cut.
fn records(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let declared = value.get(..4).map_or(0, |b| u32::from_be_bytes(b.try_into().expect("4 bytes")));
    let mut at = 4usize;
    let mut n = 0u32;
    std::iter::from_fn(move || {
        if n == declared {
            return None;
        }
        let len = value.get(at..at + 4).map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")) as usize);
        match len.and_then(|len| value.get(at + 4..at + 4 + len)) {
            Some(r) => {
                at += 4 + r.len();
                n += 1;
                Some(r)
            }
            None => {
                tracing::error!(declared, readable = n, "truncated segment in the old store: the rest of it is lost");
                n = declared;
                None
            }
        }
    })
}

#[cfg(test)]
pub(crate) mod old_format {
    //! Writes the old layout, for the migration test.
    use crate::record;
    use warren_broker::Message;

    pub fn segment(messages: &[Message]) -> Vec<u8> {
        let mut v = (messages.len() as u32).to_be_bytes().to_vec();
        for m in messages {
            v.extend_from_slice(&(record::encoded_len(m) as u32).to_be_bytes());
            record::encode_into(m, &mut v);
        }
        v
    }

    pub fn entry_key(queue: u64, first: u64) -> Vec<u8> {
        [queue.to_be_bytes(), first.to_be_bytes()].concat()
    }
}
