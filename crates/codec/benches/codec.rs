//! The codec's hot paths: decoding what publishers send, encoding what consumers receive.
use amq_protocol::protocol::{basic, queue, AMQPClass};
use bytes::{BufMut, Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use warren_codec::{decode_frame, encode_ack, encode_content, encode_deliver, BasicProperties, ContentHeader, OutBuf};

const FRAME_MAX: u32 = 131_072;

fn frame(out: &mut BytesMut, ty: u8, channel: u16, payload: &[u8]) {
    out.put_u8(ty);
    out.put_u16(channel);
    out.put_u32(payload.len() as u32);
    out.put_slice(payload);
    out.put_u8(0xCE);
}

/// basic.publish + content header + body frames, as a client writes them.
fn publish(size: usize) -> BytesMut {
    let mut out = BytesMut::new();
    let p =
        basic::Publish { exchange: "".into(), routing_key: "bench.queue".into(), mandatory: false, immediate: false };
    warren_codec::encode_method(&mut out, 1, &AMQPClass::Basic(basic::AMQPMethod::Publish(p)));
    let props = BasicProperties::default().with_delivery_mode(2).with_content_type("application/octet-stream".into());
    frame(&mut out, 2, 1, &ContentHeader::new(60, size as u64, props).raw);
    for chunk in vec![b'x'; size].chunks(FRAME_MAX as usize - 8) {
        frame(&mut out, 3, 1, chunk);
    }
    out
}

/// Decodes every frame in `buf` (the copy of the input is made outside the timed part).
fn decode_all(mut buf: BytesMut) -> usize {
    let mut n = 0;
    while let Some(f) = decode_frame(&mut buf, FRAME_MAX).expect("valid frames") {
        black_box(f);
        n += 1;
    }
    n
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode_publish");
    for size in [16usize, 1024, 65_536] {
        let one = publish(size);
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::from_parameter(size), &one, |b, one| {
            b.iter_batched(|| one.clone(), decode_all, BatchSize::SmallInput)
        });
    }
    // 64 publishes in one read, as a busy publisher's socket delivers them.
    let mut batch = BytesMut::new();
    for _ in 0..64 {
        batch.extend_from_slice(&publish(16));
    }
    g.throughput(Throughput::Elements(64));
    g.bench_function("batch_64x16", |b| b.iter_batched(|| batch.clone(), decode_all, BatchSize::SmallInput));
    g.finish();

    // A method that is not on the fast path goes through amq-protocol.
    let mut declare = BytesMut::new();
    let d = queue::Declare { queue: "orders".into(), durable: true, ..Default::default() };
    warren_codec::encode_method(&mut declare, 1, &AMQPClass::Queue(queue::AMQPMethod::Declare(d)));
    c.bench_function("decode_queue_declare", |b| b.iter_batched(|| declare.clone(), decode_all, BatchSize::SmallInput));
    let mut ack = BytesMut::new();
    encode_ack(&mut ack, 1, 42, true);
    c.bench_function("decode_ack", |b| b.iter_batched(|| ack.clone(), decode_all, BatchSize::SmallInput));
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode_deliver");
    for size in [16usize, 65_536] {
        let header = ContentHeader::new(60, size as u64, BasicProperties::default().with_delivery_mode(2));
        let body = Bytes::from(vec![b'x'; size]);
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::from_parameter(size), &(header, body), |b, (header, body)| {
            let mut out = OutBuf::new();
            b.iter(|| {
                encode_deliver(out.tail(), 1, "amq.ctag-bench", 42, false, b"", b"bench.queue");
                encode_content(&mut out, 1, header, body, FRAME_MAX);
                let n = out.len();
                out.advance(n);
            })
        });
    }
    g.finish();
    c.bench_function("encode_ack", |b| {
        let mut buf = BytesMut::with_capacity(64);
        b.iter(|| {
            encode_ack(&mut buf, 1, black_box(42), true);
            buf.clear();
        })
    });
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
