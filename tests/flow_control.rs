//! Back-pressure: a publisher pushing as fast as it can into a queue whose consumer is slower
//! must be slowed down (RabbitMQ: credit flow, then TCP back-pressure on the publisher's
//! socket), not buffered without bound, and nothing may be lost, duplicated or reordered.
//!
//! Memory use cannot be observed through AMQP, so the assertions are behavioural: every
//! publish is confirmed exactly once, the consumer sees every message exactly once and in
//! order, nothing more, and the queue ends empty. A broker that drops or reorders under
//! pressure, or stalls for good once its buffers fill, fails this test.
//!
//! Both ends use the raw frame client rather than lapin: the publisher then really writes as
//! fast as the socket takes bytes (lapin would add its own pacing), and the test measures the
//! broker rather than an unoptimised client build.
mod common_b;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{basic, confirm, AMQPClass};
use amq_protocol::types::FieldTable;
use common_b::raw::{encode_publish, Raw};
use common_b::*;
use std::time::Duration;

const N: u64 = 200_000;
/// Publishes encoded per socket write.
const BATCH: u64 = 1_000;
/// The consumer holds at most PREFETCH unacked messages and acks every ACK_EVERY.
const PREFETCH: u16 = 100;
const ACK_EVERY: u64 = 50;
/// Hard cap so a stalled broker fails the test instead of hanging it.
const DEADLINE: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fast_publisher_slow_consumer_loses_nothing() {
    let b = warren_it::start();
    let setup = connect(&b).await;
    let setup_ch = setup.create_channel().await.unwrap();
    let q = declare_queue(&setup_ch, "flow").await;

    // Consumer: small prefetch, so the broker must hold (almost) everything itself.
    let mut consumer = Raw::open(&b.host_port()).await;
    consumer
        .method(1, AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos { prefetch_count: PREFETCH, global: false })))
        .await;
    assert!(matches!(consumer.recv().await, AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::QosOk(_)))));
    consumer
        .method(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
                queue: q.as_str().into(),
                consumer_tag: "slow".into(),
                no_local: false,
                no_ack: false,
                exclusive: false,
                nowait: false,
                arguments: FieldTable::default(),
            })),
        )
        .await;
    assert!(matches!(consumer.recv().await, AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_)))));
    let consumer_task = tokio::spawn(async move {
        for i in 0..N {
            match consumer.recv().await {
                AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Deliver(d))) => {
                    assert_eq!(d.delivery_tag, i + 1);
                    assert!(!d.redelivered, "delivery {i} was redelivered");
                }
                other => panic!("expected basic.deliver #{i}, got {other}"),
            }
            let body = i.to_string().into_bytes();
            match consumer.recv().await {
                AMQPFrame::Header(1, h) => assert_eq!(h.body_size, body.len() as u64),
                other => panic!("expected content header #{i}, got {other}"),
            }
            assert_eq!(consumer.recv().await, AMQPFrame::Body(1, body), "delivery {i} out of order");
            if (i + 1) % ACK_EVERY == 0 || i + 1 == N {
                consumer
                    .method(
                        1,
                        AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack { delivery_tag: i + 1, multiple: true })),
                    )
                    .await;
            }
        }
        consumer
    });

    // Publisher: confirms on; one task writes every publish without waiting for anything,
    // another collects the confirms.
    let mut publisher = Raw::open(&b.host_port()).await;
    publisher.method(1, AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select { nowait: false }))).await;
    assert!(matches!(
        publisher.recv().await,
        AMQPFrame::Method(1, AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_)))
    ));
    let Raw { reader: mut confirms_in, writer: mut publishes_out } = publisher;
    let qname = q.clone();
    let writer_task = tokio::spawn(async move {
        let mut next = 0;
        while next < N {
            let end = (next + BATCH).min(N);
            let mut buf = Vec::with_capacity(64 * 1024);
            for i in next..end {
                buf = encode_publish(buf, 1, "", &qname, false, i.to_string().as_bytes());
            }
            publishes_out.write_raw(&buf).await;
            next = end;
        }
        publishes_out
    });
    let confirm_task = tokio::spawn(async move {
        // acked[t] for delivery tag t (1-based); `low` is the lowest tag not yet acked.
        let mut acked = vec![false; N as usize + 1];
        let (mut low, mut count) = (1u64, 0u64);
        while count < N {
            match confirms_in.recv().await {
                AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Ack(ack))) => {
                    let tag = ack.delivery_tag;
                    assert!((1..=N).contains(&tag) && !acked[tag as usize], "bad or repeated ack {tag}");
                    let from = if ack.multiple { low } else { tag };
                    for t in from..=tag {
                        if !acked[t as usize] {
                            acked[t as usize] = true;
                            count += 1;
                        }
                    }
                    while low <= N && acked[low as usize] {
                        low += 1;
                    }
                }
                other => panic!("expected basic.ack, got {other}"),
            }
        }
        confirms_in
    });

    let _publishes_out = tokio::time::timeout(DEADLINE, writer_task).await.expect("publishing stalled").unwrap();
    let _confirms_in = tokio::time::timeout(DEADLINE, confirm_task).await.expect("confirms stalled").unwrap();
    let mut consumer = tokio::time::timeout(DEADLINE, consumer_task)
        .await
        .expect("consumer did not receive every message in time")
        .expect("consumer task failed");

    // Nothing beyond the N messages: the queue is empty and the consumer still attached. The
    // last multiple ack has been sent; a qos round-trip on the consumer's channel makes sure
    // the broker has processed it before we look.
    consumer
        .method(1, AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos { prefetch_count: PREFETCH, global: false })))
        .await;
    match consumer.recv().await {
        AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::QosOk(_))) => {}
        other => panic!("expected basic.qos-ok (no further delivery), got {other}"),
    }
    assert_eq!(queue_counts(&setup, &q).await, (0, 1), "queue drained, consumer still attached");
    delete_queue(&setup, &q).await;
}
