//! How fast the protocol core itself is: runs the seeded simulation (8 members, every member
//! sending, 5% loss, 5% duplication, reordering) on one thread and reports the application
//! messages delivered per second of CPU, for FIFO and total order.
//!
//! ```text
//! cargo run --release -p messenger-core --features test-util --example sim_throughput
//! ```
//!
//! Everything runs on the calling thread, so wall-clock time is CPU time. The figure covers
//! encoding, decoding, the protocol state machines and the emulator; there are no sockets.

use std::time::{Duration, Instant};

use messenger_core::protocol::Order;
use messenger_core::testing::net::LinkFaults;
use messenger_core::testing::sim::{SimConfig, Simulation};

fn main() {
    let members: usize = arg(1).unwrap_or(8);
    let messages: u64 = arg(2).unwrap_or(2_000);
    let loss: f64 = arg(3).unwrap_or(0.05);
    println!("members={members} messages/sender={messages} loss={loss} dup=0.05 reorder=on");
    let only: Option<String> = arg(4);
    let orders = [Order::Fifo, Order::Total].into_iter().filter(|o| {
        only.as_deref()
            .is_none_or(|w| w == format!("{o:?}").to_lowercase())
    });
    for order in orders {
        let mut config = SimConfig::new(42, members, order);
        config.messages = messages;
        config.send_gap = Duration::from_micros(5);
        config.faults = LinkFaults::lossy(loss, 0.05, true);
        config.time_limit = Duration::from_secs(3_600);
        let mut sim = Simulation::new(config);
        let started = Instant::now();
        let report = sim.run();
        let cpu = started.elapsed();
        sim.check(&report).expect("the run is correct");
        println!(
            "{order:?}: {} deliveries in {:.2} s of CPU = {:.0} messages/s \
             ({} datagrams, {} lost by the network, virtual time {:?})",
            report.delivered,
            cpu.as_secs_f64(),
            report.delivered as f64 / cpu.as_secs_f64(),
            report.net.sent,
            report.net.lost,
            report.finished_at,
        );
    }
}

fn arg<T: std::str::FromStr>(i: usize) -> Option<T> {
    std::env::args().nth(i).and_then(|a| a.parse().ok())
}
