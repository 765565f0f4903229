//! A bare AMQP 0-9-1 client speaking frames directly (amq-protocol codec over a TCP socket).
//!
//! lapin hides some wire details these tests need to see, e.g. the delivery tags and the
//! `multiple` flag of publisher confirms. This client shows every frame the broker sends.
use amq_protocol::frame::{gen_frame, parse_frame, AMQPContentHeader, AMQPFrame, ProtocolVersion, WriteContext};
use amq_protocol::protocol::{basic, channel, connection, AMQPClass, BasicProperties};
use amq_protocol::types::{FieldTable, LongString};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::PATIENCE;

pub struct Raw {
    pub reader: RawReader,
    pub writer: RawWriter,
}

/// The receiving half of a [`Raw`] connection.
pub struct RawReader {
    stream: BufReader<OwnedReadHalf>,
}

/// The sending half of a [`Raw`] connection.
pub struct RawWriter {
    stream: OwnedWriteHalf,
}

impl Raw {
    /// Connects as guest/guest to vhost `/` and opens channel 1.
    pub async fn open(host_port: &str) -> Raw {
        let stream = TcpStream::connect(host_port).await.expect("raw connect");
        stream.set_nodelay(true).unwrap();
        let (r, w) = stream.into_split();
        let mut raw = Raw {
            reader: RawReader { stream: BufReader::with_capacity(256 * 1024, r) },
            writer: RawWriter { stream: w },
        };
        raw.send(&AMQPFrame::ProtocolHeader(ProtocolVersion::amqp_0_9_1())).await;
        match raw.recv().await {
            AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Start(_))) => {}
            other => panic!("expected connection.start, got {other:?}"),
        }
        raw.method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: FieldTable::default(),
                mechanism: "PLAIN".into(),
                response: LongString::from("\0guest\0guest"),
                locale: "en_US".into(),
            })),
        )
        .await;
        let tune = match raw.recv().await {
            AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Tune(t))) => t,
            other => panic!("expected connection.tune, got {other:?}"),
        };
        raw.method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max: tune.channel_max,
                frame_max: tune.frame_max,
                heartbeat: 0,
            })),
        )
        .await;
        raw.method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open { virtual_host: "/".into() })),
        )
        .await;
        match raw.recv().await {
            AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::OpenOk(_))) => {}
            other => panic!("expected connection.open-ok, got {other:?}"),
        }
        raw.method(1, AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {}))).await;
        match raw.recv().await {
            AMQPFrame::Method(1, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_))) => {}
            other => panic!("expected channel.open-ok, got {other:?}"),
        }
        raw
    }

    pub async fn send(&mut self, frame: &AMQPFrame) {
        self.writer.send(frame).await
    }

    pub async fn method(&mut self, channel: u16, class: AMQPClass) {
        self.writer.method(channel, class).await
    }

    /// basic.publish with a body small enough for one body frame.
    pub async fn publish(&mut self, channel: u16, exchange: &str, routing_key: &str, mandatory: bool, body: &[u8]) {
        self.writer.publish(channel, exchange, routing_key, mandatory, body).await
    }

    pub async fn recv(&mut self) -> AMQPFrame {
        self.reader.recv().await
    }
}

/// Appends the encoding of `frame` to `buf`.
pub fn encode(frame: &AMQPFrame, buf: Vec<u8>) -> Vec<u8> {
    gen_frame(frame)(WriteContext::from(buf)).expect("encode frame").write
}

/// Appends a complete basic.publish (method, header, one body frame) to `buf`.
pub fn encode_publish(
    buf: Vec<u8>,
    channel: u16,
    exchange: &str,
    routing_key: &str,
    mandatory: bool,
    body: &[u8],
) -> Vec<u8> {
    let buf = encode(
        &AMQPFrame::Method(
            channel,
            AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                exchange: exchange.into(),
                routing_key: routing_key.into(),
                mandatory,
                immediate: false,
            })),
        ),
        buf,
    );
    let buf = encode(
        &AMQPFrame::Header(
            channel,
            AMQPContentHeader { class_id: 60, body_size: body.len() as u64, properties: BasicProperties::default() },
        ),
        buf,
    );
    if body.is_empty() {
        buf
    } else {
        encode(&AMQPFrame::Body(channel, body.to_vec()), buf)
    }
}

impl RawWriter {
    pub async fn send(&mut self, frame: &AMQPFrame) {
        self.write_raw(&encode(frame, Vec::new())).await;
    }

    /// Writes already encoded frames (e.g. a batch from [`encode_publish`]).
    pub async fn write_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("raw write");
    }

    pub async fn method(&mut self, channel: u16, class: AMQPClass) {
        self.send(&AMQPFrame::Method(channel, class)).await;
    }

    pub async fn publish(&mut self, channel: u16, exchange: &str, routing_key: &str, mandatory: bool, body: &[u8]) {
        let bytes = encode_publish(Vec::new(), channel, exchange, routing_key, mandatory, body);
        self.write_raw(&bytes).await;
    }
}

impl RawReader {
    /// The next frame other than a heartbeat; fails the test after [`PATIENCE`].
    pub async fn recv(&mut self) -> AMQPFrame {
        loop {
            let frame = tokio::time::timeout(PATIENCE, self.read_frame())
                .await
                .unwrap_or_else(|_| panic!("no frame from broker within {PATIENCE:?}"));
            if frame != AMQPFrame::Heartbeat {
                return frame;
            }
        }
    }

    async fn read_frame(&mut self) -> AMQPFrame {
        // type(1) channel(2) size(4), payload, frame-end(1)
        let mut head = [0u8; 7];
        self.stream.read_exact(&mut head).await.expect("raw read frame header");
        let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize;
        let mut buf = head.to_vec();
        buf.resize(7 + size + 1, 0);
        self.stream.read_exact(&mut buf[7..]).await.expect("raw read frame payload");
        match parse_frame(buf.as_slice()) {
            Ok(([], frame)) => frame,
            other => panic!("unparsable frame {buf:?}: {other:?}"),
        }
    }
}
