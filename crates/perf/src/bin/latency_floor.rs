//! latency-floor: the least any broker can do in a publish→deliver latency run, to measure
//! what the machine itself costs.
//!
//! It answers the handshake and the few methods a load generator sends (queue.declare,
//! basic.qos, basic.consume, queue.delete) and turns every publish into a basic.deliver to the
//! last consumer, written straight from the publisher's thread. One thread per connection with
//! blocking reads; the consumer's thread reads its acks and drops them. No queue, no routing,
//! no state: whatever latency it shows is scheduling and the kernel's loopback path, which a
//! real broker pays too. See docs/performance.md ("The latency floor").
//!
//! Usage: `latency-floor [ADDR]` (default 127.0.0.1:5699), then point the load generator at it.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// Where deliveries go: the socket of the connection that consumed last.
type Sink = Arc<Mutex<Option<TcpStream>>>;

fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:5699".into());
    let listener = TcpListener::bind(&addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    eprintln!("latency-floor listening on {addr}");
    let sink: Sink = Arc::default();
    for stream in listener.incoming().flatten() {
        let sink = sink.clone();
        std::thread::spawn(move || {
            let _ = serve(stream, sink);
        });
    }
}

fn serve(mut s: TcpStream, sink: Sink) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    let mut protocol_header = [0u8; 8];
    s.read_exact(&mut protocol_header)?;
    let mut out = Vec::new();
    // connection.start 0-9: no server properties, PLAIN, en_US.
    let mut args = vec![0, 9];
    args.extend_from_slice(&0u32.to_be_bytes());
    long_str(&mut args, b"PLAIN");
    long_str(&mut args, b"en_US");
    method(&mut out, 0, (10, 10), &args);
    s.write_all(&out)?;

    let mut reader = Frames { s: s.try_clone()?, buf: vec![0; 1 << 16], start: 0, end: 0 };
    let mut route: (Vec<u8>, Vec<u8>) = Default::default(); // exchange, routing key
    let mut header = Vec::new();
    let mut tag = 0u64;
    loop {
        let (ty, ch, p) = reader.next()?;
        out.clear();
        match ty {
            1 => match (u16::from_be_bytes([p[0], p[1]]), u16::from_be_bytes([p[2], p[3]])) {
                (10, 11) => {
                    // tune: channel-max 2047, frame-max 128 KiB, no heartbeats
                    let mut a = 2047u16.to_be_bytes().to_vec();
                    a.extend_from_slice(&131_072u32.to_be_bytes());
                    a.extend_from_slice(&0u16.to_be_bytes());
                    method(&mut out, 0, (10, 30), &a);
                }
                (10, 40) => method(&mut out, 0, (10, 41), &[0]),
                (10, 50) => method(&mut out, 0, (10, 51), &[]),
                (20, 10) => method(&mut out, ch, (20, 11), &0u32.to_be_bytes()),
                (50, 10) => {
                    // declare-ok: the name asked for, no messages, no consumers
                    let name = short_str_at(&p, 6);
                    let mut a = Vec::new();
                    short_str(&mut a, name);
                    a.extend_from_slice(&[0; 8]);
                    method(&mut out, ch, (50, 11), &a);
                }
                (50, 40) => method(&mut out, ch, (50, 41), &0u32.to_be_bytes()),
                (60, 10) => method(&mut out, ch, (60, 11), &[]),
                (60, 20) => {
                    let mut a = Vec::new();
                    short_str(&mut a, b"floor");
                    method(&mut out, ch, (60, 21), &a);
                    *sink.lock().expect("sink lock") = Some(s.try_clone()?);
                }
                (60, 40) => {
                    let exchange = short_str_at(&p, 6);
                    let routing_key = short_str_at(&p, 7 + exchange.len());
                    route = (exchange.to_vec(), routing_key.to_vec());
                }
                _ => {} // tune-ok, acks
            },
            2 => header = p,
            3 => {
                tag += 1;
                let mut a = Vec::with_capacity(32);
                short_str(&mut a, b"floor");
                a.extend_from_slice(&tag.to_be_bytes());
                a.push(0); // not redelivered
                short_str(&mut a, &route.0);
                short_str(&mut a, &route.1);
                let mut d = Vec::with_capacity(64 + header.len() + p.len());
                method(&mut d, 1, (60, 60), &a);
                frame(&mut d, 2, 1, &header);
                frame(&mut d, 3, 1, &p);
                if let Some(c) = sink.lock().expect("sink lock").as_mut() {
                    let _ = c.write_all(&d);
                }
            }
            _ => {} // heartbeats
        }
        if !out.is_empty() {
            s.write_all(&out)?;
        }
    }
}

/// Whole frames from a blocking socket.
struct Frames {
    s: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Frames {
    /// The next frame's type, channel and payload.
    fn next(&mut self) -> std::io::Result<(u8, u16, Vec<u8>)> {
        loop {
            let have = &self.buf[self.start..self.end];
            if have.len() >= 7 {
                let size = u32::from_be_bytes(have[3..7].try_into().expect("4 bytes")) as usize;
                if have.len() >= size + 8 {
                    let f = (have[0], u16::from_be_bytes([have[1], have[2]]), have[7..7 + size].to_vec());
                    self.start += size + 8;
                    return Ok(f);
                }
                if size + 8 > self.buf.len() {
                    self.buf.resize(size + 8, 0);
                }
            }
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            match self.s.read(&mut self.buf[self.end..])? {
                0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                n => self.end += n,
            }
        }
    }
}

fn frame(out: &mut Vec<u8>, ty: u8, channel: u16, payload: &[u8]) {
    out.push(ty);
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out.push(0xCE);
}

fn method(out: &mut Vec<u8>, channel: u16, (class, id): (u16, u16), args: &[u8]) {
    let mut p = Vec::with_capacity(4 + args.len());
    p.extend_from_slice(&class.to_be_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(args);
    frame(out, 1, channel, &p);
}

fn short_str(out: &mut Vec<u8>, s: &[u8]) {
    out.push(s.len() as u8);
    out.extend_from_slice(s);
}

fn long_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

/// The short string at `at` in a method payload (empty if the payload is too short).
fn short_str_at(p: &[u8], at: usize) -> &[u8] {
    let len = p.get(at).copied().unwrap_or(0) as usize;
    p.get(at + 1..at + 1 + len).unwrap_or(&[])
}
