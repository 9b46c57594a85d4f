//! The tracker's limits as the Rust client sees them, over real sockets on loopback: paged
//! group lists fetched whole, view changes applied to the views the client holds, and the
//! errors that name a limit.

mod support;

use std::time::Duration;

use messenger_core::client::{Client, ClientConfig};
use messenger_core::protocol::wire::GROUPS_PAGE;
use messenger_core::tracker::{Tracker, TrackerConfig, TrackerHandle};
use messenger_core::{ErrorCode, Order};
use support::Log;

const WAIT: Duration = Duration::from_secs(10);

/// A view id, its members, who joined, who left.
type ViewSummary = (u64, Vec<String>, Vec<String>, Vec<String>);

async fn tracker(config: TrackerConfig) -> TrackerHandle {
    Tracker::spawn(([127, 0, 0, 1], 0).into(), config)
        .await
        .expect("tracker binds")
}

async fn client(tracker: &TrackerHandle, name: &str) -> (Client, Log) {
    let log = Log::new();
    let client = Client::connect(ClientConfig::new(tracker.local_addr(), name), log.handler())
        .await
        .expect("connects");
    (client, log)
}

#[tokio::test]
async fn groups_fetches_every_page() {
    let t = tracker(TrackerConfig {
        max_groups_per_client: 1_000,
        ..TrackerConfig::default()
    })
    .await;
    let (a, _) = client(&t, "alice").await;
    let total = GROUPS_PAGE + 7;
    for i in 0..total {
        a.join(&format!("g{i:04}"), Order::Fifo, None)
            .await
            .expect("join");
    }
    let groups = a.groups().await.expect("groups");
    let names: Vec<String> = groups.into_iter().map(|g| g.name).collect();
    let expected: Vec<String> = (0..total).map(|i| format!("g{i:04}")).collect();
    assert_eq!(names, expected);
    a.quit().await.expect("quit");
    t.shutdown().await;
}

/// Views reach the client as changes; the application still sees every view whole, with who
/// joined and who left.
#[tokio::test]
async fn the_client_rebuilds_whole_views_from_changes() {
    let t = tracker(TrackerConfig::default()).await;
    let (a, log_a) = client(&t, "alice").await;
    let (b, _) = client(&t, "bob").await;
    let (c, _) = client(&t, "carol").await;
    for x in [&a, &b, &c] {
        x.join("g", Order::Total, None).await.expect("join");
    }
    b.leave("g").await.expect("leave");
    log_a
        .wait_for("the view without bob", WAIT, |s| {
            s.views.iter().any(|v| v.view_id == 4)
        })
        .await;
    let views = log_a.with(|s| s.views.clone());
    let summary: Vec<ViewSummary> = views
        .iter()
        .map(|v| {
            (
                v.view_id,
                v.members.iter().map(|m| m.name.clone()).collect(),
                v.joined.clone(),
                v.left.clone(),
            )
        })
        .collect();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        summary,
        vec![
            (1, s(&["alice"]), s(&["alice"]), s(&[])),
            (2, s(&["alice", "bob"]), s(&["bob"]), s(&[])),
            (3, s(&["alice", "bob", "carol"]), s(&["carol"]), s(&[])),
            (4, s(&["alice", "carol"]), s(&[]), s(&["bob"])),
        ]
    );
    // The members carry their addresses as the tracker knows them.
    let last = views.last().expect("a view");
    assert_eq!(last.members[1].addr, c.udp_addr());
    for x in [a, b, c] {
        x.quit().await.expect("quit");
    }
    t.shutdown().await;
}

#[tokio::test]
async fn a_limit_reaches_the_application_as_a_typed_error() {
    let t = tracker(TrackerConfig {
        max_groups_per_client: 1,
        ..TrackerConfig::default()
    })
    .await;
    let (a, _) = client(&t, "alice").await;
    a.join("one", Order::Fifo, None).await.expect("join");
    let err = a
        .join("two", Order::Fifo, None)
        .await
        .expect_err("over the limit");
    assert_eq!(err.code(), Some(ErrorCode::LimitReached));
    assert!(err.to_string().contains("max_groups_per_client"), "{err}");
    a.quit().await.expect("quit");
    t.shutdown().await;
}
