//! Frames a client sends without waiting for the replies in between (pipelining).
mod raw;

use amq_protocol::protocol::{channel, connection, AMQPClass};
use raw::*;

/// tune-ok, connection.open and channel.open in one write: the broker reads them in one go
/// during the handshake and must still answer the channel.open that came with it. Found by
/// the connection fuzz target: channel.open waited in the read buffer, unanswered, until the
/// client sent something else.
#[tokio::test]
async fn channel_open_pipelined_behind_connection_open_is_answered() {
    let b = warren_it::start();
    let mut raw = Raw::tcp(&b.host_port()).await;
    raw.handshake_until_tune().await;
    let mut bytes = method_frame(
        0,
        AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
            channel_max: raw.server_tune.channel_max,
            frame_max: raw.server_tune.frame_max,
            heartbeat: 0,
        })),
    );
    bytes.extend(method_frame(
        0,
        AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open { virtual_host: "/".into() })),
    ));
    bytes.extend(channel_open(1));
    raw.send(&bytes).await;
    let (ch, m) = raw.expect_method_on().await;
    assert!(matches!(m, AMQPClass::Connection(connection::AMQPMethod::OpenOk(_))) && ch == 0, "{m:?}");
    let (ch, m) = raw.expect_method_on().await;
    assert!(matches!(m, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_))) && ch == 1, "{m:?}");
    raw.close().await;
}
