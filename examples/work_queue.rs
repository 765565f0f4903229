//! RabbitMQ tutorial 2, "Work queues": a durable task queue shared by two workers that use
//! manual acknowledgements and prefetch 1 (fair dispatch).
//!
//! To make fair dispatch visible without relying on timing, the first worker to get a task
//! keeps it unacknowledged until every other task is done. With prefetch 1 the broker may not
//! hand that worker anything else meanwhile, so the other worker must process the remaining
//! nine; a broker that ignored prefetch would push tasks to the busy worker and the run would
//! never finish (it fails on a timeout instead).
//!
//! Run with `AMQP_URI=amqp://guest:guest@127.0.0.1:5672/%2f cargo run --example work_queue`.
use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties};
use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

pub const TASKS: usize = 10;
const WORKERS: usize = 2;
/// Bound on the whole exchange of tasks; a correct broker needs a few milliseconds.
const DEADLINE: Duration = Duration::from_secs(20);

/// What each worker processed, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkQueueSummary {
    pub queue: String,
    pub tasks: Vec<String>,
    /// `processed[w]`: the tasks worker `w` acknowledged, in processing order.
    pub processed: Vec<Vec<String>>,
}

/// A name no other run uses, so runs can share a broker.
fn unique(prefix: &str) -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

pub async fn run(uri: &str) -> Result<WorkQueueSummary, Box<dyn Error>> {
    let conn = Connection::connect(uri, ConnectionProperties::default()).await?;
    let queue = unique("task_queue");
    let producer = conn.create_channel().await?;
    producer.queue_declare(queue.as_str().into(), QueueDeclareOptions::durable(), FieldTable::default()).await?;

    // Tasks acknowledged so far, by any worker; the held first task waits on it.
    let (done_tx, done_rx) = watch::channel(0usize);
    let done_tx = Arc::new(done_tx);
    let processed = Arc::new(Mutex::new(vec![Vec::new(); WORKERS]));
    let first_taken = Arc::new(Mutex::new(false));

    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let channel = conn.create_channel().await?;
        channel.basic_qos(1, BasicQosOptions::default()).await?;
        let tag = format!("worker-{w}");
        let mut consumer = channel
            .basic_consume(
                queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let (done_tx, mut done_rx) = (done_tx.clone(), done_rx.clone());
        let (processed, first_taken) = (processed.clone(), first_taken.clone());
        workers.push((
            channel,
            tag,
            tokio::spawn(async move {
                while let Some(delivery) = consumer.next().await {
                    let delivery = delivery?;
                    let task = String::from_utf8_lossy(&delivery.data).into_owned();
                    let hold = !std::mem::replace(&mut *first_taken.lock().unwrap(), true);
                    if hold {
                        // Busy with a long task: finish only once all the others are done.
                        let _ = done_rx.wait_for(|n| *n == TASKS - 1).await;
                    }
                    processed.lock().unwrap()[w].push(task);
                    delivery.ack(BasicAckOptions::default()).await?;
                    done_tx.send_modify(|n| *n += 1);
                }
                Ok::<(), lapin::Error>(())
            }),
        ));
    }

    // Persistent messages in a durable queue, confirmed so none is silently lost.
    producer.confirm_select(ConfirmSelectOptions::default()).await?;
    let tasks: Vec<String> = (1..=TASKS).map(|i| format!("task {i}{}", ".".repeat(i % 3 + 1))).collect();
    let mut confirms = Vec::new();
    for task in &tasks {
        confirms.push(
            producer
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    task.as_bytes(),
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await?,
        );
    }
    for confirm in confirms {
        if !matches!(confirm.await?, Confirmation::Ack(None)) {
            return Err("a task was not confirmed".into());
        }
    }

    let mut done = done_rx;
    tokio::time::timeout(DEADLINE, done.wait_for(|n| *n == TASKS))
        .await
        .map_err(|_| "workers did not finish the tasks in time")??;

    for (channel, tag, handle) in workers {
        channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()).await?;
        channel.close(200, "done".into()).await?;
        handle.await??;
    }
    producer.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await?;
    conn.close(200, "done".into()).await?;

    let processed = processed.lock().unwrap().clone();
    Ok(WorkQueueSummary { queue, tasks, processed })
}

#[allow(dead_code)] // unused when the integration tests include this file as a module
#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let uri = std::env::var("AMQP_URI").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let summary = run(&uri).await?;
    println!("queue {}: {} tasks", summary.queue, summary.tasks.len());
    for (w, tasks) in summary.processed.iter().enumerate() {
        println!("worker {w} processed {} task(s): {tasks:?}", tasks.len());
    }
    Ok(())
}
