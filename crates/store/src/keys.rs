//! Key layouts in the sled trees.

/// Segment key: queue id then the segment's first sequence number, both big-endian, so a
/// queue's segments are contiguous and ordered by sequence number.
pub fn entry(queue_id: u64, seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&queue_id.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

pub fn parse_entry(k: &[u8]) -> Option<(u64, u64)> {
    if k.len() != 16 {
        return None;
    }
    Some((u64::from_be_bytes(k[..8].try_into().ok()?), u64::from_be_bytes(k[8..].try_into().ok()?)))
}

/// The settled-messages bitmap of a segment sorts right after the segment itself.
pub fn acks(queue_id: u64, first: u64) -> [u8; 17] {
    let mut k = [b'a'; 17];
    k[..16].copy_from_slice(&entry(queue_id, first));
    k
}

pub fn parse_acks(k: &[u8]) -> Option<(u64, u64)> {
    match k {
        [seg @ .., b'a'] if seg.len() == 16 => parse_entry(seg),
        _ => None,
    }
}

pub fn vhost(name: &str) -> Vec<u8> {
    [b"v/", name.as_bytes()].concat()
}

pub fn exchange(vhost: &str, name: &str) -> Vec<u8> {
    [b"e/", vhost.as_bytes(), b"\0", name.as_bytes()].concat()
}

pub fn queue(vhost: &str, name: &str) -> Vec<u8> {
    [b"q/", vhost.as_bytes(), b"\0", name.as_bytes()].concat()
}

pub fn binding_prefix(vhost: &str) -> Vec<u8> {
    [b"b/", vhost.as_bytes(), b"\0"].concat()
}

/// A binding is identified by all its parts; the arguments go in as their JSON text.
pub fn binding(vhost: &str, source: &str, dest_is_exchange: bool, dest: &str, key: &str, args_json: &str) -> Vec<u8> {
    let kind: &[u8] = if dest_is_exchange { b"e" } else { b"q" };
    [
        binding_prefix(vhost).as_slice(),
        source.as_bytes(),
        b"\0",
        kind,
        b"\0",
        dest.as_bytes(),
        b"\0",
        key.as_bytes(),
        b"\0",
        args_json.as_bytes(),
    ]
    .concat()
}

pub fn delivered(queue_id: u64) -> Vec<u8> {
    [b"d/".as_slice(), &queue_id.to_be_bytes()].concat()
}
