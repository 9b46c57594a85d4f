//! A member whose datagrams all vanish, while its tracker connection stays up (it answers
//! every heartbeat), is reported by the others and removed; the group goes on without it.
//! Real sockets on 127.0.0.1; waits for events with timeouts, never sleeps.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use messenger_core::client::{Client, ClientEvent};
use messenger_core::tracker::Tracker;
use messenger_core::{FaultConfig, Order};
use support::Log;

const WAIT: Duration = Duration::from_secs(30);
// Long enough that a client thread starved by a busy machine (CI runs beside other builds) is
// not taken for a silent member: an honest member wrongly reported would fail the test.
const SUSPECT_TIMEOUT: Duration = Duration::from_millis(1_000);

async fn client(tracker: SocketAddr, name: &str, faults: FaultConfig) -> (Client, Log) {
    support::connect(tracker, name, |config| {
        config.faults = Some(faults);
        config.group.suspect_timeout = SUSPECT_TIMEOUT;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_silent_on_the_data_plane_is_removed_and_the_others_go_on() {
    let tracker = Tracker::spawn(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        support::tracker_config(),
    )
    .await
    .expect("tracker binds");
    let addr = tracker.local_addr();
    let (ann, ann_log) = client(addr, "ann", FaultConfig::default()).await;
    let (bob, bob_log) = client(addr, "bob", FaultConfig::default()).await;
    // Every datagram cid sends is lost; its TCP connection to the tracker is untouched.
    let mute = FaultConfig::default().with_loss(1.0);
    let (cid, cid_log) = client(addr, "cid", mute).await;
    for c in [&ann, &bob, &cid] {
        c.join("quiet", Order::Total, None).await.expect("join");
    }

    // ann and bob report cid; the tracker removes it from the group (a normal view change).
    for (name, log) in [("ann", &ann_log), ("bob", &bob_log)] {
        log.wait_for(&format!("{name} sees the view without cid"), WAIT, |s| {
            s.views.iter().any(|v| {
                v.group == "quiet" && v.left.iter().any(|n| n == "cid") && v.members.len() == 2
            })
        })
        .await;
    }
    // cid is told it was removed (it did not leave), and its session goes on.
    cid_log
        .wait_for("cid learns it was removed", WAIT, |s| {
            s.events
                .iter()
                .any(|e| matches!(e, ClientEvent::Removed { group } if group == "quiet"))
        })
        .await;
    let stats = ann.tracker_stats().await.expect("stats");
    assert!(stats.members_suspected >= 1, "{stats:?}");
    assert_eq!(stats.clients, 3, "cid is still connected");
    assert_eq!(stats.clients_dropped, 0, "cid answered its heartbeats");

    // The survivors' total order goes on: what they send now is delivered to both.
    for i in 1..=5 {
        ann.send("quiet", format!("ann-{i}")).await.expect("send");
        bob.send("quiet", format!("bob-{i}")).await.expect("send");
    }
    for (name, log) in [("ann", &ann_log), ("bob", &bob_log)] {
        log.wait_for(&format!("{name} delivers all ten"), WAIT, |s| {
            s.from("quiet", "ann") == 5 && s.from("quiet", "bob") == 5
        })
        .await;
    }
    assert_eq!(
        ann_log.deliveries("quiet"),
        bob_log.deliveries("quiet"),
        "the same order at both"
    );
    for c in [ann, bob, cid] {
        c.quit().await.expect("quit");
    }
    tracker.shutdown().await;
}
