//! AFL target `connection`: see `warren_fuzz::connection`.
fn main() {
    afl::fuzz!(|data: &[u8]| warren_fuzz::connection(data));
}
