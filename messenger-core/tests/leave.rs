//! `Client::leave` first waits, for a bounded time, until the client's messages in the group
//! are stable: a message sent right before leaving reaches the others. Real sockets on
//! 127.0.0.1; waits for events with timeouts, never sleeps.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use messenger_core::client::Client;
use messenger_core::tracker::{Tracker, TrackerHandle};
use messenger_core::{FaultConfig, Order};
use support::Log;

const WAIT: Duration = Duration::from_secs(30);

async fn tracker() -> TrackerHandle {
    Tracker::spawn(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        support::tracker_config(),
    )
    .await
    .expect("tracker binds")
}

async fn client(
    tracker: &TrackerHandle,
    name: &str,
    faults: FaultConfig,
    leave_timeout: Duration,
) -> (Client, Log) {
    let log = Log::new();
    let mut config = support::client_config(tracker.local_addr(), name);
    config.faults = Some(faults);
    config.leave_timeout = leave_timeout;
    let c = Client::connect(config, log.handler())
        .await
        .unwrap_or_else(|e| panic!("{name} connects: {e}"));
    (c, log)
}

/// Every datagram of the sender leaves 15 to 300 ms late: without waiting, its last messages
/// would arrive after the others had the view without it, and be dropped.
fn late() -> FaultConfig {
    FaultConfig::default()
        .with_reorder(1.0)
        .with_delay(Duration::from_millis(300))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_right_before_leaving_are_delivered() {
    for order in [Order::Fifo, Order::Total] {
        let t = tracker().await;
        let quick = FaultConfig::default();
        let (ann, ann_log) = client(&t, "ann", quick, Duration::from_secs(2)).await;
        let (bob, bob_log) = client(&t, "bob", quick, Duration::from_secs(2)).await;
        let (cid, _) = client(&t, "cid", late(), Duration::from_secs(10)).await;
        for c in [&ann, &bob, &cid] {
            c.join("bye", order, None).await.expect("join");
        }
        for log in [&ann_log, &bob_log] {
            log.wait_for("three members", WAIT, |s| s.has_members("bye", 3))
                .await;
        }
        for i in 1..=3 {
            cid.send("bye", format!("cid-{i}")).await.expect("send");
        }
        cid.leave("bye").await.expect("leave");
        for (name, log) in [("ann", &ann_log), ("bob", &bob_log)] {
            log.wait_for(
                &format!("{name} ({order:?}) delivers cid's last messages"),
                WAIT,
                |s| s.from("bye", "cid") == 3,
            )
            .await;
            log.wait_for(&format!("{name} sees cid leave"), WAIT, |s| {
                s.has_members("bye", 2)
            })
            .await;
        }
        for c in [ann, bob, cid] {
            c.quit().await.expect("quit");
        }
        t.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_waits_no_longer_than_the_leave_timeout() {
    let t = tracker().await;
    let (ann, ann_log) = client(&t, "ann", FaultConfig::default(), Duration::from_secs(2)).await;
    // Nothing cid sends arrives: its messages never become stable.
    let mute = FaultConfig::default().with_loss(1.0);
    let timeout = Duration::from_millis(300);
    let (cid, _) = client(&t, "cid", mute, timeout).await;
    ann.join("g", Order::Fifo, None).await.expect("join");
    cid.join("g", Order::Fifo, None).await.expect("join");
    ann_log
        .wait_for("two members", WAIT, |s| s.has_members("g", 2))
        .await;
    cid.send("g", "lost").await.expect("send");
    let start = Instant::now();
    cid.leave("g").await.expect("leave");
    let took = start.elapsed();
    assert!(took >= timeout, "left after {took:?}, before the timeout");
    assert!(took < timeout * 10, "left after {took:?}");
    ann_log
        .wait_for("ann sees cid leave", WAIT, |s| s.has_members("g", 1))
        .await;
    for c in [ann, cid] {
        c.quit().await.expect("quit");
    }
    t.shutdown().await;
}
