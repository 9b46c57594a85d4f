//! The command line: `messenger chat` and `messenger tracker`, their flags and defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use messenger_core::Order;

/// A group messenger: FIFO and total-order groups over UDP, coordinated by a tracker.
#[derive(Debug, Parser)]
#[command(name = "messenger", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Chat: join groups and exchange messages (type !help once it runs).
    Chat(ChatArgs),
    /// Run a tracker until Ctrl-C, logging joins, leaves, failures and each client's metrics.
    Tracker(TrackerArgs),
    /// Measure delivered messages/s and latency on loopback, against plain UDP in the same run.
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Members of the group (each a client in this process).
    #[arg(long, default_value_t = 4)]
    pub members: usize,
    /// Messages each sender sends.
    #[arg(long, default_value_t = 10_000)]
    pub messages: u64,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 64, value_parser = parse_payload)]
    pub payload: usize,
    /// Delivery order of the group.
    #[arg(long, value_enum, default_value_t = OrderArg::Fifo)]
    pub order: OrderArg,
    /// Who sends: every member, or one.
    #[arg(long, value_enum, default_value_t = Workload::AllToAll)]
    pub workload: Workload,
    /// Injected faults on our datagrams, e.g. `loss=0.05,dup=0.01,reorder=0.1`.
    #[arg(long, value_name = "SPEC")]
    pub faults: Option<String>,
    /// Messages per second per sender (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Skip the plain-UDP baseline.
    #[arg(long)]
    pub no_baseline: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Who sends in a benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// Every member sends to every other member.
    AllToAll,
    /// One member sends to all others.
    FanOut,
}

#[derive(Debug, Args)]
pub struct ChatArgs {
    /// Your username (asked for when not given).
    #[arg(long)]
    pub name: Option<String>,
    /// The tracker's TCP address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:50000")]
    pub tracker: SocketAddr,
    /// Where to bind this chat's UDP socket (port 0 picks a free one).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub udp: SocketAddr,
    /// Host a tracker in this process: `auto` when none answers at --tracker, `always`, or
    /// `never`.
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = HostTracker::Auto)]
    pub host_tracker: HostTracker,
    /// Delivery order of the groups this chat creates (`!j <group> fifo|total` overrides it).
    #[arg(long, value_enum, default_value_t = OrderArg::Fifo)]
    pub order: OrderArg,
    /// How long `!q` and the end of input wait for this chat's own messages to be delivered
    /// before quitting, in seconds (Ctrl-C quits without waiting).
    #[arg(long, default_value_t = 10.0, value_name = "SECS", value_parser = parse_secs)]
    pub quit_wait: f64,
}

impl ChatArgs {
    pub fn quit_wait(&self) -> Duration {
        Duration::from_secs_f64(self.quit_wait)
    }
}

#[derive(Debug, Args)]
pub struct TrackerArgs {
    /// The TCP address to listen on (port 0 picks a free one; the bound address is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:50000")]
    pub bind: SocketAddr,
    /// Access policy (TOML: passwords, allow-lists, member limits per group).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Time between two heartbeat probes of a client, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub heartbeat_interval: u64,
    /// A client that leaves this many probes in a row unanswered is removed.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub heartbeat_misses: u32,
    /// Also append each client's metrics, as one JSON line, to this file.
    #[arg(long, value_name = "FILE")]
    pub log_json: Option<PathBuf>,
}

/// When `messenger chat` runs a tracker of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HostTracker {
    /// Host one when none answers at the address.
    Auto,
    /// Always host one (fails if the address is taken).
    Always,
    /// Never host one (fails if none answers).
    Never,
}

/// A group's delivery order, as typed on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OrderArg {
    /// Each sender's messages in the order it sent them.
    Fifo,
    /// FIFO, and every member delivers all messages in the same order.
    Total,
}

impl From<OrderArg> for Order {
    fn from(o: OrderArg) -> Order {
        match o {
            OrderArg::Fifo => Order::Fifo,
            OrderArg::Total => Order::Total,
        }
    }
}

fn parse_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "{s:?} is not a number of seconds between 0 and 3600"
        )),
    }
}

fn parse_payload(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number"))?;
    if (8..=1200).contains(&n) {
        Ok(n)
    } else {
        Err(format!("{n} is outside 8..=1200 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn chat_defaults() {
        let cli = Cli::try_parse_from(["messenger", "chat"]).expect("parses");
        let Command::Chat(args) = cli.command else {
            panic!("not chat")
        };
        assert_eq!(args.tracker, "127.0.0.1:50000".parse().expect("addr"));
        assert_eq!(args.host_tracker, HostTracker::Auto);
        assert_eq!(args.order, OrderArg::Fifo);
        assert_eq!(args.name, None);
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(Cli::try_parse_from(["messenger", "chat", "--order", "random"]).is_err());
        assert!(Cli::try_parse_from(["messenger", "chat", "--quit-wait", "-1"]).is_err());
        assert!(Cli::try_parse_from(["messenger", "tracker", "--bind", "nowhere"]).is_err());
    }
}
