//! RabbitMQ tutorial 6, "RPC": a server consumes `rpc_queue` and answers each request on the
//! request's `reply_to` queue with the same `correlation_id`; the client sends fib(n) requests
//! over one exclusive callback queue and matches the answers by correlation id.
//!
//! All requests are sent before any answer is read, so the answers are matched purely by
//! correlation id, not by arrival order.
//!
//! Run with `AMQP_URI=amqp://guest:guest@127.0.0.1:5672/%2f cargo run --example rpc`.
use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use std::collections::HashMap;
use std::error::Error;
use std::time::Duration;

/// The arguments the client asks about.
pub const REQUESTS: [u32; 8] = [0, 1, 2, 3, 10, 20, 30, 40];
/// Bound on waiting for one answer; a correct broker needs milliseconds.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq)]
pub struct RpcSummary {
    pub rpc_queue: String,
    /// (n, fib(n) as answered by the server), in request order.
    pub answers: Vec<(u32, u64)>,
    /// Requests the server handled (it acks each one after replying).
    pub served: usize,
}

pub fn fib(n: u32) -> u64 {
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n {
        (a, b) = (b, a + b);
    }
    a
}

/// A name no other run uses, so runs can share a broker.
fn unique(prefix: &str) -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

pub async fn run(uri: &str) -> Result<RpcSummary, Box<dyn Error>> {
    let conn = Connection::connect(uri, ConnectionProperties::default()).await?;
    let rpc_queue = unique("rpc_queue");

    // The server: one request at a time (prefetch 1), reply, then ack.
    let server = conn.create_channel().await?;
    server.queue_declare(rpc_queue.as_str().into(), QueueDeclareOptions::default(), FieldTable::default()).await?;
    server.basic_qos(1, BasicQosOptions::default()).await?;
    let mut requests = server
        .basic_consume(
            rpc_queue.as_str().into(),
            "rpc-server".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let server_task = {
        let server = server.clone();
        tokio::spawn(async move {
            let mut served = 0usize;
            while let Some(request) = requests.next().await {
                let request = request?;
                let n: u32 = String::from_utf8_lossy(&request.data).parse().unwrap_or(0);
                let props = &request.properties;
                if let Some(reply_to) = props.reply_to() {
                    let mut reply = BasicProperties::default();
                    if let Some(id) = props.correlation_id() {
                        reply = reply.with_correlation_id(id.clone());
                    }
                    server
                        .basic_publish(
                            "".into(),
                            reply_to.clone(),
                            BasicPublishOptions::default(),
                            fib(n).to_string().as_bytes(),
                            reply,
                        )
                        .await?;
                }
                request.ack(BasicAckOptions::default()).await?;
                served += 1;
            }
            Ok::<usize, lapin::Error>(served)
        })
    };

    // The client: an exclusive server-named callback queue, consumed without acks.
    let client = conn.create_channel().await?;
    let callback = client.queue_declare("".into(), QueueDeclareOptions::exclusive(), FieldTable::default()).await?;
    let callback = callback.name().clone();
    let mut replies = client
        .basic_consume(
            callback.clone(),
            "rpc-client".into(),
            BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() },
            FieldTable::default(),
        )
        .await?;

    let mut pending: HashMap<String, u32> = HashMap::new();
    for n in REQUESTS {
        let correlation_id = unique(&format!("fib-{n}"));
        client
            .basic_publish(
                "".into(),
                rpc_queue.as_str().into(),
                BasicPublishOptions::default(),
                n.to_string().as_bytes(),
                BasicProperties::default()
                    .with_reply_to(callback.clone())
                    .with_correlation_id(correlation_id.as_str().into()),
            )
            .await?;
        pending.insert(correlation_id, n);
    }

    let mut answered: HashMap<u32, u64> = HashMap::new();
    while !pending.is_empty() {
        let reply = tokio::time::timeout(REPLY_TIMEOUT, replies.next())
            .await
            .map_err(|_| format!("no reply for {:?}", pending.values().collect::<Vec<_>>()))?
            .ok_or("callback consumer ended")??;
        let id = reply.properties.correlation_id().as_ref().ok_or("reply without correlation_id")?.as_str();
        // An unknown or repeated correlation id is an error: every request is answered once.
        let n = pending.remove(id).ok_or_else(|| format!("unexpected correlation_id {id:?}"))?;
        answered.insert(n, String::from_utf8_lossy(&reply.data).parse()?);
    }
    let answers = REQUESTS.iter().map(|n| (*n, answered[n])).collect();

    server.basic_cancel("rpc-server".into(), BasicCancelOptions::default()).await?;
    let served = server_task.await??;
    server.queue_delete(rpc_queue.as_str().into(), QueueDeleteOptions::default()).await?;
    conn.close(200, "done".into()).await?;
    Ok(RpcSummary { rpc_queue, answers, served })
}

#[allow(dead_code)] // unused when the integration tests include this file as a module
#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let uri = std::env::var("AMQP_URI").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let summary = run(&uri).await?;
    println!("rpc server on {} served {} request(s)", summary.rpc_queue, summary.served);
    for (n, f) in &summary.answers {
        println!("  fib({n}) = {f}");
    }
    Ok(())
}
