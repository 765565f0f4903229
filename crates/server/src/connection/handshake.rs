//! Opening a connection: protocol header, start/start-ok (SASL), tune/tune-ok, open.
use super::io::{read_available, write_all, READ_CHUNK_MIN, READ_PASS_MAX};
use super::transport::Transport;
use crate::auth::{Users, MECHANISMS};
use crate::config::Config;
use amq_protocol::protocol::{connection, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use bytes::BytesMut;
use std::net::SocketAddr;
use std::time::Duration;
use warren_codec::{
    check_protocol_header, decode_frame, encode_method, AmqpError, Frame, HeaderCheck, Method, OutBuf, ReplyCode,
    FRAME_MIN_SIZE, PROTOCOL_HEADER,
};

/// What the handshake settled.
pub struct Opened {
    pub user: String,
    pub vhost: String,
    pub channel_max: u16,
    pub frame_max: u32,
    pub heartbeat: u16,
    pub cancel_notify: bool,
    pub client_name: Option<String>,
    /// The client takes connection.blocked / connection.unblocked.
    pub blocked_notify: bool,
}

/// Why the handshake did not complete.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad protocol header")]
    BadHeader,
    #[error("closed by peer during handshake")]
    Eof,
    #[error("handshake timed out")]
    Timeout,
    /// Refused with a connection.close (already sent where the protocol allows).
    #[error("{0}")]
    Refused(AmqpError),
}

pub struct Handshake<'a, S> {
    pub stream: &'a S,
    pub peer: SocketAddr,
    pub inbuf: &'a mut BytesMut,
    pub out: &'a mut OutBuf,
    pub config: &'a Config,
    pub users: &'a Users,
    pub broker: &'a warren_broker::Broker,
    pub connections: &'a super::ConnectionCount,
}

fn server_properties() -> FieldTable {
    let mut caps = FieldTable::default();
    // Only what Warren implements: a client that sees a capability relies on it.
    for c in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "authentication_failure_close",
        "per_consumer_qos",
    ] {
        caps.insert(c.into(), AMQPValue::Boolean(true));
    }
    let mut p = FieldTable::default();
    let s = |v: &str| AMQPValue::LongString(v.into());
    p.insert("capabilities".into(), AMQPValue::FieldTable(caps));
    p.insert("product".into(), s("Warren"));
    p.insert("version".into(), s(env!("CARGO_PKG_VERSION")));
    p.insert("platform".into(), s("Rust"));
    p.insert("cluster_name".into(), s("warren"));
    p.insert("copyright".into(), s("The Warren developers"));
    p.insert("information".into(), s("AMQP 0-9-1 broker compatible with RabbitMQ; Apache-2.0"));
    p
}

fn client_capability(props: &FieldTable, name: &str) -> bool {
    match props.inner().get("capabilities") {
        Some(AMQPValue::FieldTable(t)) => {
            matches!(t.inner().get(name), Some(AMQPValue::Boolean(true)))
        }
        _ => false,
    }
}

impl<S: Transport> Handshake<'_, S> {
    pub async fn run(mut self) -> Result<Opened, HandshakeError> {
        // RabbitMQ's handshake_timeout runs from accept to connection.open-ok; a peer still in
        // the handshake then is dropped without a connection.close.
        let limit = Duration::from_millis(self.config.handshake_timeout);
        tokio::time::timeout(limit, self.steps()).await.map_err(|_| HandshakeError::Timeout)?
    }

    async fn fill(&mut self) -> Result<(), HandshakeError> {
        loop {
            self.stream.readable().await?;
            let mut chunk = READ_CHUNK_MIN;
            match read_available(self.stream, self.inbuf, &mut chunk, READ_PASS_MAX) {
                Ok(0) => return Err(HandshakeError::Eof),
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn next_method(&mut self, max: u32) -> Result<AMQPClass, HandshakeError> {
        loop {
            match decode_frame(self.inbuf, max) {
                Ok(Some(Frame::Method { channel: 0, method: Method::Other(m) })) => return Ok(m),
                Ok(Some(Frame::Heartbeat)) => continue,
                Ok(Some(_)) => {
                    return Err(self
                        .refuse(AmqpError::new(
                            ReplyCode::CommandInvalid,
                            "expected a connection method during the handshake",
                        ))
                        .await)
                }
                Ok(None) => self.fill().await?,
                Err(e) => return Err(self.refuse(e.into()).await),
            }
        }
    }

    /// Sends connection.close with the error and gives up on the connection.
    async fn refuse(&mut self, e: AmqpError) -> HandshakeError {
        let close = connection::Close {
            reply_code: e.code.code(),
            reply_text: e.text.clone().into(),
            class_id: e.class_id,
            method_id: e.method_id,
        };
        encode_method(self.out.tail(), 0, &AMQPClass::Connection(connection::AMQPMethod::Close(close)));
        let _ = write_all(self.stream, self.out).await;
        HandshakeError::Refused(e)
    }

    async fn send(&mut self, m: connection::AMQPMethod) -> Result<(), HandshakeError> {
        encode_method(self.out.tail(), 0, &AMQPClass::Connection(m));
        write_all(self.stream, self.out).await?;
        Ok(())
    }

    async fn steps(&mut self) -> Result<Opened, HandshakeError> {
        // 1. Protocol header. Anything else is answered with ours, then the socket closes.
        loop {
            match check_protocol_header(self.inbuf) {
                HeaderCheck::Ok => break,
                HeaderCheck::Mismatch => {
                    self.out.tail().extend_from_slice(PROTOCOL_HEADER);
                    let _ = write_all(self.stream, self.out).await;
                    return Err(HandshakeError::BadHeader);
                }
                HeaderCheck::Incomplete => self.fill().await?,
            }
        }
        let _ = self.inbuf.split_to(PROTOCOL_HEADER.len());

        // 2. start / start-ok.
        self.send(connection::AMQPMethod::Start(connection::Start {
            version_major: 0,
            version_minor: 9,
            server_properties: server_properties(),
            mechanisms: LongString::from(MECHANISMS),
            locales: LongString::from("en_US"),
        }))
        .await?;
        // Until tune-ok, frames are bounded by initial_frame_max (RabbitMQ's, 4096 by default):
        // the client has not logged in yet.
        let start_ok = match self.next_method(self.config.initial_frame_max).await? {
            AMQPClass::Connection(connection::AMQPMethod::StartOk(s)) => s,
            _ => {
                return Err(self
                    .refuse(AmqpError::new(ReplyCode::CommandInvalid, "expected connection.start-ok"))
                    .await)
            }
        };
        let props = &start_ok.client_properties;
        let cancel_notify = client_capability(props, "consumer_cancel_notify");
        let blocked_notify = client_capability(props, "connection.blocked");
        let client_name = match props.inner().get("connection_name") {
            Some(AMQPValue::LongString(s)) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
            _ => None,
        };
        let mechanism = start_ok.mechanism.as_str();
        let user = match self.users.authenticate(mechanism, start_ok.response.as_bytes()) {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(peer = %self.peer, mechanism, error = %e, "login refused");
                let refusal = AmqpError::new(
                    ReplyCode::AccessRefused,
                    format!("Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."),
                );
                // Clients that do not advertise authentication_failure_close expect the
                // socket to just close (AMQP 0-9-1 says so); the others get the reason.
                if client_capability(props, "authentication_failure_close") {
                    return Err(self.refuse(refusal).await);
                }
                return Err(HandshakeError::Refused(refusal));
            }
        };

        // 3. tune / tune-ok, negotiated as RabbitMQ does.
        let cfg = self.config;
        self.send(connection::AMQPMethod::Tune(connection::Tune {
            channel_max: cfg.channel_max,
            frame_max: cfg.frame_max,
            heartbeat: cfg.heartbeat,
        }))
        .await?;
        let tune_ok = match self.next_method(cfg.initial_frame_max).await? {
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(t)) => t,
            _ => {
                return Err(self.refuse(AmqpError::new(ReplyCode::CommandInvalid, "expected connection.tune-ok")).await)
            }
        };
        // RabbitMQ's rule (rabbit_reader:validate_negotiated_integer_value): a client value
        // below the minimum, above the server's, or 0 ("unlimited") while the server has a
        // limit, is refused, with its text, naming connection.tune as RabbitMQ does.
        let negotiate = |field: &str, client: u32, min: u32, server: u32| -> Result<u32, AmqpError> {
            let detail = if field == "channel_max" && client == 0 { " (no limit)" } else { "" };
            let fail = |how: &str, bound: u32| {
                AmqpError::new(
                    ReplyCode::NotAllowed,
                    format!("negotiated {field} = {client}{detail} is {how} allowed value ({bound})"),
                )
                .on(10, 30)
            };
            if client != 0 && client < min {
                Err(fail("lower than the minimum", min))
            } else if server != 0 && (client == 0 || client > server) {
                Err(fail("higher than the maximum", server))
            } else {
                Ok(client)
            }
        };
        let frame_max = match negotiate("frame_max", tune_ok.frame_max, FRAME_MIN_SIZE, cfg.frame_max) {
            Ok(f) => f,
            Err(e) => return Err(self.refuse(e).await),
        };
        let channel_max = match negotiate("channel_max", tune_ok.channel_max.into(), 1, cfg.channel_max.into()) {
            Ok(c) => c as u16,
            Err(e) => return Err(self.refuse(e).await),
        };

        // 4. open.
        let open = match self.next_method(frame_max).await? {
            AMQPClass::Connection(connection::AMQPMethod::Open(o)) => o,
            _ => return Err(self.refuse(AmqpError::new(ReplyCode::CommandInvalid, "expected connection.open")).await),
        };
        let vhost = open.virtual_host.to_string();
        // RabbitMQ checks the node's limit first, when the client asks to open, against its
        // listener's active connections (this one included, handshakes too).
        if let Some(max) = cfg.connection_max.value() {
            if self.connections.current() as u64 > max {
                let e = AmqpError::new(
                    ReplyCode::NotAllowed,
                    format!("connection refused: node connection limit ({max}) is reached"),
                )
                .on(10, 40);
                return Err(self.refuse(e).await);
            }
        }
        if self.broker.vhost(&vhost).is_none() {
            let e = AmqpError::new(ReplyCode::NotAllowed, format!("vhost {vhost} not found")).on(10, 40);
            return Err(self.refuse(e).await);
        }
        self.send(connection::AMQPMethod::OpenOk(connection::OpenOk {})).await?;
        Ok(Opened {
            user,
            vhost,
            channel_max,
            frame_max,
            heartbeat: tune_ok.heartbeat,
            cancel_notify,
            client_name,
            blocked_notify,
        })
    }
}
