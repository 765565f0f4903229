//! exchange.declare / delete / bind / unbind as lapin sees them, with RabbitMQ's reply codes:
//! the four built-in types and their flags, passive declares, equivalence checks, the
//! reserved `amq.` prefix, the pre-declared exchanges, if-unused, internal exchanges,
//! exchange-to-exchange bindings and auto-delete.
mod common;

use common::*;
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ExchangeBindOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    ExchangeUnbindOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};

fn opts(durable: bool, auto_delete: bool, internal: bool) -> ExchangeDeclareOptions {
    ExchangeDeclareOptions { durable, auto_delete, internal, ..Default::default() }
}

fn passive() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions { passive: true, ..Default::default() }
}

async fn declare(ch: &Channel, name: &str, kind: ExchangeKind, o: ExchangeDeclareOptions) -> lapin::Result<()> {
    ch.exchange_declare(name.into(), kind, o, FieldTable::default()).await
}

/// Runs `declare` on a channel of its own, so an expected channel error does not end the test's
/// channel; returns the result.
async fn declare_on_fresh(
    conn: &Connection,
    name: &str,
    kind: ExchangeKind,
    o: ExchangeDeclareOptions,
) -> lapin::Result<()> {
    let ch = conn.create_channel().await.expect("channel.open");
    let res = declare(&ch, name, kind, o).await;
    if res.is_ok() {
        ch.close(200, "bye".into()).await.expect("channel.close");
    }
    res
}

async fn delete_on_fresh(conn: &Connection, name: &str, if_unused: bool) -> lapin::Result<()> {
    let ch = conn.create_channel().await.expect("channel.open");
    let res = ch.exchange_delete(name.into(), ExchangeDeleteOptions { if_unused, nowait: false }).await;
    if res.is_ok() {
        ch.close(200, "bye".into()).await.expect("channel.close");
    }
    res
}

/// A server-named exclusive queue bound to `exchange` with `key`.
async fn bound_queue(ch: &Channel, exchange: &str, key: &str) -> String {
    let q = ch
        .queue_declare("".into(), QueueDeclareOptions { exclusive: true, ..Default::default() }, FieldTable::default())
        .await
        .expect("queue.declare");
    ch.queue_bind(q.name().clone(), exchange.into(), key.into(), QueueBindOptions::default(), FieldTable::default())
        .await
        .expect("queue.bind");
    q.name().to_string()
}

/// Publishes on a confirm-mode channel and waits for the ack: routing is complete afterwards,
/// so a following basic.get sees exactly what was routed.
async fn publish_confirmed(ch: &Channel, exchange: &str, key: &str, body: &[u8]) {
    let confirm = ch
        .basic_publish(exchange.into(), key.into(), BasicPublishOptions::default(), body, BasicProperties::default())
        .await
        .expect("basic.publish")
        .await
        .expect("confirm");
    assert!(confirm.is_ack(), "{confirm:?}");
}

async fn get_body(ch: &Channel, queue: &str) -> Option<Vec<u8>> {
    ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }).await.expect("basic.get").map(|m| m.delivery.data)
}

/// Every built-in type with every flag combination is created, passively found, redeclared
/// identically without error, and deleted.
#[tokio::test(flavor = "multi_thread")]
async fn declare_each_type_with_flags() {
    let b = warren_it::start();
    let conn = connect(&b.uri()).await;
    let ch = conn.create_channel().await.expect("channel.open");
    let kinds = [ExchangeKind::Direct, ExchangeKind::Fanout, ExchangeKind::Topic, ExchangeKind::Headers];
    for kind in kinds {
        for (durable, auto_delete, internal) in [
            (false, false, false),
            (true, false, false),
            (false, true, false),
            (false, false, true),
            (true, true, true),
        ] {
            let name = unique_name("x-flags");
            let o = opts(durable, auto_delete, internal);
            declare(&ch, &name, kind.clone(), o).await.expect("exchange.declare");
            declare(&ch, &name, kind.clone(), o).await.expect("identical redeclare");
            // Passive declare ignores type and flags: it only checks existence.
            declare(&ch, &name, ExchangeKind::Fanout, passive()).await.expect("passive declare");
            ch.exchange_delete(name.as_str().into(), ExchangeDeleteOptions::default()).await.expect("exchange.delete");
            assert!(!exchange_exists(&conn, &name).await, "{name} deleted");
        }
    }
    conn.close(200, "bye".into()).await.expect("connection.close");
}

#[tokio::test(flavor = "multi_thread")]
async fn passive_declare_of_missing_exchange_is_not_found() {
    let b = warren_it::start();
    let conn = connect(&b.uri()).await;
    let name = unique_name("x-missing");
    let text = expect_code(declare_on_fresh(&conn, &name, ExchangeKind::Direct, passive()).await, NOT_FOUND);
    assert_eq!(text, format!("NOT_FOUND - no exchange '{name}' in vhost '/'"));
    assert!(conn.status().connected(), "404 is a channel error");
    conn.close(200, "bye".into()).await.expect("connection.close");
}

/// Redeclaring with another type, durability, auto-delete or internal flag is refused.
#[tokio::test(flavor = "multi_thread")]
async fn redeclare_with_different_properties_is_precondition_failed() {
    let b = warren_it::start();
    let conn = connect(&b.uri()).await;
    let name = unique_name("x-equiv");
    declare_on_fresh(&conn, &name, ExchangeKind::Direct, opts(false, false, false)).await.expect("declare");

    let cases = [
        (ExchangeKind::Fanout, opts(false, false, false), "type", "fanout", "direct"),
        (ExchangeKind::Direct, opts(true, false, false), "durable", "true", "false"),
        (ExchangeKind::Direct, opts(false, true, false), "auto_delete", "true", "false"),
        (ExchangeKind::Direct, opts(false, false, true), "internal", "true", "false"),
    ];
    for (kind, o, arg, received, current) in cases {
        let text = expect_code(declare_on_fresh(&conn, &name, kind, o).await, PRECONDITION_FAILED);
        assert_eq!(
            text,
            format!(
                "PRECONDITION_FAILED - inequivalent arg '{arg}' for exchange '{name}' in vhost '/': \
                 received '{received}' but current is '{current}'"
            )
        );
    }

    // The original is unchanged and still deletable.
    delete_on_fresh(&conn, &name, false).await.expect("exchange.delete");
    conn.close(200, "bye".into()).await.expect("connection.close");
}

#[tokio::test(flavor = "multi_thread")]
async fn declaring_a_new_amq_exchange_is_access_refused() {
    let b = warren_it::start();
    let conn = connect(&b.uri()).await;
    let name = format!("amq.{}", unique_name("x-reserved"));
    let text = expect_code(
        declare_on_fresh(&conn, &name, ExchangeKind::Direct, opts(false, false, false)).await,
        ACCESS_REFUSED,
    );
    assert_eq!(text, format!("ACCESS_REFUSED - exchange name '{name}' contains reserved prefix 'amq.*'"));
    // The prefix is only checked on creation: a passive declare just does not find it.
    assert!(!exchange_exists(&conn, &name).await);
    conn.close(200, "bye".into()).await.expect("connection.close");
}

/// The pre-declared exchanges exist with their RabbitMQ types; an equivalent redeclare of one
/// is fine (the prefix check only applies to creation), a different type is refused.
#[tokio::test(flavor = "multi_thread")]
async fn predeclared_exchanges_exist() {
    let b = warren_it::start();
    let conn = connect(&b.uri()).await;
    for name in ["amq.direct", "amq.fanout", "amq.topic", "amq.headers", "amq.match"] {
        assert!(exchange_exists(&conn, name).await, "{name} exists");
    }
    // The default exchange ("") cannot be declared at all, not even passively: RabbitMQ
    // answers 403 before looking it up. It exists all the same: it routes by queue name.
    for o in [passive(), opts(true, false, false)] {
        let text = expect_code(declare_on_fresh(&conn, "", ExchangeKind::Direct, o).await, ACCESS_REFUSED);
        assert_eq!(text, "ACCESS_REFUSED - operation not permitted on the default exchange");
    }
    let ch = conn.create_channel().await.expect("channel.open");
    ch.confirm_select(Default::default()).await.expect("confirm.select");
    let q = ch
        .queue_declare("".into(), QueueDeclareOptions { exclusive: true, ..Default::default() }, FieldTable::default())
        .await
        .expect("queue.declare");
    publish_confirmed(&ch, "", q.name().as_str(), b"by name").await;
    assert_eq!(get_body(&ch, q.name().as_str()).await, Some(b"by name".to_vec()));

    for (name, kind) in [
        ("amq.direct", ExchangeKind::Direct),
        ("amq.fanout", ExchangeKind::Fanout),
        ("amq.topic", ExchangeKind::Topic),
        ("amq.headers", ExchangeKind::Headers),
        ("amq.match", ExchangeKind::Headers),
    ] {
        declare_on_fresh(&conn, name, kind, opts(true, false, false))
            .await
            .unwrap_or_else(|e| panic!("equivalent redeclare of {name}: {e}"));
    }
    let text = expect_code(
        declare_on_fresh(&conn, "amq.direct", ExchangeKind::Fanout, opts(true, false, false)).await,
        PRECONDITION_FAILED,
    );
    assert!(text.contains("inequivalent arg 'type'"), "{text}");
    conn.close(200, "bye".into()).await.expect("connection.close");
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_the_default_or_an_amq_exchange_is_access_refused() {
    let b = warren_it::start();
    let conn = connect(&b.uri()).await;
    let text = expect_code(delete_on_fresh(&conn, "", false).await, ACCESS_REFUSED);
    assert_eq!(text, "ACCESS_REFUSED - operation not permitted on the default exchange");
    for name in ["amq.direct", "amq.fanout", "amq.topic", "amq.headers", "amq.match"] {
        let text = expect_code(delete_on_fresh(&conn, name, false).await, ACCESS_REFUSED);
        assert_eq!(text, format!("ACCESS_REFUSED - deletion of system exchange '{name}' in vhost '/' not allowed"));
        assert!(exchange_exists(&conn, name).await, "{name} survives");
    }
    conn.close(200, "bye".into()).await.expect("connection.close");
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_removes_the_exchange_and_its_bindings() {
    let b = warren_it::start();
    let conn = connect(&b.uri()).await;
    let ch = conn.create_channel().await.expect("channel.open");
    ch.confirm_select(Default::default()).await.expect("confirm.select");
    let name = unique_name("x-delete");
    declare(&ch, &name, ExchangeKind::Fanout, opts(false, false, false)).await.expect("declare");
    let q = bound_queue(&ch, &name, "").await;
    ch.exchange_delete(name.as_str().into(), ExchangeDeleteOptions::default()).await.expect("exchange.delete");
    assert!(!exchange_exists(&conn, &name).await);
    // A new exchange of the same name starts without the old binding.
    declare(&ch, &name, ExchangeKind::Fanout, opts(false, false, false)).await.expect("declare again");
    publish_confirmed(&ch, &name, "", b"lost").await;
    assert_eq!(get_body(&ch, &q).await, None);
    ch.exchange_delete(name.as_str().into(), ExchangeDeleteOptions::default()).await.expect("exchange.delete");
    // RabbitMQ 3.x treats deleting a missing exchange as success.
    ch.exchange_delete(name.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .expect("exchange.delete of a missing exchange");
    conn.close(200, "bye".into()).await.expect("connection.close");
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_if_unused_refuses_an_exchange_with_bindings() {
    let b = warren_it::start();
    let conn = connect(&b.uri()).await;
    let ch = conn.create_channel().await.expect("channel.open");
    let name = unique_name("x-if-unused");
    declare(&ch, &name, ExchangeKind::Direct, opts(false, false, false)).await.expect("declare");
    let q = bound_queue(&ch, &name, "k").await;

    let text = expect_code(delete_on_fresh(&conn, &name, true).await, PRECONDITION_FAILED);
    assert_eq!(text, format!("PRECONDITION_FAILED - exchange '{name}' in vhost '/' in use"));
    assert!(exchange_exists(&conn, &name).await);

    ch.queue_unbind(q.as_str().into(), name.as_str().into(), "k".into(), FieldTable::default())
        .await
        .expect("queue.unbind");
    delete_on_fresh(&conn, &name, true).await.expect("if-unused delete once unbound");
    assert!(!exchange_exists(&conn, &name).await);
    conn.close(200, "bye".into()).await.expect("connection.close");
}

/// Clients cannot publish to an internal exchange (403), but it still routes what reaches it
/// through an exchange-to-exchange binding.
#[tokio::test(flavor = "multi_thread")]
async fn internal_exchange_refuses_publishes_but_routes_bindings() {
    let b = warren_it::start();
    let conn = connect(&b.uri()).await;
    let ch = conn.create_channel().await.expect("channel.open");
    ch.confirm_select(Default::default()).await.expect("confirm.select");
    let internal = unique_name("x-internal");
    let front = unique_name("x-front");
    declare(&ch, &internal, ExchangeKind::Fanout, opts(false, false, true)).await.expect("declare internal");
    declare(&ch, &front, ExchangeKind::Fanout, opts(false, false, false)).await.expect("declare front");
    ch.exchange_bind(
        internal.as_str().into(),
        front.as_str().into(),
        "".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.bind");
    let q = bound_queue(&ch, &internal, "").await;
    publish_confirmed(&ch, &front, "", b"via front").await;
    assert_eq!(get_body(&ch, &q).await, Some(b"via front".to_vec()));

    let publisher = conn.create_channel().await.expect("channel.open");
    let mut events = conn.events_listener();
    publisher
        .basic_publish(
            internal.as_str().into(),
            "".into(),
            BasicPublishOptions::default(),
            b"direct",
            BasicProperties::default(),
        )
        .await
        .expect("basic.publish is sent");
    assert_eq!(async_close_code(&mut events, &publisher).await, ACCESS_REFUSED);
    assert_eq!(get_body(&ch, &q).await, None, "nothing was routed");

    for x in [&front, &internal] {
        ch.exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default()).await.expect("delete");
    }
    conn.close(200, "bye".into()).await.expect("connection.close");
}

/// exchange.bind routes from source to destination by the source's rules; exchange.unbind
/// stops it; unbinding a binding that does not exist is fine.
#[tokio::test(flavor = "multi_thread")]
async fn exchange_to_exchange_bind_and_unbind() {
    let b = warren_it::start();
    let conn = connect(&b.uri()).await;
    let ch = conn.create_channel().await.expect("channel.open");
    ch.confirm_select(Default::default()).await.expect("confirm.select");
    let src = unique_name("x-src");
    let dst = unique_name("x-dst");
    declare(&ch, &src, ExchangeKind::Topic, opts(false, false, false)).await.expect("declare src");
    declare(&ch, &dst, ExchangeKind::Fanout, opts(false, false, false)).await.expect("declare dst");
    let q = bound_queue(&ch, &dst, "").await;
    ch.exchange_bind(
        dst.as_str().into(),
        src.as_str().into(),
        "a.*".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.bind");

    publish_confirmed(&ch, &src, "a.b", b"match").await;
    publish_confirmed(&ch, &src, "b.a", b"no match").await;
    assert_eq!(get_body(&ch, &q).await, Some(b"match".to_vec()));
    assert_eq!(get_body(&ch, &q).await, None);

    ch.exchange_unbind(
        dst.as_str().into(),
        src.as_str().into(),
        "a.*".into(),
        ExchangeUnbindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.unbind");
    publish_confirmed(&ch, &src, "a.b", b"after unbind").await;
    assert_eq!(get_body(&ch, &q).await, None);
    ch.exchange_unbind(
        dst.as_str().into(),
        src.as_str().into(),
        "a.*".into(),
        ExchangeUnbindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("unbinding a missing binding is ok");

    for x in [&src, &dst] {
        ch.exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default()).await.expect("delete");
    }
    conn.close(200, "bye".into()).await.expect("connection.close");
}

#[tokio::test(flavor = "multi_thread")]
async fn exchange_bind_to_missing_exchange_is_not_found() {
    let b = warren_it::start();
    let conn = connect(&b.uri()).await;
    let missing = unique_name("x-missing");
    for (dst, src) in [(missing.as_str(), "amq.fanout"), ("amq.fanout", missing.as_str())] {
        let ch = conn.create_channel().await.expect("channel.open");
        let res = ch
            .exchange_bind(dst.into(), src.into(), "".into(), ExchangeBindOptions::default(), FieldTable::default())
            .await;
        let text = expect_code(res, NOT_FOUND);
        assert_eq!(text, format!("NOT_FOUND - no exchange '{missing}' in vhost '/'"));
    }
    conn.close(200, "bye".into()).await.expect("connection.close");
}

/// An auto-delete exchange lives until its last binding (as source) goes, not before it
/// ever had one.
#[tokio::test(flavor = "multi_thread")]
async fn auto_delete_exchange_goes_with_its_last_binding() {
    let b = warren_it::start();
    let conn = connect(&b.uri()).await;
    let ch = conn.create_channel().await.expect("channel.open");
    let name = unique_name("x-auto");
    declare(&ch, &name, ExchangeKind::Direct, opts(false, true, false)).await.expect("declare");
    assert!(exchange_exists(&conn, &name).await, "never bound: stays");

    let q1 = bound_queue(&ch, &name, "one").await;
    let q2 = bound_queue(&ch, &name, "two").await;
    ch.queue_unbind(q1.as_str().into(), name.as_str().into(), "one".into(), FieldTable::default())
        .await
        .expect("queue.unbind");
    assert!(exchange_exists(&conn, &name).await, "one binding left");
    ch.queue_unbind(q2.as_str().into(), name.as_str().into(), "two".into(), FieldTable::default())
        .await
        .expect("queue.unbind");
    assert!(!exchange_exists(&conn, &name).await, "last binding removed");

    // Deleting the last bound queue removes the binding, and so the exchange, too.
    declare(&ch, &name, ExchangeKind::Direct, opts(false, true, false)).await.expect("declare");
    let q3 = bound_queue(&ch, &name, "three").await;
    ch.queue_delete(q3.as_str().into(), QueueDeleteOptions::default()).await.expect("queue.delete");
    assert!(!exchange_exists(&conn, &name).await, "bound queue deleted");

    // So does removing an exchange-to-exchange binding of which it is the source.
    declare(&ch, &name, ExchangeKind::Direct, opts(false, true, false)).await.expect("declare");
    ch.exchange_bind(
        "amq.fanout".into(),
        name.as_str().into(),
        "".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.bind");
    ch.exchange_unbind(
        "amq.fanout".into(),
        name.as_str().into(),
        "".into(),
        ExchangeUnbindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.unbind");
    assert!(!exchange_exists(&conn, &name).await, "e2e binding removed");
    conn.close(200, "bye".into()).await.expect("connection.close");
}

/// An unknown exchange type is a connection error in RabbitMQ: 503 COMMAND_INVALID.
#[tokio::test(flavor = "multi_thread")]
async fn unknown_exchange_type_is_command_invalid() {
    let b = warren_it::start();
    let conn = connect(&b.uri()).await;
    let name = unique_name("x-unknown-type");
    let text = expect_code(
        declare_on_fresh(&conn, &name, ExchangeKind::Custom("no-such-type".into()), opts(false, false, false)).await,
        COMMAND_INVALID,
    );
    assert!(text.starts_with("COMMAND_INVALID - unknown exchange type 'no-such-type'"), "{text}");
    assert!(conn.create_channel().await.is_err(), "the whole connection is closed");
    let conn2 = connect(&b.uri()).await;
    assert!(!exchange_exists(&conn2, &name).await);
    conn2.close(200, "bye".into()).await.expect("connection.close");
}
