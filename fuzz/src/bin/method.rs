//! AFL target `method`: see `warren_fuzz::method`.
fn main() {
    afl::fuzz!(|data: &[u8]| warren_fuzz::method(data));
}
