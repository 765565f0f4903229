//! The seed corpus: valid inputs for each target, so the fuzzer starts from deep states
//! instead of having to discover the protocol header, the handshake and field tables alone.
//! `cargo run -p warren-fuzz --bin fuzz-seeds -- fuzz/corpus` writes them (see docs/fuzzing.md).
use amq_protocol::protocol::{basic, channel, confirm, connection, exchange, queue, tx, AMQPClass, BasicProperties};
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use bytes::{BufMut, BytesMut};
use warren_codec::testing::{every_type_table, full_properties};
use warren_codec::{encode_method, ContentHeader, FRAME_END, PROTOCOL_HEADER};

/// One seed: the target it is for, a file name, the bytes.
pub struct Seed {
    pub target: &'static str,
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Every seed, for every target.
pub fn all() -> Vec<Seed> {
    let mut seeds = Vec::new();
    let mut add = |target, name: &str, bytes: Vec<u8>| seeds.push(Seed { target, name: name.into(), bytes });
    for (name, transcript) in sessions() {
        add("connection", name, transcript.clone());
        // The frame target reads the frames after the protocol header, with frame_max 131072.
        add("frame", name, [&[2u8][..], &transcript[PROTOCOL_HEADER.len().min(transcript.len())..]].concat());
    }
    for (i, m) in methods().iter().enumerate() {
        add("method", &format!("{:02}-{}", i, method_name(m)), payload_of(m));
    }
    for (name, h) in headers() {
        add("header", name, h.raw.to_vec());
    }
    seeds
}

fn headers() -> Vec<(&'static str, ContentHeader)> {
    vec![
        ("empty", ContentHeader::new(60, 0, BasicProperties::default())),
        ("persistent", ContentHeader::new(60, 5, BasicProperties::default().with_delivery_mode(2))),
        ("full", ContentHeader::new(60, 11, full_properties())),
    ]
}

/// Client-to-server methods, each with its arguments (tables included).
fn methods() -> Vec<AMQPClass> {
    use AMQPClass as C;
    let args = every_type_table;
    vec![
        C::Connection(connection::AMQPMethod::StartOk(start_ok("PLAIN", b"\0guest\0guest"))),
        C::Connection(connection::AMQPMethod::TuneOk(tune_ok())),
        C::Connection(connection::AMQPMethod::Open(connection::Open { virtual_host: "/".into() })),
        C::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: 200,
            reply_text: "bye".into(),
            class_id: 0,
            method_id: 0,
        })),
        C::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
        C::Channel(channel::AMQPMethod::Open(channel::Open {})),
        C::Channel(channel::AMQPMethod::Flow(channel::Flow { active: false })),
        C::Channel(channel::AMQPMethod::Close(channel::Close {
            reply_code: 200,
            reply_text: "".into(),
            class_id: 0,
            method_id: 0,
        })),
        C::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
        C::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
            exchange: "logs".into(),
            kind: "topic".into(),
            durable: true,
            arguments: args(),
            ..Default::default()
        })),
        C::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
            exchange: "hx".into(),
            kind: "headers".into(),
            ..Default::default()
        })),
        C::Exchange(exchange::AMQPMethod::Bind(exchange::Bind {
            destination: "hx".into(),
            source: "logs".into(),
            routing_key: "a.#".into(),
            nowait: false,
            arguments: args(),
        })),
        C::Exchange(exchange::AMQPMethod::Unbind(exchange::Unbind {
            destination: "hx".into(),
            source: "logs".into(),
            routing_key: "a.#".into(),
            nowait: false,
            arguments: FieldTable::default(),
        })),
        C::Exchange(exchange::AMQPMethod::Delete(exchange::Delete { exchange: "hx".into(), ..Default::default() })),
        C::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: "q".into(),
            arguments: args(),
            ..Default::default()
        })),
        C::Queue(queue::AMQPMethod::Declare(queue::Declare { exclusive: true, ..Default::default() })),
        C::Queue(queue::AMQPMethod::Bind(queue::Bind {
            queue: "q".into(),
            exchange: "logs".into(),
            routing_key: "a.*".into(),
            nowait: false,
            arguments: args(),
        })),
        C::Queue(queue::AMQPMethod::Unbind(queue::Unbind {
            queue: "q".into(),
            exchange: "logs".into(),
            routing_key: "a.*".into(),
            arguments: FieldTable::default(),
        })),
        C::Queue(queue::AMQPMethod::Purge(queue::Purge { queue: "q".into(), nowait: false })),
        C::Queue(queue::AMQPMethod::Delete(queue::Delete { queue: "q".into(), ..Default::default() })),
        C::Basic(basic::AMQPMethod::Qos(basic::Qos { prefetch_count: 10, global: false })),
        C::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: "q".into(),
            consumer_tag: "ctag".into(),
            arguments: args(),
            ..Default::default()
        })),
        C::Basic(basic::AMQPMethod::Cancel(basic::Cancel { consumer_tag: "ctag".into(), nowait: false })),
        publish("logs", "a.b", true),
        C::Basic(basic::AMQPMethod::Get(basic::Get { queue: "q".into(), no_ack: false })),
        C::Basic(basic::AMQPMethod::Ack(basic::Ack { delivery_tag: 1, multiple: true })),
        C::Basic(basic::AMQPMethod::Reject(basic::Reject { delivery_tag: 2, requeue: true })),
        C::Basic(basic::AMQPMethod::Nack(basic::Nack { delivery_tag: 0, multiple: true, requeue: false })),
        C::Basic(basic::AMQPMethod::Recover(basic::Recover { requeue: true })),
        C::Basic(basic::AMQPMethod::RecoverAsync(basic::RecoverAsync { requeue: false })),
        C::Confirm(confirm::AMQPMethod::Select(confirm::Select { nowait: false })),
        C::Tx(tx::AMQPMethod::Select(tx::Select {})),
        C::Tx(tx::AMQPMethod::Commit(tx::Commit {})),
        C::Tx(tx::AMQPMethod::Rollback(tx::Rollback {})),
    ]
}

fn method_name(m: &AMQPClass) -> String {
    format!("{}.{}", m.get_amqp_class_id(), m.get_amqp_method_id())
}

fn payload_of(m: &AMQPClass) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode_method(&mut buf, 0, m);
    buf[7..buf.len() - 1].to_vec()
}

fn start_ok(mechanism: &str, response: &[u8]) -> connection::StartOk {
    let mut caps = FieldTable::default();
    for c in ["publisher_confirms", "consumer_cancel_notify", "authentication_failure_close", "basic.nack"] {
        caps.insert(c.into(), AMQPValue::Boolean(true));
    }
    let mut props = FieldTable::default();
    props.insert("product".into(), AMQPValue::LongString("fuzz".into()));
    props.insert("connection_name".into(), AMQPValue::LongString("seed".into()));
    props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
    connection::StartOk {
        client_properties: props,
        mechanism: mechanism.into(),
        response: LongString::from(response.to_vec()),
        locale: "en_US".into(),
    }
}

fn tune_ok() -> connection::TuneOk {
    connection::TuneOk { channel_max: 2047, frame_max: 131_072, heartbeat: 0 }
}

fn publish(exchange: &str, routing_key: &str, mandatory: bool) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
        exchange: exchange.into(),
        routing_key: routing_key.into(),
        mandatory,
        immediate: false,
    }))
}

/// A client transcript under construction.
struct Transcript(BytesMut);

impl Transcript {
    /// Protocol header and a complete handshake with `mechanism`, to vhost `/`.
    fn opened(mechanism: &str, response: &[u8]) -> Transcript {
        let mut t = Transcript(BytesMut::from(&PROTOCOL_HEADER[..]));
        t.connection(connection::AMQPMethod::StartOk(start_ok(mechanism, response)));
        t.connection(connection::AMQPMethod::TuneOk(tune_ok()));
        t.connection(connection::AMQPMethod::Open(connection::Open { virtual_host: "/".into() }));
        t
    }

    fn connection(&mut self, m: connection::AMQPMethod) -> &mut Self {
        self.method(0, AMQPClass::Connection(m))
    }

    fn method(&mut self, ch: u16, m: AMQPClass) -> &mut Self {
        encode_method(&mut self.0, ch, &m);
        self
    }

    fn open_channel(&mut self, ch: u16) -> &mut Self {
        self.method(ch, AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})))
    }

    fn declare_queue(&mut self, ch: u16, name: &str) -> &mut Self {
        let d = queue::Declare { queue: name.into(), arguments: every_type_table(), ..Default::default() };
        self.method(ch, AMQPClass::Queue(queue::AMQPMethod::Declare(d)))
    }

    /// basic.publish, its header and the body in frames of at most `split` bytes.
    fn publish(
        &mut self,
        ch: u16,
        exchange: &str,
        key: &str,
        props: BasicProperties,
        body: &[u8],
        split: usize,
    ) -> &mut Self {
        self.method(ch, publish(exchange, key, true));
        let h = ContentHeader::new(60, body.len() as u64, props);
        self.frame(2, ch, &h.raw);
        for part in body.chunks(split.max(1)) {
            self.frame(3, ch, part);
        }
        self
    }

    fn frame(&mut self, frame_type: u8, ch: u16, payload: &[u8]) -> &mut Self {
        self.0.put_u8(frame_type);
        self.0.put_u16(ch);
        self.0.put_u32(payload.len() as u32);
        self.0.extend_from_slice(payload);
        self.0.put_u8(FRAME_END);
        self
    }

    fn close(&mut self) -> Vec<u8> {
        self.connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: 200,
            reply_text: "bye".into(),
            class_id: 0,
            method_id: 0,
        }));
        self.0.to_vec()
    }
}

/// Whole client sessions, each starting with a valid protocol header and handshake.
fn sessions() -> Vec<(&'static str, Vec<u8>)> {
    use AMQPClass as C;
    let basic = |m| C::Basic(m);
    let mut out = Vec::new();
    out.push(("handshake-plain", Transcript::opened("PLAIN", b"\0guest\0guest").close()));
    // AMQPLAIN: a field table without its length prefix, LOGIN and PASSWORD.
    let amqplain = b"\x05LOGINS\x00\x00\x00\x05guest\x08PASSWORDS\x00\x00\x00\x05guest";
    out.push(("handshake-amqplain", Transcript::opened("AMQPLAIN", amqplain).close()));
    out.push(("bad-login", Transcript::opened("PLAIN", b"\0guest\0wrong").close()));
    out.push(("http", b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec()));

    // Publish, consume, ack: the hot path, with confirms and a multi-frame body.
    let mut t = Transcript::opened("PLAIN", b"\0guest\0guest");
    t.open_channel(1).declare_queue(1, "q");
    t.method(1, C::Confirm(confirm::AMQPMethod::Select(confirm::Select { nowait: false })));
    t.method(1, basic(basic::AMQPMethod::Qos(basic::Qos { prefetch_count: 2, global: false })));
    t.publish(1, "", "q", full_properties(), b"hello, world", 5);
    t.publish(1, "", "q", BasicProperties::default(), b"", 1);
    t.method(
        1,
        basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: "q".into(),
            consumer_tag: "c".into(),
            ..Default::default()
        })),
    );
    // Heartbeats put the acks in a later read pass than the consume, whose deliveries they ack.
    for _ in 0..8 {
        t.frame(8, 0, b"");
    }
    t.method(1, basic(basic::AMQPMethod::Ack(basic::Ack { delivery_tag: 1, multiple: false })));
    t.method(1, basic(basic::AMQPMethod::Nack(basic::Nack { delivery_tag: 2, multiple: false, requeue: true })));
    t.method(1, basic(basic::AMQPMethod::Cancel(basic::Cancel { consumer_tag: "c".into(), nowait: false })));
    t.method(1, basic(basic::AMQPMethod::Get(basic::Get { queue: "q".into(), no_ack: false })));
    t.method(1, basic(basic::AMQPMethod::Reject(basic::Reject { delivery_tag: 3, requeue: false })));
    t.method(1, basic(basic::AMQPMethod::Recover(basic::Recover { requeue: true })));
    out.push(("publish-consume", t.close()));

    // Exchanges, bindings and routing through a topic and a headers exchange, then cleanup.
    let mut t = Transcript::opened("PLAIN", b"\0guest\0guest");
    t.open_channel(3).declare_queue(3, "");
    for m in methods().into_iter().skip(9).take(11) {
        t.method(3, m);
    }
    t.publish(3, "logs", "a.b", BasicProperties::default().with_headers(every_type_table()), b"routed", 100);
    t.publish(3, "missing", "x", BasicProperties::default(), b"404", 100);
    t.method(3, C::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})));
    out.push(("topology", t.close()));

    // A transaction on one channel, a second channel, and a channel closed by the client.
    let mut t = Transcript::opened("PLAIN", b"\0guest\0guest");
    t.open_channel(1).open_channel(2).declare_queue(1, "tq");
    t.method(1, C::Tx(tx::AMQPMethod::Select(tx::Select {})));
    t.publish(1, "", "tq", BasicProperties::default().with_delivery_mode(2), b"in a tx", 4);
    t.method(1, C::Tx(tx::AMQPMethod::Commit(tx::Commit {})));
    t.publish(1, "", "tq", BasicProperties::default(), b"rolled back", 100);
    t.method(1, C::Tx(tx::AMQPMethod::Rollback(tx::Rollback {})));
    t.method(2, basic(basic::AMQPMethod::Get(basic::Get { queue: "tq".into(), no_ack: true })));
    t.method(
        2,
        C::Channel(channel::AMQPMethod::Close(channel::Close {
            reply_code: 200,
            reply_text: "done".into(),
            class_id: 0,
            method_id: 0,
        })),
    );
    t.frame(8, 0, b"");
    out.push(("tx", t.close()));
    out
}
