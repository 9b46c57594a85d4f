//! `messenger`: the terminal program.
//!
//! - `messenger chat`: join groups and talk ([`chat`]), interactively on a terminal
//!   ([`interactive`]) or from a script ([`scripted`]).
//! - `messenger tracker`: a tracker in the foreground ([`tracker_cmd`]).
//! - `messenger bench`: throughput and latency on loopback against raw-UDP baselines
//!   ([`bench`](mod@bench)); `messenger bench-member` (hidden) is one member of `bench --processes`.
//!
//! Layout: [`cli`] (flags), [`commands`] (what a typed line means), [`chat`] (connecting and
//! the command loop), [`handler`] (what arrives), [`output`] (how lines look and where they
//! go), [`screen`] (sharing the terminal with the line editor), [`input`] (the loop's line
//! source), [`signal`] (Ctrl-C).

#![forbid(unsafe_code)]

mod bench;
mod chat;
mod cli;
mod commands;
mod handler;
mod input;
mod interactive;
mod output;
mod screen;
mod scripted;
mod signal;
mod tracker_cmd;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("messenger: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            cli::Command::Chat(args) => chat::run(args).await,
            cli::Command::Tracker(args) => tracker_cmd::run(args).await,
            cli::Command::Bench(args) => bench::run(args).await,
            cli::Command::BenchMember(args) => bench::member::run_child(args).await,
        }
    });
    // The input thread may still be blocked reading: do not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("messenger: {e:#}");
            ExitCode::FAILURE
        }
    }
}
