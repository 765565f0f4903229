//! Runs the four tutorial examples in `examples/` against a broker and checks their results.
#[path = "../examples/pubsub.rs"]
mod pubsub;
#[path = "../examples/rpc.rs"]
mod rpc;
#[path = "../examples/topic_logs.rs"]
mod topic_logs;
#[path = "../examples/work_queue.rs"]
mod work_queue;

use std::collections::BTreeMap;

#[tokio::test(flavor = "multi_thread")]
async fn work_queue_shares_tasks_fairly_and_processes_each_once() {
    let b = warren_it::start();
    let s = work_queue::run(&b.uri()).await.expect("work_queue example");
    assert_eq!(s.tasks.len(), work_queue::TASKS);
    let mut all: Vec<String> = s.processed.iter().flatten().cloned().collect();
    all.sort();
    let mut expected = s.tasks.clone();
    expected.sort();
    assert_eq!(all, expected, "every task processed exactly once");
    // Prefetch 1: the worker holding its first task got nothing else; the other did the rest.
    let mut counts: Vec<usize> = s.processed.iter().map(Vec::len).collect();
    counts.sort();
    assert_eq!(counts, vec![1, work_queue::TASKS - 1], "{:?}", s.processed);
    // The single-queue worker got tasks in publish order.
    let busy = s.processed.iter().find(|p| p.len() == work_queue::TASKS - 1).unwrap();
    let mut in_order = busy.clone();
    in_order.sort_by_key(|t| s.tasks.iter().position(|x| x == t));
    assert_eq!(*busy, in_order);
}

#[tokio::test(flavor = "multi_thread")]
async fn pubsub_every_subscriber_gets_every_message() {
    let b = warren_it::start();
    let s = pubsub::run(&b.uri()).await.expect("pubsub example");
    assert_eq!(s.published.len(), pubsub::MESSAGES);
    assert_eq!(s.received.len(), 2);
    assert_ne!(s.received[0].0, s.received[1].0, "each subscriber has its own queue");
    for (queue, got) in &s.received {
        assert!(queue.starts_with("amq.gen-"), "server-named queue {queue:?}");
        // Exactly the messages published after binding, in order; not the earlier one.
        assert_eq!(got, &s.published, "{queue}");
        assert!(!got.contains(&s.unbound_message));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn topic_logs_routes_by_pattern() {
    let b = warren_it::start();
    let s = topic_logs::run(&b.uri()).await.expect("topic_logs example");
    let expected: BTreeMap<String, Vec<String>> = [
        ("A.error.x", vec!["q1"]),
        ("B.x.y", vec!["q2"]),
        ("z.y.email", vec!["q3"]),
        ("A.error.email", vec!["q1", "q3"]),
        ("B.error.email", vec!["q2", "q3"]),
        // `#` matches zero words.
        ("B", vec!["q2"]),
        ("A.info.email", vec!["q3"]),
        // `*` needs exactly one word.
        ("A.error", vec![]),
        ("A.error.x.y", vec![]),
        ("x.y.z", vec![]),
        // Matching is case-sensitive.
        ("a.error.x", vec![]),
    ]
    .into_iter()
    .map(|(k, qs)| (k.to_owned(), qs.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(s.routes, expected);
    assert_eq!(s.returned, vec!["A.error", "A.error.x.y", "x.y.z", "a.error.x"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn rpc_answers_match_requests_by_correlation_id() {
    let b = warren_it::start();
    let s = rpc::run(&b.uri()).await.expect("rpc example");
    assert_eq!(s.answers, vec![(0, 0), (1, 1), (2, 1), (3, 2), (10, 55), (20, 6765), (30, 832_040), (40, 102_334_155)]);
    assert_eq!(s.served, rpc::REQUESTS.len());
}
