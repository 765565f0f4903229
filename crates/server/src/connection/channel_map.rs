//! The map from channel number to channel state, looked up for every frame.
//!
//! std's default SipHash cost ~4% of broker CPU in the transient benchmark (three lookups per
//! published message: method, header and body frames). A channel number is a small integer
//! chosen by the client, so it needs no protection against hash flooding: a multiplicative
//! (Fibonacci) hash spreads it over the high bits that hashbrown uses for its control bytes.
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

pub type ChannelMap<V> = HashMap<u16, V, BuildHasherDefault<ChannelIdHasher>>;

#[derive(Default)]
pub struct ChannelIdHasher(u64);

impl Hasher for ChannelIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only u16 keys reach this hasher; this path exists to satisfy the trait.
        for &b in bytes {
            self.0 = (self.0 << 8 | b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u16(&mut self, n: u16) {
        self.0 = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn neighbouring_channels_differ_in_the_high_bits() {
        let b = BuildHasherDefault::<ChannelIdHasher>::default();
        let top7 = |n: u16| b.hash_one(n) >> 57;
        let distinct: std::collections::HashSet<u64> = (1..=64).map(top7).collect();
        assert!(distinct.len() > 32, "only {} distinct control values for 64 channels", distinct.len());
    }

    #[test]
    fn works_as_a_map() {
        let mut m = ChannelMap::default();
        for n in 0..=2047u16 {
            m.insert(n, n);
        }
        assert!((0..=2047u16).all(|n| m.get(&n) == Some(&n)));
        assert_eq!(m.len(), 2048);
    }
}
