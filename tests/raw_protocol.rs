//! Connection-level behaviour that is easiest to see on the wire: tune negotiation,
//! heartbeats and channel numbering. Expectations are RabbitMQ 3.10's, checked against a
//! running broker.
mod raw;

use raw::*;
use std::time::{Duration, Instant};

/// With the default config the broker proposes RabbitMQ's defaults.
#[tokio::test]
async fn server_proposes_its_tune_values() {
    let b = warren_it::start();
    let mut raw = Raw::tcp(&b.host_port()).await;
    raw.handshake_until_tune().await;
    assert_eq!(raw.server_tune, TuneValues { channel_max: 2047, frame_max: 131_072, heartbeat: 60 });
}

/// A client frame_max below the server's wins, both ways: the broker refuses inbound frames
/// bigger than it (payload > frame_max, RabbitMQ forgives the 8 bytes of framing) and splits
/// outbound content so that every frame it sends fits.
#[tokio::test]
async fn lower_client_frame_max_wins() {
    let b = warren_it::start();
    let mut working = Raw::open(&b.host_port()).await;
    let mut raw = Raw::open_with(&b.host_port(), |t| TuneValues { frame_max: 4096, heartbeat: 0, ..t }).await;
    raw.open_channel(1).await;
    let q = raw.declare_temp_queue(1).await;
    // A body frame whose payload is exactly frame_max is accepted...
    let body = vec![7u8; 4096];
    raw.send(&publish_frames(1, "", &q, &body)).await;
    assert_eq!(raw.get(1, &q).await, Some(body));
    // ...and the broker delivered it in frames no larger than 4096 bytes in all.
    assert!(raw.largest_frame <= 4096, "broker sent a {}-byte frame", raw.largest_frame);
    // One byte more is a frame error.
    raw.send(&publish_frames(1, "", &q, &[7u8; 4097])).await;
    match raw.ending().await {
        Ending::Close(c) => {
            assert_eq!(c.reply_code, 501, "{c:?}");
            assert!(c.reply_text.starts_with("FRAME_ERROR - "), "{c:?}");
        }
        Ending::Eof => panic!("expected connection.close 501"),
    }
    // A connection with the server's frame_max still takes a 4097-byte body.
    working.open_channel(1).await;
    let q = working.declare_temp_queue(1).await;
    working.send(&publish_frames(1, "", &q, &[7u8; 4097])).await;
    assert_eq!(working.get(1, &q).await, Some(vec![7u8; 4097]));
    working.close().await;
}

/// Tune-ok values the broker cannot accept. RabbitMQ treats 0 ("no limit") as higher than its
/// own limit, refuses frame_max below the spec's 4096 minimum, and closes the socket without a
/// connection.close (after a ~3 s anti-abuse delay) instead of answering connection.open.
/// `text` is the reason RabbitMQ logs (rabbit_reader:fail_negotiation), which Warren sends.
async fn refused_tune_ok(ok: impl FnOnce(TuneValues) -> TuneValues, text: &str) {
    let b = warren_it::start();
    let addr = b.host_port();
    let mut working = Raw::open(&addr).await;
    let mut raw = Raw::tcp(&addr).await;
    raw.handshake_until_tune().await;
    let ok = ok(raw.server_tune);
    raw.send_tune_ok_and_open_unchecked(ok).await;
    // RabbitMQ drops the socket without a word; Warren says why first, with RabbitMQ's
    // reply code for a refused negotiation (530) and its text.
    match raw.ending_within(Duration::from_secs(10)).await {
        Ending::Eof => assert!(b.is_external(), "Warren must send connection.close 530 for {ok:?}"),
        Ending::Close(c) => {
            assert!(!b.is_external(), "RabbitMQ closes the socket silently for {ok:?}");
            assert_eq!(
                c,
                Close { reply_code: 530, reply_text: format!("NOT_ALLOWED - {text}"), class_id: 10, method_id: 30 }
            );
        }
    }
    // A connection that negotiated within the limits is not disturbed.
    working.open_channel(1).await;
    working.close().await;
    assert_broker_healthy(&addr).await;
}

#[tokio::test]
async fn tune_ok_frame_max_zero_is_refused() {
    refused_tune_ok(
        |t| TuneValues { frame_max: 0, heartbeat: 0, ..t },
        "negotiated frame_max = 0 is higher than the maximum allowed value (131072)",
    )
    .await;
}

#[tokio::test]
async fn tune_ok_frame_max_below_minimum_is_refused() {
    refused_tune_ok(
        |t| TuneValues { frame_max: 1000, heartbeat: 0, ..t },
        "negotiated frame_max = 1000 is lower than the minimum allowed value (4096)",
    )
    .await;
}

#[tokio::test]
async fn tune_ok_frame_max_above_server_is_refused() {
    refused_tune_ok(
        |t| TuneValues { frame_max: t.frame_max + 1, heartbeat: 0, ..t },
        "negotiated frame_max = 131073 is higher than the maximum allowed value (131072)",
    )
    .await;
}

#[tokio::test]
async fn tune_ok_channel_max_zero_is_refused() {
    refused_tune_ok(
        |t| TuneValues { channel_max: 0, heartbeat: 0, ..t },
        "negotiated channel_max = 0 (no limit) is higher than the maximum allowed value (2047)",
    )
    .await;
}

#[tokio::test]
async fn tune_ok_channel_max_above_server_is_refused() {
    refused_tune_ok(
        |t| TuneValues { channel_max: t.channel_max + 1, heartbeat: 0, ..t },
        "negotiated channel_max = 2048 is higher than the maximum allowed value (2047)",
    )
    .await;
}

/// RabbitMQ enforces channel_max as a count of open channels, not as a bound on channel
/// numbers: with channel_max 2, channels 100 and 3 open, and the third open is refused with
/// connection.close 530 NOT_ALLOWED.
#[tokio::test]
async fn lower_client_channel_max_limits_open_channels() {
    let b = warren_it::start();
    let mut working = Raw::open(&b.host_port()).await;
    let mut raw = Raw::open_with(&b.host_port(), |t| TuneValues { channel_max: 2, heartbeat: 0, ..t }).await;
    raw.open_channel(100).await;
    raw.open_channel(3).await;
    raw.send(&channel_open(4)).await;
    assert_eq!(
        raw.expect_connection_close().await,
        Close {
            reply_code: 530,
            reply_text: "NOT_ALLOWED - number of channels opened (2) has reached the negotiated channel_max (2)".into(),
            class_id: 0,
            method_id: 0,
        }
    );
    // Another connection, with channels of its own, is not disturbed.
    working.open_channel(1).await;
    working.open_channel(2).await;
    working.open_channel(3).await;
    working.close().await;
}

/// Channel numbers above channel_max are accepted by RabbitMQ 3.10 (the spec says they should
/// not be; clients never send them, and Warren copies RabbitMQ).
#[tokio::test]
async fn channel_numbers_above_channel_max_open() {
    let b = warren_it::start();
    let mut raw = Raw::open(&b.host_port()).await;
    assert_eq!(raw.server_tune.channel_max, 2047);
    raw.open_channel(4000).await;
    raw.open_channel(65535).await;
    let q = raw.declare_temp_queue(65535).await;
    raw.send(&publish_frames(65535, "", &q, b"high")).await;
    assert_eq!(raw.get(65535, &q).await, Some(b"high".to_vec()));
    raw.close().await;
}

/// Heartbeat interval of these tests. RabbitMQ uses whatever the client puts in tune-ok, so
/// the heartbeat tests also run against RabbitMQ (whose own proposal is 60); Warren is
/// configured to propose 1 as well.
const HEARTBEAT: u16 = 1;

async fn heartbeat_connection(b: &warren_it::TestBroker) -> Raw {
    let raw = Raw::open_with(&b.host_port(), |t| TuneValues { heartbeat: HEARTBEAT, ..t }).await;
    if !b.is_external() {
        assert_eq!(raw.server_tune.heartbeat, HEARTBEAT);
    }
    raw
}

fn assert_heartbeat(f: &RawFrame) {
    assert_eq!(
        (f.kind, f.channel, f.payload.as_slice()),
        (FRAME_HEARTBEAT, 0, &[][..]),
        "expected a heartbeat frame, got {f:?}"
    );
}

/// A silent client gets heartbeats (RabbitMQ sends one every half interval), and nothing
/// else: after about two missed intervals the broker closes the socket without a
/// connection.close. RabbitMQ does it at ~3 s with a 1 s interval; the bounds are loose.
#[tokio::test]
async fn silent_client_gets_heartbeats_then_is_disconnected() {
    let b = warren_it::start_with(|c| c.heartbeat = HEARTBEAT);
    let mut raw = heartbeat_connection(&b).await;
    let silent_since = Instant::now();
    let mut heartbeats = 0;
    // Heartbeats keep arriving until the disconnect, so bound the whole wait, not each read.
    let watch = async {
        while let Some(f) = raw.next_frame().await {
            assert_heartbeat(&f);
            heartbeats += 1;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), watch).await.expect("silent client still connected after 10 s");
    let lasted = silent_since.elapsed();
    assert!(heartbeats >= 1, "no heartbeat before the disconnect");
    assert!(lasted >= Duration::from_secs(2) && lasted <= Duration::from_secs(6), "disconnected after {lasted:?}");
}

/// A client that keeps sending heartbeats outlives several intervals and can still work.
#[tokio::test]
async fn client_sending_heartbeats_stays_connected() {
    let b = warren_it::start_with(|c| c.heartbeat = HEARTBEAT);
    let mut raw = heartbeat_connection(&b).await;
    let start = Instant::now();
    let mut heartbeats = 0;
    while start.elapsed() < Duration::from_secs(4) {
        raw.send(&heartbeat_frame()).await;
        // Reading with a short bound paces our own heartbeats at half the interval.
        if let Ok(f) = tokio::time::timeout(Duration::from_millis(500), raw.next_frame()).await {
            let f = f.expect("broker closed a connection that kept sending heartbeats");
            assert_heartbeat(&f);
            heartbeats += 1;
        }
    }
    assert!(heartbeats >= 1, "broker sent no heartbeat in 4 s");
    raw.open_channel(1).await;
    let q = raw.declare_temp_queue(1).await;
    assert!(q.starts_with("amq.gen-"), "server-named queue {q:?}");
    raw.close().await;
}

/// With heartbeat 0 in tune-ok the broker sends no heartbeats and does not time the client out.
#[tokio::test]
async fn heartbeat_zero_disables_heartbeats() {
    let b = warren_it::start_with(|c| c.heartbeat = HEARTBEAT);
    let mut raw = Raw::open(&b.host_port()).await;
    // Three intervals of silence: a heartbeat or a disconnect would show up here.
    let quiet = tokio::time::timeout(Duration::from_secs(3), raw.next_frame()).await;
    assert!(quiet.is_err(), "expected silence, got {quiet:?}");
    raw.open_channel(1).await;
    raw.close().await;
}
