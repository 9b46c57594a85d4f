//! One member of the benchmark, the same code whether it runs as a client in the benchmark's
//! process or in a process of its own (`messenger bench-member`, [`run_child`]).
//!
//! A member connects with [`Client`], joins group [`GROUP`], and records every delivery: per
//! phase (the first payload byte says which), deliveries from others and in all, latency, the
//! wall time of the last delivery; across phases, FIFO violations and a hash of the delivery
//! sequence (equal at every member iff they delivered the same messages in the same order).

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use messenger_core::{
    Callbacks, Client, ClientConfig, ClientError, FaultConfig, FaultCounts, Message, Order,
    TrackerTrust,
};
use serde_json::{json, Value};
use tokio::sync::Notify;

use super::latency::Buckets;
use super::sys::{cpu_time, pace, peak_rss_kib, wall_micros};
use crate::cli::BenchMemberArgs;

/// The benchmark's group.
pub const GROUP: &str = "bench";
/// Phases of a run: the measured run, then the paced latency run.
pub const PHASES: usize = 2;
/// How often progress is polled (and shown).
pub const TICK: Duration = Duration::from_millis(100);

/// What one member saw during one phase.
#[derive(Debug, Clone, Default)]
pub struct PhaseCounts {
    pub delivered_from_others: u64,
    /// Own messages included.
    pub delivered_all: u64,
    /// Send to delivery, messages from others.
    pub latency: Buckets,
    /// Wall clock (µs since the epoch) of this member's first send in the phase.
    pub first_send_wall: Option<u64>,
    pub last_delivery_wall: Option<u64>,
    /// Deliveries (own included) that complete the phase here; unknown until it starts.
    target: Option<u64>,
}

impl PhaseCounts {
    fn complete(&self) -> bool {
        self.target.is_some_and(|t| self.delivered_all >= t)
    }
}

/// Everything one member records.
#[derive(Debug, Default)]
struct Recorder {
    /// Members in the latest view of the group.
    members_in_view: usize,
    /// Last sequence number delivered per sender; a jump or repeat is a FIFO violation.
    last_seq: HashMap<u64, u64>,
    fifo_violations: u64,
    order_hash: u64,
    phases: [PhaseCounts; PHASES],
}

fn mix(h: u64, x: u64) -> u64 {
    (h ^ x).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(17)
}

impl Recorder {
    /// Records a delivery; true when it completes its phase.
    fn deliver(&mut self, m: &Message) -> bool {
        let last = self.last_seq.entry(m.sender_id.0).or_insert(0);
        if m.seq != *last + 1 {
            self.fifo_violations += 1;
        }
        *last = m.seq;
        self.order_hash = mix(mix(self.order_hash, m.sender_id.0), m.seq);
        let phase = m
            .payload
            .first()
            .map_or(0, |b| usize::from(b.wrapping_sub(b'0')))
            .min(PHASES - 1);
        let p = &mut self.phases[phase];
        p.delivered_all += 1;
        if !m.own {
            p.delivered_from_others += 1;
            p.latency.record(m.latency.as_micros() as u64);
        }
        p.last_delivery_wall = Some(wall_micros());
        p.target == Some(p.delivered_all)
    }
}

/// What a member reports at the end of a run.
#[derive(Debug, Clone, Default)]
pub struct MemberReport {
    pub phases: Vec<PhaseCounts>,
    pub fifo_violations: u64,
    pub order_hash: u64,
    /// Peak memory of the member's own process (`--processes` only).
    pub peak_rss_kib: Option<u64>,
    /// CPU time of the member's own process per phase (`--processes` only).
    pub cpu_per_phase: Vec<Duration>,
    /// What the fault injector did to this member's outgoing datagrams over the whole run.
    pub faults: FaultCounts,
}

impl MemberReport {
    pub fn to_json(&self) -> Value {
        let phases: Vec<Value> = self
            .phases
            .iter()
            .map(|p| {
                json!({
                    "delivered_from_others": p.delivered_from_others,
                    "delivered_all": p.delivered_all,
                    "latency": p.latency.to_json(),
                    "first_send_wall_us": p.first_send_wall,
                    "last_delivery_wall_us": p.last_delivery_wall,
                })
            })
            .collect();
        json!({
            "phases": phases,
            "fifo_violations": self.fifo_violations,
            // As a string: JSON numbers above 2^53 do not survive every reader.
            "order_hash": self.order_hash.to_string(),
            "peak_rss_kib": self.peak_rss_kib,
            "cpu_seconds_per_phase": self.cpu_per_phase.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
            "faults": fault_counts_json(&self.faults),
        })
    }

    pub fn from_json(v: &Value) -> Option<MemberReport> {
        let mut phases = Vec::new();
        for p in v.get("phases")?.as_array()? {
            phases.push(PhaseCounts {
                delivered_from_others: p.get("delivered_from_others")?.as_u64()?,
                delivered_all: p.get("delivered_all")?.as_u64()?,
                latency: Buckets::from_json(p.get("latency")?)?,
                first_send_wall: p.get("first_send_wall_us").and_then(Value::as_u64),
                last_delivery_wall: p.get("last_delivery_wall_us").and_then(Value::as_u64),
                target: None,
            });
        }
        let mut cpu_per_phase = Vec::new();
        for c in v.get("cpu_seconds_per_phase")?.as_array()? {
            cpu_per_phase.push(Duration::try_from_secs_f64(c.as_f64()?).ok()?);
        }
        let faults = v.get("faults")?;
        let count = |key: &str| faults.get(key).and_then(Value::as_u64);
        Some(MemberReport {
            phases,
            fifo_violations: v.get("fifo_violations")?.as_u64()?,
            order_hash: v.get("order_hash")?.as_str()?.parse().ok()?,
            peak_rss_kib: v.get("peak_rss_kib").and_then(Value::as_u64),
            cpu_per_phase,
            faults: FaultCounts {
                dropped: count("dropped")?,
                duplicated: count("duplicated")?,
                delayed: count("delayed")?,
            },
        })
    }
}

/// A connected member of group [`GROUP`]. Clones share the client and the records.
#[derive(Debug, Clone)]
pub struct BenchMember {
    client: Client,
    recorder: Arc<Mutex<Recorder>>,
    events: Arc<Notify>,
}

impl BenchMember {
    /// Connects, joins [`GROUP`] (creating it with `order`), and records from then on.
    /// `events` is woken when the view changes and when a phase completes here.
    pub async fn connect(
        tracker: SocketAddr,
        name: &str,
        order: Order,
        faults: FaultConfig,
        events: Arc<Notify>,
    ) -> anyhow::Result<BenchMember> {
        let recorder = Arc::new(Mutex::new(Recorder::default()));
        let (on_message, on_view) = (recorder.clone(), recorder.clone());
        let (wake_message, wake_view) = (events.clone(), events.clone());
        let handler = Callbacks::new()
            .on_message(move |m| {
                let completed = lock(&on_message).deliver(&m);
                if completed {
                    wake_message.notify_waiters();
                }
            })
            .on_view(move |v| {
                if v.group == GROUP {
                    lock(&on_view).members_in_view = v.members.len();
                    wake_view.notify_waiters();
                }
            });
        // The bench's tracker is insecure (see `bench_tracker_config`).
        let mut config = ClientConfig::new(tracker, name).with_trust(TrackerTrust::Insecure);
        config.faults = Some(faults);
        let client = Client::connect(config, handler)
            .await
            .with_context(|| format!("connecting {name}"))?;
        let view = client
            .join(GROUP, order, None)
            .await
            .with_context(|| format!("{name} joining the group"))?;
        {
            let mut r = lock(&recorder);
            r.members_in_view = r.members_in_view.max(view.members.len());
        }
        events.notify_waiters();
        Ok(BenchMember {
            client,
            recorder,
            events,
        })
    }

    pub fn members_in_view(&self) -> usize {
        lock(&self.recorder).members_in_view
    }

    /// From now on, `phase` is complete here once this member delivered `target` messages of
    /// it (its own included). Wakes the waiters at once if that already happened.
    pub fn start_phase(&self, phase: usize, target: u64) {
        let done = {
            let mut r = lock(&self.recorder);
            let p = &mut r.phases[phase];
            p.target = Some(target);
            p.complete()
        };
        if done {
            self.events.notify_waiters();
        }
    }

    pub fn complete(&self, phase: usize) -> bool {
        lock(&self.recorder).phases[phase].complete()
    }

    pub fn delivered_from_others(&self, phase: usize) -> u64 {
        lock(&self.recorder).phases[phase].delivered_from_others
    }

    /// Sends `count` messages of `payload` bytes tagged with `phase`, at `rate` messages per
    /// second (0: as fast as `send` returns). Tokio's timer has a 1 ms resolution, so a paced
    /// sender sends the messages that fell due in each millisecond together.
    pub async fn send_phase(
        &self,
        phase: usize,
        count: u64,
        rate: f64,
        payload: usize,
    ) -> Result<(), ClientError> {
        let mut body = vec![b'x'; payload.max(1)];
        body[0] = b'0' + phase as u8;
        let body = Bytes::from(body);
        let start = tokio::time::Instant::now();
        for k in 0..count {
            pace(start, k, rate).await;
            if k == 0 {
                lock(&self.recorder).phases[phase].first_send_wall = Some(wall_micros());
            }
            self.client.send(GROUP, body.clone()).await?;
        }
        Ok(())
    }

    /// What this member recorded so far.
    pub fn report(&self) -> MemberReport {
        let r = lock(&self.recorder);
        MemberReport {
            phases: r.phases.to_vec(),
            fifo_violations: r.fifo_violations,
            order_hash: r.order_hash,
            peak_rss_kib: None,
            cpu_per_phase: Vec::new(),
            faults: self.client.fault_counts(),
        }
    }

    pub async fn shutdown(&self) {
        self.client.shutdown().await;
    }
}

/// `{"dropped": .., "duplicated": .., "delayed": ..}`: in a member's report and, summed over
/// the members, in the benchmark's (`faults_injected`).
pub fn fault_counts_json(c: &FaultCounts) -> Value {
    json!({
        "dropped": c.dropped,
        "duplicated": c.duplicated,
        "delayed": c.delayed,
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits until `done()`, woken by `events` (and checking at least every [`TICK`]).
pub async fn wait_for(
    events: &Notify,
    timeout: Duration,
    done: impl Fn() -> bool,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let notified = events.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if done() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?}");
        }
        let _ = tokio::time::timeout(TICK, notified).await;
    }
}

/// Waits until the first value `poll` returns is true; fails when the second (a progress
/// counter) has not moved for `stall`. `poll` runs at least every [`TICK`].
pub async fn wait_progress(
    events: &Notify,
    stall: Duration,
    mut poll: impl FnMut() -> (bool, u64),
) -> anyhow::Result<()> {
    let mut last = (u64::MAX, tokio::time::Instant::now());
    loop {
        let notified = events.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (done, progress) = poll();
        if done {
            return Ok(());
        }
        let now = tokio::time::Instant::now();
        if progress != last.0 {
            last = (progress, now);
        } else if now - last.1 >= stall {
            bail!("no progress for {stall:?} ({progress} delivered)");
        }
        let _ = tokio::time::timeout(TICK, notified).await;
    }
}

/// Writes one JSON line on stdout (the parent reads them).
fn emit(v: Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

/// `messenger bench-member`: one member in a process of its own, driven by the parent
/// benchmark through stdin and stdout (see [`BenchMemberArgs`]).
pub async fn run_child(args: BenchMemberArgs) -> anyhow::Result<()> {
    let faults = match &args.faults {
        Some(spec) => FaultConfig::parse(spec)?,
        None => FaultConfig::default(),
    };
    let events = Arc::new(Notify::new());
    let member = BenchMember::connect(
        args.tracker,
        &args.name,
        args.order.into(),
        faults,
        events.clone(),
    )
    .await?;
    let result = drive_child(&args, &member, &events).await;
    member.shutdown().await;
    if let Err(e) = &result {
        emit(json!({ "event": "error", "message": format!("{e:#}") }));
    }
    result
}

async fn drive_child(
    args: &BenchMemberArgs,
    member: &BenchMember,
    events: &Arc<Notify>,
) -> anyhow::Result<()> {
    wait_for(events, Duration::from_secs(60), || {
        member.members_in_view() >= args.members
    })
    .await
    .context("the other members did not all join")?;
    emit(json!({ "event": "ready" }));

    let mut lines = stdin_lines();
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut cpu_per_phase = vec![Duration::ZERO; PHASES];
    // The phase under way and the CPU time when it started.
    let mut current: Option<(usize, Duration)> = None;
    let mut shown = None;
    let mut tasks = Vec::new();
    loop {
        tokio::select! {
            line = lines.recv() => {
                // The parent closed our stdin: it is gone, and so is the run.
                let Some(line) = line else {
                    bail!("the benchmark closed stdin before `finish`");
                };
                if let Some((p, since)) = current.take() {
                    cpu_per_phase[p] = cpu_time().saturating_sub(since);
                }
                let words: Vec<&str> = line.split_whitespace().collect();
                match words.as_slice() {
                    ["go", phase, count, rate, target] => {
                        let phase: usize = phase.parse().context("phase")?;
                        let count: u64 = count.parse().context("count")?;
                        let rate: f64 = rate.parse().context("rate")?;
                        let target: u64 = target.parse().context("target")?;
                        if phase >= PHASES {
                            bail!("no phase {phase}");
                        }
                        current = Some((phase, cpu_time()));
                        member.start_phase(phase, target);
                        tasks.push(tokio::spawn(run_phase(
                            member.clone(),
                            events.clone(),
                            phase,
                            count,
                            rate,
                            args.payload,
                        )));
                    }
                    ["finish"] => break,
                    _ => bail!("unknown command {line:?}"),
                }
            }
            _ = ticker.tick() => {
                if let Some((p, _)) = current {
                    let delivered = member.delivered_from_others(p);
                    if shown != Some(delivered) {
                        shown = Some(delivered);
                        emit(json!({ "event": "progress", "phase": p, "delivered": delivered }));
                    }
                }
            }
        }
    }
    for t in tasks {
        t.abort();
    }
    let mut report = member.report();
    report.cpu_per_phase = cpu_per_phase;
    report.peak_rss_kib = Some(peak_rss_kib());
    let mut line = report.to_json();
    line["event"] = json!("result");
    emit(line);
    Ok(())
}

/// The lines of stdin, read by a thread of their own (a blocked read must not hold up the
/// runtime; the thread ends with the process). The channel closes at end of input.
fn stdin_lines() -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let _ = std::thread::Builder::new()
        .name("bench-member-stdin".into())
        .spawn(move || {
            for line in std::io::stdin().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    rx
}

/// Sends this member's share of a phase, then says `done` once it delivered the whole phase.
async fn run_phase(
    member: BenchMember,
    events: Arc<Notify>,
    phase: usize,
    count: u64,
    rate: f64,
    payload: usize,
) {
    if let Err(e) = member.send_phase(phase, count, rate, payload).await {
        emit(json!({ "event": "error", "message": format!("sending: {e}") }));
        return;
    }
    // The parent decides when a phase has stalled; this waits as long as it is told to.
    if wait_for(&events, Duration::from_secs(24 * 3600), || {
        member.complete(phase)
    })
    .await
    .is_ok()
    {
        emit(json!({
            "event": "done",
            "phase": phase,
            "delivered": member.delivered_from_others(phase),
        }));
    }
}
