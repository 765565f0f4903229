// Interop checks for Warren with the official RabbitMQ Java client (com.rabbitmq:amqp-client 5.x).
//
// A plain program, not JUnit, so it needs nothing beyond the Debian jars (tests/install-deps.sh):
//   javac -cp amqp-client.jar:slf4j-api.jar WarrenJavaTest.java
//   java  -cp .:amqp-client.jar:slf4j-api.jar:slf4j-nop.jar WarrenJavaTest HOST PORT
// Prints `PASS name` or `FAIL name: reason` per check, then `java: N passed, M failed`, and exits
// non-zero if any check failed. tests/java_client.rs runs it against the test broker.
//
// Every expectation here is what RabbitMQ 3.x does (checked against a real RabbitMQ): Warren must
// behave the same for this client. Names carry a per-run unique suffix because several test runs
// may share one external broker; each check deletes what it declared.

import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.AuthenticationFailureException;
import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Connection;
import com.rabbitmq.client.ConnectionFactory;
import com.rabbitmq.client.DefaultConsumer;
import com.rabbitmq.client.Envelope;
import com.rabbitmq.client.GetResponse;
import com.rabbitmq.client.LongString;
import com.rabbitmq.client.Method;
import com.rabbitmq.client.ShutdownSignalException;

import java.io.IOException;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Date;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

public class WarrenJavaTest {
    // Upper bound for anything the broker should do promptly; only reached when a check fails.
    static final long WAIT_MS = 5000;
    // How long a check waits to be sure something does NOT arrive (prefetch window).
    static final long ABSENCE_MS = 300;

    static String host;
    static int port;
    static int passed = 0;
    static int failed = 0;
    static final String RUN = Long.toString(System.nanoTime(), 36);
    static final AtomicInteger SEQ = new AtomicInteger();

    interface Check {
        void run() throws Exception;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: WarrenJavaTest HOST PORT");
            System.exit(2);
        }
        host = args[0];
        port = Integer.parseInt(args[1]);

        check("connect", WarrenJavaTest::connect);
        check("bad_password", WarrenJavaTest::badPassword);
        check("direct_roundtrip", WarrenJavaTest::directRoundtrip);
        check("topic_routing", WarrenJavaTest::topicRouting);
        check("basic_get_message_count", WarrenJavaTest::basicGetMessageCount);
        check("properties_roundtrip", WarrenJavaTest::propertiesRoundtrip);
        check("user_id_mismatch_406", WarrenJavaTest::userIdMismatch);
        check("large_body_roundtrip", WarrenJavaTest::largeBody);
        check("publisher_confirms", WarrenJavaTest::publisherConfirms);
        check("tx_commit_rollback", WarrenJavaTest::txCommitRollback);
        check("qos_prefetch_1", WarrenJavaTest::qosPrefetch);
        check("nack_requeue_redelivered", WarrenJavaTest::nackRequeue);
        check("passive_missing_queue_404", WarrenJavaTest::passiveMissing);
        check("exclusive_queue_other_connection_405", WarrenJavaTest::exclusiveLocked);
        check("consumer_cancel_on_queue_delete", WarrenJavaTest::consumerCancelNotify);
        check("mandatory_unroutable_return_312", WarrenJavaTest::mandatoryReturn);

        System.out.println("java: " + passed + " passed, " + failed + " failed");
        System.out.flush();
        System.exit(failed == 0 ? 0 : 1);
    }

    static void check(String name, Check c) {
        try {
            c.run();
            passed++;
            System.out.println("PASS " + name);
        } catch (Throwable t) {
            failed++;
            System.out.println("FAIL " + name + ": " + describe(t));
        }
        System.out.flush();
    }

    static String describe(Throwable t) {
        StringBuilder sb = new StringBuilder(t.toString());
        for (Throwable c = t.getCause(); c != null; c = c.getCause()) {
            sb.append(" <- ").append(c);
        }
        // Where in this file it failed: helper frames first, then the check itself.
        String sep = " (at ";
        for (StackTraceElement e : t.getStackTrace()) {
            if (e.getClassName().startsWith(WarrenJavaTest.class.getName())
                    && !e.getMethodName().equals("check") && !e.getMethodName().equals("main")) {
                sb.append(sep).append(e.getMethodName()).append(':').append(e.getLineNumber());
                sep = " <- ";
            }
        }
        if (!sep.equals(" (at ")) {
            sb.append(')');
        }
        return sb.toString();
    }

    // ---------------------------------------------------------------- helpers

    static String name(String what) {
        return "warren-java-" + what + "-" + RUN + "-" + SEQ.incrementAndGet();
    }

    static ConnectionFactory factory() {
        ConnectionFactory f = new ConnectionFactory();
        f.setHost(host);
        f.setPort(port);
        f.setUsername("guest");
        f.setPassword("guest");
        f.setVirtualHost("/");
        f.setConnectionTimeout((int) WAIT_MS);
        f.setHandshakeTimeout((int) WAIT_MS);
        // A failing check must fail, not hang: bound every synchronous RPC.
        f.setChannelRpcTimeout((int) WAIT_MS);
        f.setAutomaticRecoveryEnabled(false);
        return f;
    }

    static Connection connect(String clientName) throws Exception {
        return factory().newConnection(clientName);
    }

    static void ok(boolean cond, String msg) {
        if (!cond) {
            throw new AssertionError(msg);
        }
    }

    static void eq(Object expected, Object actual, String what) {
        if (expected == null ? actual != null : !expected.equals(actual)) {
            throw new AssertionError(what + ": expected <" + expected + "> but was <" + actual + ">");
        }
    }

    static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    static String str(byte[] b) {
        return new String(b, StandardCharsets.UTF_8);
    }

    /** The close method carried by a ShutdownSignalException anywhere in t's cause chain. */
    static ShutdownSignalException shutdownOf(Throwable t) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (c instanceof ShutdownSignalException) {
                return (ShutdownSignalException) c;
            }
        }
        throw new AssertionError("no ShutdownSignalException in " + describe(t));
    }

    /** Asserts t is a channel-level (soft) close with this reply code and text prefix. */
    static void assertChannelClose(Throwable t, int code, String textPrefix) {
        ShutdownSignalException sse = shutdownOf(t);
        ok(!sse.isHardError(), "expected a channel close, got a connection close: " + sse);
        Method m = sse.getReason();
        ok(m instanceof AMQP.Channel.Close, "expected channel.close, got " + m);
        AMQP.Channel.Close close = (AMQP.Channel.Close) m;
        eq(code, close.getReplyCode(), "reply code");
        ok(close.getReplyText().startsWith(textPrefix),
                "reply text <" + close.getReplyText() + "> should start with <" + textPrefix + ">");
    }

    /** A consumer that queues deliveries and records a broker-initiated cancel. */
    static class Collector extends DefaultConsumer {
        final LinkedBlockingQueue<Delivered> deliveries = new LinkedBlockingQueue<>();
        final CountDownLatch cancelled = new CountDownLatch(1);
        final AtomicReference<String> cancelledTag = new AtomicReference<>();

        Collector(Channel ch) {
            super(ch);
        }

        @Override
        public void handleDelivery(String tag, Envelope env, AMQP.BasicProperties props, byte[] body) {
            deliveries.add(new Delivered(tag, env, props, body));
        }

        @Override
        public void handleCancel(String tag) {
            cancelledTag.set(tag);
            cancelled.countDown();
        }

        Delivered next() throws InterruptedException {
            Delivered d = deliveries.poll(WAIT_MS, TimeUnit.MILLISECONDS);
            ok(d != null, "no delivery within " + WAIT_MS + " ms");
            return d;
        }
    }

    static class Delivered {
        final String consumerTag;
        final Envelope env;
        final AMQP.BasicProperties props;
        final byte[] body;

        Delivered(String consumerTag, Envelope env, AMQP.BasicProperties props, byte[] body) {
            this.consumerTag = consumerTag;
            this.env = env;
            this.props = props;
            this.body = body;
        }
    }

    /**
     * Best-effort cleanup on a fresh channel: the check's own channel may have been closed by the
     * error being reported, and a cleanup failure must not mask that error.
     */
    static void dropQueue(Connection c, String queue) {
        try {
            if (c.isOpen()) {
                Channel ch = c.createChannel();
                ch.queueDelete(queue);
                ch.close();
            }
        } catch (Exception ignored) {
            // Reported through the check's own result.
        }
    }

    static void dropExchange(Connection c, String exchange) {
        try {
            if (c.isOpen()) {
                Channel ch = c.createChannel();
                ch.exchangeDelete(exchange);
                ch.close();
            }
        } catch (Exception ignored) {
            // Reported through the check's own result.
        }
    }

    /** Ready-message count as reported by a passive queue.declare. */
    static int readyCount(Channel ch, String q) throws IOException {
        return ch.queueDeclarePassive(q).getMessageCount();
    }

    static void publishConfirmed(Channel ch, String exchange, String key, byte[] body) throws Exception {
        ch.basicPublish(exchange, key, null, body);
        ch.waitForConfirmsOrDie(WAIT_MS);
    }

    // ---------------------------------------------------------------- checks

    static void connect() throws Exception {
        try (Connection c = connect("warren-java-connect")) {
            ok(c.isOpen(), "connection not open");
            Map<String, Object> sp = c.getServerProperties();
            ok(sp.get("product") != null, "server properties lack 'product': " + sp);
            @SuppressWarnings("unchecked")
            Map<String, Object> caps = (Map<String, Object>) sp.get("capabilities");
            ok(caps != null, "server properties lack 'capabilities': " + sp);
            // The features the checks below exercise; the client keys its behaviour on some of them
            // (authentication_failure_close -> AuthenticationFailureException, consumer_cancel_notify
            // -> handleCancel). RabbitMQ advertises more (connection.blocked, direct_reply_to, ...).
            for (String cap : new String[] {"publisher_confirms", "basic.nack",
                    "consumer_cancel_notify", "authentication_failure_close", "per_consumer_qos"}) {
                eq(Boolean.TRUE, caps.get(cap), "capability " + cap);
            }
            ok(c.getChannelMax() > 0, "channel_max negotiated: " + c.getChannelMax());
            // 4096 is the protocol's minimum frame_max.
            ok(c.getFrameMax() >= 4096, "frame_max negotiated: " + c.getFrameMax());
            Channel ch = c.createChannel();
            ok(ch.isOpen(), "channel not open");
            eq(1, ch.getChannelNumber(), "first channel number");
            ch.close();
        }
    }

    static void badPassword() throws Exception {
        ConnectionFactory f = factory();
        f.setPassword("definitely-not-the-password");
        try (Connection c = f.newConnection("warren-java-bad-password")) {
            throw new AssertionError("connection with a wrong password was accepted: " + c);
        } catch (AuthenticationFailureException e) {
            // Both advertise authentication_failure_close: the broker sends connection.close 403
            // (ACCESS_REFUSED) and the client maps it to this exception.
            ok(e.getMessage().contains("ACCESS_REFUSED"), "message: " + e.getMessage());
        }
    }

    static void directRoundtrip() throws Exception {
        try (Connection c = connect("warren-java-direct")) {
            Channel ch = c.createChannel();
            String ex = name("direct");
            String qa = name("direct-a");
            String qb = name("direct-b");
            try {
                ch.exchangeDeclare(ex, "direct", false, true, null);
                AMQP.Queue.DeclareOk d = ch.queueDeclare(qa, false, false, false, null);
                eq(qa, d.getQueue(), "declared queue name");
                eq(0, d.getMessageCount(), "new queue message count");
                eq(0, d.getConsumerCount(), "new queue consumer count");
                ch.queueDeclare(qb, false, false, false, null);
                ch.queueBind(qa, ex, "key-a");
                ch.queueBind(qb, ex, "key-b");
                ch.confirmSelect();
                publishConfirmed(ch, ex, "key-a", utf8("to-a"));
                publishConfirmed(ch, ex, "key-b", utf8("to-b"));
                publishConfirmed(ch, ex, "key-none", utf8("nowhere"));
                publishConfirmed(ch, ex, "key-a", utf8("to-a-2"));
                eq(2, readyCount(ch, qa), "ready in " + qa);
                eq(1, readyCount(ch, qb), "ready in " + qb);

                Channel cons = c.createChannel();
                Collector col = new Collector(cons);
                String tag = cons.basicConsume(qa, false, col);
                ok(tag.startsWith("amq.ctag-"), "server-generated consumer tag: " + tag);
                eq(1, cons.queueDeclarePassive(qa).getConsumerCount(), "consumer count");
                Delivered d1 = col.next();
                eq("to-a", str(d1.body), "first body");
                eq(tag, d1.consumerTag, "consumer tag");
                eq(ex, d1.env.getExchange(), "exchange");
                eq("key-a", d1.env.getRoutingKey(), "routing key");
                eq(false, d1.env.isRedeliver(), "redelivered");
                eq(1L, d1.env.getDeliveryTag(), "first delivery tag");
                Delivered d2 = col.next();
                eq("to-a-2", str(d2.body), "second body");
                eq(2L, d2.env.getDeliveryTag(), "second delivery tag");
                // multiple=true acks both.
                cons.basicAck(2L, true);
                cons.basicCancel(tag);
                eq(0, readyCount(ch, qa), "ready after ack");
                eq(0, ch.queueDeclarePassive(qa).getConsumerCount(), "consumers after cancel");

                GetResponse g = ch.basicGet(qb, true);
                ok(g != null, "basic.get on " + qb + " returned empty");
                eq("to-b", str(g.getBody()), "body in " + qb);
                eq("key-b", g.getEnvelope().getRoutingKey(), "routing key in " + qb);
            } finally {
                dropQueue(c, qa);
                dropQueue(c, qb);
                dropExchange(c, ex);
            }
        }
    }

    static void topicRouting() throws Exception {
        try (Connection c = connect("warren-java-topic")) {
            Channel ch = c.createChannel();
            String ex = name("topic");
            String q1 = name("topic-aerror");
            String q2 = name("topic-bhash");
            String q3 = name("topic-email");
            try {
                ch.exchangeDeclare(ex, "topic", false, false, null);
                for (String q : new String[] {q1, q2, q3}) {
                    ch.queueDeclare(q, false, false, false, null);
                }
                ch.queueBind(q1, ex, "A.error.*");
                ch.queueBind(q2, ex, "B.#");
                ch.queueBind(q3, ex, "*.*.email");
                String[] keys = {"A.error.x", "A.error.email", "A.error", "A.error.x.y", "B",
                    "B.x.email", "B.x.y.z", "C.d.email", "c.d.e.email", "b.lower", ""};
                ch.confirmSelect();
                for (String k : keys) {
                    ch.basicPublish(ex, k, null, utf8(k));
                }
                ch.waitForConfirmsOrDie(WAIT_MS);
                Map<String, List<String>> expected = new LinkedHashMap<>();
                // '*' is exactly one word, '#' zero or more, matching is case-sensitive.
                expected.put(q1, Arrays.asList("A.error.x", "A.error.email"));
                expected.put(q2, Arrays.asList("B", "B.x.email", "B.x.y.z"));
                expected.put(q3, Arrays.asList("A.error.email", "B.x.email", "C.d.email"));
                for (Map.Entry<String, List<String>> e : expected.entrySet()) {
                    String q = e.getKey();
                    eq(e.getValue().size(), readyCount(ch, q), "ready in " + q);
                    Channel cons = c.createChannel();
                    Collector col = new Collector(cons);
                    String tag = cons.basicConsume(q, true, col);
                    List<String> got = new ArrayList<>();
                    for (int i = 0; i < e.getValue().size(); i++) {
                        Delivered d = col.next();
                        got.add(str(d.body));
                        eq(str(d.body), d.env.getRoutingKey(), "routing key");
                    }
                    eq(e.getValue(), got, "keys delivered to " + q);
                    cons.basicCancel(tag);
                    eq(0, readyCount(ch, q), "left in " + q);
                    cons.close();
                }
            } finally {
                for (String q : new String[] {q1, q2, q3}) {
                    dropQueue(c, q);
                }
                dropExchange(c, ex);
            }
        }
    }

    static void basicGetMessageCount() throws Exception {
        try (Connection c = connect("warren-java-get")) {
            Channel ch = c.createChannel();
            String q = name("get");
            try {
                ch.queueDeclare(q, false, false, false, null);
                ch.confirmSelect();
                for (int i = 1; i <= 3; i++) {
                    publishConfirmed(ch, "", q, utf8("m" + i));
                }
                // message_count in get-ok is the number of messages left after this one.
                for (int i = 1; i <= 3; i++) {
                    GetResponse g = ch.basicGet(q, false);
                    ok(g != null, "get " + i + " returned empty");
                    eq("m" + i, str(g.getBody()), "body " + i);
                    eq(3 - i, g.getMessageCount(), "message count after get " + i);
                    eq((long) i, g.getEnvelope().getDeliveryTag(), "delivery tag " + i);
                    eq("", g.getEnvelope().getExchange(), "exchange");
                    eq(q, g.getEnvelope().getRoutingKey(), "routing key");
                    eq(false, g.getEnvelope().isRedeliver(), "redelivered");
                }
                eq(null, ch.basicGet(q, false), "get on an empty queue");
                ch.basicAck(3L, true);
                AMQP.Queue.DeleteOk del = ch.queueDelete(q);
                eq(0, del.getMessageCount(), "messages in deleted queue");
            } finally {
                dropQueue(c, q);
            }
        }
    }

    static void propertiesRoundtrip() throws Exception {
        try (Connection c = connect("warren-java-props")) {
            Channel ch = c.createChannel();
            String q = name("props");
            try {
                ch.queueDeclare(q, false, true, false, null);
                Map<String, Object> nested = new HashMap<>();
                nested.put("inner", "value");
                nested.put("n", 7);
                Map<String, Object> headers = new HashMap<>();
                headers.put("str", "hello \u00e9");
                headers.put("int", 42);
                headers.put("negint", -42);
                headers.put("long", 1L << 40);
                headers.put("bool", true);
                headers.put("bytes", new byte[] {0, 1, 2, (byte) 255});
                // Timestamps have second resolution on the wire.
                Date when = new Date(1700000000000L);
                headers.put("date", when);
                headers.put("nested", nested);
                headers.put("list", Arrays.asList("a", 1, true));
                headers.put("double", 2.5d);
                headers.put("decimal", new BigDecimal("12.34"));
                AMQP.BasicProperties props = new AMQP.BasicProperties.Builder()
                        .contentType("application/json")
                        .contentEncoding("gzip")
                        .headers(headers)
                        .deliveryMode(2)
                        .priority(5)
                        .correlationId("corr-1")
                        .replyTo("reply-queue")
                        .expiration("60000")
                        .messageId("msg-1")
                        .timestamp(when)
                        .type("my.type")
                        // RabbitMQ checks user-id against the connection's user (see user_id_mismatch_406).
                        .userId("guest")
                        .appId("warren-java-test")
                        .build();
                ch.confirmSelect();
                ch.basicPublish("", q, props, utf8("{}"));
                ch.waitForConfirmsOrDie(WAIT_MS);
                GetResponse g = ch.basicGet(q, true);
                ok(g != null, "message not in queue");
                AMQP.BasicProperties p = g.getProps();
                eq("application/json", p.getContentType(), "content_type");
                eq("gzip", p.getContentEncoding(), "content_encoding");
                eq(2, p.getDeliveryMode(), "delivery_mode");
                eq(5, p.getPriority(), "priority");
                eq("corr-1", p.getCorrelationId(), "correlation_id");
                eq("reply-queue", p.getReplyTo(), "reply_to");
                eq("60000", p.getExpiration(), "expiration");
                eq("msg-1", p.getMessageId(), "message_id");
                eq(when, p.getTimestamp(), "timestamp");
                eq("my.type", p.getType(), "type");
                eq("guest", p.getUserId(), "user_id");
                eq("warren-java-test", p.getAppId(), "app_id");
                eq(null, p.getClusterId(), "cluster_id");

                Map<String, Object> h = p.getHeaders();
                ok(h != null, "headers missing");
                eq(headers.keySet(), h.keySet(), "header names");
                // Strings come back as LongString (table field type 'S').
                ok(h.get("str") instanceof LongString, "str type: " + h.get("str").getClass());
                eq("hello \u00e9", h.get("str").toString(), "str");
                eq(42, h.get("int"), "int");
                eq(-42, h.get("negint"), "negint");
                eq(1L << 40, h.get("long"), "long");
                eq(true, h.get("bool"), "bool");
                ok(h.get("bytes") instanceof byte[], "bytes type: " + h.get("bytes").getClass());
                ok(Arrays.equals(new byte[] {0, 1, 2, (byte) 255}, (byte[]) h.get("bytes")), "bytes");
                eq(when, h.get("date"), "date");
                eq(2.5d, h.get("double"), "double");
                eq(new BigDecimal("12.34"), h.get("decimal"), "decimal");
                @SuppressWarnings("unchecked")
                Map<String, Object> n = (Map<String, Object>) h.get("nested");
                eq("value", n.get("inner").toString(), "nested.inner");
                eq(7, n.get("n"), "nested.n");
                eq(2, n.size(), "nested size");
                List<?> l = (List<?>) h.get("list");
                eq(3, l.size(), "list size");
                eq("a", l.get(0).toString(), "list[0]");
                eq(1, l.get(1), "list[1]");
                eq(true, l.get(2), "list[2]");
                eq("{}", str(g.getBody()), "body");

                // An empty property set stays empty (no field invented by the broker).
                ch.basicPublish("", q, new AMQP.BasicProperties(), new byte[0]);
                ch.waitForConfirmsOrDie(WAIT_MS);
                GetResponse e = ch.basicGet(q, true);
                ok(e != null, "bare message not in queue");
                eq(0, e.getBody().length, "empty body length");
                eq(null, e.getProps().getHeaders(), "bare headers");
                eq(null, e.getProps().getDeliveryMode(), "bare delivery_mode");
                eq(null, e.getProps().getContentType(), "bare content_type");
            } finally {
                dropQueue(c, q);
            }
        }
    }

    static void userIdMismatch() throws Exception {
        try (Connection c = connect("warren-java-user-id")) {
            Channel ch = c.createChannel();
            String q = name("user-id");
            ch.queueDeclare(q, false, true, false, null);
            AMQP.BasicProperties props = new AMQP.BasicProperties.Builder().userId("mallory").build();
            ch.basicPublish("", q, props, utf8("spoofed"));
            try {
                // The publish is async; the next synchronous call surfaces the channel close.
                ch.queueDeclarePassive(q);
                throw new AssertionError("publish with a foreign user_id was accepted");
            } catch (IOException e) {
                assertChannelClose(e, 406, "PRECONDITION_FAILED - user_id property set to 'mallory' but authenticated user was 'guest'");
            }
            ok(c.isOpen(), "connection closed after a channel error");
            Channel ch2 = c.createChannel();
            eq(0, readyCount(ch2, q), "spoofed message must not be enqueued");
            ch2.queueDelete(q);
        }
    }

    static void largeBody() throws Exception {
        try (Connection c = connect("warren-java-large")) {
            Channel ch = c.createChannel();
            String q = name("large");
            try {
                ch.queueDeclare(q, false, true, false, null);
                // Several times frame_max, so the body is split over many body frames both ways.
                byte[] body = new byte[1024 * 1024 + 17];
                for (int i = 0; i < body.length; i++) {
                    body[i] = (byte) (i * 31 + 7);
                }
                ch.confirmSelect();
                ch.basicPublish("", q, null, body);
                ch.waitForConfirmsOrDie(WAIT_MS);
                GetResponse g = ch.basicGet(q, true);
                ok(g != null, "large message not in queue");
                eq(body.length, g.getBody().length, "body length");
                ok(Arrays.equals(body, g.getBody()), "body bytes differ");
            } finally {
                dropQueue(c, q);
            }
        }
    }

    static void publisherConfirms() throws Exception {
        try (Connection c = connect("warren-java-confirms")) {
            Channel ch = c.createChannel();
            String q = name("confirms");
            try {
                ch.queueDeclare(q, false, true, false, null);
                ch.confirmSelect();
                eq(1L, ch.getNextPublishSeqNo(), "first publish seq no");
                LinkedBlockingQueue<Long> acked = new LinkedBlockingQueue<>();
                AtomicInteger nacks = new AtomicInteger();
                ch.addConfirmListener(new com.rabbitmq.client.ConfirmListener() {
                    public void handleAck(long tag, boolean multiple) {
                        acked.add(multiple ? -tag : tag);
                    }

                    public void handleNack(long tag, boolean multiple) {
                        nacks.incrementAndGet();
                    }
                });
                for (int i = 0; i < 10; i++) {
                    ch.basicPublish("", q, null, utf8("c" + i));
                }
                eq(11L, ch.getNextPublishSeqNo(), "next publish seq no");
                ch.waitForConfirmsOrDie(WAIT_MS);
                eq(0, nacks.get(), "nacks");
                // Acks may be batched (multiple=true); together they must cover 1..10 exactly.
                long highest = 0;
                for (Long a : acked) {
                    long tag = Math.abs(a);
                    ok(tag > highest, "ack tags not increasing: " + acked);
                    highest = tag;
                }
                eq(10L, highest, "highest acked tag");
                eq(10, readyCount(ch, q), "messages enqueued");
                // Unroutable messages are confirmed too (basic.ack, no error).
                ch.basicPublish("", name("no-such-queue"), null, utf8("lost"));
                ch.waitForConfirmsOrDie(WAIT_MS);
                eq(0, nacks.get(), "nacks after unroutable publish");
            } finally {
                dropQueue(c, q);
            }
        }
    }

    static void txCommitRollback() throws Exception {
        try (Connection c = connect("warren-java-tx")) {
            Channel tx = c.createChannel();
            Channel obs = c.createChannel();
            String q = name("tx");
            try {
                obs.queueDeclare(q, false, false, false, null);
                tx.txSelect();
                tx.basicPublish("", q, null, utf8("committed"));
                // Published in a transaction: not enqueued until commit.
                eq(0, readyCount(obs, q), "ready before commit");
                tx.txCommit();
                eq(1, readyCount(obs, q), "ready after commit");
                tx.basicPublish("", q, null, utf8("rolled-back"));
                tx.txRollback();
                eq(1, readyCount(obs, q), "ready after rollback");

                // Acks are transactional too: a rolled-back ack leaves the message unacked,
                // a committed one removes it.
                GetResponse g = tx.basicGet(q, false);
                ok(g != null, "committed message missing");
                eq("committed", str(g.getBody()), "body");
                eq(0, g.getMessageCount(), "message count");
                tx.basicAck(g.getEnvelope().getDeliveryTag(), false);
                tx.txCommit();
                eq(0, readyCount(obs, q), "ready after committed ack");
                tx.close();
                // Closing the channel would requeue an unacked message; nothing is left.
                eq(0, readyCount(obs, q), "ready after closing the tx channel");
            } finally {
                dropQueue(c, q);
            }
        }
    }

    static void qosPrefetch() throws Exception {
        try (Connection c = connect("warren-java-qos")) {
            Channel ch = c.createChannel();
            String q = name("qos");
            try {
                ch.queueDeclare(q, false, true, false, null);
                ch.confirmSelect();
                publishConfirmed(ch, "", q, utf8("first"));
                publishConfirmed(ch, "", q, utf8("second"));
                Channel cons = c.createChannel();
                cons.basicQos(1);
                Collector col = new Collector(cons);
                cons.basicConsume(q, false, col);
                Delivered d1 = col.next();
                eq("first", str(d1.body), "first delivery");
                // With one unacked message the second one stays ready in the queue.
                Delivered early = col.deliveries.poll(ABSENCE_MS, TimeUnit.MILLISECONDS);
                eq(null, early == null ? null : str(early.body), "delivery beyond prefetch=1");
                eq(1, readyCount(ch, q), "ready while first is unacked");
                cons.basicAck(d1.env.getDeliveryTag(), false);
                Delivered d2 = col.next();
                eq("second", str(d2.body), "second delivery after ack");
                eq(2L, d2.env.getDeliveryTag(), "second delivery tag");
                cons.basicAck(d2.env.getDeliveryTag(), false);
                eq(0, readyCount(ch, q), "ready after both acks");
            } finally {
                dropQueue(c, q);
            }
        }
    }

    static void nackRequeue() throws Exception {
        try (Connection c = connect("warren-java-nack")) {
            Channel ch = c.createChannel();
            String q = name("nack");
            try {
                ch.queueDeclare(q, false, true, false, null);
                ch.confirmSelect();
                publishConfirmed(ch, "", q, utf8("again"));
                Channel cons = c.createChannel();
                Collector col = new Collector(cons);
                cons.basicConsume(q, false, col);
                Delivered d1 = col.next();
                eq(false, d1.env.isRedeliver(), "first redelivered flag");
                cons.basicNack(d1.env.getDeliveryTag(), false, true);
                Delivered d2 = col.next();
                eq("again", str(d2.body), "redelivered body");
                eq(true, d2.env.isRedeliver(), "redelivered flag after nack requeue");
                eq(d1.env.getDeliveryTag() + 1, d2.env.getDeliveryTag(), "delivery tag increments");
                // nack without requeue drops it.
                cons.basicNack(d2.env.getDeliveryTag(), false, false);
                // basic.reject requeue behaves like nack requeue.
                publishConfirmed(ch, "", q, utf8("rejected"));
                Delivered d3 = col.next();
                eq(false, d3.env.isRedeliver(), "fresh message redelivered flag");
                cons.basicReject(d3.env.getDeliveryTag(), true);
                Delivered d4 = col.next();
                eq("rejected", str(d4.body), "body after reject");
                eq(true, d4.env.isRedeliver(), "redelivered flag after reject requeue");
                cons.basicAck(d4.env.getDeliveryTag(), false);
                eq(0, readyCount(ch, q), "ready at end");
            } finally {
                dropQueue(c, q);
            }
        }
    }

    static void passiveMissing() throws Exception {
        try (Connection c = connect("warren-java-passive")) {
            Channel ch = c.createChannel();
            String q = name("missing");
            try {
                ch.queueDeclarePassive(q);
                throw new AssertionError("passive declare of a missing queue succeeded");
            } catch (IOException e) {
                assertChannelClose(e, 404, "NOT_FOUND - no queue '" + q + "' in vhost '/'");
            }
            ok(!ch.isOpen(), "channel still open after 404");
            ok(c.isOpen(), "connection closed by a channel error");
            // The connection is still usable on a new channel.
            Channel ch2 = c.createChannel();
            String q2 = name("after-404");
            AMQP.Queue.DeclareOk d = ch2.queueDeclare(q2, false, true, true, null);
            eq(q2, d.getQueue(), "queue declared after 404");
            // Same for a missing exchange.
            String ex = name("missing-ex");
            try {
                ch2.exchangeDeclarePassive(ex);
                throw new AssertionError("passive declare of a missing exchange succeeded");
            } catch (IOException e) {
                assertChannelClose(e, 404, "NOT_FOUND - no exchange '" + ex + "' in vhost '/'");
            }
            ok(c.isOpen(), "connection closed by a second channel error");
        }
    }

    static void exclusiveLocked() throws Exception {
        Connection owner = connect("warren-java-excl-owner");
        try (Connection other = connect("warren-java-excl-other")) {
            Channel ch = owner.createChannel();
            String q = name("exclusive");
            ch.queueDeclare(q, false, true, false, null);
            String locked = "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '" + q + "' in vhost '/'";
            Channel o1 = other.createChannel();
            try {
                o1.queueDeclare(q, false, true, false, null);
                throw new AssertionError("redeclare of another connection's exclusive queue succeeded");
            } catch (IOException e) {
                assertChannelClose(e, 405, locked);
            }
            Channel o2 = other.createChannel();
            try {
                o2.basicConsume(q, true, new DefaultConsumer(o2));
                throw new AssertionError("consume from another connection's exclusive queue succeeded");
            } catch (IOException e) {
                assertChannelClose(e, 405, locked);
            }
            ok(other.isOpen(), "other connection closed by 405");
            // The owner can still use it.
            eq(0, ch.queueDeclarePassive(q).getMessageCount(), "owner passive declare");
            owner.close();
            // An exclusive queue goes away with its connection.
            Channel o3 = other.createChannel();
            try {
                o3.queueDeclarePassive(q);
                throw new AssertionError("exclusive queue survived its connection");
            } catch (IOException e) {
                assertChannelClose(e, 404, "NOT_FOUND");
            }
        } finally {
            if (owner.isOpen()) {
                owner.close();
            }
        }
    }

    static void consumerCancelNotify() throws Exception {
        try (Connection c = connect("warren-java-cancel")) {
            Channel ch = c.createChannel();
            String q = name("cancel");
            ch.queueDeclare(q, false, false, false, null);
            try {
                Channel cons = c.createChannel();
                Collector col = new Collector(cons);
                String tag = cons.basicConsume(q, false, "my-tag-" + RUN, false, false, null, col);
                eq("my-tag-" + RUN, tag, "client-chosen consumer tag");
                AMQP.Queue.DeleteOk del = ch.queueDelete(q);
                eq(0, del.getMessageCount(), "deleted queue message count");
                // consumer_cancel_notify: the broker sends basic.cancel to the consumer's channel.
                ok(col.cancelled.await(WAIT_MS, TimeUnit.MILLISECONDS), "handleCancel not called");
                eq(tag, col.cancelledTag.get(), "cancelled consumer tag");
                ok(cons.isOpen(), "consumer channel closed by the cancel");
                // The channel stays usable after the broker's cancel.
                String q2 = name("after-cancel");
                eq(q2, cons.queueDeclare(q2, false, true, true, null).getQueue(), "declare after cancel");
            } finally {
                dropQueue(c, q);
            }
        }
    }

    static void mandatoryReturn() throws Exception {
        try (Connection c = connect("warren-java-mandatory")) {
            Channel ch = c.createChannel();
            LinkedBlockingQueue<Object[]> returns = new LinkedBlockingQueue<>();
            ch.addReturnListener((code, text, exchange, key, props, body) ->
                    returns.add(new Object[] {code, text, exchange, key, props, body}));
            ch.confirmSelect();
            String key = name("unroutable");
            AMQP.BasicProperties props = new AMQP.BasicProperties.Builder().messageId("ret-1").build();
            ch.basicPublish("", key, true, props, utf8("bounce"));
            // basic.return precedes the confirm's basic.ack.
            ch.waitForConfirmsOrDie(WAIT_MS);
            Object[] r = returns.poll(WAIT_MS, TimeUnit.MILLISECONDS);
            ok(r != null, "no basic.return");
            eq(312, r[0], "reply code");
            eq("NO_ROUTE", r[1], "reply text");
            eq("", r[2], "exchange");
            eq(key, r[3], "routing key");
            eq("ret-1", ((AMQP.BasicProperties) r[4]).getMessageId(), "returned message_id");
            eq("bounce", str((byte[]) r[5]), "returned body");

            // Through a named exchange with no matching binding as well.
            String ex = name("mandatory-ex");
            ch.exchangeDeclare(ex, "direct", false, true, null);
            try {
                ch.basicPublish(ex, "nobody", true, null, utf8("bounce2"));
                ch.waitForConfirmsOrDie(WAIT_MS);
                Object[] r2 = returns.poll(WAIT_MS, TimeUnit.MILLISECONDS);
                ok(r2 != null, "no basic.return for the named exchange");
                eq(312, r2[0], "reply code");
                eq(ex, r2[2], "exchange");
                eq("nobody", r2[3], "routing key");
                // A routable mandatory message is not returned.
                String q = name("mandatory-q");
                ch.queueDeclare(q, false, true, true, null);
                ch.basicPublish("", q, true, null, utf8("kept"));
                ch.waitForConfirmsOrDie(WAIT_MS);
                eq(1, readyCount(ch, q), "routable mandatory message enqueued");
                eq(0, returns.size(), "returns for a routable message");
            } finally {
                dropExchange(c, ex);
            }
        }
    }
}
