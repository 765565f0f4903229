//! Malformed and out-of-order input on the wire.
//!
//! Every case provokes the broker with bytes no well-behaved client sends, checks exactly how
//! the broker ends that connection (reply code, text, failing class/method, then the socket
//! closing once close-ok is sent) and then proves that the broker still serves a fresh
//! connection. Codes and texts are RabbitMQ 3.10's, checked against a running broker.
mod raw;

use raw::*;
use warren_codec::testing::nested_table;

/// Sends `bytes` on a fresh, opened connection, returns how the broker ended it, and then
/// checks a second connection still works.
async fn provoke_on_open_connection(bytes: Vec<u8>) -> (Ending, bool) {
    let b = warren_it::start();
    let addr = b.host_port();
    let mut raw = Raw::open(&addr).await;
    // The broker may close while we are still writing; the ending is what matters.
    let _ = raw.try_send(&bytes).await;
    let ending = raw.ending().await;
    assert_broker_healthy(&addr).await;
    (ending, b.is_external())
}

async fn expect_close(bytes: Vec<u8>) -> Close {
    match provoke_on_open_connection(bytes).await.0 {
        Ending::Close(c) => c,
        Ending::Eof => panic!("broker closed the socket without connection.close"),
    }
}

fn close(reply_code: u16, reply_text: &str, class_id: u16, method_id: u16) -> Close {
    Close { reply_code, reply_text: reply_text.to_owned(), class_id, method_id }
}

/// Texts of frame-level errors embed Erlang terms in RabbitMQ; only their prefix is stable.
fn assert_frame_level(c: &Close, code: u16, prefix: &str) {
    assert_eq!(c.reply_code, code, "{c:?}");
    assert!(c.reply_text.starts_with(prefix), "{c:?}");
    assert_eq!((c.class_id, c.method_id), (0, 0), "{c:?}");
}

#[tokio::test]
async fn oversized_frame_is_refused_from_its_header_alone() {
    // Only the 7-byte header of a method frame declaring 200,000 bytes (frame_max is 131,072):
    // the payload never comes, so a broker that waited for it would never answer and
    // `ending` would time out.
    let mut header = vec![FRAME_METHOD, 0, 1];
    header.extend_from_slice(&200_000u32.to_be_bytes());
    let c = expect_close(header).await;
    // RabbitMQ: "FRAME_ERROR - type 1, all octets = <<>>: {frame_too_large,200000,131064}"
    assert_frame_level(&c, 501, "FRAME_ERROR - ");
}

#[tokio::test]
async fn bad_frame_end_is_frame_error() {
    let mut frame = channel_open(1);
    *frame.last_mut().unwrap() = 0x00;
    let c = expect_close(frame).await;
    // RabbitMQ: "FRAME_ERROR - type 1, all octets = <<0,20,0,10,0>>: {invalid_frame_end_marker,0}"
    assert_frame_level(&c, 501, "FRAME_ERROR - ");
}

#[tokio::test]
async fn unknown_frame_type_is_frame_error() {
    let c = expect_close(raw_frame(7, 0, &[])).await;
    assert_frame_level(&c, 501, "FRAME_ERROR - ");
}

#[tokio::test]
async fn method_frame_too_short_for_its_ids_is_frame_error() {
    let c = expect_close([channel_open(1), raw_frame(FRAME_METHOD, 1, &[0, 50])].concat()).await;
    assert_frame_level(&c, 501, "FRAME_ERROR - ");
}

#[tokio::test]
async fn heartbeat_on_a_channel_is_unexpected_frame() {
    let c = expect_close(raw_frame(FRAME_HEARTBEAT, 1, &[])).await;
    assert_frame_level(&c, 505, "UNEXPECTED_FRAME - ");
}

/// An unknown class or method. RabbitMQ 3.10 just drops the TCP connection (no
/// connection.close); Warren follows the spec and closes with 540 NOT_IMPLEMENTED naming the
/// offending class and method. Against RabbitMQ this checks that the connection dies and the
/// broker survives.
async fn unknown_method(bytes: Vec<u8>, class_id: u16, method_id: u16) {
    let (ending, external) = provoke_on_open_connection(bytes).await;
    if external {
        assert_eq!(ending, Ending::Eof);
        return;
    }
    match ending {
        Ending::Close(c) => {
            assert_eq!(c.reply_code, 540, "{c:?}");
            assert!(c.reply_text.starts_with("NOT_IMPLEMENTED - "), "{c:?}");
            assert_eq!((c.class_id, c.method_id), (class_id, method_id), "{c:?}");
        }
        Ending::Eof => panic!("expected connection.close 540, the socket just closed"),
    }
}

#[tokio::test]
async fn unknown_class_is_not_implemented() {
    unknown_method([channel_open(1), raw_method(1, 99, 10, &[])].concat(), 99, 10).await;
}

#[tokio::test]
async fn unknown_class_on_channel_zero_is_not_implemented() {
    unknown_method(raw_method(0, 99, 10, &[]), 99, 10).await;
}

#[tokio::test]
async fn unknown_basic_method_is_not_implemented() {
    unknown_method([channel_open(1), raw_method(1, 60, 999, &[])].concat(), 60, 999).await;
}

/// Anything but the AMQP 0-9-1 protocol header is answered with that header, then the
/// socket is closed.
async fn refused_header(header: &[u8]) {
    let b = warren_it::start();
    let addr = b.host_port();
    let mut raw = Raw::tcp(&addr).await;
    raw.send(header).await;
    assert_eq!(raw.read_to_end(REPLY_TIMEOUT).await, PROTOCOL_HEADER.to_vec(), "for {header:?}");
    assert_broker_healthy(&addr).await;
}

#[tokio::test]
async fn http_request_gets_the_protocol_header_back() {
    refused_header(b"GET / HTTP/1.1\r\n\r\n").await;
}

#[tokio::test]
async fn amqp_0_10_header_gets_the_0_9_1_header_back() {
    refused_header(b"AMQP\x01\x01\x00\x0a").await;
}

#[tokio::test]
async fn amqp_1_0_header_gets_the_0_9_1_header_back() {
    refused_header(b"AMQP\x00\x01\x00\x00").await;
}

#[tokio::test]
async fn amqp_1_0_sasl_header_gets_the_0_9_1_header_back() {
    refused_header(b"AMQP\x03\x01\x00\x00").await;
}

#[tokio::test]
async fn method_on_unopened_channel_is_channel_error() {
    // queue.declare "abc" on channel 5, which was never opened.
    let declare = raw_method(5, 50, 10, &[0, 0, 3, b'a', b'b', b'c', 0, 0, 0, 0, 0]);
    let c = expect_close(declare).await;
    assert_eq!(c, close(504, "CHANNEL_ERROR - expected 'channel.open'", 50, 10));
}

#[tokio::test]
async fn channel_method_on_channel_zero_is_channel_error() {
    let declare = raw_method(0, 50, 10, &[0, 0, 0, 0, 0, 0, 0, 0]);
    let c = expect_close(declare).await;
    assert_eq!(c, close(504, "CHANNEL_ERROR - unexpected method in connection state running", 50, 10));
}

#[tokio::test]
async fn channel_open_on_channel_zero_is_channel_error() {
    let c = expect_close(channel_open(0)).await;
    assert_eq!(c, close(504, "CHANNEL_ERROR - unexpected method in connection state running", 20, 10));
}

#[tokio::test]
async fn second_channel_open_is_channel_error() {
    let c = expect_close([channel_open(1), channel_open(1)].concat()).await;
    assert_eq!(c, close(504, "CHANNEL_ERROR - second 'channel.open' seen", 20, 10));
}

const NO_METHOD: &str = "UNEXPECTED_FRAME - expected method frame, got non method frame instead";

#[tokio::test]
async fn body_without_publish_is_unexpected_frame() {
    let c = expect_close([channel_open(1), raw_frame(FRAME_BODY, 1, b"xx")].concat()).await;
    assert_eq!(c, close(505, NO_METHOD, 0, 0));
}

#[tokio::test]
async fn header_without_publish_is_unexpected_frame() {
    let c = expect_close([channel_open(1), content_header(1, 2)].concat()).await;
    assert_eq!(c, close(505, NO_METHOD, 0, 0));
}

#[tokio::test]
async fn method_between_publish_and_header_is_unexpected_frame() {
    let mut publish = publish_frames(1, "", "nowhere", b"xx");
    // Keep only the basic.publish method frame, then send another method instead of the header.
    let publish_len = 7 + u32::from_be_bytes(publish[3..7].try_into().unwrap()) as usize + 1;
    publish.truncate(publish_len);
    let declare = raw_method(1, 50, 10, &[0, 0, 0, 0, 0, 0, 0, 0]);
    let c = expect_close([channel_open(1), publish, declare].concat()).await;
    // The failing method RabbitMQ names is the publish whose content never came.
    assert_eq!(
        c,
        close(
            505,
            "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame instead",
            60,
            40
        )
    );
}

/// Undecodable arguments of a known method. The AMQP spec would call this 502 SYNTAX_ERROR;
/// RabbitMQ answers 501 FRAME_ERROR "cannot decode <<args>>", and Warren copies RabbitMQ.
#[tokio::test]
async fn truncated_method_arguments_are_frame_error() {
    // queue.declare whose queue name says 3 bytes but only 1 follows.
    let declare = raw_method(1, 50, 10, &[0, 0, 3, b'a']);
    let c = expect_close([channel_open(1), declare].concat()).await;
    assert_eq!(c, close(501, "FRAME_ERROR - cannot decode <<0,0,3,97>>", 50, 10));
}

#[tokio::test]
async fn trailing_method_arguments_are_frame_error() {
    // A complete queue.declare (empty name, no flags, empty table) followed by two extra bytes.
    let declare = raw_method(1, 50, 10, &[0, 0, 0, 0, 0, 0, 0, 0, 9, 9]);
    let c = expect_close([channel_open(1), declare].concat()).await;
    assert_eq!(c, close(501, "FRAME_ERROR - cannot decode <<0,0,0,0,0,0,0,0,9,9>>", 50, 10));
}

/// A deliberate difference from RabbitMQ, which accepts any nesting: past 64 levels of field
/// tables Warren answers 501. amq-protocol's parser recurses once per level, and 15,000 levels
/// in one content header overflowed a worker's stack and aborted the whole broker.
#[tokio::test]
async fn deeply_nested_headers_are_frame_error_and_the_broker_survives() {
    if warren_it::skip_against_external("RabbitMQ accepts any nesting") {
        return;
    }
    let mut props = vec![0b0010_0000, 0]; // property flags: headers only
    props.extend_from_slice(&nested_table(15_000));
    let mut header = vec![0, 60, 0, 0];
    header.extend_from_slice(&1u64.to_be_bytes());
    header.extend_from_slice(&props);
    let publish = raw_method(1, 60, 40, &[0, 0, 0, 1, b'q', 0]);
    let frames = [channel_open(1), publish, raw_frame(FRAME_HEADER, 1, &header), raw_frame(FRAME_BODY, 1, b"x")];
    let c = expect_close(frames.concat()).await;
    assert_eq!(c.reply_code, 501, "{c:?}");
    assert!(c.reply_text.contains("headers nested deeper than 64 levels"), "{c:?}");
}

#[tokio::test]
async fn deeply_nested_method_arguments_are_frame_error_and_the_broker_survives() {
    if warren_it::skip_against_external("RabbitMQ accepts any nesting") {
        return;
    }
    let mut args = vec![0, 0, 1, b'q', 0]; // queue.declare "q", no flags, then the arguments
    args.extend_from_slice(&nested_table(15_000));
    let c = expect_close([channel_open(1), raw_method(1, 50, 10, &args)].concat()).await;
    assert_eq!(c, close(501, "FRAME_ERROR - field tables or arrays nested deeper than 64 levels", 50, 10));
}

/// 64 levels is still fine, and the headers arrive as they were sent.
#[tokio::test]
async fn headers_nested_64_levels_are_delivered_intact() {
    let b = warren_it::start();
    let mut raw = Raw::open(&b.host_port()).await;
    raw.open_channel(1).await;
    let q = raw.declare_temp_queue(1).await;
    let mut props = vec![0b0010_0000, 0];
    props.extend_from_slice(&nested_table(64));
    let mut header = vec![0, 60, 0, 0];
    header.extend_from_slice(&1u64.to_be_bytes());
    header.extend_from_slice(&props);
    let mut publish_args = vec![0, 0, 0, q.len() as u8];
    publish_args.extend_from_slice(q.as_bytes());
    publish_args.push(0);
    raw.send(
        &[raw_method(1, 60, 40, &publish_args), raw_frame(FRAME_HEADER, 1, &header), raw_frame(FRAME_BODY, 1, b"x")]
            .concat(),
    )
    .await;
    // basic.get by hand, to see the content header as delivered: the same bytes as published.
    raw.send(&raw_method(1, 60, 70, &[&[0, 0, q.len() as u8][..], q.as_bytes(), &[1]].concat())).await;
    let got = raw.next_frame().await.expect("basic.get-ok");
    assert_eq!(got.method_id(), Some((60, 71)), "{got:?}");
    let delivered = raw.next_frame().await.expect("content header");
    assert_eq!((delivered.kind, delivered.payload.as_slice()), (FRAME_HEADER, header.as_slice()));
}
