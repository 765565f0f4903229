//! AFL target `frame`: see `warren_fuzz::frame`.
fn main() {
    afl::fuzz!(|data: &[u8]| warren_fuzz::frame(data));
}
