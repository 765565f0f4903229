//! The clients reach the broker through this relay, so that the soak run can kill any client
//! connection abruptly: the relay drops both sockets of one (with a TCP reset half of the time),
//! as a crashed client process or host would, and the client library sees its socket die.
//! lapin offers no handle on its socket, and its graceful close is not what a crash looks like.
use crate::ctx::Gate;
use crate::rng::Rng;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

#[derive(Default)]
struct Cut {
    now: Notify,
    reset: AtomicBool,
}

type Registry = Arc<Mutex<HashMap<u64, Arc<Cut>>>>;

pub struct Relay {
    pub addr: SocketAddr,
    conns: Registry,
}

impl Relay {
    /// Listens on a loopback port and forwards every connection to `broker` while the gate is
    /// up (while it is down, a connection is closed at once and its client retries).
    pub async fn start(broker: String, gate: watch::Receiver<Gate>) -> std::io::Result<Relay> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let conns = Registry::default();
        let registry = conns.clone();
        tokio::spawn(async move {
            let next = AtomicU64::new(0);
            loop {
                let client = match listener.accept().await {
                    Ok((client, _)) => client,
                    Err(e) => {
                        // Out of descriptors, say: say so, and keep serving the others.
                        eprintln!("soak: relay: accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if !gate.borrow().up {
                    continue;
                }
                let id = next.fetch_add(1, Ordering::Relaxed);
                let cut = Arc::new(Cut::default());
                registry.lock().expect("relay registry").insert(id, cut.clone());
                let (registry, broker) = (registry.clone(), broker.clone());
                tokio::spawn(async move {
                    let _ = pump(client, &broker, &cut).await;
                    registry.lock().expect("relay registry").remove(&id);
                });
            }
        });
        Ok(Relay { addr, conns })
    }

    /// Connections being relayed now.
    pub fn live(&self) -> usize {
        self.conns.lock().expect("relay registry").len()
    }

    /// Kills one relayed connection picked at random; false if there was none.
    pub fn kill_one(&self, rng: &mut Rng) -> bool {
        let conns = self.conns.lock().expect("relay registry");
        if conns.is_empty() {
            return false;
        }
        let pick = rng.below(conns.len() as u64) as usize;
        let cut = conns.values().nth(pick).expect("pick is in range");
        cut.reset.store(rng.below(2) == 0, Ordering::Relaxed);
        // notify_one keeps the wake-up if the pump is not waiting yet.
        cut.now.notify_one();
        true
    }
}

async fn pump(mut client: TcpStream, broker: &str, cut: &Cut) -> std::io::Result<()> {
    let mut upstream = TcpStream::connect(broker).await?;
    client.set_nodelay(true)?;
    upstream.set_nodelay(true)?;
    tokio::select! {
        _ = tokio::io::copy_bidirectional_with_sizes(&mut client, &mut upstream, 64 << 10, 64 << 10) => {}
        _ = cut.now.notified() => {
            if cut.reset.load(Ordering::Relaxed) {
                // Closing with a zero linger sends RST instead of FIN, and drops unsent data.
                let _ = upstream.set_zero_linger();
                let _ = client.set_zero_linger();
            }
        }
    }
    Ok(())
}
