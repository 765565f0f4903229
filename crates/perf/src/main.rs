//! warren-perf: drives any AMQP 0-9-1 broker with N publishers and consumers and reports
//! throughput and publish-to-deliver latency, like RabbitMQ's PerfTest.
mod conn;
mod declare;
mod error;
mod frames;
mod roles;
mod run;
mod stats;
mod uri;

use clap::Parser;

/// Load generator for AMQP 0-9-1 brokers (Warren, RabbitMQ, ...).
#[derive(Parser, Debug, Clone)]
#[command(name = "warren-perf", version)]
pub struct Args {
    /// Broker to drive.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub uri: String,
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    /// Message body size in bytes (the first 8 carry the send time when it is at least 8).
    #[arg(long, default_value_t = 16)]
    pub size: usize,
    /// Messages per second per producer; 0 = as fast as the broker takes them.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Use publisher confirms with at most this many unconfirmed messages per producer.
    #[arg(long, default_value_t = 0, value_name = "WINDOW")]
    pub confirm: u64,
    /// Publish with delivery-mode 2.
    #[arg(long)]
    pub persistent: bool,
    /// Declare the queues durable.
    #[arg(long)]
    pub durable: bool,
    /// Queue name (default: generated, and deleted at the end). With --queues N, NAME-0 .. NAME-(N-1).
    #[arg(long)]
    pub queue: Option<String>,
    /// Exchange to publish to, with the queue name as routing key; "" = the default exchange.
    /// Any other is declared direct (`amq.*` ones only checked) and each queue bound to it by name.
    #[arg(long, default_value = "")]
    pub exchange: String,
    /// Queues; producers and consumers are spread over them round-robin.
    #[arg(long, default_value_t = 1)]
    pub queues: usize,
    #[arg(long, default_value_t = 1000)]
    pub prefetch: u16,
    /// Ack (with multiple) every N deliveries; default prefetch / 4.
    #[arg(long, value_name = "N")]
    pub multi_ack: Option<u64>,
    /// Consume with no-ack.
    #[arg(long)]
    pub autoack: bool,
    /// Seconds to run (ignored with --count and --drain, which stop when done).
    #[arg(long, default_value_t = 10.0, value_parser = seconds)]
    pub time: f64,
    /// Messages per producer; the run ends when they are all consumed (and confirmed).
    #[arg(long)]
    pub count: Option<u64>,
    /// Only consume: empty the queue(s) and report.
    #[arg(long)]
    pub drain: bool,
    /// Only open this many idle connections (each with a channel), hold them for --time, close.
    #[arg(long, value_name = "N")]
    pub connections: Option<usize>,
    /// Only declare the --queues queues (durable with --durable) from --producers connections
    /// at once, report declares per second and, with --broker-pid, the broker's memory per
    /// queue; hold them for --time (at most 30 s), then delete them.
    #[arg(long)]
    pub declare_only: bool,
    /// With --connections or --declare-only: the broker's pid, to report its memory per
    /// connection or queue (Linux).
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// No progress lines.
    #[arg(long)]
    pub quiet: bool,
}

/// A run length: a number of seconds that a timer can wait for (not negative, not infinite,
/// at most a year).
fn seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if (0.0..=365.0 * 86_400.0).contains(&t) => Ok(t),
        _ => Err(format!("{s} is not a number of seconds from 0 to a year")),
    }
}

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match rt.block_on(run::run(args)) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("warren-perf: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_lengths_a_timer_can_wait_for() {
        assert_eq!(seconds("2.5"), Ok(2.5));
        assert_eq!(seconds("0"), Ok(0.0));
        for bad in ["-1", "inf", "NaN", "1e9", "ten"] {
            assert!(seconds(bad).is_err(), "{bad}");
        }
        assert!(Args::try_parse_from(["warren-perf", "--time", "-3"]).is_err());
        assert_eq!(Args::try_parse_from(["warren-perf"]).unwrap().time, 10.0);
    }
}
