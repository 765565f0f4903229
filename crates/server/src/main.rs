//! `warren`: the broker binary.
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use warren_server::{Config, Server};

/// Warren: an AMQP 0-9-1 broker that behaves like RabbitMQ.
#[derive(Parser, Debug)]
#[command(name = "warren", version)]
struct Args {
    /// Config file (TOML, see rabbitmq.toml). Without it, embedded defaults are used.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// AMQP listen address; repeat for several (overrides amqp_listen).
    #[arg(long, value_name = "ADDR")]
    amqp_listen: Vec<SocketAddr>,
    /// Management HTTP listen address (overrides mgmt_listen).
    #[arg(long, value_name = "ADDR")]
    mgmt_listen: Option<SocketAddr>,
    /// Data directory (overrides data_dir).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

fn load(args: &Args) -> Result<Config, warren_server::ConfigError> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if !args.amqp_listen.is_empty() {
        config.amqp_listen = args.amqp_listen.clone();
    }
    if let Some(a) = args.mgmt_listen {
        config.mgmt_listen = a;
    }
    if let Some(d) = &args.data_dir {
        config.data_dir = d.clone();
    }
    config.validate()?;
    Ok(config)
}

/// Resolves on SIGTERM or Ctrl-C.
///
/// The SIGTERM handler is installed by this call, not when the future is first polled: that
/// happened only once the server was already listening, so a SIGTERM sent in between (a test
/// that connects as soon as the listener is logged, then kills) met the default action and the
/// process died without closing its connections (21 of 30 tries; most likely why a CI run saw
/// EOF instead of 320 once).
fn terminated() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        #[cfg(unix)]
        if let Some(mut term) = term {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn main() -> ExitCode {
    warren_server::tune_allocator();
    let args = Args::parse();
    // Logs go to stderr (stdout stays free for tools), coloured only on a terminal.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let config = match load(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("warren: {e}");
            return ExitCode::from(78); // EX_CONFIG
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("warren: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = rt.block_on(async {
        // Before the listeners open, so that a SIGTERM is never met by the default action.
        let shutdown = terminated();
        let server = match Server::bind(config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("warren: {e}");
                // sysexits: a data directory we cannot create or write is EX_CANTCREAT;
                // anything else (a port in use...) is EX_UNAVAILABLE.
                let code = match e {
                    warren_server::ServerError::Store(_) => 73,
                    _ => 69,
                };
                return ExitCode::from(code);
            }
        };
        server.run(shutdown).await;
        ExitCode::SUCCESS
    });
    // The store is closed and everything it accepted is on disk. Connection tasks that shutdown
    // gave up on may still be inside a blocking store wait on a thread of their own: dropping
    // the runtime would let them run on after its timer driver has stopped, and tokio panics
    // in their heartbeat timers then. Nothing is left for them to do; leave without them.
    std::mem::forget(rt);
    code
}
