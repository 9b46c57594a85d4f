//! A tracker and two clients in one process: they join a total-order group, say hello, and
//! print what they receive. Run it with
//!
//! ```text
//! cargo run -p messenger-core --example hello_group
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use messenger_core::{Callbacks, Client, ClientConfig, Order, Tracker, TrackerConfig};
use tokio::sync::mpsc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A tracker on a free port of the loopback interface.
    let tracker = Tracker::spawn(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        TrackerConfig::default(),
    )
    .await?;
    println!("tracker on {}", tracker.local_addr());

    // Each client's callbacks run on its own thread; here they forward into channels.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (views_tx, mut views) = mpsc::unbounded_channel();
    let mut clients = Vec::new();
    for name in ["alice", "bob"] {
        let tx = tx.clone();
        let views_tx = views_tx.clone();
        let handler = Callbacks::new()
            .on_message(move |m| {
                let _ = tx.send(format!("{name} got from {}: {}", m.sender, m.text()));
            })
            .on_view(move |v| {
                let _ = views_tx.send((name, v.members.len()));
            });
        let client =
            Client::connect(ClientConfig::new(tracker.local_addr(), name), handler).await?;
        client.join("lobby", Order::Total, None).await?;
        clients.push(client);
    }
    // A message goes to the members of the sender's current view: wait until both clients
    // see each other (alice learns of bob's join from the tracker a little later).
    let mut full = std::collections::HashSet::new();
    while full.len() < clients.len() {
        let (name, members) = tokio::time::timeout(Duration::from_secs(10), views.recv())
            .await?
            .ok_or("handler gone")?;
        if members == clients.len() {
            full.insert(name);
        }
    }
    for c in &clients {
        c.send("lobby", format!("hello from {}", c.username()))
            .await?;
    }
    // Every client delivers both messages (its own included), in the same order.
    for _ in 0..4 {
        let line = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await?
            .ok_or("handler gone")?;
        println!("{line}");
    }
    for c in &clients {
        println!("{}", c.quit().await?);
    }
    tracker.shutdown().await;
    Ok(())
}
