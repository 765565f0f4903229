//! A small seeded generator (xorshift64): the run prints its seed, so a failing mix can be
//! replayed with `--seed`.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut s = self.0;
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        self.0 = s;
        s
    }

    /// Uniform enough in `0..n` for picking actions (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A new generator for a task, so tasks do not share one.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }
}
