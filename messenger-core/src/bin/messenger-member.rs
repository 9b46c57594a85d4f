//! `messenger-member`: one member in its own process that joins a group and sends numbered
//! messages (`<name>-1`, `<name>-2`, ...) until it has sent `count` or is killed. The crash test
//! kills it with SIGKILL mid-stream; it is also handy to load a group by hand.
//!
//! ```text
//! messenger-member <tracker addr> <name> <group> <fifo|total> <count> <gap µs>
//! ```
//!
//! It prints `joined` once it is in the group and `sent <n>` every 100 messages, on stdout.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use messenger_core::client::{Client, ClientConfig};
use messenger_core::Order;

fn usage() -> ! {
    eprintln!(
        "usage: messenger-member <tracker addr> <name> <group> <fifo|total> <count> <gap µs>"
    );
    std::process::exit(2);
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 6 {
        usage();
    }
    let tracker: SocketAddr = args[0].parse().unwrap_or_else(|_| usage());
    let (name, group) = (&args[1], &args[2]);
    let order: Order = args[3].parse().unwrap_or_else(|_| usage());
    let count: u64 = args[4].parse().unwrap_or_else(|_| usage());
    let gap = Duration::from_micros(args[5].parse().unwrap_or_else(|_| usage()));

    let client = match Client::connect(ClientConfig::new(tracker, name.as_str()), ()).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("messenger-member: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = client.join(group, order, None).await {
        eprintln!("messenger-member: join {group}: {e}");
        std::process::exit(1);
    }
    let mut out = std::io::stdout();
    let _ = writeln!(out, "joined");
    let _ = out.flush();
    for i in 1..=count {
        if let Err(e) = client.send(group, format!("{name}-{i}")).await {
            eprintln!("messenger-member: send: {e}");
            std::process::exit(1);
        }
        if i % 100 == 0 {
            let _ = writeln!(out, "sent {i}");
            let _ = out.flush();
        }
        if !gap.is_zero() {
            tokio::time::sleep(gap).await;
        }
    }
    let _ = client.flush(Duration::from_secs(5)).await;
    let _ = client.quit().await;
}
