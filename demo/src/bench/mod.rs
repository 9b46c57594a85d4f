//! `messenger bench`: a tracker and N members on loopback, every member (or one, for fan-out)
//! sending a fixed number of messages to group `bench`; then the same workload over plain UDP
//! sockets, in the same run: the `naive` and `ceiling` baselines ([`baseline`]).
//!
//! Our side runs in phases on the same group:
//!
//! 0. the measured run: `--messages` per sender at `--rate` messages/s for the whole group
//!    (0: full speed): deliveries per second, latency, CPU time;
//! 1. after a full-speed run, a paced one for latency at a fixed offered rate: `--latency-rate`
//!    messages/s for the group during `--latency-secs` seconds.
//!
//! Members are clients in this process ([`run_threads`]) or, with `--processes`, one process
//! each ([`procs`]); both run the same member code ([`member`]). The report checks that
//! nothing was lost, FIFO held, and in total order that every member delivered the same
//! sequence; it gives peak memory (of each member's process, or of this one) ([`report`]).

mod baseline;
mod latency;
pub mod member;
mod procs;
mod progress;
mod report;
mod sys;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use messenger_core::{FaultConfig, FaultCounts, LatencyHistogram, Order, Tracker, TrackerConfig};
use tokio::sync::Notify;

use crate::cli::{BenchArgs, OrderArg, Workload};
use latency::Buckets;
use member::{BenchMember, MemberReport};
use progress::Progress;
use sys::{cpu_time, peak_rss_kib};

/// A phase fails when no message was delivered for this long.
const STALL: Duration = Duration::from_secs(30);

/// One phase of our run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PhaseSpec {
    /// Messages per sender.
    pub messages: u64,
    /// Offered rate, messages per second for the whole group (0: full speed).
    pub rate: u64,
}

/// What runs: members, senders, phases.
#[derive(Debug, Clone)]
pub struct Plan {
    pub members: usize,
    pub order: OrderArg,
    pub senders: Vec<usize>,
    pub payload: usize,
    pub phases: Vec<PhaseSpec>,
}

impl Plan {
    fn new(args: &BenchArgs) -> Plan {
        let senders: Vec<usize> = match args.workload {
            Workload::AllToAll => (0..args.members).collect(),
            Workload::FanOut => vec![0],
        };
        let mut phases = vec![PhaseSpec {
            messages: args.messages,
            rate: args.rate,
        }];
        if args.rate == 0 && args.latency_secs > 0.0 {
            let total = (args.latency_rate as f64 * args.latency_secs).ceil() as u64;
            phases.push(PhaseSpec {
                messages: total.div_ceil(senders.len() as u64).max(1),
                rate: args.latency_rate,
            });
        }
        Plan {
            members: args.members,
            order: args.order,
            senders,
            payload: args.payload,
            phases,
        }
    }

    fn order_name(&self) -> &'static str {
        Order::from(self.order).as_str()
    }

    /// Deliveries (own included) that complete phase `p` at a member.
    fn target(&self, p: usize) -> u64 {
        self.senders.len() as u64 * self.phases[p].messages
    }

    /// Deliveries from others expected in phase `p`, all members together.
    fn expected(&self, p: usize) -> u64 {
        self.senders.len() as u64 * (self.members as u64 - 1) * self.phases[p].messages
    }

    fn rate_per_sender(&self, p: usize) -> f64 {
        self.phases[p].rate as f64 / self.senders.len() as f64
    }

    fn label(&self, p: usize) -> String {
        match self.phases[p].rate {
            0 => format!("{}, full speed", self.order_name()),
            r => format!("{}, {r} msg/s", self.order_name()),
        }
    }
}

/// One phase of our run, all members together.
#[derive(Debug)]
pub struct PhaseOutcome {
    pub spec: PhaseSpec,
    pub expected: u64,
    pub delivered: u64,
    /// First send to last delivery.
    pub elapsed: Duration,
    pub latency: LatencyHistogram,
    /// CPU time of the members (and the tracker) during the phase.
    pub cpu: Duration,
}

impl PhaseOutcome {
    pub fn rate(&self) -> f64 {
        self.delivered as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.delivered)
    }
}

/// Our side of a run.
#[derive(Debug)]
pub struct Ours {
    /// The phases that ran.
    pub phases: Vec<PhaseOutcome>,
    pub fifo_violations: u64,
    /// Every member delivered the same sequence (total order only; `None` in FIFO, where
    /// members legitimately interleave senders differently).
    pub same_order: Option<bool>,
    /// Why the run stopped before the end.
    pub stalled: Option<String>,
    /// `--processes`: each member's peak memory.
    pub peak_rss_kib_per_member: Option<Vec<u64>>,
    /// `--processes`: each member's CPU time over the whole run.
    pub cpu_seconds_per_member: Option<Vec<f64>>,
    /// This process: every member in threads mode, the tracker only with `--processes`.
    pub peak_rss_kib_process: u64,
    /// What the fault injectors did to the members' datagrams, summed over the members (all
    /// zero without `--faults`).
    pub faults_injected: FaultCounts,
}

impl Ours {
    pub fn lost(&self) -> u64 {
        self.phases.iter().map(PhaseOutcome::lost).sum()
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.members < 2 {
        bail!("--members must be at least 2");
    }
    let faults = match &args.faults {
        Some(spec) => FaultConfig::parse(spec)?,
        None => FaultConfig::default(),
    };
    let plan = Plan::new(&args);
    let progress = Progress::new(args.json);
    let ours = if args.processes {
        procs::run(&args, &plan, &progress).await?
    } else {
        run_threads(&plan, faults, &progress).await?
    };
    let workload = baseline::Workload {
        members: plan.members,
        senders: plan.senders.clone(),
        messages: plan.phases[0].messages,
        payload: plan.payload,
        rate_per_sender: plan.rate_per_sender(0),
    };
    let naive = if args.baselines().naive() {
        Some(baseline::naive(&workload, &progress).await?)
    } else {
        None
    };
    let ceiling = if args.baselines().ceiling() {
        Some(baseline::ceiling(&workload, &progress).await?)
    } else {
        None
    };
    progress.clear();
    report::print(&args, &plan, &ours, naive.as_ref(), ceiling.as_ref());
    if let Some(why) = &ours.stalled {
        bail!("the run stalled: {why}");
    }
    if ours.lost() > 0 || ours.fifo_violations > 0 || ours.same_order == Some(false) {
        bail!("the run lost or misordered messages");
    }
    Ok(())
}

/// Every member a client in this process, on this runtime.
async fn run_threads(
    plan: &Plan,
    faults: FaultConfig,
    progress: &Progress,
) -> anyhow::Result<Ours> {
    let tracker = Tracker::spawn(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        bench_tracker_config(plan.members),
    )
    .await
    .context("starting the tracker")?;
    let n = plan.members;
    let order: Order = plan.order.into();
    let events = Arc::new(Notify::new());
    let mut members = Vec::new();
    for i in 0..n {
        members.push(
            BenchMember::connect(
                tracker.local_addr(),
                &format!("m{i}"),
                order,
                faults,
                events.clone(),
            )
            .await?,
        );
    }
    let result = drive_threads(plan, progress, &members, &events).await;
    let peak = peak_rss_kib();
    let reports: Vec<MemberReport> = members.iter().map(BenchMember::report).collect();
    for m in &members {
        m.shutdown().await;
    }
    tracker.shutdown().await;
    let (cpu, stalled) = result?;
    let mut ours = aggregate(plan, &reports, &cpu, cpu.len());
    ours.stalled = stalled;
    ours.peak_rss_kib_process = peak;
    Ok(ours)
}

/// Runs the phases; returns the CPU time of each phase that ran and why the run stopped early.
async fn drive_threads(
    plan: &Plan,
    progress: &Progress,
    members: &[BenchMember],
    events: &Notify,
) -> anyhow::Result<(Vec<Duration>, Option<String>)> {
    let n = plan.members;
    member::wait_for(events, Duration::from_secs(30), || {
        members.iter().all(|m| m.members_in_view() >= n)
    })
    .await
    .context("members did not all see each other")?;
    let mut cpu = Vec::new();
    for (p, spec) in plan.phases.iter().enumerate() {
        for m in members {
            m.start_phase(p, plan.target(p));
        }
        progress.phase(plan.label(p), plan.expected(p));
        let since = cpu_time();
        let rate = plan.rate_per_sender(p);
        let tasks: Vec<_> = plan
            .senders
            .iter()
            .map(|&i| {
                let (m, count, payload) = (members[i].clone(), spec.messages, plan.payload);
                tokio::spawn(async move { m.send_phase(p, count, rate, payload).await })
            })
            .collect();
        let waited = member::wait_progress(events, STALL, || {
            let delivered = members.iter().map(|m| m.delivered_from_others(p)).sum();
            progress.set(delivered);
            (members.iter().all(|m| m.complete(p)), delivered)
        })
        .await;
        cpu.push(cpu_time().saturating_sub(since));
        for t in tasks {
            if waited.is_err() {
                t.abort();
            }
            if let Ok(Err(e)) = t.await {
                return Err(e).context("sending");
            }
        }
        if let Err(e) = waited {
            return Ok((cpu, Some(format!("phase {p}: {e}"))));
        }
    }
    Ok((cpu, None))
}

/// Sums the members' reports: per phase, deliveries, first send to last delivery, latency;
/// across phases, FIFO violations, injected faults and whether the delivery sequences agree.
fn aggregate(plan: &Plan, reports: &[MemberReport], cpu: &[Duration], phases_run: usize) -> Ours {
    let phases = (0..phases_run.min(plan.phases.len()))
        .map(|p| {
            let counts = reports.iter().filter_map(|r| r.phases.get(p));
            let mut latency = Buckets::default();
            let mut delivered = 0;
            let mut first = None::<u64>;
            let mut last = None::<u64>;
            for c in counts {
                delivered += c.delivered_from_others;
                latency.merge(&c.latency);
                first = match (first, c.first_send_wall) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                last = last.max(c.last_delivery_wall);
            }
            let elapsed = match (first, last) {
                (Some(f), Some(l)) => Duration::from_micros(l.saturating_sub(f)),
                _ => Duration::ZERO,
            };
            PhaseOutcome {
                spec: plan.phases[p],
                expected: plan.expected(p),
                delivered,
                elapsed,
                latency: latency.to_histogram(),
                cpu: cpu.get(p).copied().unwrap_or_default(),
            }
        })
        .collect();
    let same_order = (plan.order == OrderArg::Total).then(|| {
        reports
            .windows(2)
            .all(|w| w[0].order_hash == w[1].order_hash)
    });
    let faults_injected = reports
        .iter()
        .fold(FaultCounts::default(), |sum, r| FaultCounts {
            dropped: sum.dropped + r.faults.dropped,
            duplicated: sum.duplicated + r.faults.duplicated,
            delayed: sum.delayed + r.faults.delayed,
        });
    Ours {
        phases,
        fifo_violations: reports.iter().map(|r| r.fifo_violations).sum(),
        same_order,
        stalled: None,
        peak_rss_kib_per_member: None,
        cpu_seconds_per_member: None,
        peak_rss_kib_process: 0,
        faults_injected,
    }
}

/// The bench's own tracker: every member connects from 127.0.0.1, so the limit of connections
/// per address must admit them all; the group must admit them all too. The control plane is
/// plain TCP (`insecure`): the bench measures the data plane, which the tracker's TLS does not
/// touch, and leaves no key or pin behind.
pub(crate) fn bench_tracker_config(members: usize) -> TrackerConfig {
    let defaults = TrackerConfig::default();
    let connections = defaults.max_connections.max(members + 8);
    let max_members = u32::try_from(members)
        .unwrap_or(u32::MAX)
        .max(defaults.default_max_members);
    defaults
        .insecure()
        .with_max_connections(connections)
        .with_max_connections_per_ip(connections)
        .with_default_max_members(max_members)
}
