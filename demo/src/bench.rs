//! `messenger bench`: a tracker and N members in this process on loopback, every member (or
//! one, for fan-out) sending a fixed number of messages; then the same workload over plain UDP
//! sockets with one `send_to` per peer per message and no reliability (the `naive` baseline),
//! measured in the same run. Reports deliveries per second, latency percentiles, loss, and
//! checks FIFO and (in total order) that every member delivered the same sequence.
//!
//! Still to come (see docs/BENCHMARKS.md): the batched `ceiling` baseline, `--processes`,
//! memory per member, the progress bar, plots.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use messenger_core::client::metrics::LatencyHistogram;
use messenger_core::client::{Callbacks, Client, ClientConfig};
use messenger_core::tracker::{Tracker, TrackerConfig};
use messenger_core::{FaultConfig, Order};
use tokio::sync::Notify;

use crate::cli::{BenchArgs, Workload};

/// What one member saw.
#[derive(Debug, Default)]
struct Member {
    delivered_from_others: u64,
    /// Every delivery, own messages included (the order check needs each member complete).
    delivered_all: u64,
    /// Last sequence number delivered per sender; a jump or repeat is a FIFO violation.
    last: HashMap<String, u64>,
    fifo_violations: u64,
    /// Running hash of the delivery sequence (sender, seq): equal at every member iff they
    /// delivered the same messages in the same order.
    order_hash: u64,
    latency: LatencyHistogram,
    last_delivery: Option<Instant>,
}

fn mix(h: u64, x: u64) -> u64 {
    (h ^ x).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(17)
}

/// Outcome of one measured run.
#[derive(Debug)]
struct Measured {
    expected: u64,
    delivered: u64,
    elapsed: Duration,
    latency: LatencyHistogram,
    fifo_violations: u64,
    same_order: bool,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.delivered as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.members < 2 {
        bail!("--members must be at least 2");
    }
    let order: Order = args.order.into();
    let faults = match &args.faults {
        Some(spec) => FaultConfig::parse(spec)?,
        None => FaultConfig::default(),
    };
    let cpu_before = cpu_time();
    let ours = run_messenger(&args, order, faults).await?;
    let cpu = cpu_time().saturating_sub(cpu_before);
    let naive = if args.no_baseline {
        None
    } else {
        Some(run_naive(&args).await?)
    };
    let peak_rss = peak_rss_kib();
    print_report(&args, order, &ours, naive.as_ref(), cpu, peak_rss);
    if ours.delivered != ours.expected || ours.fifo_violations > 0 || !ours.same_order {
        bail!("the run lost or misordered messages");
    }
    Ok(())
}

async fn run_messenger(
    args: &BenchArgs,
    order: Order,
    faults: FaultConfig,
) -> anyhow::Result<Measured> {
    let tracker = Tracker::spawn(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        TrackerConfig::default(),
    )
    .await
    .context("starting the tracker")?;
    let n = args.members;
    let members: Vec<Arc<Mutex<Member>>> = (0..n).map(|_| Arc::default()).collect();
    let views = Arc::new(AtomicU64::new(0));
    let changed = Arc::new(Notify::new());
    let mut clients = Vec::new();
    for (i, seen) in members.iter().enumerate() {
        let (seen, views, changed) = (seen.clone(), views.clone(), changed.clone());
        let views2 = views.clone();
        let changed2 = changed.clone();
        let handler = Callbacks::new()
            .on_message(move |m| {
                let mut guard = seen.lock().unwrap_or_else(|e| e.into_inner());
                let s = &mut *guard;
                let last = s.last.entry(m.sender.to_string()).or_insert(0);
                if m.seq != *last + 1 {
                    s.fifo_violations += 1;
                }
                *last = m.seq;
                s.delivered_all += 1;
                s.order_hash = mix(mix(s.order_hash, m.sender_id.0), m.seq);
                if !m.own {
                    s.delivered_from_others += 1;
                    s.latency.record(m.latency.as_micros() as u64);
                }
                s.last_delivery = Some(Instant::now());
                drop(guard);
                changed.notify_waiters();
            })
            .on_view(move |v| {
                if v.members.len() == n {
                    views2.fetch_add(1, Ordering::SeqCst);
                    changed2.notify_waiters();
                }
            });
        let mut config = ClientConfig::new(tracker.local_addr(), format!("m{i}"));
        config.faults = Some(faults);
        let client = Client::connect(config, handler).await?;
        client.join("bench", order, None).await?;
        clients.push(client);
    }
    wait_until(&changed, Duration::from_secs(30), || {
        views.load(Ordering::SeqCst) >= n as u64
    })
    .await
    .context("members did not all see each other")?;

    let senders: Vec<usize> = match args.workload {
        Workload::AllToAll => (0..n).collect(),
        Workload::FanOut => vec![0],
    };
    let expected = senders.len() as u64 * (n as u64 - 1) * args.messages;
    let payload = Bytes::from(vec![b'x'; args.payload]);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for &i in &senders {
        let (client, payload, count, rate) = (
            clients[i].clone(),
            payload.clone(),
            args.messages,
            args.rate,
        );
        tasks.push(tokio::spawn(async move {
            let mut pace = (rate > 0)
                .then(|| tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64)));
            for _ in 0..count {
                if let Some(p) = pace.as_mut() {
                    p.tick().await;
                }
                client.send("bench", payload.clone()).await?;
            }
            Ok::<_, messenger_core::ClientError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let delivered = || {
        members
            .iter()
            .map(|m| {
                m.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .delivered_from_others
            })
            .sum::<u64>()
    };
    // Done when every member has delivered every message sent to the group, its own included:
    // the order check compares complete sequences.
    let per_member = senders.len() as u64 * args.messages;
    let complete = || {
        members
            .iter()
            .all(|m| m.lock().unwrap_or_else(|e| e.into_inner()).delivered_all >= per_member)
    };
    let _ = wait_until(&changed, Duration::from_secs(60), complete).await;
    let mut latency = LatencyHistogram::default();
    let mut last = started;
    let mut fifo_violations = 0;
    let mut hashes = Vec::new();
    for m in &members {
        let m = m.lock().unwrap_or_else(|e| e.into_inner());
        latency.merge(&m.latency);
        fifo_violations += m.fifo_violations;
        hashes.push(m.order_hash);
        if let Some(t) = m.last_delivery {
            last = last.max(t);
        }
    }
    let same_order = order == Order::Fifo
        || args.workload == Workload::FanOut
        || hashes.windows(2).all(|w| w[0] == w[1]);
    for c in &clients {
        c.shutdown().await;
    }
    tracker.shutdown().await;
    Ok(Measured {
        expected,
        delivered: delivered(),
        elapsed: last - started,
        latency,
        fifo_violations,
        same_order,
    })
}

/// The naive baseline: plain UDP, one `send_to` per peer per message, no reliability.
async fn run_naive(args: &BenchArgs) -> anyhow::Result<Measured> {
    let n = args.members;
    let mut sockets = Vec::new();
    for _ in 0..n {
        sockets.push(Arc::new(
            tokio::net::UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?,
        ));
    }
    let addrs: Vec<SocketAddr> = sockets
        .iter()
        .map(|s| s.local_addr())
        .collect::<Result<_, _>>()?;
    let received = Arc::new(AtomicU64::new(0));
    let last = Arc::new(Mutex::new(None::<Instant>));
    let mut receivers = Vec::new();
    for s in &sockets {
        let (s, received, last) = (s.clone(), received.clone(), last.clone());
        receivers.push(tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let mut latency = LatencyHistogram::default();
            // Stop once nothing arrived for a while after the senders finished.
            while let Ok(Ok((len, _))) =
                tokio::time::timeout(Duration::from_millis(300), s.recv_from(&mut buf)).await
            {
                if len >= 8 {
                    let sent = u64::from_le_bytes(buf[..8].try_into().unwrap_or([0; 8]));
                    latency.record(wall_micros().saturating_sub(sent));
                }
                received.fetch_add(1, Ordering::Relaxed);
                *last.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
            }
            latency
        }));
    }
    let senders: Vec<usize> = match args.workload {
        Workload::AllToAll => (0..n).collect(),
        Workload::FanOut => vec![0],
    };
    let expected = senders.len() as u64 * (n as u64 - 1) * args.messages;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for &i in &senders {
        let (s, peers, count, size, rate) = (
            sockets[i].clone(),
            addrs
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, a)| *a)
                .collect::<Vec<_>>(),
            args.messages,
            args.payload.max(8),
            args.rate,
        );
        tasks.push(tokio::spawn(async move {
            let mut msg = vec![b'x'; size];
            let mut pace = (rate > 0)
                .then(|| tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64)));
            for _ in 0..count {
                if let Some(p) = pace.as_mut() {
                    p.tick().await;
                }
                msg[..8].copy_from_slice(&wall_micros().to_le_bytes());
                for p in &peers {
                    let _ = s.send_to(&msg, p).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let mut latency = LatencyHistogram::default();
    for r in receivers {
        latency.merge(&r.await?);
    }
    let end = last
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .unwrap_or(started);
    Ok(Measured {
        expected,
        delivered: received.load(Ordering::Relaxed),
        elapsed: end.saturating_duration_since(started),
        latency,
        fifo_violations: 0,
        same_order: true,
    })
}

async fn wait_until(
    changed: &Notify,
    timeout: Duration,
    done: impl Fn() -> bool,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let notified = changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if done() {
            return Ok(());
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            bail!("timed out after {timeout:?}");
        }
    }
}

fn wall_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// User + system CPU time of this process, from /proc (Linux); zero elsewhere.
fn cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the whole line, 11 and 12 after the name.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// Peak resident memory of this process in KiB (VmHWM), from /proc (Linux).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn print_report(
    args: &BenchArgs,
    order: Order,
    ours: &Measured,
    naive: Option<&Measured>,
    cpu: Duration,
    peak_rss: u64,
) {
    let ms = |micros: u64| micros as f64 / 1000.0;
    let lat = |m: &Measured| {
        serde_json::json!({
            "p50_ms": ms(m.latency.percentile(0.5)),
            "p90_ms": ms(m.latency.percentile(0.9)),
            "p99_ms": ms(m.latency.percentile(0.99)),
            "max_ms": ms(m.latency.max()),
        })
    };
    let report = serde_json::json!({
        "members": args.members,
        "messages_per_sender": args.messages,
        "payload_bytes": args.payload,
        "order": format!("{order:?}").to_lowercase(),
        "workload": format!("{:?}", args.workload),
        "rate_per_sender": args.rate,
        "faults": args.faults,
        "messenger": {
            "expected": ours.expected,
            "delivered": ours.delivered,
            "lost": ours.expected.saturating_sub(ours.delivered),
            "fifo_violations": ours.fifo_violations,
            "same_total_order": ours.same_order,
            "seconds": ours.elapsed.as_secs_f64(),
            "deliveries_per_sec": ours.rate(),
            "latency": lat(ours),
            "cpu_seconds": cpu.as_secs_f64(),
        },
        "naive_udp": naive.map(|b| serde_json::json!({
            "expected": b.expected,
            "delivered": b.delivered,
            "lost": b.expected.saturating_sub(b.delivered),
            "seconds": b.elapsed.as_secs_f64(),
            "deliveries_per_sec": b.rate(),
            "latency": lat(b),
        })),
        "ratio_to_naive": naive.map(|b| ours.rate() / b.rate().max(1e-9)),
        "peak_rss_kib_process": peak_rss,
    });
    if args.json {
        println!("{report}");
        return;
    }
    println!(
        "messenger bench: {} members, {} messages/sender of {} bytes, {:?}, {:?}{}",
        args.members,
        args.messages,
        args.payload,
        order,
        args.workload,
        args.faults
            .as_deref()
            .map(|f| format!(", faults {f}"))
            .unwrap_or_default()
    );
    let line = |name: &str, m: &Measured| {
        println!(
            "  {name:<10} {:>10.0} deliveries/s  ({} of {} delivered, lost {})  latency p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
            m.rate(),
            m.delivered,
            m.expected,
            m.expected.saturating_sub(m.delivered),
            ms(m.latency.percentile(0.5)),
            ms(m.latency.percentile(0.9)),
            ms(m.latency.percentile(0.99)),
            ms(m.latency.max()),
        );
    };
    line("messenger", ours);
    if let Some(b) = naive {
        line("naive UDP", b);
        println!("  ratio to naive: {:.2}", ours.rate() / b.rate().max(1e-9));
    }
    println!(
        "  checks: fifo violations {}, same total order {}; CPU {:.2} s; peak RSS {} KiB (process)",
        ours.fifo_violations,
        ours.same_order,
        cpu.as_secs_f64(),
        peak_rss
    );
}
