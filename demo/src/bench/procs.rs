//! `messenger bench --processes`: the tracker stays in this process; each member is a
//! `messenger bench-member` process of its own (this same executable), driven line by line:
//!
//! - child to parent, JSON lines on its stdout: `ready` (its view has every member),
//!   `progress` (deliveries from others so far), `done` (it delivered the whole phase),
//!   `result` (its [`MemberReport`]), `error`;
//! - parent to child, on its stdin: `go PHASE COUNT RATE TARGET` (send COUNT messages at RATE
//!   per second; the phase is complete once TARGET are delivered, own included), `finish`.
//!
//! A phase starts once every member is ready or done with the one before, so no member leaves
//! while another may still need its retransmissions.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;

use super::member::{MemberReport, TICK};
use super::progress::Progress;
use super::sys::{cpu_time, peak_rss_kib};
use super::{Ours, Plan, STALL};
use crate::cli::BenchArgs;
use messenger_core::Tracker;

use super::bench_tracker_config;

/// How long the members get to start, connect and see each other.
const READY_WITHIN: Duration = Duration::from_secs(60);
/// How long the members get to report once told to finish, and then to exit.
const FINISH_WITHIN: Duration = Duration::from_secs(30);

/// A line from member `.0`; `None` when its stdout closed.
type Event = (usize, Option<Value>);

pub async fn run(args: &BenchArgs, plan: &Plan, progress: &Progress) -> anyhow::Result<Ours> {
    let tracker = Tracker::spawn(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        bench_tracker_config(plan.members),
    )
    .await
    .context("starting the tracker")?;
    let exe = std::env::current_exe().context("finding this program")?;
    let (events_tx, mut events) = mpsc::unbounded_channel::<Event>();
    let mut children: Vec<Child> = Vec::new();
    let mut stdins: Vec<ChildStdin> = Vec::new();
    for i in 0..plan.members {
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.arg("bench-member")
            .args(["--tracker", &tracker.local_addr().to_string()])
            .args(["--name", &format!("m{i}")])
            .args(["--members", &plan.members.to_string()])
            .args(["--order", plan.order_name()])
            .args(["--payload", &args.payload.to_string()]);
        if let Some(f) = &args.faults {
            cmd.args(["--faults", f]);
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("starting a member process")?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            bail!("member process without pipes");
        };
        let tx = events_tx.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                // Anything that is not JSON is not for us.
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send((i, Some(v)));
                }
            }
            let _ = tx.send((i, None));
        });
        children.push(child);
        stdins.push(stdin);
    }
    drop(events_tx);

    let result = drive(plan, progress, &mut stdins, &mut events).await;
    // Whatever happened, the members end: closing stdin tells them, killing makes sure.
    drop(stdins);
    for c in &mut children {
        if tokio::time::timeout(FINISH_WITHIN, c.wait()).await.is_err() {
            let _ = c.kill().await;
        }
    }
    tracker.shutdown().await;
    let (reports, cpu_parent, phases_run, stalled) = result?;

    let mut cpu = cpu_parent;
    for r in &reports {
        for (p, c) in r.cpu_per_phase.iter().enumerate() {
            if let Some(total) = cpu.get_mut(p) {
                *total += *c;
            }
        }
    }
    let mut ours = super::aggregate(plan, &reports, &cpu, phases_run);
    ours.stalled = stalled;
    ours.peak_rss_kib_per_member = Some(
        reports
            .iter()
            .map(|r| r.peak_rss_kib.unwrap_or(0))
            .collect(),
    );
    ours.cpu_seconds_per_member = Some(
        reports
            .iter()
            .map(|r| r.cpu_per_phase.iter().map(Duration::as_secs_f64).sum())
            .collect(),
    );
    ours.peak_rss_kib_process = peak_rss_kib();
    Ok(ours)
}

/// Reports, this process's CPU time per phase, phases run, and why the run stopped early.
type Driven = (Vec<MemberReport>, Vec<Duration>, usize, Option<String>);

async fn drive(
    plan: &Plan,
    progress: &Progress,
    stdins: &mut [ChildStdin],
    events: &mut mpsc::UnboundedReceiver<Event>,
) -> anyhow::Result<Driven> {
    let n = plan.members;
    let deadline = tokio::time::Instant::now() + READY_WITHIN;
    let mut ready = vec![false; n];
    while ready.iter().any(|r| !r) {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .map_err(|_| anyhow!("the member processes were not ready within {READY_WITHIN:?}"))?;
        match event {
            Some((i, Some(v))) if kind(&v) == "ready" => ready[i] = true,
            Some(e) => check(&e)?,
            None => bail!("every member process exited"),
        }
    }

    let mut cpu = Vec::new();
    let mut stalled = None;
    for (p, spec) in plan.phases.iter().enumerate() {
        progress.phase(plan.label(p), plan.expected(p));
        let since = cpu_time();
        let rate = plan.rate_per_sender(p);
        for (i, stdin) in stdins.iter_mut().enumerate() {
            let count = if plan.senders.contains(&i) {
                spec.messages
            } else {
                0
            };
            let line = format!("go {p} {count} {rate} {}\n", plan.target(p));
            stdin
                .write_all(line.as_bytes())
                .await
                .with_context(|| format!("starting member m{i}"))?;
        }
        let mut delivered = vec![0u64; n];
        let mut done = vec![false; n];
        let mut moved = tokio::time::Instant::now();
        while done.iter().any(|d| !d) {
            match tokio::time::timeout(TICK, events.recv()).await {
                Ok(Some((i, Some(v)))) if kind(&v) == "progress" || kind(&v) == "done" => {
                    if v.get("phase").and_then(Value::as_u64) == Some(p as u64) {
                        let d = v.get("delivered").and_then(Value::as_u64).unwrap_or(0);
                        if d > delivered[i] {
                            delivered[i] = d;
                            moved = tokio::time::Instant::now();
                        }
                        done[i] |= kind(&v) == "done";
                    }
                }
                Ok(Some(e)) => check(&e)?,
                Ok(None) => bail!("every member process exited"),
                Err(_) => {}
            }
            progress.set(delivered.iter().sum());
            if moved.elapsed() >= STALL {
                stalled = Some(format!(
                    "phase {p}: no progress for {STALL:?} ({} of {} delivered)",
                    delivered.iter().sum::<u64>(),
                    plan.expected(p)
                ));
                break;
            }
        }
        cpu.push(cpu_time().saturating_sub(since));
        if stalled.is_some() {
            break;
        }
    }
    let phases_run = cpu.len();

    for (i, stdin) in stdins.iter_mut().enumerate() {
        stdin
            .write_all(b"finish\n")
            .await
            .with_context(|| format!("finishing member m{i}"))?;
    }
    let mut reports: Vec<Option<MemberReport>> = vec![None; n];
    let deadline = tokio::time::Instant::now() + FINISH_WITHIN;
    while reports.iter().any(Option::is_none) {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .map_err(|_| anyhow!("the member processes did not report within {FINISH_WITHIN:?}"))?;
        match event {
            Some((i, Some(v))) if kind(&v) == "result" => {
                reports[i] = Some(
                    MemberReport::from_json(&v)
                        .ok_or_else(|| anyhow!("member m{i} sent a malformed result"))?,
                );
            }
            Some((_, Some(v))) if matches!(kind(&v), "progress" | "done") => {}
            // A member that reported may exit before the others do.
            Some((i, None)) if reports[i].is_some() => {}
            Some(e) => check(&e)?,
            None => bail!("every member process exited"),
        }
    }
    Ok((
        reports.into_iter().flatten().collect(),
        cpu,
        phases_run,
        stalled,
    ))
}

fn kind(v: &Value) -> &str {
    v.get("event").and_then(Value::as_str).unwrap_or("")
}

/// An event that was not expected: an error from the member, or its exit.
fn check(e: &Event) -> anyhow::Result<()> {
    match e {
        (i, Some(v)) if kind(v) == "error" => bail!(
            "member m{i}: {}",
            v.get("message").and_then(Value::as_str).unwrap_or("failed")
        ),
        (i, None) => bail!("member m{i} exited before the end of the run"),
        _ => Ok(()),
    }
}
