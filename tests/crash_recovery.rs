//! Crash safety: the real `warren` binary is killed with SIGKILL at random moments while a
//! publisher (confirms, persistent messages) and a consumer (acks in transactions) work on a
//! durable queue. After the last restart, every confirmed message that was not acked must be
//! there exactly once, and no acked message may come back.
//!
//! An ack counts as acked only once its tx.commit-ok arrived: only then does the broker promise
//! it is on disk. Acks whose commit was in flight at the kill may go either way.
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use std::collections::{HashSet, VecDeque};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CYCLES: usize = 20;
const QUEUE: &str = "crash-recovery";

#[derive(Default)]
struct Ledger {
    published: u64,
    confirmed: HashSet<u64>,
    acked: HashSet<u64>,
    /// Acked, but the commit's outcome is unknown (killed mid-commit).
    maybe_acked: HashSet<u64>,
}

/// Starts the broker on `dir`; returns the child and its AMQP address.
fn start(dir: &std::path::Path) -> (Child, String) {
    let p = warren_it::BrokerProcess::spawn(dir);
    assert!(!p.log().contains("panicked"), "{}", p.log());
    (p.child, p.addr)
}

async fn connect(addr: &str) -> lapin::Result<Connection> {
    Connection::connect(&format!("amqp://guest:guest@{addr}/%2f"), ConnectionProperties::default()).await
}

async fn declare(conn: &Connection) -> lapin::Result<lapin::Channel> {
    let ch = conn.create_channel().await?;
    ch.queue_declare(QUEUE.into(), QueueDeclareOptions { durable: true, ..Default::default() }, FieldTable::default())
        .await?;
    Ok(ch)
}

/// Publishes persistent messages (body = id) with up to 64 confirms outstanding, until killed.
async fn publisher(addr: String, ledger: Arc<Mutex<Ledger>>) -> lapin::Result<()> {
    let conn = connect(&addr).await?;
    let ch = declare(&conn).await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let props = BasicProperties::default().with_delivery_mode(2);
    let mut pending = VecDeque::new();
    loop {
        let id = {
            let mut l = ledger.lock().unwrap();
            l.published += 1;
            l.published
        };
        let confirm = ch
            .basic_publish(
                "".into(),
                QUEUE.into(),
                BasicPublishOptions::default(),
                id.to_string().as_bytes(),
                props.clone(),
            )
            .await?;
        pending.push_back((id, confirm));
        if pending.len() >= 64 {
            let (id, c) = pending.pop_front().unwrap();
            if c.await?.is_ack() {
                ledger.lock().unwrap().confirmed.insert(id);
            }
        }
    }
}

/// Takes messages with basic.get and acks about half of them, committing every 16 acks.
async fn consumer(addr: String, ledger: Arc<Mutex<Ledger>>, seed: u64) -> lapin::Result<()> {
    let conn = connect(&addr).await?;
    let ch = declare(&conn).await?;
    ch.tx_select().await?;
    let mut rng = seed | 1;
    let mut in_tx = Vec::new();
    loop {
        let Some(m) = ch.basic_get(QUEUE.into(), BasicGetOptions::default()).await? else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let id: u64 = std::str::from_utf8(&m.delivery.data).unwrap().parse().unwrap();
        if xorshift(&mut rng).is_multiple_of(2) {
            ch.basic_ack(m.delivery.delivery_tag, BasicAckOptions::default()).await?;
            in_tx.push(id);
            ledger.lock().unwrap().maybe_acked.insert(id);
        }
        if in_tx.len() >= 16 {
            ch.tx_commit().await?;
            let mut l = ledger.lock().unwrap();
            for id in in_tx.drain(..) {
                l.maybe_acked.remove(&id);
                l.acked.insert(id);
            }
        }
    }
}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

#[test]
fn kill_9_never_loses_a_confirmed_message_nor_resurrects_an_acked_one() {
    if warren_it::skip_against_external("kills the warren binary itself") {
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("seed {seed}");
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    for cycle in 0..CYCLES {
        let (mut child, addr) = start(&dir);
        let kill_after = Duration::from_millis(100 + xorshift(&mut seed) % 700);
        let (l1, l2, a1, a2, s) = (ledger.clone(), ledger.clone(), addr.clone(), addr, xorshift(&mut seed));
        rt.block_on(async move {
            let p = tokio::spawn(publisher(a1, l1));
            let c = tokio::spawn(consumer(a2, l2, s));
            tokio::time::sleep(kill_after).await;
            child.kill().expect("SIGKILL warren");
            child.wait().expect("reap warren");
            // Both clients now fail on their dead connection; they must not hang.
            for t in [p, c] {
                let _ = tokio::time::timeout(Duration::from_secs(10), t).await.expect("client ended after the kill");
            }
        });
        let l = ledger.lock().unwrap();
        eprintln!(
            "cycle {cycle}: killed after {kill_after:?}; published {}, confirmed {}, acked {}",
            l.published,
            l.confirmed.len(),
            l.acked.len()
        );
    }

    // Final restart: drain everything and check it against the ledger.
    let (mut child, addr) = start(&dir);
    let drained: Vec<u64> = rt.block_on(async {
        let conn = connect(&addr).await.expect("connect after the last restart");
        let ch = declare(&conn).await.expect("declare");
        let mut ids = Vec::new();
        while let Some(m) = ch.basic_get(QUEUE.into(), BasicGetOptions { no_ack: true }).await.expect("get") {
            ids.push(std::str::from_utf8(&m.delivery.data).unwrap().parse().unwrap());
        }
        ids
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);

    let l = ledger.lock().unwrap();
    let present: HashSet<u64> = drained.iter().copied().collect();
    let duplicates = drained.len() - present.len();
    let must_be_there: HashSet<u64> =
        l.confirmed.iter().filter(|id| !l.acked.contains(id) && !l.maybe_acked.contains(id)).copied().collect();
    let missing: Vec<u64> = must_be_there.iter().filter(|id| !present.contains(id)).copied().collect();
    let resurrected: Vec<u64> = l.acked.iter().filter(|id| present.contains(id)).copied().collect();
    let unconfirmed_present = present.iter().filter(|id| !l.confirmed.contains(id)).count();
    println!(
        "crash test: cycles={CYCLES} published={} confirmed={} acked={} ack-in-flight={} checked-present={} \
         recovered={} unconfirmed-recovered={unconfirmed_present} missing={} resurrected={} duplicates={duplicates}",
        l.published,
        l.confirmed.len(),
        l.acked.len(),
        l.maybe_acked.len(),
        must_be_there.len(),
        drained.len(),
        missing.len(),
        resurrected.len()
    );
    assert!(l.confirmed.len() > 100, "the test must exercise something: only {} confirmed", l.confirmed.len());
    assert!(!l.acked.is_empty(), "the test must ack something");
    assert!(missing.is_empty(), "confirmed messages lost: {:?}", &missing[..missing.len().min(20)]);
    assert!(resurrected.is_empty(), "acked messages came back: {:?}", &resurrected[..resurrected.len().min(20)]);
    assert_eq!(duplicates, 0, "a message was in the queue twice");
}

/// Declarations are answered before sled flushes them (as RabbitMQ answers before its Mnesia
/// log is synced), so the broker must flush them before it confirms a message published after
/// them: otherwise a kill right after the confirm would leave a confirmed message in a queue
/// that no longer exists after the restart. Each round declares a fresh durable queue, confirms
/// one persistent message into it and kills the broker at once; and a declaration nobody
/// confirms into must be flushed within its 50 ms all the same.
#[test]
fn a_message_confirmed_into_a_queue_just_declared_survives_kill_9() {
    if warren_it::skip_against_external("kills the warren binary itself") {
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("crash-declare-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    const ROUNDS: usize = 5;
    for round in 0..ROUNDS {
        let (mut child, addr) = start(&dir);
        rt.block_on(async {
            let conn = connect(&addr).await.expect("connect");
            let ch = conn.create_channel().await.unwrap();
            ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
            let durable = QueueDeclareOptions { durable: true, ..Default::default() };
            // First one nobody confirms into: flushed on the writer's own schedule (50 ms).
            let idle = format!("idle-{round}");
            ch.queue_declare(idle.as_str().into(), durable, FieldTable::default()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            // Then the one confirmed into, killed right after the confirm.
            let q = format!("fresh-{round}");
            ch.queue_declare(q.as_str().into(), durable, FieldTable::default()).await.unwrap();
            let props = BasicProperties::default().with_delivery_mode(2);
            let c = ch.basic_publish("".into(), q.as_str().into(), BasicPublishOptions::default(), b"kept", props);
            assert!(c.await.unwrap().await.unwrap().is_ack());
        });
        child.kill().expect("SIGKILL warren");
        child.wait().unwrap();
    }
    let (mut child, addr) = start(&dir);
    rt.block_on(async {
        let conn = connect(&addr).await.expect("connect after the last restart");
        let ch = conn.create_channel().await.unwrap();
        for round in 0..ROUNDS {
            let q = format!("fresh-{round}");
            let passive = QueueDeclareOptions { passive: true, ..Default::default() };
            let ok = ch.queue_declare(q.as_str().into(), passive, FieldTable::default()).await;
            let ok = ok.unwrap_or_else(|e| panic!("queue {q} lost after kill -9: {e}"));
            assert_eq!(ok.message_count(), 1, "queue {q} lost its confirmed message");
            let idle = format!("idle-{round}");
            let passive = QueueDeclareOptions { passive: true, ..Default::default() };
            let found = ch.queue_declare(idle.as_str().into(), passive, FieldTable::default()).await;
            assert!(found.is_ok(), "queue {idle}, declared 300 ms before the kill, was not flushed");
        }
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
