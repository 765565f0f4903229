//! The Warren server: configuration, listeners, connections and shutdown.
//!
//! [`Server::bind`] builds the routing engine from the config and binds the listeners;
//! [`Server::run`] accepts connections until the shutdown future resolves, then closes
//! every connection with 320 CONNECTION_FORCED and waits for them to finish.
pub mod alarm;
pub mod auth;
pub mod config;
mod connection;
mod limit;
mod listener;
mod memory;

pub use config::{Config, ConfigError, Limit};
use connection::Shared;
pub use connection::{ScriptedStream, Transport};
pub use memory::tune_allocator;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::JoinSet;
use warren_broker::{Broker, BrokerError, BrokerSettings, MetaChange, MetadataLog};

/// The store as the broker's metadata log (a newtype: the broker owns its log by value).
struct StoreLog(Arc<warren_store::Store>);

impl MetadataLog for StoreLog {
    fn record(&self, change: &MetaChange) -> Result<(), BrokerError> {
        self.0.record(change)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] warren_store::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("cannot set up vhost: {0}")]
    Broker(#[from] BrokerError),
}

/// A broker with its listeners bound, not yet accepting.
pub struct Server {
    store: Arc<warren_store::Store>,
    listeners: Vec<TcpListener>,
    addrs: Vec<SocketAddr>,
    shared: Shared,
}

/// How long shutdown waits for connections to finish their close handshake.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How long shutdown then waits for the connections it aborted.
const ABORT_GRACE: Duration = Duration::from_secs(5);

impl Server {
    pub async fn bind(config: Config) -> Result<Server, ServerError> {
        let started = std::time::Instant::now();
        let log = warren_log::Options { segment_bytes: config.msg_store_file_size_limit };
        let (store, recovered) = warren_store::Store::open_with(&config.data_dir, config.store_cache, log)?;
        let (queues, messages) = (recovered.queues.len(), recovered.queues.iter().map(|(_, s)| s.count).sum::<usize>());
        let settings = BrokerSettings {
            queue_flow_threshold: config.queue_flow_threshold,
            queue_memory_window: config.queue_memory_window,
            memory_limit: config.memory_limit,
        };
        let message_store: Arc<dyn warren_broker::MessageStore> = store.clone();
        let broker = Arc::new(Broker::new(settings, Box::new(StoreLog(store.clone())), Some(message_store.clone())));
        broker.restore(recovered)?;
        for v in &config.vhosts {
            broker.add_vhost(v)?;
        }
        tracing::info!(data_dir = %config.data_dir.display(), queues, messages,
            ms = started.elapsed().as_millis() as u64, "recovered durable state");
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        for &addr in &config.amqp_listen {
            match listener::bind(addr) {
                Ok(l) => {
                    addrs.push(l.local_addr().unwrap_or(addr));
                    listeners.push(l);
                }
                // A host without IPv6 still serves IPv4 when both are configured.
                Err(e)
                    if addr.is_ipv6()
                        && e.kind() == std::io::ErrorKind::AddrNotAvailable
                        && config.amqp_listen.len() > 1 =>
                {
                    tracing::warn!(%addr, error = %e, "IPv6 listener unavailable, continuing without it");
                }
                Err(source) => return Err(ServerError::Listen { addr, source }),
            }
        }
        let users = Arc::new(auth::Users::new(&config.users));
        let alarms = alarm::Alarms::new(&config);
        let on_store = alarms.clone();
        store.on_health_change(Box::new(move |healthy| on_store.store_health(healthy)));
        Ok(Server {
            store,
            listeners,
            addrs,
            shared: Shared {
                config: Arc::new(config),
                users,
                broker,
                broker_store: Some(message_store),
                connections: Default::default(),
                alarms,
            },
        })
    }

    /// The bound AMQP addresses (with real ports when the config asked for port 0).
    pub fn amqp_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The durability layer (for in-process tools and tests).
    pub fn store(&self) -> &Arc<warren_store::Store> {
        &self.store
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The routing engine (for in-process tools and tests).
    pub fn broker(&self) -> &Arc<Broker> {
        &self.shared.broker
    }

    /// The resource alarms: their state, and their thresholds to change at run time.
    pub fn alarms(&self) -> alarm::AlarmHandle {
        alarm::AlarmHandle(self.shared.alarms.clone())
    }

    /// Serves until `shutdown` resolves, then closes every connection (320) and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, _) = broadcast::channel::<()>(1);
        let mut accepts = JoinSet::new();
        for l in self.listeners {
            let stopped = stop_tx.subscribe();
            accepts.spawn(accept_loop(l, self.shared.clone(), stop_tx.clone(), stopped));
        }
        for a in &self.addrs {
            tracing::info!(addr = %a, "AMQP listener started");
        }
        let trimmer = tokio::spawn(memory::trim_after_drains(self.shared.broker.clone()));
        let alarm_monitor = tokio::spawn(self.shared.alarms.clone().run());
        shutdown.await;
        trimmer.abort();
        alarm_monitor.abort();
        tracing::info!("shutting down: closing connections with 320 CONNECTION_FORCED");
        let _ = stop_tx.send(());
        let mut conns = Vec::new();
        while let Some(r) = accepts.join_next().await {
            if let Ok(set) = r {
                conns.push(set);
            }
        }
        if tokio::time::timeout(SHUTDOWN_GRACE, join_all(&mut conns)).await.is_err() {
            // Abort the rest and wait for them to finish: a connection task still alive when
            // the runtime shuts down is polled by a worker after the timer driver has gone
            // (tokio panics on its heartbeat timer then), and may be in the middle of a write
            // to the store that `close` below should see.
            tracing::warn!("some connections did not close in time: aborting them");
            for set in &mut conns {
                set.abort_all();
            }
            // An aborted task stops at its next yield; one inside a blocking wait on the store
            // (a full writer queue) runs on until the writer answers. The store is closed
            // next either way; `main` then exits without waiting for such stragglers.
            if tokio::time::timeout(ABORT_GRACE, join_all(&mut conns)).await.is_err() {
                tracing::warn!("some connections did not stop after being aborted");
            }
        }
        // Everything accepted is flushed, and the data directory is released for a restart.
        let store = self.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
        tracing::info!("shutdown complete");
    }
}

/// Serves one connection over an already connected `stream` on `broker`, with the users and
/// limits of `config`, until it closes; no listener, no store. For driving the real connection
/// code without a socket: the fuzzer's connection target runs every input through this over a
/// [`ScriptedStream`].
pub async fn serve_stream(stream: impl Transport, peer: SocketAddr, config: Arc<Config>, broker: Arc<Broker>) {
    let users = Arc::new(auth::Users::new(&config.users));
    let alarms = alarm::Alarms::new(&config);
    let shared = Shared { config, users, broker, broker_store: None, connections: Default::default(), alarms };
    // Nothing ever sends: this connection is never shut down from outside.
    let (_stop, stopped) = broadcast::channel::<()>(1);
    connection::serve(stream, peer, shared, stopped).await;
}

/// Waits until every task of `sets` has finished.
async fn join_all(sets: &mut [JoinSet<()>]) {
    for set in sets {
        while set.join_next().await.is_some() {}
    }
}

/// Accepts until stopped; returns the connection tasks so shutdown can wait for them.
async fn accept_loop(
    listener: TcpListener,
    shared: Shared,
    stop: broadcast::Sender<()>,
    mut stopped: broadcast::Receiver<()>,
) -> JoinSet<()> {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    conns.spawn(connection::serve(stream, peer, shared.clone(), stop.subscribe()));
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = stopped.recv() => return conns,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}
