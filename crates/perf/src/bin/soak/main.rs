//! warren-soak: a long run of mixed traffic against the real `warren` binary, with client
//! connections killed every few seconds and the broker killed with SIGKILL (twice by default),
//! checked at the end against a ledger: nothing confirmed is lost, nothing settled comes back,
//! the broker's descriptors are back to their baseline, and its RSS over time is reported.
//! See docs/perf-tool.md, "The soak run".
mod body;
mod broker;
mod consume;
mod ctx;
mod drain;
mod error;
mod ledger;
mod procfs;
mod publish;
mod relay;
mod report;
mod rng;
mod run;
mod session;

use clap::Parser;
use std::path::PathBuf;

/// Soak run: mixed AMQP traffic over many connections through client and broker kills.
#[derive(Parser, Debug, Clone)]
#[command(name = "warren-soak", version)]
pub struct Args {
    /// The warren binary (default: `warren` next to this program).
    #[arg(long)]
    pub warren: Option<PathBuf>,
    /// Working directory: the broker's data (DIR/data, must not exist yet) and log (DIR/warren.log).
    /// Default: a new directory under the system's temp dir, removed after a passing run.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Seconds of traffic.
    #[arg(long, default_value_t = 1800.0, value_parser = non_negative)]
    pub time: f64,
    /// Client connections, one role each (see docs/perf-tool.md for the mix).
    #[arg(long, default_value_t = 100)]
    pub connections: usize,
    /// SIGKILLs of the broker, evenly spread over the run (at 1/3 and 2/3 for two).
    #[arg(long, default_value_t = 2)]
    pub broker_kills: u32,
    /// Seconds between kills of random client connections (1 to 3 at a time).
    #[arg(long, default_value_t = 3.0, value_parser = non_negative)]
    pub client_kill_every: f64,
    /// Messages per second per publisher (3 of every 10 connections publish persistent
    /// messages, 1 transient ones).
    #[arg(long, default_value_t = 50.0, value_parser = non_negative)]
    pub rate: f64,
    /// Largest message body in bytes (one message in ten is up to this size, the rest up to 512).
    #[arg(long, default_value_t = 16_384)]
    pub max_size: usize,
    /// Durable queues (persistent messages) and non-durable queues (transient ones).
    #[arg(long, default_value_t = 4)]
    pub durable_queues: usize,
    #[arg(long, default_value_t = 2)]
    pub transient_queues: usize,
    /// The first N persistent messages go to a durable queue that is only drained at the end:
    /// a backlog that every broker kill and restart must keep.
    #[arg(long, default_value_t = 2000)]
    pub backlog: u64,
    /// Seconds between samples of the broker's RSS and descriptors.
    #[arg(long, default_value_t = 2.0, value_parser = non_negative)]
    pub sample_every: f64,
    /// Seed for the traffic mix and the kills (default: from the clock; printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Checks the checker: delete the broker's message log at every kill, as a disk that lost
    /// it would. The run must then fail with lost messages.
    #[arg(long)]
    pub lose_log_at_kill: bool,
    /// Keep the working directory even after a passing run.
    #[arg(long)]
    pub keep: bool,
}

/// A number a timer (or a rate) can use: not negative, not infinite, at most a year's seconds.
fn non_negative(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if (0.0..=365.0 * 86_400.0).contains(&t) => Ok(t),
        _ => Err(format!("{s} is not a number from 0 to 31536000")),
    }
}

fn main() {
    let args = Args::parse();
    if args.connections == 0 || args.durable_queues == 0 || args.transient_queues == 0 {
        eprintln!("warren-soak: --connections, --durable-queues and --transient-queues must be at least 1");
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match rt.block_on(run::run(args)) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("warren-soak: {e}");
            std::process::exit(2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_30_minute_soak_and_bad_numbers_are_refused() {
        let a = Args::try_parse_from(["warren-soak"]).unwrap();
        assert_eq!((a.time, a.connections, a.broker_kills), (1800.0, 100, 2));
        for bad in ["-1", "inf", "NaN", "1e9", "ten"] {
            assert!(Args::try_parse_from(["warren-soak", "--time", bad]).is_err(), "{bad}");
        }
        assert!(Args::try_parse_from(["warren-soak", "--rate", "-5"]).is_err());
    }
}
