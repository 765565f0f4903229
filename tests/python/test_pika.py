#!/usr/bin/env python3
"""Interop checks for Warren with pika (the Python AMQP 0-9-1 client), BlockingConnection API.

A standalone program, no pytest needed:  python3 test_pika.py HOST PORT
Prints `PASS name` or `FAIL name: reason` per check, then `pika: N passed, M failed`, and exits
non-zero if any check failed. tests/pika_client.rs runs it against the test broker.

Every expectation is what RabbitMQ 3.x does (checked against a real RabbitMQ). Names carry a
per-run unique suffix because several test runs may share one external broker, and each check
deletes what it declared. amq.fanout / amq.topic are shared by everything on the broker, so checks
that bind to them pick out their own messages by a unique marker instead of counting the queue.
"""

import datetime
import decimal
import itertools
import os
import sys
import time
import traceback

import pika
import pika.compat
import pika.exceptions

# Upper bound for anything the broker should do promptly; only reached when a check fails.
WAIT_S = 5.0

HOST = "127.0.0.1"
PORT = 5672
RUN = "%x-%x" % (os.getpid(), time.time_ns())
_SEQ = itertools.count(1)


def name(what):
    return "warren-pika-%s-%s-%d" % (what, RUN, next(_SEQ))


def params(user="guest", password="guest"):
    return pika.ConnectionParameters(
        host=HOST,
        port=PORT,
        virtual_host="/",
        credentials=pika.PlainCredentials(user, password),
        # A failing check must fail, not hang.
        socket_timeout=WAIT_S,
        blocked_connection_timeout=WAIT_S,
        connection_attempts=1,
        retry_delay=0,
    )


def connect():
    return pika.BlockingConnection(params())


def eq(expected, actual, what):
    if expected != actual:
        raise AssertionError("%s: expected %r but was %r" % (what, expected, actual))


def ok(cond, what):
    if not cond:
        raise AssertionError(what)


def expect_channel_close(fn, code, text_prefix):
    """Runs fn, which must make the broker close the channel with this code and text prefix."""
    try:
        fn()
    except pika.exceptions.ChannelClosedByBroker as e:
        eq(code, e.reply_code, "reply code")
        ok(
            e.reply_text.startswith(text_prefix),
            "reply text %r should start with %r" % (e.reply_text, text_prefix),
        )
        return
    raise AssertionError("expected ChannelClosedByBroker %d, got no error" % code)


def drop_queue(conn, queue):
    """Best-effort cleanup on a fresh channel: the check's own channel may have been closed by
    the error being reported, and a cleanup failure must not mask that error."""
    try:
        if conn.is_open:
            ch = conn.channel()
            ch.queue_delete(queue)
            ch.close()
    except pika.exceptions.AMQPError:
        pass


def drop_exchange(conn, exchange):
    try:
        if conn.is_open:
            ch = conn.channel()
            ch.exchange_delete(exchange)
            ch.close()
    except pika.exceptions.AMQPError:
        pass


def ready_count(ch, queue):
    """Ready-message count as reported by a passive queue.declare."""
    return ch.queue_declare(queue, passive=True).method.message_count


def next_message(ch, queue, marker, skipped=None):
    """Consumes from queue until the message whose body is marker arrives.

    Bodies consumed on the way (other tests' traffic on a shared exchange) go to `skipped`.
    """
    for method, props, body in ch.consume(queue, auto_ack=True, inactivity_timeout=WAIT_S):
        if method is None:
            ch.cancel()
            raise AssertionError("no message on %s within %ss" % (queue, WAIT_S))
        if body == marker:
            ch.cancel()
            return method, props, body
        if skipped is not None:
            skipped.append(body)
    raise AssertionError("consumer on %s ended" % queue)


# ---------------------------------------------------------------------------------- checks


def check_connect():
    conn = connect()
    try:
        ok(conn.is_open, "connection not open")
        ch = conn.channel()
        ok(ch.is_open, "channel not open")
        eq(1, ch.channel_number, "first channel number")
        ch.close()
        ok(ch.is_closed, "channel not closed")
    finally:
        conn.close()
    ok(conn.is_closed, "connection not closed")


def check_bad_credentials():
    try:
        pika.BlockingConnection(params(password="definitely-not-the-password"))
    except pika.exceptions.ProbableAuthenticationError as e:
        # pika 1.x wraps the broker's connection.close (sent because pika advertises
        # authentication_failure_close) in this error: check it was 403 ACCESS_REFUSED and not a
        # bare socket drop.
        ok("(403) 'ACCESS_REFUSED" in str(e), "expected a 403 ACCESS_REFUSED close: %s" % e)
        return
    except pika.exceptions.ConnectionClosedByBroker as e:
        eq(403, e.reply_code, "reply code")
        ok(e.reply_text.startswith("ACCESS_REFUSED"), "reply text %r" % e.reply_text)
        return
    raise AssertionError("connection with a wrong password was accepted")


def check_fanout_topic_roundtrip():
    conn = connect()
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        # Server-named queue: empty name in, amq.gen-... out.
        q = ch.queue_declare("", exclusive=True).method.queue
        ok(q.startswith("amq.gen-"), "server-generated queue name %r" % q)
        ch.queue_bind(q, "amq.fanout")
        topic_key = "warren.pika.%s.*" % RUN
        ch.queue_bind(q, "amq.topic", routing_key=topic_key)

        fan_marker = ("fanout " + RUN).encode()
        ch.basic_publish("amq.fanout", "ignored-key", fan_marker)
        method, _, body = next_message(ch, q, fan_marker)
        eq("amq.fanout", method.exchange, "fanout exchange")
        eq("ignored-key", method.routing_key, "fanout routing key")
        eq(False, method.redelivered, "redelivered")

        topic_marker = ("topic " + RUN).encode()
        too_deep = ("too-deep " + RUN).encode()
        # One word too many for '*': not routed (confirmed, but not delivered). Published first,
        # so had it been routed it would be consumed before the marker and land in `skipped`.
        ch.basic_publish("amq.topic", "warren.pika.%s.a.b" % RUN, too_deep)
        ch.basic_publish("amq.topic", "warren.pika.%s.info" % RUN, topic_marker)
        skipped = []
        method, _, body = next_message(ch, q, topic_marker, skipped)
        eq("amq.topic", method.exchange, "topic exchange")
        eq("warren.pika.%s.info" % RUN, method.routing_key, "topic routing key")
        eq(topic_marker, body, "topic body")
        ok(too_deep not in skipped, "'*' matched two words")

        ch.queue_unbind(q, "amq.fanout")
        ch.queue_unbind(q, "amq.topic", routing_key=topic_key)
        ch.queue_delete(q)
    finally:
        conn.close()


def check_basic_get():
    conn = connect()
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        q = name("get")
        declared = ch.queue_declare(q)
        eq(q, declared.method.queue, "declared name")
        eq(0, declared.method.message_count, "new queue message count")
        eq(0, declared.method.consumer_count, "new queue consumer count")
        try:
            for i in range(3):
                ch.basic_publish("", q, b"m%d" % i)
            eq(3, ready_count(ch, q), "ready")
            for i in range(3):
                method, _, body = ch.basic_get(q)
                ok(method is not None, "get %d empty" % i)
                eq(b"m%d" % i, body, "body %d" % i)
                # message_count: how many are left after this one.
                eq(2 - i, method.message_count, "message_count after get %d" % i)
                eq(i + 1, method.delivery_tag, "delivery tag %d" % i)
                eq("", method.exchange, "exchange")
                eq(q, method.routing_key, "routing key")
            method, props, body = ch.basic_get(q)
            eq((None, None, None), (method, props, body), "get on an empty queue")
            ch.basic_ack(3, multiple=True)
            eq(0, ready_count(ch, q), "ready after ack")
            eq(0, ch.queue_delete(q).method.message_count, "messages in deleted queue")
        finally:
            drop_queue(conn, q)
    finally:
        conn.close()


def check_properties_roundtrip():
    conn = connect()
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        q = ch.queue_declare("", exclusive=True).method.queue
        # 'T' timestamps carry whole seconds, and pika decodes them as UTC-aware datetimes.
        when = datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=datetime.timezone.utc)
        headers = {
            "str": "h\u00e9llo",
            "int": 42,
            "neg": -7,
            "big": 1 << 40,
            "bool": True,
            "bytes": b"\x00\x01\xff",
            "decimal": decimal.Decimal("12.34"),
            "date": when,
            "none": None,
            "nested": {"inner": "value", "n": 7, "deeper": {"x": [1, "two"]}},
            "list": ["a", 1, False, {"k": "v"}],
        }
        props = pika.BasicProperties(
            content_type="application/json",
            content_encoding="utf-8",
            headers=headers,
            delivery_mode=2,
            priority=5,
            correlation_id="corr-1",
            reply_to="reply-q",
            expiration="60000",
            message_id="msg-1",
            timestamp=1700000000,
            type="my.type",
            user_id="guest",
            app_id="warren-pika-test",
        )
        ch.basic_publish("", q, b'{"ok": true}', props)
        method, p, body = ch.basic_get(q, auto_ack=True)
        ok(method is not None, "message not in queue")
        eq(b'{"ok": true}', body, "body")
        eq("application/json", p.content_type, "content_type")
        eq("utf-8", p.content_encoding, "content_encoding")
        eq(2, p.delivery_mode, "delivery_mode")
        eq(5, p.priority, "priority")
        eq("corr-1", p.correlation_id, "correlation_id")
        eq("reply-q", p.reply_to, "reply_to")
        eq("60000", p.expiration, "expiration")
        eq("msg-1", p.message_id, "message_id")
        eq(1700000000, p.timestamp, "timestamp")
        eq("my.type", p.type, "type")
        eq("guest", p.user_id, "user_id")
        eq("warren-pika-test", p.app_id, "app_id")
        eq(None, p.cluster_id, "cluster_id")
        eq(headers, p.headers, "headers")
        # Field types survive, not just values: pika decodes 'l' (64-bit) as its `long` int
        # subclass and 'I' (32-bit) as a plain int, 'x' as bytes and 'S' as str.
        ok(isinstance(p.headers["big"], pika.compat.long), "big: 'l' expected")
        eq(int, type(p.headers["neg"]), "neg type ('I')")
        eq(bytes, type(p.headers["bytes"]), "bytes type ('x')")
        eq(str, type(p.headers["str"]), "str type ('S')")

        # No properties in, no properties out.
        ch.basic_publish("", q, b"")
        method, p, body = ch.basic_get(q, auto_ack=True)
        ok(method is not None, "bare message not in queue")
        eq(b"", body, "empty body")
        eq((None, None, None), (p.headers, p.delivery_mode, p.content_type), "bare properties")
        ch.queue_delete(q)
    finally:
        conn.close()


def check_confirm_unroutable():
    conn = connect()
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        missing = name("nowhere")
        # Unroutable + mandatory: the broker sends basic.return (312 NO_ROUTE) before the ack.
        try:
            ch.basic_publish("", missing, b"bounce", mandatory=True)
            raise AssertionError("mandatory unroutable publish did not raise UnroutableError")
        except pika.exceptions.UnroutableError as e:
            eq(1, len(e.messages), "returned messages")
            ret = e.messages[0]
            eq(312, ret.method.reply_code, "reply code")
            eq("NO_ROUTE", ret.method.reply_text, "reply text")
            eq("", ret.method.exchange, "exchange")
            eq(missing, ret.method.routing_key, "routing key")
            eq(b"bounce", ret.body, "body")
        # Not mandatory: silently dropped, still confirmed (no exception).
        ch.basic_publish("", missing, b"dropped")
        # Routable mandatory message: confirmed, no return.
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", q, b"kept", mandatory=True)
        eq(1, ready_count(ch, q), "routable mandatory message enqueued")
        ok(ch.is_open, "channel closed")
        ch.queue_delete(q)
    finally:
        conn.close()


def check_nack_requeue():
    conn = connect()
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", q, b"again")
        method, _, body = ch.basic_get(q)
        ok(method is not None, "message not in queue")
        eq(False, method.redelivered, "first redelivered flag")
        ch.basic_nack(method.delivery_tag, requeue=True)
        method2, _, body2 = ch.basic_get(q)
        ok(method2 is not None, "nacked message not requeued")
        eq(b"again", body2, "requeued body")
        eq(True, method2.redelivered, "redelivered flag after nack requeue")
        eq(method.delivery_tag + 1, method2.delivery_tag, "delivery tag increments")
        # requeue=False drops it.
        ch.basic_nack(method2.delivery_tag, requeue=False)
        eq(0, ready_count(ch, q), "ready after nack without requeue")
        ch.queue_delete(q)
    finally:
        conn.close()


def check_exchange_redeclare_406():
    conn = connect()
    try:
        ch = conn.channel()
        ex = name("ex")
        ch.exchange_declare(ex, exchange_type="direct", auto_delete=True)
        try:
            # Same type and flags: fine.
            ch.exchange_declare(ex, exchange_type="direct", auto_delete=True)
            expect_channel_close(
                lambda: ch.exchange_declare(ex, exchange_type="fanout", auto_delete=True),
                406,
                "PRECONDITION_FAILED - inequivalent arg 'type' for exchange '%s' in vhost '/': "
                "received 'fanout' but current is 'direct'" % ex,
            )
            ok(ch.is_closed, "channel open after 406")
            ok(conn.is_open, "connection closed by a channel error")
        finally:
            drop_exchange(conn, ex)
    finally:
        conn.close()


def check_passive_missing_404():
    conn = connect()
    try:
        ch = conn.channel()
        q = name("missing")
        expect_channel_close(
            lambda: ch.queue_declare(q, passive=True),
            404,
            "NOT_FOUND - no queue '%s' in vhost '/'" % q,
        )
        ok(ch.is_closed, "channel open after 404")
        ok(conn.is_open, "connection closed by a channel error")
        # The connection stays usable.
        ch2 = conn.channel()
        q2 = ch2.queue_declare("", exclusive=True).method.queue
        eq(0, ready_count(ch2, q2), "new queue after 404")
    finally:
        conn.close()


def check_rpc_roundtrip():
    conn = connect()
    try:
        server = conn.channel()
        client = conn.channel()
        rpc_q = name("rpc")
        server.queue_declare(rpc_q, exclusive=True)
        server.basic_qos(prefetch_count=1)

        def serve(ch, method, props, body):
            reply = pika.BasicProperties(correlation_id=props.correlation_id)
            ch.basic_publish("", props.reply_to, b"echo:" + body, reply)
            ch.basic_ack(method.delivery_tag)

        server.basic_consume(rpc_q, serve)

        reply_q = client.queue_declare("", exclusive=True).method.queue
        responses = {}

        def on_reply(ch, method, props, body):
            responses[props.correlation_id] = body

        client.basic_consume(reply_q, on_reply, auto_ack=True)
        ids = ["corr-%d" % i for i in range(3)]
        for cid in ids:
            client.basic_publish(
                "", rpc_q, cid.encode(),
                pika.BasicProperties(reply_to=reply_q, correlation_id=cid),
            )
        deadline = time.monotonic() + WAIT_S
        while len(responses) < len(ids) and time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.1)
        eq({cid: b"echo:" + cid.encode() for cid in ids}, responses, "RPC responses")
        eq(0, ready_count(client, rpc_q), "requests left")
    finally:
        conn.close()


def check_tx():
    conn = connect()
    try:
        tx = conn.channel()
        obs = conn.channel()
        q = name("tx")
        obs.queue_declare(q)
        try:
            tx.tx_select()
            tx.basic_publish("", q, b"committed")
            # Not enqueued before commit.
            eq(0, ready_count(obs, q), "ready before commit")
            tx.tx_commit()
            eq(1, ready_count(obs, q), "ready after commit")
            tx.basic_publish("", q, b"rolled-back")
            tx.tx_rollback()
            eq(1, ready_count(obs, q), "ready after rollback")
            method, _, body = obs.basic_get(q, auto_ack=True)
            eq(b"committed", body, "body")
            eq(0, method.message_count, "nothing else queued")
        finally:
            drop_queue(conn, q)
    finally:
        conn.close()


def check_commit_without_select_406():
    conn = connect()
    try:
        ch = conn.channel()
        expect_channel_close(
            ch.tx_commit, 406, "PRECONDITION_FAILED - channel is not transactional"
        )
        ok(conn.is_open, "connection closed by a channel error")
    finally:
        conn.close()


CHECKS = [
    ("connect", check_connect),
    ("bad_credentials", check_bad_credentials),
    ("fanout_topic_roundtrip", check_fanout_topic_roundtrip),
    ("basic_get_message_count", check_basic_get),
    ("properties_roundtrip", check_properties_roundtrip),
    ("confirm_mandatory_unroutable", check_confirm_unroutable),
    ("nack_requeue_redelivered", check_nack_requeue),
    ("exchange_redeclare_other_type_406", check_exchange_redeclare_406),
    ("passive_missing_queue_404", check_passive_missing_404),
    ("rpc_reply_to_correlation_id", check_rpc_roundtrip),
    ("tx_commit_rollback", check_tx),
    ("tx_commit_without_select_406", check_commit_without_select_406),
]


def main():
    global HOST, PORT
    if len(sys.argv) != 3:
        print("usage: test_pika.py HOST PORT", file=sys.stderr)
        return 2
    HOST, PORT = sys.argv[1], int(sys.argv[2])
    passed = failed = 0
    for check_name, fn in CHECKS:
        try:
            fn()
            passed += 1
            print("PASS %s" % check_name, flush=True)
        except Exception as e:  # noqa: BLE001 - any error fails the check
            failed += 1
            where = traceback.extract_tb(e.__traceback__)
            here = [f for f in where if f.filename == __file__]
            at = " <- ".join("%s:%d" % (f.name, f.lineno) for f in reversed(here))
            print("FAIL %s: %s: %s (at %s)" % (check_name, type(e).__name__, e, at), flush=True)
    print("pika: %d passed, %d failed" % (passed, failed), flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
