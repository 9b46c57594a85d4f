//! `messenger tracker`: a tracker in the foreground until Ctrl-C. Logs (joins, leaves,
//! failures, each client's metrics) go to stderr through `tracing` (RUST_LOG, default
//! `info`); the bound address is printed on stdout as `tracker listening on ADDR`, one line a
//! script can wait for, followed by `tracker fingerprint FP` (the SHA-256 fingerprint of its
//! certificate, which clients pin) or `tracker insecure (plain TCP)`.

use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

use anyhow::Context as _;
use messenger_core::{Tracker, TrackerConfig};
use tracing_subscriber::EnvFilter;

use crate::cli::TrackerArgs;
use crate::signal::Interrupts;

pub async fn run(args: TrackerArgs) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();

    let mut config = args.apply_tls(args.apply_limits(TrackerConfig::default().with_heartbeat(
        Duration::from_millis(args.heartbeat_interval),
        args.heartbeat_misses,
    )));
    if let Some(path) = &args.policy {
        // The error names the file and says why; its source would repeat the why.
        config = config
            .with_policy_file(path)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    if let Some(path) = &args.log_json {
        // Opened here first for a message that names the file (the tracker opens it again).
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open the metrics file {}", path.display()))?;
        config.log_json = Some(path.clone());
    }
    // Caught before the address is announced: whoever reads it may interrupt at once.
    let mut interrupts = Interrupts::catch().context("cannot catch Ctrl-C")?;
    let tracker = Tracker::bind(args.bind, config)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "tracker listening on {}", tracker.local_addr());
        let _ = match tracker.fingerprint() {
            Some(fingerprint) => writeln!(out, "tracker fingerprint {fingerprint}"),
            None => writeln!(out, "tracker insecure (plain TCP)"),
        };
        let _ = out.flush();
    }
    tracker.run(async move { interrupts.next().await }).await?;
    Ok(())
}
