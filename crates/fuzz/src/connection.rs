//! The connection target: arbitrary bytes as everything a client sends on one connection.
use amq_protocol::frame::{parse_frame, AMQPFrame};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use warren_broker::{Broker, BrokerSettings, InMemoryOnly};
use warren_server::{serve_stream, Config, ScriptedStream};

/// Bytes the connection reads per pass. Small, so that a transcript spans many passes and the
/// deliveries of one pass exist (with their delivery tags) when later input acks them.
const READ_PER_PASS: usize = 64;

/// Longer than any input takes; a connection still running then is a hang, reported as a crash.
const RUN_LIMIT: Duration = Duration::from_secs(10);

thread_local! {
    // Built once per process: the fuzzer calls the target millions of times in one process.
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime");
    static CONFIG: Arc<Config> = Arc::new(Config::default());
}

/// Runs `data` through a fresh in-memory broker's connection code (protocol header,
/// handshake, channels, exchanges, queues, publishes, consumers...) as a client transcript
/// followed by the client closing its side, and checks that the connection ends and that
/// everything the server sent parses as AMQP. A new broker per input keeps runs independent
/// of each other, so a crash reproduces from its input alone.
pub fn connection(data: &[u8]) {
    check_output(&session(data));
}

/// What the server sends back for the client transcript `data` (run as [`connection`] runs it).
pub fn session(data: &[u8]) -> Vec<u8> {
    let config = CONFIG.with(Arc::clone);
    let settings = BrokerSettings {
        queue_flow_threshold: config.queue_flow_threshold,
        queue_memory_window: config.queue_memory_window,
        memory_limit: config.memory_limit,
    };
    let broker = Arc::new(Broker::new(settings, Box::new(InMemoryOnly), None));
    for v in &config.vhosts {
        broker.add_vhost(v).expect("the default vhost");
    }
    let stream = ScriptedStream::new(data.to_vec(), READ_PER_PASS);
    let output = stream.output();
    let peer = SocketAddr::from((Ipv4Addr::LOCALHOST, 5672));
    let run = async { tokio::time::timeout(RUN_LIMIT, serve_stream(stream, peer, config, broker)).await };
    let ended = RUNTIME.with(|rt| rt.block_on(run));
    assert!(ended.is_ok(), "the connection did not end within {RUN_LIMIT:?} of its input ending");
    let out = std::mem::take(&mut *output.lock());
    out
}

/// The server's output is whole AMQP frames (or the protocol header it answers a bad one with).
fn check_output(mut out: &[u8]) {
    while !out.is_empty() {
        match parse_frame(out) {
            Ok((rest, f)) => {
                if let AMQPFrame::ProtocolHeader(_) = f {
                    assert!(rest.is_empty(), "the protocol header is all a refused client gets");
                }
                out = rest;
            }
            Err(e) => panic!("the server sent bytes that are not an AMQP frame: {e:?} at {out:?}"),
        }
    }
}
