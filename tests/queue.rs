//! queue.declare / bind / unbind / purge / delete as lapin sees them, with RabbitMQ's reply
//! codes and texts: server-named queues, passive declares and their counts, flag equivalence,
//! exclusive and auto-delete lifetimes, the reserved `amq.` prefix, if-unused / if-empty.
mod common;

use common::*;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, BasicQosOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, Consumer};

fn qopts(durable: bool, exclusive: bool, auto_delete: bool) -> QueueDeclareOptions {
    QueueDeclareOptions { durable, exclusive, auto_delete, ..Default::default() }
}

/// RabbitMQ caps reply texts at 255 bytes: longer ones keep 252 bytes and end in "...".
fn amqp_truncate(text: String) -> String {
    if text.len() <= 255 {
        text
    } else {
        format!("{}...", &text[..252])
    }
}

fn locked_text(name: &str) -> String {
    amqp_truncate(format!(
        "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{name}' in vhost '/'. \
         It could be originally declared on another connection or the exclusive property value \
         does not match that of the original declaration."
    ))
}

fn no_queue_text(name: &str) -> String {
    format!("NOT_FOUND - no queue '{name}' in vhost '/'")
}

/// Runs `f` on a channel of its own, so an expected channel error leaves the caller's
/// channel open; closes the channel when `f` succeeded.
async fn on_fresh<T, F, Fut>(conn: &Connection, f: F) -> lapin::Result<T>
where
    F: FnOnce(Channel) -> Fut,
    Fut: std::future::Future<Output = lapin::Result<T>>,
{
    let ch = conn.create_channel().await.expect("channel.open");
    let res = f(ch.clone()).await;
    if res.is_ok() {
        ch.close(200, "bye".into()).await.expect("channel.close");
    }
    res
}

async fn declare(ch: &Channel, name: &str, o: QueueDeclareOptions) -> lapin::Result<lapin::Queue> {
    ch.queue_declare(name.into(), o, FieldTable::default()).await
}

/// Publishes `n` messages to `queue` through the default exchange on a confirm channel and
/// waits for every ack, so they are enqueued when this returns.
async fn publish_n(conn: &Connection, queue: &str, n: usize) {
    let ch = conn.create_channel().await.expect("channel.open");
    ch.confirm_select(Default::default()).await.expect("confirm.select");
    for i in 0..n {
        let confirm = ch
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                format!("m{i}").as_bytes(),
                BasicProperties::default(),
            )
            .await
            .expect("basic.publish")
            .await
            .expect("confirm");
        assert!(confirm.is_ack(), "{confirm:?}");
    }
    ch.close(200, "bye".into()).await.expect("channel.close");
}

async fn consume(ch: &Channel, queue: &str) -> Consumer {
    ch.basic_consume(queue.into(), "".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .expect("basic.consume")
}

/// Waits until a passive declare of `name` answers 404.
///
/// RabbitMQ deletes exclusive queues when their connection is gone, and auto-delete queues
/// when their last consumer is cancelled, *after* answering close-ok / cancel-ok, so there
/// is no reply to wait for; this polls (bounded by [`PATIENCE`]) instead.
async fn wait_until_gone(conn: &Connection, name: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match queue_status(conn, name).await {
            Err(e) if reply_code(&e) == Some(NOT_FOUND) => return,
            Ok(_) | Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await
            }
            other => panic!("queue {name} still there after {PATIENCE:?}: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn server_named_queue() {
    let b = warren_it::start();
    let conn = connect(&b.uri()).await;
    let ch = conn.create_channel().await.expect("channel.open");
    let q1 = declare(&ch, "", qopts(false, true, false)).await.expect("queue.declare ''");
    let q2 = declare(&ch, "", qopts(false, true, false)).await.expect("queue.declare ''");
    for q in [&q1, &q2] {
        let name = q.name().as_str();
        // "amq.gen-" followed by 22 URL-safe base64 characters (a random 128-bit id).
        let id = name.strip_prefix("amq.gen-").unwrap_or_else(|| panic!("server-named: {name}"));
        assert_eq!(id.len(), 22, "{name}");
        assert!(id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'), "{name}");
        assert_eq!((q.message_count(), q.consumer_count()), (0, 0));
        assert_eq!(queue_status(&conn, name).await.expect("passive declare"), (0, 0));
    }
    assert_ne!(q1.name(), q2.name());
    conn.close(200, "bye".into()).await.expect("connection.close");
}

/// declare-ok carries the ready message count and the consumer count, for passive and
/// non-passive declares alike; unacknowledged messages are not counted.
#[tokio::test(flavor = "multi_thread")]
async fn declare_ok_reports_message_and_consumer_counts() {
    let b = warren_it::start();
    let conn = connect(&b.uri()).await;
    let ch = conn.create_channel().await.expect("channel.open");
    let name = unique_name("q-counts");
    let q = declare(&ch, &name, qopts(false, false, false)).await.expect("declare");
    assert_eq!((q.name().as_str(), q.message_count(), q.consumer_count()), (name.as_str(), 0, 0));

    publish_n(&conn, &name, 3).await;
    assert_eq!(queue_status(&conn, &name).await.expect("passive"), (3, 0));
    let q = declare(&ch, &name, qopts(false, false, false)).await.expect("redeclare");
    assert_eq!((q.message_count(), q.consumer_count()), (3, 0));

    // A consumer with prefetch 1 holds one message unacknowledged: 2 ready, 1 consumer.
    let cch = conn.create_channel().await.expect("consumer channel");
    cch.basic_qos(1, BasicQosOptions::default()).await.expect("basic.qos");
    let mut consumer = consume(&cch, &name).await;
    let first = tokio::time::timeout(PATIENCE, futures_lite::StreamExt::next(&mut consumer))
        .await
        .expect("a delivery in time")
        .expect("consumer open")
        .expect("delivery");
    assert_eq!(first.data, b"m0");
    assert_eq!(queue_status(&conn, &name).await.expect("passive"), (2, 1));

    cch.basic_cancel(consumer.tag(), BasicCancelOptions::default()).await.expect("basic.cancel");
    assert_eq!(queue_status(&conn, &name).await.expect("passive").1, 0);
    cch.close(200, "bye".into()).await.expect("channel.close");
    ch.queue_delete(name.as_str().into(), QueueDeleteOptions::default()).await.expect("delete");
    conn.close(200, "bye".into()).await.expect("connection.close");
}

#[tokio::test(flavor = "multi_thread")]
async fn passive_declare_of_missing_queue_is_not_found() {
    let b = warren_it::start();
    let conn = connect(&b.uri()).await;
    let name = unique_name("q-missing");
    let text = expect_code(queue_status(&conn, &name).await, NOT_FOUND);
    assert_eq!(text, no_queue_text(&name));
    assert!(conn.status().connected(), "404 is a channel error");
    conn.close(200, "bye".into()).await.expect("connection.close");
}

/// Every flag combination can be declared and identically redeclared; a redeclare with
/// another durable or auto-delete flag is 406, claiming exclusivity of a shared queue 405.
#[tokio::test(flavor = "multi_thread")]
async fn declare_flags_and_equivalence() {
    let b = warren_it::start();
    let conn = connect(&b.uri()).await;
    let ch = conn.create_channel().await.expect("channel.open");
    for (durable, exclusive, auto_delete) in
        [(false, false, false), (true, false, false), (false, true, false), (false, false, true), (true, true, true)]
    {
        let name = unique_name("q-flags");
        let o = qopts(durable, exclusive, auto_delete);
        declare(&ch, &name, o).await.expect("declare");
        declare(&ch, &name, o).await.expect("identical redeclare");
        ch.queue_delete(name.as_str().into(), QueueDeleteOptions::default()).await.expect("delete");
    }

    let name = unique_name("q-equiv");
    declare(&ch, &name, qopts(false, false, false)).await.expect("declare");
    let n = name.as_str();
    for (o, arg) in [(qopts(true, false, false), "durable"), (qopts(false, false, true), "auto_delete")] {
        let text = expect_code(on_fresh(&conn, |c| async move { declare(&c, n, o).await }).await, PRECONDITION_FAILED);
        assert_eq!(
            text,
            amqp_truncate(format!(
                "PRECONDITION_FAILED - inequivalent arg '{arg}' for queue '{name}' in vhost '/': \
                 received 'true' but current is 'false'"
            ))
        );
    }
    let text = expect_code(
        on_fresh(&conn, |c| async move { declare(&c, n, qopts(false, true, false)).await }).await,
        RESOURCE_LOCKED,
    );
    assert_eq!(text, locked_text(&name));
    // The queue kept its original properties.
    declare(&ch, &name, qopts(false, false, false)).await.expect("original redeclare");
    ch.queue_delete(name.as_str().into(), QueueDeleteOptions::default()).await.expect("delete");
    conn.close(200, "bye".into()).await.expect("connection.close");
}

/// An exclusive queue is locked (405) for every other connection, whatever it tries; its own
/// connection uses it from any channel.
#[tokio::test(flavor = "multi_thread")]
async fn exclusive_queue_is_locked_for_other_connections() {
    let b = warren_it::start();
    let owner = connect(&b.uri()).await;
    let other = connect(&b.uri()).await;
    let name = unique_name("q-exclusive");
    let och = owner.create_channel().await.expect("channel.open");
    declare(&och, &name, qopts(false, true, false)).await.expect("declare exclusive");
    publish_n(&owner, &name, 1).await;
    // Any channel of the owning connection may use it.
    assert_eq!(queue_status(&owner, &name).await.expect("passive from owner"), (1, 0));

    let n = name.as_str();
    let attempts: Vec<(&str, lapin::Result<()>)> = vec![
        (
            "declare exclusive",
            on_fresh(&other, |c| async move { declare(&c, n, qopts(false, true, false)).await.map(drop) }).await,
        ),
        (
            "declare shared",
            on_fresh(&other, |c| async move { declare(&c, n, qopts(false, false, false)).await.map(drop) }).await,
        ),
        ("passive declare", queue_status(&other, n).await.map(drop)),
        (
            "consume",
            on_fresh(&other, |c| async move {
                c.basic_consume(n.into(), "".into(), BasicConsumeOptions::default(), FieldTable::default())
                    .await
                    .map(drop)
            })
            .await,
        ),
        (
            "get",
            on_fresh(&other, |c| async move { c.basic_get(n.into(), BasicGetOptions::default()).await.map(drop) })
                .await,
        ),
        (
            "purge",
            on_fresh(&other, |c| async move { c.queue_purge(n.into(), Default::default()).await.map(drop) }).await,
        ),
        (
            "bind",
            on_fresh(&other, |c| async move {
                c.queue_bind(
                    n.into(),
                    "amq.direct".into(),
                    n.into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
            })
            .await,
        ),
        (
            "delete",
            on_fresh(
                &other,
                |c| async move { c.queue_delete(n.into(), QueueDeleteOptions::default()).await.map(drop) },
            )
            .await,
        ),
    ];
    for (what, res) in attempts {
        match res {
            Err(e) => {
                assert_eq!(reply_code(&e), Some(RESOURCE_LOCKED), "{what}: {e}");
                assert_eq!(reply_text(&e).unwrap(), locked_text(&name), "{what}");
            }
            Ok(()) => panic!("{what} from another connection succeeded"),
        }
    }
    assert!(other.status().connected(), "405 is a channel error");
    // Nothing the other connection tried had an effect.
    assert_eq!(queue_status(&owner, &name).await.expect("passive from owner"), (1, 0));
    owner.close(200, "bye".into()).await.expect("connection.close");
    other.close(200, "bye".into()).await.expect("connection.close");
}

/// A non-passive declare of an existing server-named queue checks the reserved `amq.` prefix
/// before the exclusive lock: another connection gets 403, not 405.
#[tokio::test(flavor = "multi_thread")]
async fn redeclaring_a_server_named_queue_elsewhere_is_access_refused() {
    let b = warren_it::start();
    let owner = connect(&b.uri()).await;
    let other = connect(&b.uri()).await;
    let och = owner.create_channel().await.expect("channel.open");
    let q = declare(&och, "", qopts(false, true, false)).await.expect("declare");
    let name = q.name().to_string();
    let n = name.as_str();
    let text = expect_code(
        on_fresh(&other, |c| async move { declare(&c, n, qopts(false, true, false)).await }).await,
        ACCESS_REFUSED,
    );
    assert_eq!(text, format!("ACCESS_REFUSED - queue name '{name}' contains reserved prefix 'amq.*'"));
    // A passive declare has no prefix check and meets the lock.
    let text = expect_code(queue_status(&other, n).await, RESOURCE_LOCKED);
    assert_eq!(text, locked_text(&name));
    owner.close(200, "bye".into()).await.expect("connection.close");
    other.close(200, "bye".into()).await.expect("connection.close");
}

#[tokio::test(flavor = "multi_thread")]
async fn exclusive_queue_is_deleted_with_its_connection() {
    let b = warren_it::start();
    let owner = connect(&b.uri()).await;
    let watcher = connect(&b.uri()).await;
    let name = unique_name("q-exclusive-life");
    let och = owner.create_channel().await.expect("channel.open");
    declare(&och, &name, qopts(false, true, false)).await.expect("declare exclusive");
    // Closing the declaring channel is not enough: exclusivity belongs to the connection.
    och.close(200, "bye".into()).await.expect("channel.close");
    assert_eq!(queue_status(&owner, &name).await.expect("still there"), (0, 0));
    expect_code(queue_status(&watcher, &name).await, RESOURCE_LOCKED);

    owner.close(200, "bye".into()).await.expect("connection.close");
    wait_until_gone(&watcher, &name).await;
    watcher.close(200, "bye".into()).await.expect("connection.close");
}

/// An auto-delete queue survives until it has had a consumer and the last one is cancelled.
#[tokio::test(flavor = "multi_thread")]
async fn auto_delete_queue_goes_with_its_last_consumer() {
    let b = warren_it::start();
    let conn = connect(&b.uri()).await;
    let ch = conn.create_channel().await.expect("channel.open");
    let name = unique_name("q-auto");
    declare(&ch, &name, qopts(false, false, true)).await.expect("declare auto-delete");
    publish_n(&conn, &name, 1).await;
    // Never consumed from: it stays, however long (basic.get is not a consumer).
    let got = ch.basic_get(name.as_str().into(), BasicGetOptions { no_ack: true }).await.expect("basic.get");
    assert_eq!(got.expect("message").delivery.data, b"m0");
    assert_eq!(queue_status(&conn, &name).await.expect("still there"), (0, 0));

    let c1 = consume(&ch, &name).await;
    let c2 = consume(&ch, &name).await;
    assert_eq!(queue_status(&conn, &name).await.expect("passive"), (0, 2));
    ch.basic_cancel(c1.tag(), BasicCancelOptions::default()).await.expect("basic.cancel");
    assert_eq!(queue_status(&conn, &name).await.expect("one consumer left"), (0, 1));
    ch.basic_cancel(c2.tag(), BasicCancelOptions::default()).await.expect("basic.cancel");
    wait_until_gone(&conn, &name).await;

    // Closing the consumer's channel counts as cancelling.
    declare(&ch, &name, qopts(false, false, true)).await.expect("declare auto-delete again");
    let cch = conn.create_channel().await.expect("consumer channel");
    let _c3 = consume(&cch, &name).await;
    assert_eq!(queue_status(&conn, &name).await.expect("passive"), (0, 1));
    cch.close(200, "bye".into()).await.expect("channel.close");
    wait_until_gone(&conn, &name).await;
    conn.close(200, "bye".into()).await.expect("connection.close");
}

/// queue.bind makes the exchange route to the queue, queue.unbind stops it. RabbitMQ 3.10
/// answers unbind-ok even when the binding, the queue or the exchange does not exist; bind
/// to a missing queue or exchange is 404.
#[tokio::test(flavor = "multi_thread")]
async fn bind_and_unbind() {
    let b = warren_it::start();
    let conn = connect(&b.uri()).await;
    let ch = conn.create_channel().await.expect("channel.open");
    ch.confirm_select(Default::default()).await.expect("confirm.select");
    let name = unique_name("q-bind");
    let key = unique_name("key");
    declare(&ch, &name, qopts(false, true, false)).await.expect("declare");
    ch.queue_bind(
        name.as_str().into(),
        "amq.direct".into(),
        key.as_str().into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("queue.bind");
    // Binding twice is idempotent.
    ch.queue_bind(
        name.as_str().into(),
        "amq.direct".into(),
        key.as_str().into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("queue.bind again");

    let publish = |body: &'static [u8]| {
        let ch = ch.clone();
        let key = key.clone();
        async move {
            let c = ch
                .basic_publish(
                    "amq.direct".into(),
                    key.as_str().into(),
                    BasicPublishOptions::default(),
                    body,
                    BasicProperties::default(),
                )
                .await
                .expect("basic.publish")
                .await
                .expect("confirm");
            assert!(c.is_ack());
        }
    };
    publish(b"bound").await;
    assert_eq!(queue_status(&conn, &name).await.expect("passive"), (1, 0), "one copy despite two binds");

    ch.queue_unbind(name.as_str().into(), "amq.direct".into(), key.as_str().into(), FieldTable::default())
        .await
        .expect("queue.unbind");
    publish(b"unbound").await;
    assert_eq!(queue_status(&conn, &name).await.expect("passive"), (1, 0), "nothing routed after unbind");

    let missing_q = unique_name("q-missing");
    let missing_x = unique_name("x-missing");
    for (q, x, k) in [
        (name.as_str(), "amq.direct", key.as_str()),
        (missing_q.as_str(), "amq.direct", key.as_str()),
        (name.as_str(), missing_x.as_str(), key.as_str()),
    ] {
        ch.queue_unbind(q.into(), x.into(), k.into(), FieldTable::default())
            .await
            .unwrap_or_else(|e| panic!("unbind {q} from {x}: {e}"));
    }

    let text = expect_code(
        on_fresh(&conn, |c| {
            let q = missing_q.clone();
            async move {
                c.queue_bind(
                    q.as_str().into(),
                    "amq.direct".into(),
                    "k".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
            }
        })
        .await,
        NOT_FOUND,
    );
    assert_eq!(text, no_queue_text(&missing_q));
    let text = expect_code(
        on_fresh(&conn, |c| {
            let (q, x) = (name.clone(), missing_x.clone());
            async move {
                c.queue_bind(
                    q.as_str().into(),
                    x.as_str().into(),
                    "k".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
            }
        })
        .await,
        NOT_FOUND,
    );
    assert_eq!(text, format!("NOT_FOUND - no exchange '{missing_x}' in vhost '/'"));
    conn.close(200, "bye".into()).await.expect("connection.close");
}

/// queue.purge removes the ready messages and returns how many; unacknowledged ones stay.
#[tokio::test(flavor = "multi_thread")]
async fn purge_returns_the_ready_count() {
    let b = warren_it::start();
    let conn = connect(&b.uri()).await;
    let ch = conn.create_channel().await.expect("channel.open");
    let name = unique_name("q-purge");
    declare(&ch, &name, qopts(false, true, false)).await.expect("declare");
    publish_n(&conn, &name, 5).await;
    let held = ch
        .basic_get(name.as_str().into(), BasicGetOptions { no_ack: false })
        .await
        .expect("basic.get")
        .expect("a message");
    assert_eq!(ch.queue_purge(name.as_str().into(), Default::default()).await.expect("purge"), 4);
    assert_eq!(queue_status(&conn, &name).await.expect("passive"), (0, 0));
    assert_eq!(ch.queue_purge(name.as_str().into(), Default::default()).await.expect("purge"), 0);

    // The unacknowledged message was not purged: rejecting it puts it back.
    held.delivery.nack(lapin::options::BasicNackOptions { requeue: true, multiple: false }).await.expect("nack");
    let again = ch
        .basic_get(name.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
        .expect("the held message is back");
    assert_eq!(again.delivery.data, b"m0");
    assert!(again.delivery.redelivered);

    let missing = unique_name("q-missing");
    let text = expect_code(
        on_fresh(&conn, |c| {
            let m = missing.clone();
            async move { c.queue_purge(m.as_str().into(), Default::default()).await }
        })
        .await,
        NOT_FOUND,
    );
    assert_eq!(text, no_queue_text(&missing));
    conn.close(200, "bye".into()).await.expect("connection.close");
}

/// queue.delete returns the number of ready messages it dropped; deleting a missing queue
/// is not an error in RabbitMQ 3.10 (delete-ok with 0).
#[tokio::test(flavor = "multi_thread")]
async fn delete_returns_the_message_count() {
    let b = warren_it::start();
    let conn = connect(&b.uri()).await;
    let ch = conn.create_channel().await.expect("channel.open");
    let name = unique_name("q-delete");
    declare(&ch, &name, qopts(false, false, false)).await.expect("declare");
    publish_n(&conn, &name, 3).await;
    assert_eq!(ch.queue_delete(name.as_str().into(), QueueDeleteOptions::default()).await.expect("delete"), 3);
    expect_code(queue_status(&conn, &name).await, NOT_FOUND);
    assert_eq!(
        ch.queue_delete(name.as_str().into(), QueueDeleteOptions::default()).await.expect("delete of a missing queue"),
        0
    );

    // Unacknowledged messages are not counted.
    declare(&ch, &name, qopts(false, false, false)).await.expect("declare");
    publish_n(&conn, &name, 3).await;
    let gch = conn.create_channel().await.expect("channel.open");
    gch.basic_get(name.as_str().into(), BasicGetOptions { no_ack: false })
        .await
        .expect("basic.get")
        .expect("a message");
    assert_eq!(ch.queue_delete(name.as_str().into(), QueueDeleteOptions::default()).await.expect("delete"), 2);
    conn.close(200, "bye".into()).await.expect("connection.close");
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_if_unused_refuses_a_queue_with_consumers() {
    let b = warren_it::start();
    let conn = connect(&b.uri()).await;
    let ch = conn.create_channel().await.expect("channel.open");
    let name = unique_name("q-if-unused");
    declare(&ch, &name, qopts(false, false, false)).await.expect("declare");
    let consumer = consume(&ch, &name).await;
    let n = name.as_str();
    let if_unused = QueueDeleteOptions { if_unused: true, ..Default::default() };
    let text = expect_code(
        on_fresh(&conn, |c| async move { c.queue_delete(n.into(), if_unused).await }).await,
        PRECONDITION_FAILED,
    );
    assert_eq!(text, amqp_truncate(format!("PRECONDITION_FAILED - queue '{name}' in vhost '/' in use")));
    assert_eq!(queue_status(&conn, &name).await.expect("still there"), (0, 1));

    ch.basic_cancel(consumer.tag(), BasicCancelOptions::default()).await.expect("basic.cancel");
    assert_eq!(ch.queue_delete(n.into(), if_unused).await.expect("if-unused delete"), 0);
    expect_code(queue_status(&conn, &name).await, NOT_FOUND);
    conn.close(200, "bye".into()).await.expect("connection.close");
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_if_empty_refuses_a_queue_with_messages() {
    let b = warren_it::start();
    let conn = connect(&b.uri()).await;
    let ch = conn.create_channel().await.expect("channel.open");
    let name = unique_name("q-if-empty");
    declare(&ch, &name, qopts(false, false, false)).await.expect("declare");
    publish_n(&conn, &name, 2).await;
    let n = name.as_str();
    let if_empty = QueueDeleteOptions { if_empty: true, ..Default::default() };
    let text = expect_code(
        on_fresh(&conn, |c| async move { c.queue_delete(n.into(), if_empty).await }).await,
        PRECONDITION_FAILED,
    );
    assert_eq!(text, amqp_truncate(format!("PRECONDITION_FAILED - queue '{name}' in vhost '/' not empty")));
    assert_eq!(queue_status(&conn, &name).await.expect("still there"), (2, 0));

    assert_eq!(ch.queue_purge(n.into(), Default::default()).await.expect("purge"), 2);
    assert_eq!(ch.queue_delete(n.into(), if_empty).await.expect("if-empty delete"), 0);
    expect_code(queue_status(&conn, &name).await, NOT_FOUND);
    conn.close(200, "bye".into()).await.expect("connection.close");
}

/// Clients may not create queues whose name starts with `amq.`; a passive declare of such a
/// name simply finds nothing.
#[tokio::test(flavor = "multi_thread")]
async fn declaring_an_amq_queue_is_access_refused() {
    let b = warren_it::start();
    let conn = connect(&b.uri()).await;
    let name = format!("amq.{}", unique_name("q-reserved"));
    for o in [qopts(false, false, false), qopts(true, true, true)] {
        let n = name.as_str();
        let text = expect_code(on_fresh(&conn, |c| async move { declare(&c, n, o).await }).await, ACCESS_REFUSED);
        assert_eq!(text, format!("ACCESS_REFUSED - queue name '{name}' contains reserved prefix 'amq.*'"));
    }
    let text = expect_code(queue_status(&conn, &name).await, NOT_FOUND);
    assert_eq!(text, no_queue_text(&name));
    conn.close(200, "bye".into()).await.expect("connection.close");
}
