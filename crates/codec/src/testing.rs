//! Inputs the codec must refuse, for tests in the crates above it (feature `testing`; the
//! codec's own unit tests use it too).

/// A field table, with its length prefix, holding `depth` tables nested one inside the other
/// (each under key "a"): the shape that overflowed amq-protocol's recursive parser.
pub fn nested_table(depth: usize) -> Vec<u8> {
    let mut t = 0u32.to_be_bytes().to_vec();
    for _ in 0..depth {
        let mut entry = vec![1, b'a', b'F'];
        entry.extend_from_slice(&t);
        t = (entry.len() as u32).to_be_bytes().to_vec();
        t.extend_from_slice(&entry);
    }
    t
}
