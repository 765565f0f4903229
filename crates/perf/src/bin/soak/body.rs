//! Message bodies: the id (8 bytes) and the length (4), then a pattern the id determines, so a
//! consumer can tell a body that was cut, mixed up or corrupted on the way (in the log, say).
const HEADER: usize = 12;

pub fn make(id: u64, len: usize) -> Vec<u8> {
    let len = len.max(HEADER);
    let mut b = Vec::with_capacity(len);
    b.extend_from_slice(&id.to_be_bytes());
    b.extend_from_slice(&(len as u32).to_be_bytes());
    b.extend((HEADER..len).map(|i| pattern(id, i)));
    b
}

/// The id, if the body is intact.
pub fn check(body: &[u8]) -> Option<u64> {
    let id = u64::from_be_bytes(body.get(..8)?.try_into().ok()?);
    let len = u32::from_be_bytes(body.get(8..HEADER)?.try_into().ok()?) as usize;
    let intact = len == body.len() && body.iter().enumerate().skip(HEADER).all(|(i, &b)| b == pattern(id, i));
    intact.then_some(id)
}

fn pattern(id: u64, i: usize) -> u8 {
    (id as usize).wrapping_mul(31).wrapping_add(i) as u8
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips_and_catches_damage() {
        let b = super::make(123_456, 300);
        assert_eq!(b.len(), 300);
        assert_eq!(super::check(&b), Some(123_456));
        let mut bad = b.clone();
        bad[200] ^= 1;
        assert_eq!(super::check(&bad), None);
        assert_eq!(super::check(&b[..299]), None, "cut short");
        assert_eq!(super::check(&b[..5]), None);
        assert_eq!(super::check(&super::make(7, 0)), Some(7));
    }
}
