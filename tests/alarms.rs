//! Resource alarms: while the memory or disk alarm is on, a connection that publishes is
//! blocked (its socket is not read) and, if it advertised the `connection.blocked` capability,
//! told so with RabbitMQ's reason; it is unblocked (and told) when every alarm has cleared, and
//! what it sent meanwhile is then handled. Connections that only consume go on.
//!
//! The alarms are raised by moving the thresholds of the in-process broker (a memory watermark
//! of 1 byte, a disk free limit larger than any disk), as `rabbitmqctl
//! set_vm_memory_high_watermark` / `set_disk_free_limit` would on RabbitMQ.
mod common;
mod raw;

use amq_protocol::protocol::{connection, queue, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable as RawTable};
use common::*;
use futures_lite::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Event};
use raw::*;
use std::time::Duration;
use tokio::time::{timeout, Instant};
use warren_server::alarm::{DiskFreeLimit, MemoryWatermark};

/// How long a check waits to be sure that something does NOT happen.
const ABSENCE: Duration = Duration::from_millis(300);

/// The next blocked/unblocked event on a lapin connection's event stream.
async fn next_blocking_event(events: &mut (impl futures_lite::Stream<Item = Event> + Unpin)) -> Event {
    loop {
        match timeout(PATIENCE, events.next()).await {
            Ok(Some(e @ (Event::ConnectionBlocked(_) | Event::ConnectionUnblocked))) => return e,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("event stream ended"),
            Err(_) => panic!("no connection.blocked/unblocked within {PATIENCE:?}"),
        }
    }
}

/// `f`, or a failure naming `what` if it does not finish within [`PATIENCE`]: lapin stops
/// writing once told its connection is blocked, so a wrongly blocked connection shows as a hang.
async fn bounded<T>(what: &str, f: impl std::future::Future<Output = lapin::Result<T>>) -> T {
    match timeout(PATIENCE, f).await {
        Ok(r) => r.unwrap_or_else(|e| panic!("{what}: {e}")),
        Err(_) => panic!("{what} did not finish within {PATIENCE:?}"),
    }
}

/// Every non-heartbeat frame the broker sends within `d`.
async fn frames_within(raw: &mut Raw, d: Duration) -> Vec<RawFrame> {
    let deadline = Instant::now() + d;
    let mut got = Vec::new();
    while let Ok(f) = tokio::time::timeout_at(deadline, raw.next_frame()).await {
        match f {
            Some(f) if f.kind == FRAME_HEARTBEAT => {}
            Some(f) => got.push(f),
            None => panic!("broker closed the connection; frames before: {got:?}"),
        }
    }
    got
}

fn passive_declare(q: &str) -> Vec<u8> {
    method_frame(
        1,
        AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: q.into(),
            passive: true,
            durable: false,
            exclusive: false,
            auto_delete: false,
            nowait: false,
            arguments: RawTable::default(),
        })),
    )
}

/// The message count of the declare-ok that must be the next method on channel 1.
async fn expect_declare_ok(raw: &mut Raw) -> u32 {
    match raw.expect_method_on().await {
        (1, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok))) => ok.message_count,
        other => panic!("expected queue.declare-ok on channel 1, got {other:?}"),
    }
}

/// A raw connection that advertises `connection.blocked`, heartbeats off.
async fn open_with_blocked_capability(addr: &str) -> Raw {
    let mut caps = RawTable::default();
    caps.insert("connection.blocked".into(), AMQPValue::Boolean(true));
    let mut props = RawTable::default();
    props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
    let mut raw = Raw::tcp(addr).await;
    raw.handshake_until_tune_as(props).await;
    let ok = TuneValues { heartbeat: 0, ..raw.server_tune };
    raw.send_tune_ok_and_open(ok).await;
    raw
}

/// The lapin scenario: the publisher is told "low on memory" and its publishes wait; the
/// consumer connection drains a backlog with prefetch 1 meanwhile (each delivery needs the
/// previous ack handled, so acks flow); once the watermark is restored the publisher is
/// unblocked and everything it published arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_alarm_blocks_the_publisher_while_the_consumer_drains() {
    if warren_it::skip_against_external("moves the broker's memory watermark") {
        return;
    }
    const BACKLOG: usize = 20;
    const HELD: usize = 10;
    let b = warren_it::start();
    let alarms = b.alarms().clone();
    let publisher = connect(&b.uri()).await;
    let mut publisher_events = Box::pin(publisher.events_listener());
    let consumer = connect(&b.uri()).await;
    let pch = publisher.create_channel().await.unwrap();
    let cch = consumer.create_channel().await.unwrap();
    let (drained, held) = (unique_name("alarm.drained"), unique_name("alarm.held"));
    for q in [&drained, &held] {
        cch.queue_declare(q.as_str().into(), QueueDeclareOptions::default(), FieldTable::default()).await.unwrap();
    }
    for i in 0..BACKLOG {
        let body = format!("backlog {i}");
        pch.basic_publish(
            "".into(),
            drained.as_str().into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
    round_trip(&pch).await.unwrap();

    alarms.set_vm_memory_high_watermark(MemoryWatermark::Absolute(1)).unwrap();
    assert!(alarms.status().memory_alarm, "{:?}", alarms.status());

    // Once lapin hears connection.blocked it holds its writes back, so a publish that has not
    // gone out yet only returns after the unblock: publish from a task.
    let held_q = held.clone();
    let publishing = tokio::spawn(async move {
        for i in 0..HELD {
            let body = format!("held {i}");
            pch.basic_publish(
                "".into(),
                held_q.as_str().into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap();
        }
        pch
    });
    match next_blocking_event(&mut publisher_events).await {
        Event::ConnectionBlocked(reason) => assert_eq!(reason, "low on memory"),
        other => panic!("expected connection.blocked, got {other:?}"),
    }

    bounded("consumer's basic.qos", cch.basic_qos(1, BasicQosOptions::default())).await;
    let consume = cch.basic_consume(
        drained.as_str().into(),
        "drain".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    );
    let mut deliveries = bounded("consumer's basic.consume", consume).await;
    for i in 0..BACKLOG {
        let d = timeout(PATIENCE, deliveries.next())
            .await
            .unwrap_or_else(|_| panic!("delivery {i} did not come during the alarm"))
            .expect("consumer ended")
            .expect("delivery");
        assert_eq!(d.data, format!("backlog {i}").into_bytes());
        bounded("consumer's basic.ack", d.ack(BasicAckOptions::default())).await;
    }
    let status = |q: String| {
        let consumer = &consumer;
        async move { bounded("consumer's passive queue.declare", queue_status(consumer, &q)).await }
    };
    assert_eq!(status(drained.clone()).await, (0, 1), "acks were handled during the alarm");
    assert_eq!(status(held.clone()).await.0, 0, "a publish was handled during the alarm");

    alarms.set_vm_memory_high_watermark(MemoryWatermark::Relative(1.0)).unwrap();
    assert!(!alarms.status().memory_alarm, "{:?}", alarms.status());
    assert!(matches!(next_blocking_event(&mut publisher_events).await, Event::ConnectionUnblocked));
    let pch = timeout(PATIENCE, publishing).await.expect("publishes still held after the unblock").unwrap();
    bounded("publisher's round trip", round_trip(&pch)).await;
    assert_eq!(status(held).await.0, HELD as u32);
}

/// A client that did not advertise the capability is blocked all the same, and hears nothing
/// about it: the frames it sent are handled after the alarm, and the first thing it receives
/// is the reply to them. Being blocked for longer than two heartbeat intervals does not drop
/// it either (RabbitMQ pauses its heartbeat monitor while it does not read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_the_capability_is_blocked_silently() {
    if warren_it::skip_against_external("moves the broker's disk free limit") {
        return;
    }
    let b = warren_it::start();
    let alarms = b.alarms();
    let mut raw = Raw::open_with(&b.host_port(), |t| TuneValues { heartbeat: 1, ..t }).await;
    raw.open_channel(1).await;
    let q = raw.declare_temp_queue(1).await;

    alarms.set_disk_free_limit(DiskFreeLimit::Absolute(u64::MAX)).unwrap();
    assert!(alarms.status().disk_alarm, "{:?}", alarms.status());
    raw.send(&publish_frames(1, "", &q, b"held")).await;
    raw.send(&passive_declare(&q)).await;
    let meanwhile = frames_within(&mut raw, Duration::from_millis(2_500)).await;
    assert_eq!(meanwhile, vec![], "frames while blocked");

    alarms.set_disk_free_limit(DiskFreeLimit::Absolute(0)).unwrap();
    assert_eq!(expect_declare_ok(&mut raw).await, 1, "the held publish was routed first");
    assert_eq!(raw.get(1, &q).await, Some(b"held".to_vec()));
    raw.close().await;
}

/// With the capability: one connection.blocked naming every alarm on, nothing more while a
/// second alarm comes and goes, connection.unblocked only when the last one clears, and then
/// the replies to what was sent meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_capability_brings_one_blocked_and_one_unblocked() {
    if warren_it::skip_against_external("moves the broker's alarm thresholds") {
        return;
    }
    let b = warren_it::start();
    let alarms = b.alarms();
    let mut raw = open_with_blocked_capability(&b.host_port()).await;
    raw.open_channel(1).await;
    let q = raw.declare_temp_queue(1).await;

    alarms.set_vm_memory_high_watermark(MemoryWatermark::Absolute(1)).unwrap();
    alarms.set_disk_free_limit(DiskFreeLimit::Absolute(u64::MAX)).unwrap();
    raw.send(&publish_frames(1, "", &q, b"one")).await;
    raw.send(&publish_frames(1, "", &q, b"two")).await;
    raw.send(&passive_declare(&q)).await;
    match raw.expect_method_on().await {
        (0, AMQPClass::Connection(connection::AMQPMethod::Blocked(b))) => {
            assert_eq!(b.reason.as_str(), "low on memory & disk")
        }
        other => panic!("expected connection.blocked, got {other:?}"),
    }
    assert_eq!(frames_within(&mut raw, ABSENCE).await, vec![], "frames after connection.blocked");

    alarms.set_disk_free_limit(DiskFreeLimit::Absolute(0)).unwrap();
    assert_eq!(frames_within(&mut raw, ABSENCE).await, vec![], "unblocked while the memory alarm is on");
    alarms.set_disk_free_limit(DiskFreeLimit::Absolute(u64::MAX)).unwrap();
    alarms.set_vm_memory_high_watermark(MemoryWatermark::Relative(1.0)).unwrap();
    assert_eq!(frames_within(&mut raw, ABSENCE).await, vec![], "a second connection.blocked");

    alarms.set_disk_free_limit(DiskFreeLimit::Absolute(0)).unwrap();
    match raw.expect_method_on().await {
        (0, AMQPClass::Connection(connection::AMQPMethod::Unblocked(_))) => {}
        other => panic!("expected connection.unblocked, got {other:?}"),
    }
    assert_eq!(expect_declare_ok(&mut raw).await, 2);
    raw.close().await;
}

/// A connection that only consumes and acks is never blocked: with an alarm on, a raw
/// consumer with the capability gets its deliveries and no connection.blocked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_is_not_blocked() {
    if warren_it::skip_against_external("moves the broker's memory watermark") {
        return;
    }
    let b = warren_it::start();
    let mut raw = open_with_blocked_capability(&b.host_port()).await;
    raw.open_channel(1).await;
    let q = raw.declare_temp_queue(1).await;
    raw.send(&publish_frames(1, "", &q, b"before")).await;
    assert_eq!(expect_declare_ok_after(&mut raw, &q).await, 1);

    b.alarms().set_vm_memory_high_watermark(MemoryWatermark::Absolute(1)).unwrap();
    assert_eq!(raw.get(1, &q).await, Some(b"before".to_vec()), "a get during the alarm");
    assert_eq!(expect_declare_ok_after(&mut raw, &q).await, 0);
    b.alarms().set_vm_memory_high_watermark(MemoryWatermark::Relative(1.0)).unwrap();
    raw.close().await;
}

async fn expect_declare_ok_after(raw: &mut Raw, q: &str) -> u32 {
    raw.send(&passive_declare(q)).await;
    expect_declare_ok(raw).await
}

/// Shutdown still closes a blocked connection with 320: it reads again once closing, so
/// it sees the client's close-ok.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_a_blocked_connection() {
    if warren_it::skip_against_external("stops the broker") {
        return;
    }
    let b = warren_it::start();
    let mut raw = open_with_blocked_capability(&b.host_port()).await;
    raw.open_channel(1).await;
    let q = raw.declare_temp_queue(1).await;
    b.alarms().set_vm_memory_high_watermark(MemoryWatermark::Absolute(1)).unwrap();
    raw.send(&publish_frames(1, "", &q, b"held")).await;
    assert!(matches!(raw.expect_method_on().await, (0, AMQPClass::Connection(connection::AMQPMethod::Blocked(_)))));
    let stopping = tokio::task::spawn_blocking(move || drop(b));
    match raw.ending().await {
        Ending::Close(c) => assert_eq!(c.reply_code, 320, "{c:?}"),
        Ending::Eof => panic!("socket closed without connection.close"),
    }
    timeout(PATIENCE, stopping).await.expect("broker did not stop").unwrap();
}

/// The `warren` binary takes the alarm keys from its config file, logs the thresholds and the
/// alarm that starts at boot in RabbitMQ's words, and refuses an out-of-range watermark.
#[test]
fn the_binary_reads_the_alarm_keys_and_logs_the_alarm() {
    if warren_it::skip_against_external("runs the warren binary") {
        return;
    }
    let base = std::env::temp_dir().join(unique_name("alarm-config"));
    std::fs::create_dir_all(&base).unwrap();
    let file = base.join("rabbitmq.toml");
    std::fs::write(&file, "vm_memory_high_watermark.absolute = 1\ndisk_free_limit.absolute = \"1kB\"\n").unwrap();
    let data = base.join("data");
    let mut broker = warren_it::BrokerProcess::spawn_with_config(&file, &data);
    // Logged while binding, so before the listener line spawn_args waited for.
    let log = broker.log();
    let _ = broker.child.kill();
    let _ = broker.child.wait();
    for line in [
        "Memory high watermark set to 0 MiB (1 bytes) of ",
        "vm_memory_high_watermark set. Memory used:",
        "memory resource limit alarm set. *** Publishers will be blocked until this alarm clears ***",
        "Disk free limit set to 0MB",
    ] {
        assert!(log.contains(line), "{line:?} missing from the log:\n{log}");
    }
    assert!(!log.contains("disk resource limit alarm set"), "{log}");

    std::fs::write(&file, "vm_memory_high_watermark.relative = 1.5\n").unwrap();
    let out =
        std::process::Command::new(warren_it::warren_binary()).arg("--config").arg(&file).output().expect("run warren");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("vm_memory_high_watermark.relative must be between 0.0 and 1.0"), "{stderr}");
    let _ = std::fs::remove_dir_all(&base);
}
