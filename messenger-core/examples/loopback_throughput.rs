//! Rough end-to-end throughput over loopback: a tracker and N clients in this process, every
//! client sending M messages of 64 bytes to one group. For profiling the runtime; the real
//! benchmark with raw-UDP baselines is `messenger bench`.
//!
//! ```text
//! cargo run --release -p messenger-core --example loopback_throughput -- [N] [M] [fifo|total]
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use messenger_core::{Callbacks, Client, ClientConfig, FaultConfig, Order, Tracker, TrackerConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(4);
    let m: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let order = match args.get(3).map(|a| a.parse::<Order>()) {
        Some(Ok(order)) => order,
        _ => Order::Fifo,
    };
    let tracker = Tracker::spawn(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        TrackerConfig::default(),
    )
    .await?;
    let delivered = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for i in 0..n {
        let d = delivered.clone();
        let handler = Callbacks::new().on_message(move |msg| {
            if !msg.own {
                d.fetch_add(1, Ordering::Relaxed);
            }
        });
        let mut config = ClientConfig::new(tracker.local_addr(), format!("c{i}"));
        config.faults = Some(FaultConfig::default());
        let c = Client::connect(config, handler).await?;
        c.join("bench", order, None).await?;
        clients.push(c);
    }
    // Wait until everyone sees everyone.
    loop {
        let v = clients[0].members("bench").await?;
        if v.members.len() == n {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await; // views reach all members
    let payload = bytes::Bytes::from(vec![b'x'; 64]);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in &clients {
        let c = c.clone();
        let p = payload.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..m {
                c.send("bench", p.clone()).await.expect("send");
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let expected = (n as u64) * (n as u64 - 1) * m;
    while delivered.load(Ordering::Relaxed) < expected {
        if started.elapsed() > Duration::from_secs(120) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = started.elapsed();
    let got = delivered.load(Ordering::Relaxed);
    println!(
        "{order:?} n={n} m={m}: {got}/{expected} delivered in {:.3} s = {:.0} deliveries/s",
        elapsed.as_secs_f64(),
        got as f64 / elapsed.as_secs_f64()
    );
    for c in &clients {
        c.shutdown().await;
    }
    tracker.shutdown().await;
    if got < expected {
        return Err(format!("only {got} of {expected} deliveries within 120 s").into());
    }
    Ok(())
}
