//! The on-disk framing of one log record.
//!
//! `[len u32][crc u32][kind u8][queue u64][seq u64][payload: len bytes]`, little-endian. The
//! CRC (CRC-32, IEEE) covers everything after itself, so a torn write, a zero-filled tail
//! and a flipped bit all fail the check; `len` is only trusted once the CRC agrees.

/// Bytes before the payload.
pub const HEADER: usize = 25;

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A persistent message: live until settled, survives restarts.
    Persistent = 1,
    /// A transient message paged out of memory: live until read back, dead at restart.
    Transient = 2,
    /// "Every message of the queue up to `seq` has been delivered" (no payload).
    Mark = 3,
}

impl Kind {
    pub fn from_u8(b: u8) -> Option<Kind> {
        match b {
            1 => Some(Kind::Persistent),
            2 => Some(Kind::Transient),
            3 => Some(Kind::Mark),
            _ => None,
        }
    }
}

/// A record header as read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub len: u32,
    pub crc: u32,
    pub kind: u8,
    pub queue: u64,
    pub seq: u64,
}

/// Appends a whole record to `buf`; `payload` writes exactly `len` bytes.
pub fn encode(buf: &mut Vec<u8>, kind: Kind, queue: u64, seq: u64, len: usize, payload: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.reserve(HEADER + len);
    buf.extend_from_slice(&(len as u32).to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.push(kind as u8);
    buf.extend_from_slice(&queue.to_le_bytes());
    buf.extend_from_slice(&seq.to_le_bytes());
    payload(buf);
    debug_assert_eq!(buf.len() - start, HEADER + len, "payload wrote a different length than declared");
    let crc = crc32fast::hash(&buf[start + 8..]);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

pub fn parse_header(b: &[u8]) -> Option<Header> {
    let b = b.get(..HEADER)?;
    let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
    let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    Some(Header { len: u32_at(0), crc: u32_at(4), kind: b[8], queue: u64_at(9), seq: u64_at(17) })
}

/// Whether `record` (header and payload) is whole and its CRC matches.
pub fn verify(h: &Header, record: &[u8]) -> bool {
    record.len() == HEADER + h.len as usize && crc32fast::hash(&record[8..]) == h.crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_damage_is_caught() {
        let mut buf = Vec::new();
        encode(&mut buf, Kind::Persistent, 7, 42, 5, |b| b.extend_from_slice(b"hello"));
        let h = parse_header(&buf).unwrap();
        assert_eq!((h.len, h.kind, h.queue, h.seq), (5, 1, 7, 42));
        assert!(verify(&h, &buf));
        for i in 4..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x10;
            let hb = parse_header(&bad).unwrap();
            assert!(!verify(&hb, &bad), "a flipped bit at {i} must fail the CRC");
        }
        assert!(!verify(&h, &buf[..buf.len() - 1]), "a torn record must fail");
        let zeros = [0u8; HEADER];
        assert!(!verify(&parse_header(&zeros).unwrap(), &zeros), "a zero-filled tail is not a record");
    }
}
