//! A tiny hand-driven AMQP 0-9-1 client for tests that need to see (or break) the wire.
//!
//! Real clients (lapin) never send malformed frames and hide heartbeats and tune negotiation,
//! so `bad_input.rs` and `raw_protocol.rs` speak the protocol by hand: the handshake is done
//! step by step, arbitrary bytes can be written, and every inbound frame is visible.
//! Well-formed methods are encoded with amq-protocol's `gen_frame` and inbound method payloads
//! are decoded with its `parse_class`; the frame envelope is split here so that frames
//! amq-protocol would reject still show up.

// Each test crate that includes this module uses a different subset of it.
#![allow(dead_code)]

use amq_protocol::frame::{gen_frame, AMQPContentHeader, AMQPFrame, WriteContext};
use amq_protocol::protocol::{basic, channel, connection, parse_class, queue, AMQPClass};
use amq_protocol::types::FieldTable;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

/// The only protocol header the broker accepts, and the one it answers a bad header with.
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";
pub const FRAME_METHOD: u8 = 1;
pub const FRAME_HEADER: u8 = 2;
pub const FRAME_BODY: u8 = 3;
pub const FRAME_HEARTBEAT: u8 = 8;
pub const FRAME_END: u8 = 0xCE;

/// Upper bound for any single expected reply. Generous: it only matters when the broker
/// fails to answer, and then the test fails instead of hanging.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the broker may take to close the socket after its connection.close. After a
/// frame-level error RabbitMQ stops parsing input, so it never sees our close-ok and closes
/// the socket on a 3 s timer instead.
pub const SOCKET_CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// One frame as it came off the socket.
#[derive(Debug, Clone, PartialEq)]
pub struct RawFrame {
    pub kind: u8,
    pub channel: u16,
    pub payload: Vec<u8>,
}

impl RawFrame {
    /// The decoded method, for a method frame amq-protocol understands.
    pub fn method(&self) -> Option<AMQPClass> {
        if self.kind != FRAME_METHOD {
            return None;
        }
        parse_class(self.payload.as_slice()).ok().map(|(_, m)| m)
    }

    /// (class-id, method-id) of a method frame.
    pub fn method_id(&self) -> Option<(u16, u16)> {
        if self.kind != FRAME_METHOD || self.payload.len() < 4 {
            return None;
        }
        let p = &self.payload;
        Some((u16::from_be_bytes([p[0], p[1]]), u16::from_be_bytes([p[2], p[3]])))
    }
}

/// A connection.close or channel.close as received.
#[derive(Debug, Clone, PartialEq)]
pub struct Close {
    pub reply_code: u16,
    pub reply_text: String,
    pub class_id: u16,
    pub method_id: u16,
}

/// How the broker ended a connection we provoked.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    /// It sent connection.close (we answered close-ok and it then closed the socket).
    Close(Close),
    /// It closed the socket without a connection.close.
    Eof,
}

/// The values a tune-ok will carry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TuneValues {
    pub channel_max: u16,
    pub frame_max: u32,
    pub heartbeat: u16,
}

/// Encodes any frame amq-protocol can describe.
pub fn encode(frame: &AMQPFrame) -> Vec<u8> {
    let ctx = gen_frame(frame)(WriteContext::from(Vec::new())).expect("encode frame");
    ctx.into_inner().0
}

/// Encodes a method frame.
pub fn method_frame(channel: u16, method: AMQPClass) -> Vec<u8> {
    encode(&AMQPFrame::Method(channel, method))
}

/// Builds a frame by hand: any type, any payload, correct size and frame end.
pub fn raw_frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 8);
    f.push(kind);
    f.extend_from_slice(&channel.to_be_bytes());
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f.push(FRAME_END);
    f
}

/// A method frame with arbitrary (possibly invalid) class, method and argument bytes.
pub fn raw_method(channel: u16, class_id: u16, method_id: u16, args: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(args.len() + 4);
    payload.extend_from_slice(&class_id.to_be_bytes());
    payload.extend_from_slice(&method_id.to_be_bytes());
    payload.extend_from_slice(args);
    raw_frame(FRAME_METHOD, channel, &payload)
}

/// basic.publish + content header + one body frame.
pub fn publish_frames(channel: u16, exchange: &str, routing_key: &str, body: &[u8]) -> Vec<u8> {
    let mut out = method_frame(
        channel,
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            mandatory: false,
            immediate: false,
        })),
    );
    out.extend(content_header(channel, body.len() as u64));
    out.extend(raw_frame(FRAME_BODY, channel, body));
    out
}

/// A basic content header frame with no properties.
pub fn content_header(channel: u16, body_size: u64) -> Vec<u8> {
    encode(&AMQPFrame::Header(
        channel,
        AMQPContentHeader { class_id: 60, body_size, properties: basic::AMQPProperties::default() },
    ))
}

pub fn heartbeat_frame() -> Vec<u8> {
    raw_frame(FRAME_HEARTBEAT, 0, &[])
}

pub fn channel_open(channel: u16) -> Vec<u8> {
    method_frame(channel, AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})))
}

/// A raw client connection.
pub struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
    /// The broker's connection.tune (zeroes before the handshake got that far).
    pub server_tune: TuneValues,
    /// Size of the largest frame received so far, framing included.
    pub largest_frame: usize,
}

impl Raw {
    /// Opens the TCP connection only; nothing is sent.
    pub async fn tcp(addr: &str) -> Raw {
        let stream =
            timeout(REPLY_TIMEOUT, TcpStream::connect(addr)).await.expect("connect timed out").expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Raw {
            stream,
            buf: Vec::new(),
            server_tune: TuneValues { channel_max: 0, frame_max: 0, heartbeat: 0 },
            largest_frame: 0,
        }
    }

    /// A fully opened connection (vhost `/`, guest/guest) that accepted the broker's channel_max
    /// and frame_max and turned heartbeats off, so no heartbeat frames interleave with replies.
    pub async fn open(addr: &str) -> Raw {
        Self::open_with(addr, |t| TuneValues { heartbeat: 0, ..t }).await
    }

    /// Like [`Raw::open`], with the tune-ok values chosen by `tune_ok` from the server's tune.
    pub async fn open_with(addr: &str, tune_ok: impl FnOnce(TuneValues) -> TuneValues) -> Raw {
        let mut raw = Self::tcp(addr).await;
        raw.handshake_until_tune().await;
        let ok = tune_ok(raw.server_tune);
        raw.send_tune_ok_and_open(ok).await;
        raw
    }

    /// Sends the protocol header, answers connection.start with PLAIN guest/guest and reads
    /// connection.tune into `server_tune`.
    pub async fn handshake_until_tune(&mut self) {
        self.handshake_until_tune_as(FieldTable::default()).await
    }

    /// [`Raw::handshake_until_tune`] presenting `client_properties` (capabilities...).
    pub async fn handshake_until_tune_as(&mut self, client_properties: FieldTable) {
        self.send(PROTOCOL_HEADER).await;
        let start = self.expect_method().await;
        assert!(
            matches!(start, AMQPClass::Connection(connection::AMQPMethod::Start(_))),
            "expected connection.start, got {start:?}"
        );
        self.send(&method_frame(
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties,
                mechanism: "PLAIN".into(),
                response: "\0guest\0guest".into(),
                locale: "en_US".into(),
            })),
        ))
        .await;
        match self.expect_method().await {
            AMQPClass::Connection(connection::AMQPMethod::Tune(t)) => {
                self.server_tune =
                    TuneValues { channel_max: t.channel_max, frame_max: t.frame_max, heartbeat: t.heartbeat };
            }
            other => panic!("expected connection.tune, got {other:?}"),
        }
    }

    /// Sends tune-ok with `ok` and connection.open for `/`, and waits for open-ok.
    pub async fn send_tune_ok_and_open(&mut self, ok: TuneValues) {
        self.send_tune_ok_and_open_unchecked(ok).await;
        let m = self.expect_method().await;
        assert!(
            matches!(m, AMQPClass::Connection(connection::AMQPMethod::OpenOk(_))),
            "expected connection.open-ok, got {m:?}"
        );
    }

    /// Sends tune-ok with `ok` and connection.open for `/`, reading nothing.
    pub async fn send_tune_ok_and_open_unchecked(&mut self, ok: TuneValues) {
        self.send(&method_frame(
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max: ok.channel_max,
                frame_max: ok.frame_max,
                heartbeat: ok.heartbeat,
            })),
        ))
        .await;
        self.send(&method_frame(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open { virtual_host: "/".into() })),
        ))
        .await;
    }

    /// Writes bytes as they are.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write to broker");
    }

    /// Writes bytes, tolerating a broker that already closed the socket.
    pub async fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Reads more bytes into the buffer; false at EOF (or a reset, which is how a closed
    /// socket can look when unread data was still in flight).
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The next frame, or None at EOF. Panics on a malformed frame from the broker.
    pub async fn next_frame(&mut self) -> Option<RawFrame> {
        loop {
            if self.buf.len() >= 7 {
                let size = u32::from_be_bytes([self.buf[3], self.buf[4], self.buf[5], self.buf[6]]);
                // type, channel, size, payload, frame-end
                let total = 7 + size as usize + 1;
                if self.buf.len() >= total {
                    let frame = RawFrame {
                        kind: self.buf[0],
                        channel: u16::from_be_bytes([self.buf[1], self.buf[2]]),
                        payload: self.buf[7..total - 1].to_vec(),
                    };
                    assert_eq!(self.buf[total - 1], FRAME_END, "broker sent a bad frame end");
                    self.buf.drain(..total);
                    self.largest_frame = self.largest_frame.max(total);
                    return Some(frame);
                }
            }
            if !self.fill().await {
                assert!(self.buf.is_empty(), "EOF inside a frame: {:?}", self.buf);
                return None;
            }
        }
    }

    /// The next frame within `limit`; panics on timeout.
    pub async fn next_frame_within(&mut self, limit: Duration) -> Option<RawFrame> {
        timeout(limit, self.next_frame()).await.unwrap_or_else(|_| panic!("no frame from the broker within {limit:?}"))
    }

    /// The next method frame, skipping heartbeats; panics on EOF or timeout.
    pub async fn expect_method(&mut self) -> AMQPClass {
        self.expect_method_on().await.1
    }

    /// The next method frame and its channel, skipping heartbeats.
    pub async fn expect_method_on(&mut self) -> (u16, AMQPClass) {
        loop {
            let f = self.next_frame_within(REPLY_TIMEOUT).await.expect("broker closed the connection");
            if f.kind == FRAME_HEARTBEAT {
                continue;
            }
            let m = f.method().unwrap_or_else(|| panic!("expected a method frame, got {f:?}"));
            return (f.channel, m);
        }
    }

    /// Everything the broker sends until it closes the socket (at most `limit`).
    pub async fn read_to_end(&mut self, limit: Duration) -> Vec<u8> {
        let deadline = Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.fill()).await {
                Ok(true) => continue,
                Ok(false) => return std::mem::take(&mut self.buf),
                Err(_) => panic!("broker did not close the socket within {limit:?}; got {:?}", self.buf),
            }
        }
    }

    /// Waits for the broker to end the connection: reads (skipping heartbeats and any other
    /// frame) until connection.close, answers close-ok and checks that the broker then closes
    /// the socket. Returns [`Ending::Eof`] if the socket closes without a connection.close.
    pub async fn ending(&mut self) -> Ending {
        self.ending_within(REPLY_TIMEOUT).await
    }

    /// [`Raw::ending`] allowing `limit` for the broker to act.
    pub async fn ending_within(&mut self, limit: Duration) -> Ending {
        let deadline = Instant::now() + limit;
        let close = loop {
            let next = tokio::time::timeout_at(deadline, self.next_frame()).await;
            let next = next.unwrap_or_else(|_| panic!("no connection end within {limit:?}"));
            match next {
                None => return Ending::Eof,
                Some(f) => {
                    if f.channel == 0 {
                        if let Some(AMQPClass::Connection(connection::AMQPMethod::Close(c))) = f.method() {
                            break Close {
                                reply_code: c.reply_code,
                                reply_text: c.reply_text.as_str().to_owned(),
                                class_id: c.class_id,
                                method_id: c.method_id,
                            };
                        }
                    }
                }
            }
        };
        // The broker may already have closed; close-ok is only a courtesy then.
        let _ = self
            .try_send(&method_frame(0, AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {}))))
            .await;
        let rest = self.read_to_end(SOCKET_CLOSE_TIMEOUT).await;
        assert!(rest.is_empty(), "bytes after connection.close: {rest:?}");
        Ending::Close(close)
    }

    /// Like [`Raw::ending`] but requires a connection.close and returns it.
    pub async fn expect_connection_close(&mut self) -> Close {
        match self.ending().await {
            Ending::Close(c) => c,
            Ending::Eof => panic!("broker closed the socket without connection.close"),
        }
    }

    /// Opens `channel` and waits for open-ok.
    pub async fn open_channel(&mut self, channel: u16) {
        self.send(&channel_open(channel)).await;
        let (ch, m) = self.expect_method_on().await;
        assert_eq!(ch, channel);
        assert!(matches!(m, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_))), "expected channel.open-ok, got {m:?}");
    }

    /// Declares a server-named exclusive queue on `channel` and returns its name.
    pub async fn declare_temp_queue(&mut self, channel: u16) -> String {
        self.send(&method_frame(
            channel,
            AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                queue: "".into(),
                passive: false,
                durable: false,
                exclusive: true,
                auto_delete: false,
                nowait: false,
                arguments: FieldTable::default(),
            })),
        ))
        .await;
        match self.expect_method_on().await {
            (ch, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok))) if ch == channel => ok.queue.as_str().to_owned(),
            other => panic!("expected queue.declare-ok, got {other:?}"),
        }
    }

    /// basic.get with no-ack; returns the body of the message, or None on get-empty.
    pub async fn get(&mut self, channel: u16, queue: &str) -> Option<Vec<u8>> {
        self.send(&method_frame(
            channel,
            AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get { queue: queue.into(), no_ack: true })),
        ))
        .await;
        match self.expect_method_on().await {
            (_, AMQPClass::Basic(basic::AMQPMethod::GetEmpty(_))) => return None,
            (_, AMQPClass::Basic(basic::AMQPMethod::GetOk(_))) => {}
            other => panic!("expected basic.get-ok/get-empty, got {other:?}"),
        }
        let header = self.next_frame_within(REPLY_TIMEOUT).await.expect("content header");
        assert_eq!(header.kind, FRAME_HEADER, "expected a content header, got {header:?}");
        let size = u64::from_be_bytes(header.payload[4..12].try_into().unwrap()) as usize;
        let mut body = Vec::with_capacity(size);
        while body.len() < size {
            let f = self.next_frame_within(REPLY_TIMEOUT).await.expect("content body");
            assert_eq!(f.kind, FRAME_BODY, "expected a content body, got {f:?}");
            body.extend_from_slice(&f.payload);
        }
        Some(body)
    }

    /// Sends connection.close, waits for close-ok and closes the socket.
    pub async fn close(mut self) {
        self.send(&method_frame(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
                reply_code: 200,
                reply_text: "bye".into(),
                class_id: 0,
                method_id: 0,
            })),
        ))
        .await;
        let m = self.expect_method().await;
        assert!(
            matches!(m, AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))),
            "expected connection.close-ok, got {m:?}"
        );
        // The peer that sent connection.close closes the socket once close-ok arrives
        // (RabbitMQ waits for that), which dropping `self` does.
    }
}

/// Proves the broker still serves new connections: a fresh connection opens a channel,
/// declares a queue, publishes to it through the default exchange and gets the message back.
pub async fn assert_broker_healthy(addr: &str) {
    let mut raw = Raw::open(addr).await;
    raw.open_channel(1).await;
    let q = raw.declare_temp_queue(1).await;
    let body = warren_it::lapin_util::unique_name("still-alive").into_bytes();
    raw.send(&publish_frames(1, "", &q, &body)).await;
    // basic.get is processed after the publish on the same channel, so the message is there.
    assert_eq!(raw.get(1, &q).await, Some(body));
    raw.close().await;
}
