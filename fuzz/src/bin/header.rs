//! AFL target `header`: see `warren_fuzz::header`.
fn main() {
    afl::fuzz!(|data: &[u8]| warren_fuzz::header(data));
}
