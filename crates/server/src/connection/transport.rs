//! The byte stream a connection runs over.
//!
//! In the broker that is always a `TcpStream`. The trait names just the readiness-style calls
//! the connection loop makes (wait until readable or writable, then read or write without
//! blocking), so the same connection code also runs over [`ScriptedStream`], an in-memory
//! stream that the fuzzer and tests use to drive a whole connection without a socket.
//! Generic, not boxed: the TCP path compiles to exactly the calls it made before.
use bytes::{Buf, Bytes, BytesMut};
use parking_lot::Mutex;
use std::future::Future;
use std::io::{self, IoSlice};
use std::sync::Arc;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// What a connection needs from its stream.
pub trait Transport: Send + Sync + 'static {
    /// Resolves when a read may make progress (data or end of stream).
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send;
    /// Resolves when a write may make progress.
    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send;
    /// One non-blocking read into `buf`, which has `room` bytes of spare capacity. Returns the
    /// bytes read (0 = end of stream) and whether the stream is known to be drained now.
    /// `WouldBlock` if nothing is there.
    fn try_read(&self, buf: &mut BytesMut, room: usize) -> io::Result<(usize, bool)>;
    /// One non-blocking vectored write; `WouldBlock` if the stream takes nothing now.
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
}

impl Transport for TcpStream {
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        TcpStream::readable(self)
    }

    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send {
        TcpStream::writable(self)
    }

    /// A read that returns less than the room it was given emptied the socket's receive
    /// buffer, so we tell tokio the socket is no longer readable right away (by reporting
    /// WouldBlock from inside `try_io`, which clears the readiness it observed; data arriving
    /// meanwhile sets a new readiness tick, which is not cleared). Otherwise every pass would
    /// end with one more `recvfrom` that fails with EAGAIN: two wasted syscalls per message at
    /// low rates, one on the publish-to-deliver path.
    fn try_read(&self, buf: &mut BytesMut, room: usize) -> io::Result<(usize, bool)> {
        let mut got = 0;
        let r = self.try_io(Interest::READABLE, || {
            got = self.try_read_buf(buf)?;
            if got > 0 && got < room {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(got)
        });
        match r {
            Ok(n) => Ok((n, false)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => Ok((got, true)),
            Err(e) => Err(e),
        }
    }

    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        TcpStream::try_write_vectored(self, bufs)
    }
}

/// An in-memory stream whose peer has sent all of `input` and then closed its side: each read
/// pass gets the next `max_read` bytes of it (as if the client's writes trickled in), then
/// reads report end of stream; writes always succeed and are collected for
/// [`ScriptedStream::output`].
///
/// Never waits, so a connection over it runs to its end without timers or another task: the
/// fuzzer feeds arbitrary client transcripts through the real handshake, channels and broker
/// this way, thousands of times a second. Small reads give the connection a pass between
/// pieces of input, in which it sends the deliveries that a later basic.ack can refer to.
pub struct ScriptedStream {
    input: Mutex<Bytes>,
    max_read: usize,
    output: Arc<Mutex<Vec<u8>>>,
}

impl ScriptedStream {
    pub fn new(input: impl Into<Bytes>, max_read: usize) -> ScriptedStream {
        ScriptedStream { input: Mutex::new(input.into()), max_read: max_read.max(1), output: Arc::default() }
    }

    /// Everything the connection has written so far (shared, so it can be read after the
    /// connection has consumed the stream).
    pub fn output(&self) -> Arc<Mutex<Vec<u8>>> {
        self.output.clone()
    }
}

impl Transport for ScriptedStream {
    async fn readable(&self) -> io::Result<()> {
        Ok(())
    }

    async fn writable(&self) -> io::Result<()> {
        Ok(())
    }

    fn try_read(&self, buf: &mut BytesMut, room: usize) -> io::Result<(usize, bool)> {
        let mut input = self.input.lock();
        let n = input.len().min(room).min(self.max_read);
        buf.extend_from_slice(&input[..n]);
        input.advance(n);
        // "Drained" ends the read pass: the rest arrives in later passes.
        Ok((n, true))
    }

    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut output = self.output.lock();
        let before = output.len();
        for b in bufs {
            output.extend_from_slice(b);
        }
        Ok(output.len() - before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripted_reads_come_in_pieces_then_end() {
        let s = ScriptedStream::new(&b"abcdefg"[..], 3);
        let mut buf = BytesMut::new();
        assert_eq!(s.try_read(&mut buf, 2).unwrap(), (2, true));
        assert_eq!(s.try_read(&mut buf, 8).unwrap(), (3, true));
        assert_eq!(s.try_read(&mut buf, 8).unwrap(), (2, true));
        assert_eq!(s.try_read(&mut buf, 8).unwrap(), (0, true));
        assert_eq!(&buf[..], b"abcdefg");
    }

    #[test]
    fn scripted_writes_are_collected_in_order() {
        let s = ScriptedStream::new(Bytes::new(), 1);
        let out = s.output();
        assert_eq!(s.try_write_vectored(&[IoSlice::new(b"ab"), IoSlice::new(b"c")]).unwrap(), 3);
        assert_eq!(s.try_write_vectored(&[IoSlice::new(b"d")]).unwrap(), 1);
        assert_eq!(&out.lock()[..], b"abcd");
    }
}
