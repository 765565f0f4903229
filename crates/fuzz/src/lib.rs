//! Warren's fuzz targets: each takes arbitrary bytes and must never panic, hang or abort.
//!
//! They live in this ordinary workspace crate, not in the AFL harness (`fuzz/` at the repo
//! root, outside the workspace), so that `cargo test` replays the committed corpus and every
//! crash regression through exactly the code the fuzzer ran, on every CI run and without AFL.
//! Beyond "does not panic", each target checks a property that a bug would break:
//!
//! - [`frame`]: `decode_frame` over a stream of frames; a frame it returns re-encodes (methods,
//!   headers) to bytes that decode to the same thing.
//! - [`method`]: one method frame payload (amq-protocol's parser behind Warren's nesting scan
//!   and the hand-written publish/ack decoders); a method that decodes round-trips.
//! - [`header`]: one content-header payload; its properties round-trip and agree with the
//!   fast accessors (`delivery_mode`, `user_id`).
//! - [`connection`]: a whole client transcript fed to a real connection (handshake, channels,
//!   broker) over an in-memory stream; it must end, and everything the server wrote must
//!   parse as AMQP frames.
mod check;
mod connection;
pub mod seeds;

pub use check::{frame, header, method};
pub use connection::{connection, session};

/// A fuzz target: any bytes in, no panic out.
pub type Target = fn(&[u8]);

/// The targets by name, as the corpus directories (`fuzz/corpus/<name>`) and the harness
/// binaries call them.
pub const TARGETS: &[(&str, Target)] =
    &[("frame", frame), ("method", method), ("header", header), ("connection", connection)];
