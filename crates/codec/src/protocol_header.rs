//! The 8-byte protocol header that opens every connection.

use crate::PROTOCOL_HEADER;

/// The AMQP 0-9 header ("AMQP" 1 1 0 9). RabbitMQ treats a client sending it as a 0-9-1
/// client (rabbit_reader's version_negotiation), so the codec accepts it too.
const PROTOCOL_HEADER_0_9: &[u8; 8] = b"AMQP\x01\x01\x00\x09";

/// Outcome of [`check_protocol_header`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderCheck {
    /// The first 8 bytes are an acceptable protocol header; consume them.
    Ok,
    /// Fewer than 8 bytes so far, and they match an acceptable header.
    Incomplete,
    /// Not AMQP 0-9-1: reply with [`PROTOCOL_HEADER`] and close, as RabbitMQ does.
    Mismatch,
}

/// Checks the 8-byte protocol header at the start of `buf`.
///
/// `Incomplete` while fewer than 8 bytes have arrived and they match so far; `Mismatch` as soon
/// as a byte differs (so `"GET / HTTP"` is rejected by its first byte). Besides the 0-9-1 header
/// the 0-9 header `AMQP\x01\x01\x00\x09` is accepted, because RabbitMQ serves it as 0-9-1.
pub fn check_protocol_header(buf: &[u8]) -> HeaderCheck {
    let n = buf.len().min(8);
    let matches = |h: &[u8; 8]| buf[..n] == h[..n];
    if !matches(PROTOCOL_HEADER) && !matches(PROTOCOL_HEADER_0_9) {
        HeaderCheck::Mismatch
    } else if n < 8 {
        HeaderCheck::Incomplete
    } else {
        HeaderCheck::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_header_is_ok_and_extra_bytes_are_ignored() {
        assert_eq!(check_protocol_header(PROTOCOL_HEADER), HeaderCheck::Ok);
        assert_eq!(check_protocol_header(b"AMQP\x00\x00\x09\x01\x01\x00"), HeaderCheck::Ok);
        assert_eq!(check_protocol_header(PROTOCOL_HEADER_0_9), HeaderCheck::Ok);
    }

    #[test]
    fn every_proper_prefix_is_incomplete() {
        for n in 0..8 {
            assert_eq!(check_protocol_header(&PROTOCOL_HEADER[..n]), HeaderCheck::Incomplete, "{n}");
        }
    }

    #[test]
    fn mismatch_is_reported_at_the_first_differing_byte() {
        assert_eq!(check_protocol_header(b"G"), HeaderCheck::Mismatch);
        assert_eq!(check_protocol_header(b"GET / HTTP/1.1\r\n"), HeaderCheck::Mismatch);
        assert_eq!(check_protocol_header(b"AMQX"), HeaderCheck::Mismatch);
        // Other versions (e.g. AMQP 1.0's "AMQP\x00\x01\x00\x00" or 0-8) are refused.
        assert_eq!(check_protocol_header(b"AMQP\x00\x01\x00\x00"), HeaderCheck::Mismatch);
        assert_eq!(check_protocol_header(b"AMQP\x01\x01\x00\x08"), HeaderCheck::Mismatch);
        assert_eq!(check_protocol_header(b"AMQP\x03"), HeaderCheck::Mismatch);
    }
}
