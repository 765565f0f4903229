//! Socket reads and writes for one connection: batched, non-blocking, bounded.
use super::transport::Transport;
use bytes::BytesMut;
use std::io::{self, IoSlice};
use warren_codec::OutBuf;

/// Largest read-buffer growth step. Bodies are sliced out of this buffer without copying,
/// so a block lives as long as the messages that came in it.
pub const READ_CHUNK: usize = 64 * 1024;
/// First growth step: an idle connection should cost little memory.
pub const READ_CHUNK_MIN: usize = 4 * 1024;
/// Stop reading in one pass after this much, so one busy peer cannot starve the loop.
pub const READ_PASS_MAX: usize = 512 * 1024;

/// Reads what the socket has (up to `max` bytes, READ_PASS_MAX for a connection running
/// freely) without waiting. Ok(0) means EOF.
/// `chunk` is the connection's current growth step: it doubles (up to READ_CHUNK) whenever a
/// read fills all the room it had, so busy connections read in big blocks and idle ones
/// keep a small buffer.
pub fn read_available(stream: &impl Transport, buf: &mut BytesMut, chunk: &mut usize, max: usize) -> io::Result<usize> {
    let mut total = 0;
    while total < max {
        if buf.capacity() - buf.len() < *chunk / 4 {
            buf.reserve(*chunk);
        }
        let room = buf.capacity() - buf.len();
        match stream.try_read(buf, room) {
            Ok((0, _)) => return Ok(total),
            Ok((n, drained)) => {
                total += n;
                if n == room {
                    *chunk = (*chunk * 2).min(READ_CHUNK);
                }
                if drained {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    if total == 0 {
        // Readiness was spurious; report it as such rather than as EOF.
        return Err(io::ErrorKind::WouldBlock.into());
    }
    Ok(total)
}

/// Writes as much of `out` as the socket takes now, in vectored writes (one syscall for
/// many frames). Returns bytes written.
pub fn write_available(stream: &impl Transport, out: &mut OutBuf) -> io::Result<usize> {
    let mut total = 0;
    while !out.is_empty() {
        let mut slices = [IoSlice::new(&[]); 64];
        let n = out.io_slices(&mut slices);
        match stream.try_write_vectored(&slices[..n]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(w) => {
                out.advance(w);
                total += w;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

/// Writes all of `out`, waiting for the socket as needed (handshake and close paths).
pub async fn write_all(stream: &impl Transport, out: &mut OutBuf) -> io::Result<()> {
    while !out.is_empty() {
        stream.writable().await?;
        write_available(stream, out)?;
    }
    Ok(())
}
