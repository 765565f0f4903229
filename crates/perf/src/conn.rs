//! One AMQP connection with one channel: the handshake, synchronous calls, and reading
//! frames, hot ones by hand (see [`crate::frames`]).
use crate::error::PerfError;
use crate::frames::{self, Hot};
use crate::uri::AmqpUri;
use amq_protocol::protocol::{basic, channel, confirm, connection, exchange, queue, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use warren_codec::{decode_frame, Frame, Method};

/// A frame as the roles see it.
pub enum In {
    Hot(Hot),
    Method(AMQPClass),
}

pub struct Reader {
    half: OwnedReadHalf,
    buf: BytesMut,
    frame_max: u32,
}

impl Reader {
    /// The next frame. A close from the broker becomes an error carrying its code and text.
    pub async fn next(&mut self) -> Result<In, PerfError> {
        loop {
            if let Some(h) = frames::take_hot(&mut self.buf) {
                return Ok(In::Hot(h));
            }
            match decode_frame(&mut self.buf, self.frame_max).map_err(|e| PerfError::Protocol(e.to_string()))? {
                Some(Frame::Method { method: Method::Other(m), .. }) => return closed(m).map(In::Method),
                Some(Frame::Heartbeat) => return Ok(In::Hot(Hot::Heartbeat)),
                Some(other) => return Err(PerfError::Protocol(format!("unexpected frame {other:?}"))),
                None => {
                    self.buf.reserve(64 * 1024);
                    if self.half.read_buf(&mut self.buf).await? == 0 {
                        return Err(PerfError::Io(std::io::ErrorKind::UnexpectedEof.into()));
                    }
                }
            }
        }
    }

    /// The next method, skipping heartbeats; anything else is a protocol error.
    pub async fn method(&mut self) -> Result<AMQPClass, PerfError> {
        loop {
            match self.next().await? {
                In::Method(m) => return Ok(m),
                In::Hot(Hot::Heartbeat) => {}
                In::Hot(h) => return Err(PerfError::Protocol(format!("expected a method, got {h:?}"))),
            }
        }
    }
}

fn closed(m: AMQPClass) -> Result<AMQPClass, PerfError> {
    match m {
        AMQPClass::Connection(connection::AMQPMethod::Close(c)) => {
            Err(PerfError::Closed { scope: "connection", code: c.reply_code, text: c.reply_text.to_string() })
        }
        AMQPClass::Channel(channel::AMQPMethod::Close(c)) => {
            Err(PerfError::Closed { scope: "channel", code: c.reply_code, text: c.reply_text.to_string() })
        }
        m => Ok(m),
    }
}

pub struct Conn {
    pub reader: Reader,
    pub writer: OwnedWriteHalf,
    pub frame_max: u32,
}

impl Conn {
    /// Connects, logs in (PLAIN), opens the vhost and channel 1.
    pub async fn open(uri: &AmqpUri) -> Result<Conn, PerfError> {
        let addr = format!("{}:{}", uri.host, uri.port);
        let stream = TcpStream::connect(&addr).await.map_err(|source| PerfError::Connect { addr, source })?;
        stream.set_nodelay(true)?;
        let (r, w) = stream.into_split();
        let mut c = Conn { reader: Reader { half: r, buf: BytesMut::new(), frame_max: 0 }, writer: w, frame_max: 0 };
        c.writer.write_all(warren_codec::PROTOCOL_HEADER).await?;
        let AMQPClass::Connection(connection::AMQPMethod::Start(_)) = c.reader.method().await? else {
            return Err(PerfError::Protocol("expected connection.start".into()));
        };
        let mut props = FieldTable::default();
        props.insert("product".into(), AMQPValue::LongString("warren-perf".into()));
        let start_ok = connection::StartOk {
            client_properties: props,
            mechanism: "PLAIN".into(),
            response: LongString::from(format!("\0{}\0{}", uri.user, uri.password)),
            locale: "en_US".into(),
        };
        c.send(0, AMQPClass::Connection(connection::AMQPMethod::StartOk(start_ok))).await?;
        let tune = match c.reader.method().await? {
            AMQPClass::Connection(connection::AMQPMethod::Tune(t)) => t,
            m => return Err(PerfError::Protocol(format!("expected connection.tune, got {m:?}"))),
        };
        // No heartbeats: a load generator that falls behind must not be disconnected for it.
        let tune_ok = connection::TuneOk { channel_max: tune.channel_max, frame_max: tune.frame_max, heartbeat: 0 };
        c.frame_max = tune.frame_max;
        c.reader.frame_max = tune.frame_max;
        c.send(0, AMQPClass::Connection(connection::AMQPMethod::TuneOk(tune_ok))).await?;
        let open = connection::Open { virtual_host: uri.vhost.as_str().into() };
        c.call(0, AMQPClass::Connection(connection::AMQPMethod::Open(open))).await?;
        c.call(1, AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {}))).await?;
        Ok(c)
    }

    pub async fn send(&mut self, ch: u16, m: AMQPClass) -> Result<(), PerfError> {
        let mut out = BytesMut::new();
        frames::method(&mut out, ch, &m);
        self.writer.write_all(&out).await?;
        Ok(())
    }

    /// Sends a method and waits for its reply (any method that is not a close).
    pub async fn call(&mut self, ch: u16, m: AMQPClass) -> Result<AMQPClass, PerfError> {
        self.send(ch, m).await?;
        self.reader.method().await
    }

    /// queue.declare; returns the ready message count.
    pub async fn declare_queue(&mut self, name: &str, durable: bool, passive: bool) -> Result<u32, PerfError> {
        let d = queue::Declare {
            queue: name.into(),
            passive,
            durable,
            exclusive: false,
            auto_delete: false,
            nowait: false,
            arguments: FieldTable::default(),
        };
        match self.call(1, AMQPClass::Queue(queue::AMQPMethod::Declare(d))).await? {
            AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok)) => Ok(ok.message_count),
            m => Err(PerfError::Protocol(format!("expected queue.declare-ok, got {m:?}"))),
        }
    }

    /// A direct exchange for `--exchange`. The `amq.*` ones exist already and may not be
    /// declared, only checked (passively).
    pub async fn declare_exchange(&mut self, name: &str, durable: bool) -> Result<(), PerfError> {
        let d = exchange::Declare {
            exchange: name.into(),
            kind: "direct".into(),
            passive: name.starts_with("amq."),
            durable,
            auto_delete: false,
            internal: false,
            nowait: false,
            arguments: FieldTable::default(),
        };
        self.call(1, AMQPClass::Exchange(exchange::AMQPMethod::Declare(d))).await.map(drop)
    }

    pub async fn bind_queue(&mut self, queue_name: &str, exchange_name: &str, key: &str) -> Result<(), PerfError> {
        let b = queue::Bind {
            queue: queue_name.into(),
            exchange: exchange_name.into(),
            routing_key: key.into(),
            nowait: false,
            arguments: FieldTable::default(),
        };
        self.call(1, AMQPClass::Queue(queue::AMQPMethod::Bind(b))).await.map(drop)
    }

    pub async fn delete_queue(&mut self, name: &str) -> Result<(), PerfError> {
        let d = queue::Delete { queue: name.into(), if_unused: false, if_empty: false, nowait: false };
        self.call(1, AMQPClass::Queue(queue::AMQPMethod::Delete(d))).await.map(drop)
    }

    pub async fn confirm_select(&mut self) -> Result<(), PerfError> {
        self.call(1, AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select { nowait: false }))).await.map(drop)
    }

    pub async fn consume(&mut self, queue_name: &str, prefetch: u16, no_ack: bool) -> Result<(), PerfError> {
        let qos = basic::Qos { prefetch_count: prefetch, global: false };
        self.call(1, AMQPClass::Basic(basic::AMQPMethod::Qos(qos))).await?;
        let c = basic::Consume {
            queue: queue_name.into(),
            consumer_tag: "".into(),
            no_local: false,
            no_ack,
            exclusive: false,
            nowait: false,
            arguments: FieldTable::default(),
        };
        self.call(1, AMQPClass::Basic(basic::AMQPMethod::Consume(c))).await.map(drop)
    }

    /// connection.close, waiting briefly for close-ok (deliveries may still be in flight).
    pub async fn close(mut self) {
        if send_close(&mut self.writer).await.is_err() {
            return;
        }
        let wait = async {
            loop {
                match self.reader.next().await {
                    Ok(In::Method(AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)))) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), wait).await;
    }
}

/// Sends connection.close (200, normal shutdown); the caller waits for close-ok as it can.
pub async fn send_close(writer: &mut OwnedWriteHalf) -> std::io::Result<()> {
    let c = connection::Close { reply_code: 200, reply_text: "bye".into(), class_id: 0, method_id: 0 };
    let mut out = BytesMut::new();
    frames::method(&mut out, 0, &AMQPClass::Connection(connection::AMQPMethod::Close(c)));
    writer.write_all(&out).await
}
