// Blocked-connection notifications with the official RabbitMQ Java client (amqp-client 5.x):
// the BlockedListener registered with Connection.addBlockedListener must see handleBlocked with
// RabbitMQ's reason when the broker's memory alarm goes off, then handleUnblocked when it clears,
// and the publish that was held meanwhile must then be routed.
//
// The alarm is moved by the test that owns the broker (tests/java_client.rs), so this program
// talks to it over stdin/stdout: it prints `READY` and waits for the line `ALARM_ON`, publishes,
// prints `BLOCKED` once told so and waits for `ALARM_OFF`. Every wait is bounded. Like
// WarrenJavaTest it prints `PASS name` / `FAIL name: reason` and a `java-blocked: N passed,
// M failed` summary, and exits non-zero if a check failed.

import com.rabbitmq.client.BlockedListener;
import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Connection;
import com.rabbitmq.client.ConnectionFactory;
import com.rabbitmq.client.GetResponse;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

public class WarrenJavaBlocked {
    // Upper bound for anything that should happen promptly; only reached when a check fails.
    static final long WAIT_MS = 10000;

    static int passed = 0;
    static int failed = 0;

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: WarrenJavaBlocked HOST PORT");
            System.exit(2);
        }
        try {
            blockedListener(args[0], Integer.parseInt(args[1]));
            pass("blocked_listener_fires");
        } catch (Throwable t) {
            fail("blocked_listener_fires", t.toString());
        }
        System.out.println("java-blocked: " + passed + " passed, " + failed + " failed");
        System.out.flush();
        System.exit(failed == 0 ? 0 : 1);
    }

    static void blockedListener(String host, int port) throws Exception {
        ConnectionFactory f = new ConnectionFactory();
        f.setHost(host);
        f.setPort(port);
        BlockingQueue<String> events = new LinkedBlockingQueue<>();
        BufferedReader stdin = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        Connection conn = f.newConnection();
        try {
            conn.addBlockedListener(new BlockedListener() {
                public void handleBlocked(String reason) {
                    events.add("blocked: " + reason);
                }

                public void handleUnblocked() {
                    events.add("unblocked");
                }
            });
            Channel ch = conn.createChannel();
            String q = ch.queueDeclare("", false, true, true, null).getQueue();

            say("READY");
            expectLine(stdin, "ALARM_ON");
            ch.basicPublish("", q, null, "held".getBytes(StandardCharsets.UTF_8));
            expectEvent(events, "blocked: low on memory");
            say("BLOCKED");

            expectLine(stdin, "ALARM_OFF");
            expectEvent(events, "unblocked");
            // basic.get follows the publish on the same channel, so the held message is there.
            GetResponse r = ch.basicGet(q, true);
            if (r == null) {
                throw new AssertionError("the publish held during the alarm was not routed");
            }
            String body = new String(r.getBody(), StandardCharsets.UTF_8);
            if (!body.equals("held")) {
                throw new AssertionError("got body " + body);
            }
        } finally {
            conn.close(5000);
        }
    }

    static void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    // The test answers within moments; a missing answer shows as EOF once it gives up.
    static void expectLine(BufferedReader stdin, String want) throws Exception {
        String got = stdin.readLine();
        if (!want.equals(got)) {
            throw new AssertionError("expected " + want + " on stdin, got " + got);
        }
    }

    static void expectEvent(BlockingQueue<String> events, String want) throws Exception {
        String got = events.poll(WAIT_MS, TimeUnit.MILLISECONDS);
        if (!want.equals(got)) {
            throw new AssertionError("expected BlockedListener event '" + want + "', got " + got);
        }
    }

    static void pass(String name) {
        passed++;
        System.out.println("PASS " + name);
    }

    static void fail(String name, String why) {
        failed++;
        System.out.println("FAIL " + name + ": " + why);
    }
}
