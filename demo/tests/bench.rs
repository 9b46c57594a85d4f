//! The benchmark runs end to end and reports a loss-free, well-ordered run (correctness only:
//! no timing is asserted).

use std::process::Command;

fn bench(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_messenger"))
        .arg("bench")
        .args(args)
        .args(["--json", "--members", "3", "--messages", "300"])
        .env_remove("MESSENGER_FAULTS")
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON report")
}

#[test]
fn quick_bench_reports_a_lossless_ordered_run_and_the_baseline() {
    for order in ["fifo", "total"] {
        let r = bench(&["--order", order, "--faults", "loss=0.05,seed=3"]);
        let ours = &r["messenger"];
        assert_eq!(ours["expected"], 3 * 2 * 300, "{order}");
        assert_eq!(ours["lost"], 0, "{order}");
        assert_eq!(ours["fifo_violations"], 0, "{order}");
        assert_eq!(ours["same_total_order"], true, "{order}");
        assert!(ours["deliveries_per_sec"].as_f64().unwrap() > 0.0);
        assert!(r["naive_udp"]["delivered"].as_u64().unwrap() > 0);
        assert!(r["ratio_to_naive"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn fan_out_without_baseline() {
    let r = bench(&["--workload", "fan-out", "--no-baseline"]);
    assert_eq!(r["messenger"]["expected"], 2 * 300);
    assert_eq!(r["messenger"]["lost"], 0);
    assert!(r["naive_udp"].is_null());
}
