//! The command line: `messenger chat`, `messenger tracker` and `messenger bench`, their flags
//! and defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use messenger_core::{Fingerprint, Order, TrackerConfig, TrackerTrust};

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
    /// One member of `bench --processes` (started by the benchmark, not by hand).
    #[command(hide = true)]
    BenchMember(BenchMemberArgs),
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Members of the group.
    #[arg(long, default_value_t = 4)]
    pub members: usize,
    /// Messages each sender sends in the measured run.
    #[arg(long, default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
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
    /// Offered rate of the measured run in messages per second for the whole group, split
    /// evenly among the senders (0: as fast as possible). With a rate, the run's latency is
    /// the latency at that rate and no separate paced run follows.
    #[arg(long, value_name = "MSGS_PER_SEC", default_value_t = 0)]
    pub rate: u64,
    /// After a full-speed run, a second, paced run measures latency at this offered rate
    /// (messages per second for the whole group).
    #[arg(long, value_name = "MSGS_PER_SEC", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub latency_rate: u64,
    /// Length of the paced latency run in seconds (0: skip it).
    #[arg(long, value_name = "SECS", default_value_t = 1.0, value_parser = parse_secs)]
    pub latency_secs: f64,
    /// Raw-UDP baselines run after ours, with the same members, payload and workload.
    #[arg(long, value_enum, default_value_t = Baseline::Both)]
    pub baseline: Baseline,
    /// Same as `--baseline none`.
    #[arg(long, conflicts_with = "baseline")]
    pub no_baseline: bool,
    /// One OS process per member (`messenger bench-member`) instead of clients in this
    /// process; reports each member's peak memory.
    #[arg(long)]
    pub processes: bool,
    /// Print one JSON object instead of text (and no progress bar).
    #[arg(long)]
    pub json: bool,
}

impl BenchArgs {
    /// Which baselines run, `--no-baseline` included.
    pub fn baselines(&self) -> Baseline {
        if self.no_baseline {
            Baseline::None
        } else {
            self.baseline
        }
    }
}

/// The raw-UDP baselines a benchmark runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Baseline {
    /// No baseline.
    None,
    /// One `send_to` per peer per message, no reliability.
    Naive,
    /// Messages batched into 1400-byte datagrams, with a credit window per receiver.
    Ceiling,
    /// Both.
    Both,
}

impl Baseline {
    pub fn naive(self) -> bool {
        matches!(self, Baseline::Naive | Baseline::Both)
    }

    pub fn ceiling(self) -> bool {
        matches!(self, Baseline::Ceiling | Baseline::Both)
    }
}

/// One member of `messenger bench --processes`, run by the benchmark itself: joins group
/// `bench`, prints JSON lines on stdout (`ready`, `progress`, `done`, `result`) and obeys
/// lines on stdin (`go PHASE COUNT RATE TARGET`, `finish`).
#[derive(Debug, Args)]
pub struct BenchMemberArgs {
    /// The tracker's TCP address.
    #[arg(long, value_name = "ADDR")]
    pub tracker: SocketAddr,
    /// This member's username.
    #[arg(long)]
    pub name: String,
    /// Members of the group: the member is ready once its view has this many.
    #[arg(long)]
    pub members: usize,
    /// Delivery order of the group.
    #[arg(long, value_enum)]
    pub order: OrderArg,
    /// Payload size in bytes.
    #[arg(long, value_parser = parse_payload)]
    pub payload: usize,
    /// Injected faults on this member's datagrams.
    #[arg(long, value_name = "SPEC")]
    pub faults: Option<String>,
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
    /// Report a member of a group to the tracker when nothing has come from it over UDP for
    /// this long while others were heard, in seconds (the tracker removes it once half of the
    /// group agrees).
    #[arg(long, default_value_t = 3.0, value_name = "SECS", value_parser = parse_secs)]
    pub suspect_after: f64,
    /// Accept only a tracker whose certificate has this SHA-256 fingerprint (as `messenger
    /// tracker` prints it: hex bytes separated by colons), instead of trusting the tracker
    /// on first use and recording it in the known-trackers file.
    #[arg(long, value_name = "FP", conflicts_with = "insecure")]
    pub tracker_fingerprint: Option<Fingerprint>,
    /// Plain TCP to the tracker, without TLS (and a hosted tracker without TLS): passwords and
    /// names travel in clear, and the tracker's identity is not checked.
    #[arg(long)]
    pub insecure: bool,
}

impl ChatArgs {
    /// How this chat checks the tracker's identity.
    pub fn trust(&self) -> TrackerTrust {
        match (self.insecure, self.tracker_fingerprint) {
            (true, _) => TrackerTrust::Insecure,
            (false, Some(fingerprint)) => TrackerTrust::Fingerprint(fingerprint),
            (false, None) => TrackerTrust::default(),
        }
    }

    /// The configuration of a tracker this chat hosts: TLS with the key in the default state
    /// directory (the key every tracker this user starts presents), or insecure.
    pub fn hosted_tracker(&self) -> TrackerConfig {
        if self.insecure {
            TrackerConfig::default().insecure()
        } else {
            TrackerConfig::default()
        }
    }

    pub fn quit_wait(&self) -> Duration {
        Duration::from_secs_f64(self.quit_wait)
    }

    pub fn suspect_after(&self) -> Duration {
        Duration::from_secs_f64(self.suspect_after)
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
    /// Most connections at a time [default: 1024].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,
    /// Most connections at a time from one IP address [default: 32].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections_per_ip: Option<u64>,
    /// Most bytes held in incomplete frames over all connections [default: 67108864].
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_partial_frame_bytes: Option<u64>,
    /// Most groups at a time [default: 10000].
    #[arg(long, value_name = "N")]
    pub max_groups: Option<u64>,
    /// Most existing groups created by one client [default: 64].
    #[arg(long, value_name = "N")]
    pub max_groups_per_client: Option<u64>,
    /// Member limit of a group whose policy rule sets none [default: 256; at most 4096].
    #[arg(long, value_name = "N")]
    pub default_max_members: Option<u32>,
    /// Wrong passwords after which a connection is closed [default: 10].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_password_failures: Option<u32>,
    /// The certificate chain to present (PEM, leaf first), instead of the self-signed one
    /// kept in the state directory.
    #[arg(long, value_name = "FILE", requires = "key", conflicts_with_all = ["state_dir", "insecure"])]
    pub cert: Option<PathBuf>,
    /// The private key of --cert (PEM).
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Where the tracker's self-signed key is kept (created on first start) [default:
    /// $MESSENGER_STATE_DIR, else $XDG_STATE_HOME/messenger, else ~/.local/state/messenger].
    #[arg(long, value_name = "DIR", conflicts_with = "insecure")]
    pub state_dir: Option<PathBuf>,
    /// Plain TCP, without TLS: passwords and names travel in clear, and clients cannot check
    /// whom they talk to (they must connect with --insecure too).
    #[arg(long)]
    pub insecure: bool,
}

impl TrackerArgs {
    /// `config` with the TLS settings given on the command line.
    pub fn apply_tls(&self, config: TrackerConfig) -> TrackerConfig {
        match (&self.cert, &self.key, &self.state_dir) {
            _ if self.insecure => config.insecure(),
            (Some(cert), Some(key), _) => config.with_certificate(cert, key),
            (_, _, Some(dir)) => config.with_state_dir(dir),
            _ => config,
        }
    }

    /// `config` with the limits given on the command line.
    pub fn apply_limits(&self, config: TrackerConfig) -> TrackerConfig {
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        let max_connections = self.max_connections.map_or(config.max_connections, size);
        let max_connections_per_ip = self
            .max_connections_per_ip
            .map_or(config.max_connections_per_ip, size);
        let max_partial_frame_bytes = self
            .max_partial_frame_bytes
            .map_or(config.max_partial_frame_bytes, size);
        let max_groups = self.max_groups.map_or(config.max_groups, size);
        let max_groups_per_client = self
            .max_groups_per_client
            .map_or(config.max_groups_per_client, size);
        let default_max_members = self
            .default_max_members
            .unwrap_or(config.default_max_members);
        let max_password_failures = self
            .max_password_failures
            .unwrap_or(config.max_password_failures);
        config
            .with_max_connections(max_connections)
            .with_max_connections_per_ip(max_connections_per_ip)
            .with_max_partial_frame_bytes(max_partial_frame_bytes)
            .with_max_groups(max_groups)
            .with_max_groups_per_client(max_groups_per_client)
            .with_default_max_members(default_max_members)
            .with_max_password_failures(max_password_failures)
    }
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
    fn tracker_limits_come_from_flags_or_defaults() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["messenger", "tracker"];
            argv.extend_from_slice(extra);
            let Command::Tracker(args) = Cli::try_parse_from(argv).expect("parses").command else {
                panic!("not tracker")
            };
            args.apply_limits(TrackerConfig::default())
        };
        let d = parse(&[]);
        let defaults = TrackerConfig::default();
        assert_eq!(d.max_connections, defaults.max_connections);
        assert_eq!(d.default_max_members, 256);
        let c = parse(&[
            "--max-connections",
            "5",
            "--max-connections-per-ip",
            "2",
            "--max-partial-frame-bytes",
            "4096",
            "--max-groups",
            "7",
            "--max-groups-per-client",
            "3",
            "--default-max-members",
            "9",
            "--max-password-failures",
            "4",
        ]);
        assert_eq!(
            (
                c.max_connections,
                c.max_connections_per_ip,
                c.max_partial_frame_bytes
            ),
            (5, 2, 4096)
        );
        assert_eq!((c.max_groups, c.max_groups_per_client), (7, 3));
        assert_eq!((c.default_max_members, c.max_password_failures), (9, 4));
        assert!(Cli::try_parse_from(["messenger", "tracker", "--max-connections", "0"]).is_err());
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(Cli::try_parse_from(["messenger", "chat", "--order", "random"]).is_err());
        assert!(Cli::try_parse_from(["messenger", "chat", "--quit-wait", "-1"]).is_err());
        assert!(Cli::try_parse_from(["messenger", "tracker", "--bind", "nowhere"]).is_err());
        assert!(Cli::try_parse_from(["messenger", "bench", "--baseline", "fast"]).is_err());
        assert!(Cli::try_parse_from(["messenger", "bench", "--latency-rate", "0"]).is_err());
        assert!(Cli::try_parse_from([
            "messenger",
            "bench",
            "--no-baseline",
            "--baseline",
            "naive"
        ])
        .is_err());
    }

    #[test]
    fn bench_baselines() {
        let baselines = |args: &[&str]| {
            let cli =
                Cli::try_parse_from(["messenger", "bench"].iter().chain(args)).expect("parses");
            let Command::Bench(args) = cli.command else {
                panic!("not bench")
            };
            args.baselines()
        };
        assert_eq!(baselines(&[]), Baseline::Both);
        assert_eq!(baselines(&["--no-baseline"]), Baseline::None);
        assert_eq!(baselines(&["--baseline", "ceiling"]), Baseline::Ceiling);
        assert!(baselines(&[]).naive() && baselines(&[]).ceiling());
        assert!(!Baseline::Naive.ceiling() && !Baseline::Ceiling.naive());
    }
}
