//! The benchmark runs end to end and reports a loss-free, well-ordered run, its baselines and
//! the keys scripts/bench_table.py reads (correctness only: no timing is asserted).

use std::process::Command;

use serde_json::Value;

/// Runs `messenger bench` with 3 members, 300 messages per sender and a short paced phase.
fn bench(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_messenger"))
        .arg("bench")
        .args(["--json", "--members", "3", "--messages", "300"])
        .args(["--latency-rate", "2000", "--latency-secs", "0.2"])
        .args(args)
        .env_remove("MESSENGER_FAULTS")
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "bench {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        out.stderr.is_empty(),
        "no progress bar when stderr is not a terminal: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON report")
}

fn assert_lossless_and_ordered(r: &Value, what: &str) {
    let ours = &r["messenger"];
    assert_eq!(ours["expected"], 3 * 2 * 300, "{what}");
    assert_eq!(ours["delivered"], 3 * 2 * 300, "{what}");
    assert_eq!(ours["lost"], 0, "{what}");
    assert_eq!(ours["fifo_violations"], 0, "{what}");
    // Meaningful in total order only: FIFO members may interleave senders differently.
    if r["order"] == "total" {
        assert_eq!(ours["same_total_order"], true, "{what}");
    } else {
        assert!(ours["same_total_order"].is_null(), "{what}");
    }
    assert!(ours["deliveries_per_sec"].as_f64().unwrap() > 0.0, "{what}");
    assert!(ours["stalled"].is_null(), "{what}");
}

/// The fault injectors' counts summed over the members: `(dropped, duplicated, delayed)`.
fn faults_injected(r: &Value, what: &str) -> (u64, u64, u64) {
    let f = &r["faults_injected"];
    let count = |key: &str| {
        f[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{what}: no faults_injected.{key} in {f}"))
    };
    (count("dropped"), count("duplicated"), count("delayed"))
}

fn assert_latency(v: &Value, what: &str) {
    for key in ["p50_ms", "p90_ms", "p99_ms", "max_ms"] {
        assert!(v[key].as_f64().is_some(), "{what}: {key} in {v}");
    }
    assert!(v["samples"].as_u64().unwrap() > 0, "{what}: {v}");
}

#[test]
fn quick_bench_reports_a_lossless_ordered_run_and_both_baselines() {
    for order in ["fifo", "total"] {
        let r = bench(&["--order", order, "--faults", "loss=0.05,seed=3"]);
        assert_lossless_and_ordered(&r, order);
        // Lossless because the protocol recovered, not because nothing was lost: datagrams
        // were dropped, and only dropped.
        let (dropped, duplicated, delayed) = faults_injected(&r, order);
        assert!(dropped > 0, "{order}: no datagram was dropped");
        assert_eq!((duplicated, delayed), (0, 0), "{order}");
        assert_eq!(r["mode"], "threads");
        assert_latency(&r["latency_full_speed"], order);
        let paced = &r["latency_at_rate"];
        assert_latency(paced, order);
        assert_eq!(paced["rate_per_sec"], 2000, "{order}");
        assert_eq!(paced["lost"], 0, "{order}");
        assert_eq!(paced["expected"], paced["delivered"], "{order}");
        assert!(r["naive_udp"]["delivered"].as_u64().unwrap() > 0);
        assert!(r["ratio_to_naive"].as_f64().unwrap() > 0.0);
        // The ceiling's credit window keeps every receiver's queue within its socket
        // buffer: on loopback it loses nothing.
        let ceiling = &r["ceiling_udp"];
        assert_eq!(ceiling["expected"], 3 * 2 * 300, "{order}");
        assert_eq!(ceiling["lost"], 0, "{order}: {ceiling}");
        assert_eq!(ceiling["stalled_senders"], 0, "{order}");
        assert!(ceiling["messages_per_datagram"].as_u64().unwrap() > 1);
        assert!(r["ratio_to_ceiling"].as_f64().unwrap() > 0.0);
        assert!(r["peak_rss_kib_process"].as_u64().unwrap() > 0);
        assert!(r["peak_rss_kib_per_member"].is_null());
    }
}

#[test]
fn fan_out_without_baseline() {
    let r = bench(&["--workload", "fan-out", "--no-baseline"]);
    assert_eq!(r["messenger"]["expected"], 2 * 300);
    assert_eq!(r["messenger"]["lost"], 0);
    // No --faults: no counts at all (not zeros that look like a lossy run without loss).
    assert!(r["faults"].is_null());
    assert!(r["faults_injected"].is_null(), "{}", r["faults_injected"]);
    for key in [
        "naive_udp",
        "ceiling_udp",
        "ratio_to_naive",
        "ratio_to_ceiling",
    ] {
        assert!(r[key].is_null(), "{key}");
    }
}

#[test]
fn the_ceiling_alone_at_an_offered_rate() {
    let r = bench(&["--baseline", "ceiling", "--rate", "6000"]);
    assert_lossless_and_ordered(&r, "--rate");
    assert!(r["naive_udp"].is_null());
    assert!(r["ceiling_udp"]["delivered"].as_u64().unwrap() > 0);
    assert_eq!(r["ceiling_udp"]["lost"], 0);
    // With a rate, the measured run is the paced one: no full-speed latency, no second run.
    assert!(r["latency_full_speed"].is_null());
    assert_eq!(r["latency_at_rate"]["rate_per_sec"], 6000);
    assert_eq!(r["latency_at_rate"]["messages_per_sender"], 300);
    assert_eq!(r["offered_rate_per_sec"], 6000);
}

/// Also under injected duplication: each member process counts its own faults and the
/// benchmark sums what they report.
#[test]
fn one_process_per_member() {
    let r = bench(&[
        "--processes",
        "--order",
        "total",
        "--baseline",
        "none",
        "--faults",
        "dup=0.05,seed=4",
    ]);
    assert_lossless_and_ordered(&r, "--processes");
    let (dropped, duplicated, delayed) = faults_injected(&r, "--processes");
    assert!(duplicated > 0, "no datagram was duplicated");
    assert_eq!((dropped, delayed), (0, 0));
    assert_eq!(r["mode"], "processes");
    assert_eq!(r["latency_at_rate"]["lost"], 0);
    let per_member = r["peak_rss_kib_per_member"]
        .as_array()
        .expect("per-member memory");
    assert_eq!(per_member.len(), 3);
    assert!(per_member.iter().all(|k| k.as_u64().unwrap() > 0));
    assert_eq!(r["cpu_seconds_per_member"].as_array().unwrap().len(), 3);
}
