//! The connection seeds must get past the handshake and do what they were written to do;
//! otherwise the fuzzer would start from a shallow state without anyone noticing.
use amq_protocol::frame::{parse_frame, AMQPFrame};
use amq_protocol::protocol::{basic, channel, connection, tx, AMQPClass};

/// The methods the server sent for the named connection seed.
fn replies(name: &str) -> Vec<AMQPClass> {
    let seed = warren_fuzz::seeds::all()
        .into_iter()
        .find(|s| s.target == "connection" && s.name == name)
        .unwrap_or_else(|| panic!("no connection seed {name}"));
    let out = warren_fuzz::session(&seed.bytes);
    let mut rest = &out[..];
    let mut methods = Vec::new();
    while !rest.is_empty() {
        let (r, f) = parse_frame(rest).expect("the server's output parses");
        if let AMQPFrame::Method(_, m) = f {
            methods.push(m);
        }
        rest = r;
    }
    methods
}

fn no_channel_error(methods: &[AMQPClass]) -> bool {
    !has(methods, |m| matches!(m, AMQPClass::Channel(channel::AMQPMethod::Close(_))))
}

fn has(methods: &[AMQPClass], want: impl Fn(&AMQPClass) -> bool) -> bool {
    methods.iter().any(want)
}

#[test]
fn handshake_seeds_open_and_close_cleanly() {
    for name in ["handshake-plain", "handshake-amqplain"] {
        let m = replies(name);
        assert!(has(&m, |m| matches!(m, AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)))), "{name}: {m:?}");
        assert!(has(&m, |m| matches!(m, AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)))), "{name}: {m:?}");
    }
    let refused = replies("bad-login");
    assert!(
        has(&refused, |m| matches!(m, AMQPClass::Connection(connection::AMQPMethod::Close(c)) if c.reply_code == 403)),
        "{refused:?}"
    );
}

#[test]
fn publish_consume_seed_delivers_and_confirms() {
    let m = replies("publish-consume");
    assert!(no_channel_error(&m), "{m:?}");
    assert!(has(&m, |m| matches!(m, AMQPClass::Basic(basic::AMQPMethod::Deliver(_)))), "{m:?}");
    assert!(has(&m, |m| matches!(m, AMQPClass::Basic(basic::AMQPMethod::Ack(_)))), "{m:?}");
    assert!(has(&m, |m| matches!(m, AMQPClass::Basic(basic::AMQPMethod::GetOk(_)))), "{m:?}");
    assert!(has(&m, |m| matches!(m, AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)))), "{m:?}");
}

#[test]
fn topology_seed_routes_and_hits_a_channel_error() {
    let m = replies("topology");
    // Publishing to a missing exchange closes the channel with 404, as RabbitMQ does.
    assert!(
        has(&m, |m| matches!(m, AMQPClass::Channel(channel::AMQPMethod::Close(c)) if c.reply_code == 404)),
        "{m:?}"
    );
    assert!(has(&m, |m| matches!(m, AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)))), "{m:?}");
}

#[test]
fn tx_seed_commits_and_rolls_back() {
    let m = replies("tx");
    assert!(no_channel_error(&m), "{m:?}");
    assert!(has(&m, |m| matches!(m, AMQPClass::Tx(tx::AMQPMethod::CommitOk(_)))), "{m:?}");
    assert!(has(&m, |m| matches!(m, AMQPClass::Tx(tx::AMQPMethod::RollbackOk(_)))), "{m:?}");
    assert!(has(&m, |m| matches!(m, AMQPClass::Basic(basic::AMQPMethod::GetOk(_)))), "{m:?}");
}
