//! Server-generated names (`amq.gen-…` queues, `amq.ctag-…` consumer tags) and name checks.
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// 22 URL-safe base64 characters of 128 unpredictable bits, the shape RabbitMQ uses.
fn random_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded per process from the OS; mixing a counter makes each call unique.
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let word = |salt: u64| {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_u64(salt);
        h.finish()
    };
    let bits = ((word(1) as u128) << 64) | word(2) as u128;
    (0..22).map(|i| ALPHABET[((bits >> (i * 6)) & 63) as usize] as char).collect()
}

pub fn generated_queue_name() -> String {
    format!("amq.gen-{}", random_suffix())
}

pub fn generated_consumer_tag() -> String {
    format!("amq.ctag-{}", random_suffix())
}

/// Names starting with `amq.` are reserved for the broker (RabbitMQ: 403 on declare).
pub fn is_reserved(name: &str) -> bool {
    name.starts_with("amq.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_have_rabbitmq_shape_and_differ() {
        let a = generated_queue_name();
        let b = generated_queue_name();
        assert!(a.starts_with("amq.gen-") && a.len() == 8 + 22, "{a}");
        assert_ne!(a, b);
        assert!(generated_consumer_tag().starts_with("amq.ctag-"));
    }
}
