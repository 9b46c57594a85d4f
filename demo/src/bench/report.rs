//! The report: text for people, one JSON object with `--json` (docs/BENCHMARKS.md lists the
//! keys; scripts/bench_table.py reads them).

use messenger_core::LatencyHistogram;
use serde_json::{json, Value};

use super::baseline::Baseline;
use super::latency::summary;
use super::member::fault_counts_json;
use super::{Ours, PhaseOutcome, Plan};
use crate::cli::BenchArgs;

fn ratio(ours: Option<&PhaseOutcome>, base: Option<&Baseline>) -> Option<f64> {
    Some(ours?.rate() / base?.rate().max(1e-9))
}

/// The phase measured at full speed, if the measured run was.
fn full_speed(ours: &Ours) -> Option<&PhaseOutcome> {
    ours.phases.first().filter(|p| p.spec.rate == 0)
}

/// The phase at a fixed offered rate: the paced run, or the measured run if `--rate` was given.
fn at_rate(ours: &Ours) -> Option<&PhaseOutcome> {
    ours.phases.iter().find(|p| p.spec.rate > 0)
}

pub fn to_json(
    args: &BenchArgs,
    plan: &Plan,
    ours: &Ours,
    naive: Option<&Baseline>,
    ceiling: Option<&Baseline>,
) -> Value {
    let main = ours.phases.first();
    let baseline = |b: &Baseline| {
        let mut v = json!({
            "expected": b.expected,
            "delivered": b.delivered,
            "lost": b.lost(),
            "seconds": b.elapsed.as_secs_f64(),
            "deliveries_per_sec": b.rate(),
            "datagrams": b.datagrams,
            "latency": summary(&b.latency),
        });
        if let Some(c) = &b.ceiling {
            v["messages_per_datagram"] = json!(c.messages_per_datagram);
            v["window_datagrams"] = json!(c.window);
            v["credit_every_datagrams"] = json!(c.credit_every);
            v["credit_requests"] = json!(c.credit_requests);
            v["stalled_senders"] = json!(c.stalled_senders);
        }
        v
    };
    json!({
        "members": plan.members,
        "messages_per_sender": args.messages,
        "payload_bytes": plan.payload,
        "order": plan.order_name(),
        "workload": match args.workload {
            crate::cli::Workload::AllToAll => "all-to-all",
            crate::cli::Workload::FanOut => "fan-out",
        },
        "mode": if args.processes { "processes" } else { "threads" },
        "offered_rate_per_sec": args.rate,
        "faults": args.faults,
        // Null without --faults: nothing was asked for, so nothing is counted.
        "faults_injected": args.faults.as_ref().map(|_| fault_counts_json(&ours.faults_injected)),
        "messenger": main.map(|m| json!({
            "expected": m.expected,
            "delivered": m.delivered,
            "lost": m.lost(),
            "fifo_violations": ours.fifo_violations,
            "same_total_order": ours.same_order,
            "seconds": m.elapsed.as_secs_f64(),
            "deliveries_per_sec": m.rate(),
            "latency": summary(&m.latency),
            "cpu_seconds": m.cpu.as_secs_f64(),
            "stalled": ours.stalled,
        })),
        "latency_full_speed": full_speed(ours).map(|p| summary(&p.latency)),
        "latency_at_rate": at_rate(ours).map(|p| {
            let mut v = summary(&p.latency);
            v["rate_per_sec"] = json!(p.spec.rate);
            v["messages_per_sender"] = json!(p.spec.messages);
            v["expected"] = json!(p.expected);
            v["delivered"] = json!(p.delivered);
            v["lost"] = json!(p.lost());
            v["seconds"] = json!(p.elapsed.as_secs_f64());
            v
        }),
        "naive_udp": naive.map(baseline),
        "ceiling_udp": ceiling.map(baseline),
        "ratio_to_naive": ratio(main, naive),
        "ratio_to_ceiling": ratio(main, ceiling),
        "peak_rss_kib_process": ours.peak_rss_kib_process,
        "peak_rss_kib_per_member": ours.peak_rss_kib_per_member,
        "cpu_seconds_per_member": ours.cpu_seconds_per_member,
    })
}

fn latency_text(h: &LatencyHistogram) -> String {
    let ms = |micros: u64| micros as f64 / 1000.0;
    format!(
        "latency p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        ms(h.percentile(0.5)),
        ms(h.percentile(0.9)),
        ms(h.percentile(0.99)),
        ms(h.max()),
    )
}

pub fn print(
    args: &BenchArgs,
    plan: &Plan,
    ours: &Ours,
    naive: Option<&Baseline>,
    ceiling: Option<&Baseline>,
) {
    if args.json {
        println!("{}", to_json(args, plan, ours, naive, ceiling));
        return;
    }
    println!(
        "messenger bench: {} members ({}), {} messages/sender of {} bytes, {}, {}{}{}",
        plan.members,
        if args.processes {
            "one process each"
        } else {
            "in this process"
        },
        args.messages,
        plan.payload,
        plan.order_name(),
        match args.workload {
            crate::cli::Workload::AllToAll => "all-to-all",
            crate::cli::Workload::FanOut => "fan-out",
        },
        match args.rate {
            0 => String::new(),
            r => format!(", offered {r} messages/s"),
        },
        args.faults
            .as_deref()
            .map(|f| format!(", faults {f}"))
            .unwrap_or_default()
    );
    let line = |name: &str, rate: f64, delivered: u64, expected: u64, extra: String| {
        println!(
            "  {name:<12} {rate:>11.0} deliveries/s  ({delivered} of {expected} delivered, lost {}){extra}",
            expected.saturating_sub(delivered),
        );
    };
    for p in &ours.phases {
        let name = match p.spec.rate {
            0 => "messenger".to_string(),
            r => format!("at {r}/s"),
        };
        line(
            &name,
            p.rate(),
            p.delivered,
            p.expected,
            format!(", CPU {:.2} s", p.cpu.as_secs_f64()),
        );
        println!("  {:<12} {}", "", latency_text(&p.latency));
    }
    for (name, b) in [("naive UDP", naive), ("ceiling UDP", ceiling)] {
        let Some(b) = b else { continue };
        let extra = b
            .ceiling
            .as_ref()
            .map(|c| {
                format!(
                    ", {} messages/datagram, window {} datagrams{}",
                    c.messages_per_datagram,
                    c.window,
                    match c.stalled_senders {
                        0 => String::new(),
                        s => format!(", {s} senders gave up waiting for credit"),
                    }
                )
            })
            .unwrap_or_default();
        line(name, b.rate(), b.delivered, b.expected, extra);
        println!("  {:<12} {}", "", latency_text(&b.latency));
    }
    let main = ours.phases.first();
    let ratios: Vec<String> = [
        ("naive", ratio(main, naive)),
        ("ceiling", ratio(main, ceiling)),
    ]
    .into_iter()
    .filter_map(|(name, r)| r.map(|r| format!("{r:.3} of {name}")))
    .collect();
    if !ratios.is_empty() {
        println!("  ours: {}", ratios.join(", "));
    }
    println!(
        "  checks: fifo violations {}, same total order {}{}",
        ours.fifo_violations,
        ours.same_order
            .map_or_else(|| "n/a (fifo)".to_string(), |s| s.to_string()),
        ours.stalled
            .as_deref()
            .map(|s| format!(", stalled: {s}"))
            .unwrap_or_default()
    );
    if args.faults.is_some() {
        let f = &ours.faults_injected;
        println!(
            "  faults injected: {} datagrams dropped, {} duplicated, {} delayed",
            f.dropped, f.duplicated, f.delayed
        );
    }
    match &ours.peak_rss_kib_per_member {
        Some(per) => println!(
            "  peak RSS per member: {} KiB (max {} KiB); this process (tracker): {} KiB",
            per.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            per.iter().max().copied().unwrap_or(0),
            ours.peak_rss_kib_process
        ),
        None => println!(
            "  peak RSS {} KiB for all {} members and the tracker together (one process)",
            ours.peak_rss_kib_process, plan.members
        ),
    }
}
