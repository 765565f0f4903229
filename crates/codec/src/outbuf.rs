//! The outbound byte queue of one connection.

use bytes::{Buf, Bytes, BytesMut};
use std::collections::VecDeque;
use std::io::IoSlice;

/// Bodies at least this large are queued as their own chunks (zero copy); smaller ones are
/// copied into the tail, where copying is cheaper than another iovec entry.
pub const ZERO_COPY_MIN: usize = 4096;

/// Outbound byte queue for one connection. Frames are encoded into a contiguous tail
/// ([`OutBuf::tail`]); large bodies are appended as their own `Bytes` chunks without copying.
/// The socket writer takes everything with one vectored write ([`OutBuf::io_slices`]) and
/// reports how much went out ([`OutBuf::advance`]).
///
/// Byte order is: sealed chunks, oldest first, then the tail. [`OutBuf::push_chunk`] seals the
/// current tail into a chunk first, so bytes always leave in the order they were queued.
#[derive(Debug, Default)]
pub struct OutBuf {
    chunks: VecDeque<Bytes>,
    /// Total bytes in `chunks`.
    chunks_len: usize,
    tail: BytesMut,
}

impl OutBuf {
    pub fn new() -> OutBuf {
        OutBuf::default()
    }

    /// The buffer to encode small frames into; they go out after everything queued before.
    pub fn tail(&mut self) -> &mut BytesMut {
        &mut self.tail
    }

    /// Appends `b` as its own chunk, after sealing the tail (if non-empty) into a chunk.
    pub fn push_chunk(&mut self, b: Bytes) {
        if !self.tail.is_empty() {
            // `split` hands over the written bytes and leaves the spare capacity in the tail,
            // which can reclaim the whole allocation once the sealed chunk has been written.
            let sealed = self.tail.split().freeze();
            self.chunks_len += sealed.len();
            self.chunks.push_back(sealed);
        }
        if !b.is_empty() {
            self.chunks_len += b.len();
            self.chunks.push_back(b);
        }
    }

    /// Total pending bytes, tail included.
    pub fn len(&self) -> usize {
        self.chunks_len + self.tail.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills `dst` with up to `dst.len()` slices of pending bytes, in order; returns how many.
    pub fn io_slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let tail = (!self.tail.is_empty()).then_some(&self.tail[..]);
        let pending = self.chunks.iter().map(|c| &c[..]).chain(tail);
        let mut n = 0;
        for (slot, bytes) in dst.iter_mut().zip(pending) {
            *slot = IoSlice::new(bytes);
            n += 1;
        }
        n
    }

    /// Drops the first `n` pending bytes, which have been written.
    ///
    /// # Panics
    /// If `n` exceeds [`OutBuf::len`].
    pub fn advance(&mut self, mut n: usize) {
        assert!(n <= self.len(), "advance({n}) past the {} pending bytes", self.len());
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                self.tail.advance(n);
                return;
            };
            if n < front.len() {
                front.advance(n);
                self.chunks_len -= n;
                return;
            }
            n -= front.len();
            self.chunks_len -= front.len();
            self.chunks.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::drain;

    /// tail "ab", chunk "cdef", tail "g", chunk "hij", tail "kl"
    fn sample() -> OutBuf {
        let mut out = OutBuf::new();
        out.tail().extend_from_slice(b"ab");
        out.push_chunk(Bytes::from_static(b"cdef"));
        out.tail().extend_from_slice(b"g");
        out.push_chunk(Bytes::from_static(b"hij"));
        out.tail().extend_from_slice(b"kl");
        out
    }

    fn slices(out: &OutBuf, max: usize) -> Vec<Vec<u8>> {
        let mut dst = vec![IoSlice::new(&[]); max];
        let n = out.io_slices(&mut dst);
        dst[..n].iter().map(|s| s.to_vec()).collect()
    }

    #[test]
    fn slices_come_out_in_queue_order() {
        let out = sample();
        assert_eq!(out.len(), 12);
        assert_eq!(slices(&out, 8), [&b"ab"[..], b"cdef", b"g", b"hij", b"kl"].map(<[u8]>::to_vec));
        // A short dst takes a prefix.
        assert_eq!(slices(&out, 2), [&b"ab"[..], b"cdef"].map(<[u8]>::to_vec));
        assert_eq!(drain(&out), b"abcdefghijkl");
    }

    #[test]
    fn advance_across_chunk_boundaries() {
        // Every split point: the rest must always be the remaining suffix.
        let all = b"abcdefghijkl";
        for first in 0..=all.len() {
            for second in 0..=(all.len() - first) {
                let mut out = sample();
                out.advance(first);
                assert_eq!(drain(&out), &all[first..], "after {first}");
                out.advance(second);
                assert_eq!(drain(&out), &all[first + second..], "after {first}+{second}");
                assert_eq!(out.len(), all.len() - first - second);
                assert_eq!(out.is_empty(), first + second == all.len());
            }
        }
    }

    #[test]
    fn partial_write_of_a_chunk_then_more_frames() {
        let mut out = sample();
        out.advance(4); // "ab" and "cd" of "cdef"
        assert_eq!(slices(&out, 8)[0], b"ef");
        out.tail().extend_from_slice(b"m");
        out.push_chunk(Bytes::from_static(b"no"));
        assert_eq!(drain(&out), b"efghijklmno");
        out.advance(out.len());
        assert!(out.is_empty());
        assert_eq!(slices(&out, 4).len(), 0);
    }

    #[test]
    fn empty_pieces_are_not_queued() {
        let mut out = OutBuf::new();
        out.push_chunk(Bytes::new());
        assert!(out.is_empty());
        assert_eq!(slices(&out, 4).len(), 0);
        out.push_chunk(Bytes::from_static(b"x"));
        out.push_chunk(Bytes::from_static(b"y"));
        assert_eq!(slices(&out, 4), [b"x".to_vec(), b"y".to_vec()]);
    }

    #[test]
    #[should_panic(expected = "advance(3) past the 2 pending bytes")]
    fn advance_past_the_end_panics() {
        let mut out = OutBuf::new();
        out.tail().extend_from_slice(b"ab");
        out.advance(3);
    }
}
