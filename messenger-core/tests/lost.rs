//! A message that no member can get makes the ones behind it undeliverable once its sender
//! leaves: the survivors report them as `ClientEvent::Lost`, in both orders. Real sockets on
//! 127.0.0.1; the fault injector's `drop_seq` drops every datagram that carries the sender's
//! first message (its first sending and every resend), so the loss is certain, not likely.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use messenger_core::client::{Client, ClientEvent};
use messenger_core::tracker::Tracker;
use messenger_core::{FaultConfig, Order};
use support::Log;

const WAIT: Duration = Duration::from_secs(30);

async fn client(tracker: SocketAddr, name: &str, faults: FaultConfig) -> (Client, Log) {
    support::connect(tracker, name, |config| {
        config.faults = Some(faults);
        // The sender's first message is never stable: do not wait long for it when leaving.
        config.leave_timeout = Duration::from_millis(300);
    })
    .await
}

async fn lost_after_the_sender_leaves(order: Order) {
    let tracker = Tracker::spawn(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        support::tracker_config(),
    )
    .await
    .expect("tracker binds");
    let addr = tracker.local_addr();
    let group = format!("lossy-{order}");
    let (ann, ann_log) = client(addr, "ann", FaultConfig::default()).await;
    let (bob, bob_log) = client(addr, "bob", FaultConfig::default()).await;
    let faults = FaultConfig::parse("drop_seq=1").expect("valid spec");
    let (cid, _cid_log) = client(addr, "cid", faults).await;
    for c in [&ann, &bob, &cid] {
        c.join(&group, order, None).await.expect("join");
    }
    for (name, log) in [("ann", &ann_log), ("bob", &bob_log)] {
        log.wait_for(&format!("{name} sees all three"), WAIT, |s| {
            s.has_members(&group, 3)
        })
        .await;
    }
    // Two messages too large to share a datagram: the first never arrives, the second does
    // and waits behind the gap.
    let big = |tag: &str| format!("{tag}{}", "x".repeat(900));
    cid.send(&group, big("first")).await.expect("send");
    cid.send(&group, big("second")).await.expect("send");
    cid.leave(&group).await.expect("leave");
    assert!(
        cid.fault_counts().dropped >= 1,
        "the first message was dropped"
    );

    for (name, log) in [("ann", &ann_log), ("bob", &bob_log)] {
        log.wait_for(
            &format!("{name} reports cid's second message lost"),
            WAIT,
            |s| {
                s.events.iter().any(|e| {
                    matches!(e, ClientEvent::Lost { group: g, sender, first: 2, last: 2 }
                    if *g == group && sender == "cid")
                })
            },
        )
        .await;
        assert_eq!(
            log.with(|s| s.from(&group, "cid")),
            0,
            "{name}: nothing of cid's delivered"
        );
    }
    for c in [ann, bob, cid] {
        c.quit().await.expect("quit");
    }
    tracker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_reports_the_messages_behind_a_gap_lost_when_their_sender_leaves() {
    lost_after_the_sender_leaves(Order::Fifo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn total_order_reports_the_messages_behind_a_gap_lost_when_their_sender_leaves() {
    lost_after_the_sender_leaves(Order::Total).await;
}
