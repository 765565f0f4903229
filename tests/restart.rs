//! What survives a restart (a clean stop and start on the same data directory), as in RabbitMQ:
//! durable exchanges, queues and bindings, and persistent messages in durable queues, with their
//! properties, order and redelivered state. Nothing else.
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeBindOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

async fn channel(b: &warren_it::TestBroker) -> (Connection, Channel) {
    let conn = Connection::connect(&b.uri(), ConnectionProperties::default()).await.expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    (conn, ch)
}

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions { durable: true, ..Default::default() }
}

async fn passive_queue(ch: &Channel, name: &str) -> Result<u32, u16> {
    ch.queue_declare(name.into(), QueueDeclareOptions { passive: true, ..Default::default() }, FieldTable::default())
        .await
        .map(|q| q.message_count())
        .map_err(|e| match e.kind() {
            lapin::ErrorKind::ProtocolError(p) => p.get_id(),
            other => panic!("unexpected error {other:?}"),
        })
}

async fn publish(ch: &Channel, exchange: &str, key: &str, body: &[u8], props: BasicProperties) {
    let c = ch.basic_publish(exchange.into(), key.into(), BasicPublishOptions::default(), body, props).await.unwrap();
    assert!(c.await.unwrap().is_ack(), "publish of {:?} not confirmed", String::from_utf8_lossy(body));
}

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

#[tokio::test(flavor = "multi_thread")]
async fn durable_metadata_survives_and_the_rest_does_not() {
    let b = warren_it::start();
    if b.is_external() {
        return eprintln!("skipped: restarts the broker");
    }
    let (conn, ch) = channel(&b).await;
    let mut args = FieldTable::default();
    args.insert("x-note".into(), AMQPValue::LongString("kept".into()));
    let durable_ex = ExchangeDeclareOptions { durable: true, ..Default::default() };
    ch.exchange_declare("r.topic".into(), ExchangeKind::Topic, durable_ex, args.clone()).await.unwrap();
    ch.exchange_declare("r.fan".into(), ExchangeKind::Fanout, durable_ex, FieldTable::default()).await.unwrap();
    ch.exchange_declare("r.transient".into(), ExchangeKind::Direct, Default::default(), FieldTable::default())
        .await
        .unwrap();
    ch.queue_declare("r.q".into(), durable_queue(), args.clone()).await.unwrap();
    ch.queue_declare("r.tq".into(), QueueDeclareOptions::default(), FieldTable::default()).await.unwrap();
    ch.queue_declare(
        "r.excl".into(),
        QueueDeclareOptions { durable: true, exclusive: true, ..Default::default() },
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind("r.q".into(), "r.topic".into(), "a.*".into(), QueueBindOptions::default(), FieldTable::default())
        .await
        .unwrap();
    ch.queue_bind("r.tq".into(), "r.topic".into(), "#".into(), QueueBindOptions::default(), FieldTable::default())
        .await
        .unwrap();
    ch.exchange_bind(
        "r.topic".into(),
        "r.fan".into(),
        "".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    // Deleted before the restart: must stay deleted, bindings included.
    ch.queue_declare("r.gone".into(), durable_queue(), FieldTable::default()).await.unwrap();
    ch.queue_bind("r.gone".into(), "r.topic".into(), "a.*".into(), QueueBindOptions::default(), FieldTable::default())
        .await
        .unwrap();
    ch.queue_delete("r.gone".into(), Default::default()).await.unwrap();
    conn.close(200, "bye".into()).await.unwrap();

    let b = warren_it::start_in(b.stop_keeping_data(), |_| {});
    let (_conn, ch) = channel(&b).await;
    let passive_ex = ExchangeDeclareOptions { passive: true, ..Default::default() };
    for e in ["r.topic", "r.fan"] {
        ch.exchange_declare(e.into(), ExchangeKind::Topic, passive_ex, FieldTable::default()).await.unwrap();
    }
    assert_eq!(passive_queue(&ch, "r.q").await, Ok(0));
    let (_c2, ch2) = channel(&b).await;
    assert_eq!(passive_queue(&ch2, "r.tq").await, Err(404), "non-durable queue must be gone");
    let (_c3, ch3) = channel(&b).await;
    assert_eq!(passive_queue(&ch3, "r.excl").await, Err(404), "exclusive queue must be gone");
    let (_c4, ch4) = channel(&b).await;
    let err = ch4.exchange_declare("r.transient".into(), ExchangeKind::Direct, passive_ex, FieldTable::default()).await;
    assert!(err.is_err(), "non-durable exchange must be gone");

    // Bindings are back: r.fan → r.topic → r.q ("a.*"); the deleted queue's binding is not.
    let (_c5, ch) = channel(&b).await;
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    ch.queue_declare("r.gone".into(), durable_queue(), FieldTable::default()).await.unwrap();
    publish(&ch, "r.fan", "a.b", b"via-e2e", persistent()).await;
    publish(&ch, "r.topic", "a.c", b"direct", persistent()).await;
    assert_eq!(passive_queue(&ch, "r.q").await, Ok(2));
    assert_eq!(passive_queue(&ch, "r.gone").await, Ok(0), "a deleted queue's bindings must not come back");
}

#[tokio::test(flavor = "multi_thread")]
async fn persistent_messages_survive_with_properties_order_and_redelivered_state() {
    let b = warren_it::start();
    if b.is_external() {
        return eprintln!("skipped: restarts the broker");
    }
    let (conn, ch) = channel(&b).await;
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    ch.queue_declare("p.q".into(), durable_queue(), FieldTable::default()).await.unwrap();
    ch.queue_declare("p.transient".into(), QueueDeclareOptions::default(), FieldTable::default()).await.unwrap();
    let mut headers = FieldTable::default();
    headers.insert("h-int".into(), AMQPValue::LongInt(-7));
    headers.insert("h-str".into(), AMQPValue::LongString("v".into()));
    headers.insert("h-bool".into(), AMQPValue::Boolean(true));
    let props = |i: u32| {
        persistent()
            .with_content_type("text/plain".into())
            .with_correlation_id(format!("c-{i}").into())
            .with_message_id(format!("m-{i}").into())
            .with_priority(3)
            .with_timestamp(1_700_000_000 + i as u64)
            .with_headers(headers.clone())
    };
    for i in 0..100u32 {
        publish(&ch, "", "p.q", format!("body-{i}").as_bytes(), props(i)).await;
        // Transient messages in the same durable queue, and persistent ones in a non-durable queue.
        publish(&ch, "", "p.q", b"transient", BasicProperties::default()).await;
        publish(&ch, "", "p.transient", b"gone", persistent()).await;
    }
    // Before the restart: ack the first 10 (twice 10 gets, skipping transient ones), deliver the
    // next 5 without acking them.
    let get = BasicGetOptions::default();
    let mut acked = 0;
    let mut delivered_unacked = Vec::new();
    while acked < 10 || delivered_unacked.len() < 5 {
        let m = ch.basic_get("p.q".into(), get).await.unwrap().expect("a message");
        let body = String::from_utf8(m.delivery.data.clone()).unwrap();
        if body == "transient" {
            m.delivery.acker.ack(BasicAckOptions::default()).await.unwrap();
        } else if acked < 10 {
            m.delivery.acker.ack(BasicAckOptions::default()).await.unwrap();
            acked += 1;
        } else {
            delivered_unacked.push(body);
        }
    }
    // Make sure the acks above reached the store: a later confirm covers them (ordered writer).
    publish(&ch, "", "p.other", b"barrier", persistent()).await;
    conn.close(200, "bye".into()).await.unwrap();

    let b = warren_it::start_in(b.stop_keeping_data(), |_| {});
    let (_conn, ch) = channel(&b).await;
    assert_eq!(passive_queue(&ch, "p.q").await, Ok(90), "100 persistent - 10 acked; transient ones dropped");
    let (_c2, ch2) = channel(&b).await;
    assert_eq!(passive_queue(&ch2, "p.transient").await, Err(404));
    let (_c3, ch) = channel(&b).await;
    for i in 10..100u32 {
        let m = ch.basic_get("p.q".into(), BasicGetOptions { no_ack: true }).await.unwrap().expect("recovered message");
        assert_eq!(String::from_utf8(m.delivery.data.clone()).unwrap(), format!("body-{i}"), "order");
        assert_eq!(m.delivery.properties, props(i), "properties and headers of message {i}");
        assert_eq!(m.delivery.redelivered, i < 15, "redelivered flag of message {i}");
    }
    assert!(ch.basic_get("p.q".into(), BasicGetOptions { no_ack: true }).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn committed_transactions_survive_and_uncommitted_ones_do_not() {
    let b = warren_it::start();
    if b.is_external() {
        return eprintln!("skipped: restarts the broker");
    }
    let (conn, ch) = channel(&b).await;
    ch.queue_declare("t.q".into(), durable_queue(), FieldTable::default()).await.unwrap();
    ch.tx_select().await.unwrap();
    for i in 0..10 {
        ch.basic_publish(
            "".into(),
            "t.q".into(),
            BasicPublishOptions::default(),
            format!("c{i}").as_bytes(),
            persistent(),
        )
        .await
        .unwrap();
    }
    ch.tx_commit().await.unwrap();
    // Ack 4 of them in a committed transaction, then leave a publish and an ack uncommitted.
    for _ in 0..4 {
        let m = ch.basic_get("t.q".into(), BasicGetOptions::default()).await.unwrap().unwrap();
        m.delivery.acker.ack(BasicAckOptions::default()).await.unwrap();
    }
    ch.tx_commit().await.unwrap();
    ch.basic_publish("".into(), "t.q".into(), BasicPublishOptions::default(), b"uncommitted", persistent())
        .await
        .unwrap();
    let m = ch.basic_get("t.q".into(), BasicGetOptions::default()).await.unwrap().unwrap();
    m.delivery.acker.ack(BasicAckOptions::default()).await.unwrap();
    conn.close(200, "bye".into()).await.unwrap();

    let b = warren_it::start_in(b.stop_keeping_data(), |_| {});
    let (_conn, ch) = channel(&b).await;
    let mut bodies = Vec::new();
    while let Some(m) = ch.basic_get("t.q".into(), BasicGetOptions { no_ack: true }).await.unwrap() {
        bodies.push(String::from_utf8(m.delivery.data.clone()).unwrap());
    }
    assert_eq!(bodies, ["c4", "c5", "c6", "c7", "c8", "c9"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn long_queues_page_to_disk_and_come_back_in_order() {
    // A 64 KiB window: nearly all of these messages live on disk while queued.
    let b = warren_it::start_with(|c| c.queue_memory_window = 64 * 1024);
    if b.is_external() {
        return eprintln!("skipped: needs a small memory window");
    }
    let (conn, ch) = channel(&b).await;
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    ch.queue_declare("pg.transient".into(), QueueDeclareOptions::default(), FieldTable::default()).await.unwrap();
    ch.queue_declare("pg.durable".into(), durable_queue(), FieldTable::default()).await.unwrap();
    const N: u32 = 5_000;
    let body = |i: u32| format!("{i:0128}");
    for i in 0..N {
        ch.basic_publish(
            "".into(),
            "pg.transient".into(),
            BasicPublishOptions::default(),
            body(i).as_bytes(),
            Default::default(),
        )
        .await
        .unwrap();
        ch.basic_publish(
            "".into(),
            "pg.durable".into(),
            BasicPublishOptions::default(),
            body(i).as_bytes(),
            persistent(),
        )
        .await
        .unwrap();
    }
    assert!(ch.wait_for_confirms().await.unwrap().is_empty(), "nothing returned");
    assert_eq!(passive_queue(&ch, "pg.transient").await, Ok(N));
    for i in 0..N {
        let m = ch
            .basic_get("pg.transient".into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .expect("paged message");
        assert_eq!(m.delivery.data, body(i).as_bytes(), "transient message {i} out of order");
    }
    conn.close(200, "bye".into()).await.unwrap();

    let b = warren_it::start_in(b.stop_keeping_data(), |c| c.queue_memory_window = 64 * 1024);
    let (_conn, ch) = channel(&b).await;
    assert_eq!(passive_queue(&ch, "pg.durable").await, Ok(N));
    for i in 0..N {
        let m = ch
            .basic_get("pg.durable".into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .expect("recovered message");
        assert_eq!(m.delivery.data, body(i).as_bytes(), "persistent message {i} out of order");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disk_write_failure_nacks_publishes_and_the_broker_keeps_serving() {
    let b = warren_it::start();
    if b.is_external() {
        return eprintln!("skipped: injects store failures");
    }
    let (_conn, ch) = channel(&b).await;
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    ch.queue_declare("f.q".into(), durable_queue(), FieldTable::default()).await.unwrap();
    let send = |body: &'static [u8]| {
        let ch = ch.clone();
        async move {
            ch.basic_publish("".into(), "f.q".into(), BasicPublishOptions::default(), body, persistent())
                .await
                .unwrap()
                .await
                .unwrap()
        }
    };
    assert!(send(b"before").await.is_ack());
    b.inject_write_failures(true);
    assert!(send(b"during").await.is_nack(), "a persistent message that could not be written must be nacked");
    // The failed write raises the disk alarm, as RabbitMQ's disk alarm does for a full disk:
    // publishers are blocked until the store writes again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !b.alarms().status().disk_alarm {
        assert!(std::time::Instant::now() < deadline, "no disk alarm after a failed write");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(b.alarms().status().store_write_failing);
    // Consumers still get what is there.
    let (_c2, ch2) = channel(&b).await;
    let got = ch2.basic_get("f.q".into(), BasicGetOptions::default()).await.unwrap().unwrap();
    assert_eq!(got.delivery.data, b"before");
    got.nack(lapin::options::BasicNackOptions { requeue: true, ..Default::default() }).await.unwrap();
    b.inject_write_failures(false);
    // The writer retries on its own; then the alarm clears and publishing works again.
    assert!(send(b"after").await.is_ack());
    assert!(!b.alarms().status().disk_alarm);
    let c = ch.basic_publish("".into(), "f.q".into(), BasicPublishOptions::default(), b"transient", Default::default());
    assert!(c.await.unwrap().await.unwrap().is_ack());
    // The broker kept serving on the same channel.
    let got = ch.basic_get("f.q".into(), BasicGetOptions { no_ack: true }).await.unwrap().unwrap();
    assert_eq!(got.delivery.data, b"before");
}

/// The `.seg` files of a broker's message log.
fn segment_files(data_dir: &std::path::Path) -> usize {
    std::fs::read_dir(data_dir.join("log"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".seg"))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_lived_message_does_not_keep_its_log_segment() {
    // 64 KiB segments: a thousand 1 KiB messages fill about sixteen.
    let b = warren_it::start_with(|c| c.msg_store_file_size_limit = 64 * 1024);
    if b.is_external() {
        return eprintln!("skipped: reads the broker's data directory");
    }
    let (conn, ch) = channel(&b).await;
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    for q in ["cp.keep", "cp.churn"] {
        ch.queue_declare(q.into(), durable_queue(), FieldTable::default()).await.unwrap();
    }
    publish(&ch, "", "cp.keep", b"kept", persistent()).await;
    let body = vec![b'x'; 1024];
    for _ in 0..1000 {
        publish(&ch, "", "cp.churn", &body, persistent()).await;
    }
    assert!(ch.wait_for_confirms().await.unwrap().is_empty());
    let dir = b.data_dir.clone().unwrap();
    let full = segment_files(&dir);
    assert!(full > 10, "{full} segments for 1 MB of messages");
    for _ in 0..1000 {
        ch.basic_get("cp.churn".into(), BasicGetOptions { no_ack: true }).await.unwrap().expect("a message");
    }
    // Fully settled segments go at once; the first one also holds "kept", and is compacted
    // once it has been left alone for a check interval or two.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while segment_files(&dir) > 1 {
        assert!(std::time::Instant::now() < deadline, "{} segments left after the drain", segment_files(&dir));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    conn.close(200, "bye".into()).await.unwrap();
    let b = warren_it::start_in(b.stop_keeping_data(), |c| c.msg_store_file_size_limit = 64 * 1024);
    let (_conn, ch) = channel(&b).await;
    assert_eq!(passive_queue(&ch, "cp.keep").await, Ok(1));
    let got = ch.basic_get("cp.keep".into(), BasicGetOptions { no_ack: true }).await.unwrap().unwrap();
    assert_eq!(got.delivery.data, b"kept", "the moved copy is the message");
}
