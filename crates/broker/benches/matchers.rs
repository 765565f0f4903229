//! Exchange matching: topic trie, headers matching, and routing through a vhost.
use amq_protocol::protocol::BasicProperties;
use amq_protocol::types::{AMQPValue, FieldTable};
use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use warren_broker::exchange::headers::headers_match;
use warren_broker::exchange::topic::TopicTrie;
use warren_broker::{BindSpec, Broker, BrokerSettings, ExchangeDeclare, InMemoryOnly, Message, QueueDeclare};
use warren_codec::ContentHeader;

/// `n` patterns in the shapes topic users bind: exact keys, `*` in the middle, `#` at either end.
fn patterns(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| match i % 4 {
            0 => format!("stock.s{i}.nyse"),
            1 => format!("stock.*.x{i}"),
            2 => format!("log{i}.#"),
            _ => format!("#.err{i}"),
        })
        .collect()
}

fn topic(c: &mut Criterion) {
    let mut g = c.benchmark_group("topic_match");
    g.throughput(Throughput::Elements(1));
    for n in [10usize, 1_000, 100_000] {
        let mut trie = TopicTrie::new();
        for (i, p) in patterns(n).iter().enumerate() {
            trie.insert(p, i as u32);
        }
        // One key each pattern kind matches, and one that matches nothing.
        let keys = [
            ("exact", "stock.s4.nyse".to_string()),
            ("star", "stock.abc.x5".to_string()),
            ("hash", "log6.a.b.c".to_string()),
            ("miss", "nothing.matches.this.key".to_string()),
        ];
        for (what, key) in keys {
            g.bench_with_input(BenchmarkId::new(what, n), &key, |b, key| {
                b.iter(|| {
                    let mut hits = 0u32;
                    trie.for_each_match(black_box(key), |_| hits += 1);
                    hits
                })
            });
        }
    }
    g.finish();
}

fn table(pairs: &[(&str, &str)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), AMQPValue::LongString((*v).into()));
    }
    t
}

fn headers(c: &mut Criterion) {
    let mut g = c.benchmark_group("headers_match");
    g.throughput(Throughput::Elements(1));
    let keys: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    let all: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), "v")).collect();
    let msg = table(&all);
    for n in [1usize, 10] {
        for mode in ["all", "any"] {
            let mut args = table(&all[..n]);
            args.insert("x-match".into(), AMQPValue::LongString(mode.into()));
            g.bench_function(BenchmarkId::new(mode, n), |b| b.iter(|| headers_match(black_box(&args), Some(&msg))));
        }
    }
    g.finish();
}

fn message(routing_key: &'static str) -> Message {
    Message {
        exchange: Bytes::from_static(b"bench"),
        routing_key: Bytes::from_static(routing_key.as_bytes()),
        header: ContentHeader::new(60, 16, BasicProperties::default()),
        body: Bytes::from_static(&[0; 16]),
    }
}

/// Resolving a publish to its queues through a vhost, as the channel layer does.
fn route(c: &mut Criterion) {
    let broker = Broker::new(BrokerSettings::default(), Box::new(InMemoryOnly), None);
    let vhost = broker.add_vhost("/").unwrap();
    let mut g = c.benchmark_group("route");
    g.throughput(Throughput::Elements(1));
    for (kind, queues) in [("direct", 1_000usize), ("fanout", 8)] {
        let name = format!("bench.{kind}");
        let d = ExchangeDeclare { name: name.clone(), kind: kind.into(), ..Default::default() };
        let ex = broker.declare_exchange(&vhost, &d).unwrap();
        for i in 0..queues {
            let q = format!("{kind}.q{i}");
            broker.declare_queue(&vhost, 1, &QueueDeclare { name: q.clone(), ..Default::default() }).unwrap();
            let spec = BindSpec { source: name.clone(), dest: q, routing_key: format!("key{i}"), ..Default::default() };
            broker.bind(&vhost, 1, &spec).unwrap();
        }
        let msg = message("key7");
        let mut out = Vec::new();
        g.bench_function(BenchmarkId::new(kind, queues), |b| {
            b.iter(|| {
                vhost.route(&ex, black_box(&msg), &mut out);
                out.len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, topic, headers, route);
criterion_main!(benches);
