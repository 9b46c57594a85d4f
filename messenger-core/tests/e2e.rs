//! End to end over real sockets on 127.0.0.1: a tracker and clients in this process (and
//! member processes where a crash is needed). Tests wait for events with timeouts, never sleep.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use messenger_core::client::{Client, ClientEvent};
use messenger_core::protocol::wire::{Data, Datagram, Frame, Header};
use messenger_core::protocol::{GroupConfig, SeqNo, ViewId};
use messenger_core::tracker::{AccessPolicy, Tracker, TrackerConfig, TrackerHandle};
use messenger_core::{ErrorCode, FaultConfig, Order};
use support::{check_fifo, Log, Seen};

const WAIT: Duration = Duration::from_secs(30);

fn local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A tracker on `addr` (port 0 for a free one, or the port of one that was shut down).
async fn tracker_on(addr: SocketAddr, config: TrackerConfig) -> TrackerHandle {
    Tracker::spawn(addr, config).await.expect("tracker binds")
}

fn tracker_lost(s: &Seen) -> bool {
    s.events
        .iter()
        .any(|e| matches!(e, ClientEvent::TrackerLost { .. }))
}

async fn client(tracker: SocketAddr, name: &str, faults: Option<FaultConfig>) -> (Client, Log) {
    client_with(tracker, name, faults, GroupConfig::default()).await
}

async fn client_with(
    tracker: SocketAddr,
    name: &str,
    faults: Option<FaultConfig>,
    group: GroupConfig,
) -> (Client, Log) {
    support::connect(tracker, name, |config| {
        config.faults = Some(faults.unwrap_or_default());
        config.group = group;
    })
    .await
}

/// Four clients, a FIFO group and a total-order group, everyone in both, everyone sending
/// `per_sender` messages to each: every log exact, FIFO per sender, total-order logs identical.
/// With a `window` far smaller than `per_sender`, every sender fills its window and waits for
/// room again and again (the path a lost wake-up would deadlock).
async fn exchange(faults: Option<FaultConfig>, per_sender: u64, window: u64) {
    let tracker = tracker_on(local(), support::tracker_config()).await;
    let addr = tracker.local_addr();
    let names = ["ann", "bob", "cid", "dee"];
    let mut clients = Vec::new();
    for name in names {
        let group = GroupConfig::default().with_window(window);
        clients.push(client_with(addr, name, faults, group).await);
    }
    for (c, _) in &clients {
        c.join("fifo-room", Order::Fifo, None)
            .await
            .expect("join fifo");
        c.join("total-room", Order::Total, None)
            .await
            .expect("join total");
    }
    for (c, log) in &clients {
        for g in ["fifo-room", "total-room"] {
            log.wait_for(
                &format!("{} sees 4 members in {g}", c.username()),
                WAIT,
                |s| s.has_members(g, 4),
            )
            .await;
        }
    }
    // Everyone sends concurrently.
    let mut senders = Vec::new();
    for (c, _) in &clients {
        let c = c.clone();
        senders.push(tokio::spawn(async move {
            for i in 1..=per_sender {
                for g in ["fifo-room", "total-room"] {
                    let text = format!("{}-{i}", c.username());
                    let seq = c.send(g, text).await.expect("send");
                    assert_eq!(seq, i);
                }
            }
        }));
    }
    for s in senders {
        // A sender whose wake-up was lost would wait on a full window for ever.
        tokio::time::timeout(WAIT, s)
            .await
            .expect("every send returns within the timeout")
            .expect("sender task");
    }
    let expected = (names.len() as u64 * per_sender) as usize;
    for (c, log) in &clients {
        for g in ["fifo-room", "total-room"] {
            log.wait_for(
                &format!("{} delivers all of {g}", c.username()),
                WAIT,
                |s| s.count(g) >= expected,
            )
            .await;
        }
    }
    let mut reference: Option<Vec<(String, u64, String)>> = None;
    for (c, log) in &clients {
        for g in ["fifo-room", "total-room"] {
            let deliveries = log.deliveries(g);
            assert_eq!(
                deliveries.len(),
                expected,
                "{} {g}: exact count",
                c.username()
            );
            let per = check_fifo(c.username(), &deliveries);
            for name in names {
                assert_eq!(
                    per.get(name),
                    Some(&per_sender),
                    "{} {g} from {name}",
                    c.username()
                );
            }
        }
        let total = log.deliveries("total-room");
        match &reference {
            None => reference = Some(total),
            Some(r) => assert_eq!(&total, r, "{}: total order differs", c.username()),
        }
        let m = c.metrics();
        assert_eq!(m.sent, 2 * per_sender);
        assert_eq!(m.received, 2 * (names.len() as u64 - 1) * per_sender);
        // Each sender sends as fast as the calls return, so a window much smaller than what
        // it sends is full long before the first acknowledgement (0.5 ms away) comes back.
        if window * 10 <= per_sender {
            assert!(
                m.window_waits >= 10,
                "{}: the window filled only {} times",
                c.username(),
                m.window_waits
            );
        }
        // A run under faults proves that faults happened; a clean run that none did.
        let f = c.fault_counts();
        if faults.is_some() {
            assert!(
                f.dropped > 0 && f.duplicated > 0 && f.delayed > 0,
                "{}: {f:?}",
                c.username()
            );
        } else {
            assert_eq!(f, Default::default(), "{}", c.username());
        }
    }
    for (c, _) in &clients {
        c.quit().await.expect("quit");
    }
    tracker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_clients_two_groups_exact_logs() {
    exchange(None, 1_000, GroupConfig::default().window).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senders_fill_and_drain_a_small_window_many_times() {
    exchange(None, 2_000, 16).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_clients_two_groups_exact_logs_under_injected_faults() {
    let faults = FaultConfig::parse("loss=0.1,dup=0.05,reorder=0.2,seed=7").unwrap();
    exchange(Some(faults), 1_000, GroupConfig::default().window).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracker_errors_reach_the_client_as_typed_errors() {
    let tracker = tracker_on(local(), support::tracker_config()).await;
    let addr = tracker.local_addr();
    let (a, _) = client(addr, "ann", None).await;
    // Username taken.
    let err = Client::connect(support::client_config(addr, "ann"), ())
        .await
        .expect_err("duplicate name");
    assert_eq!(err.code(), Some(ErrorCode::UsernameTaken));
    // Order mismatch, not a member, unknown group.
    a.join("room", Order::Total, None).await.expect("join");
    let (b, _) = client(addr, "bob", None).await;
    let err = b
        .join("room", Order::Fifo, None)
        .await
        .expect_err("other order");
    assert_eq!(err.code(), Some(ErrorCode::OrderMismatch));
    let err = b.leave("room").await.expect_err("not in it");
    assert_eq!(err.code(), Some(ErrorCode::NotAMember));
    let err = b.members("nowhere").await.expect_err("no such group");
    assert_eq!(err.code(), Some(ErrorCode::UnknownGroup));
    // Sending to a group one is not in is refused locally.
    assert!(matches!(
        b.send("room", "x").await,
        Err(messenger_core::ClientError::NotJoined(_))
    ));
    // A group configuration that could not work is refused before anything connects.
    for (window, why) in [
        (0, "window 0"),
        (GroupConfig::MAX_WINDOW + 1, "window 65537"),
    ] {
        let mut config = support::client_config(addr, "cid");
        config.group = GroupConfig::default().with_window(window);
        match Client::connect(config, ()).await {
            Err(messenger_core::ClientError::Config(message)) => {
                assert!(message.contains(why), "{message}")
            }
            other => panic!("window {window}: {:?}", other.map(|_| "connected")),
        }
    }
    // And after all that, a normal request works.
    let groups = b.groups().await.expect("list groups");
    assert_eq!(groups.len(), 1);
    assert_eq!(
        b.tracker_stats().await.expect("stats").clients,
        2,
        "cid never registered"
    );
    a.quit().await.expect("quit");
    b.quit().await.expect("quit");
    tracker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoofed_datagram_is_dropped_and_counted() {
    let tracker = tracker_on(local(), support::tracker_config()).await;
    let addr = tracker.local_addr();
    let (a, alog) = client(addr, "ann", None).await;
    let (b, _) = client(addr, "bob", None).await;
    a.join("room", Order::Fifo, None).await.expect("join");
    let view = b.join("room", Order::Fifo, None).await.expect("join");
    alog.wait_for("ann sees bob", WAIT, |s| s.has_members("room", 2))
        .await;
    let bob = view
        .members
        .iter()
        .find(|m| m.name == "bob")
        .expect("bob in view")
        .clone();
    let ann = view
        .members
        .iter()
        .find(|m| m.name == "ann")
        .expect("ann in view")
        .clone();
    // A forged datagram claiming to be bob, from another socket.
    let forger = tokio::net::UdpSocket::bind(local()).await.unwrap();
    let datagram = Datagram {
        header: Header {
            group: view.group_id,
            sender: bob.id,
            recipient: ann.id,
            view: ViewId(view.view_id),
        },
        frames: vec![Frame::Data(Data {
            seq: SeqNo(1),
            view: ViewId(view.view_id),
            stamp: 0,
            payload: bytes::Bytes::from_static(b"forged"),
        })],
    };
    let before = a.metrics().dropped_datagrams;
    forger
        .send_to(&datagram.encode().unwrap(), a.udp_addr())
        .await
        .unwrap();
    forger.send_to(b"garbage", a.udp_addr()).await.unwrap();
    // A genuine message from bob after the forgeries: when it arrives, they have been handled.
    b.send("room", "bob-1").await.expect("send");
    alog.wait_for("ann gets bob's real message", WAIT, |s| {
        s.count("room") >= 1
    })
    .await;
    let deliveries = alog.deliveries("room");
    assert_eq!(deliveries, vec![("bob".into(), 1, "bob-1".into())]);
    assert!(a.metrics().dropped_datagrams >= before + 2);
    a.quit().await.unwrap();
    b.quit().await.unwrap();
    tracker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_reconnect_and_rejoin_after_the_tracker_restarts() {
    let first = tracker_on(local(), support::tracker_config()).await;
    let addr = first.local_addr();
    let (a, alog) = client(addr, "ann", None).await;
    let (b, blog) = client(addr, "bob", None).await;
    a.join("room", Order::Total, None).await.expect("join");
    b.join("room", Order::Total, None).await.expect("join");
    alog.wait_for("ann sees bob", WAIT, |s| s.has_members("room", 2))
        .await;
    first.shutdown().await;
    for log in [&alog, &blog] {
        log.wait_for("tracker lost", WAIT, tracker_lost).await;
    }
    // Without a tracker, delivery among the members already known goes on.
    a.send("room", "ann-during-outage")
        .await
        .expect("send while the tracker is down");
    blog.wait_for("delivery during the outage", WAIT, |s| s.count("room") >= 1)
        .await;
    let second = tracker_on(addr, support::tracker_config()).await;
    for log in [&alog, &blog] {
        log.wait_for("reconnected and re-joined", WAIT, |s| {
            s.events.iter().any(|e| {
                matches!(e, ClientEvent::Reconnected { groups } if groups == &["room".to_string()])
            })
        })
        .await;
    }
    for log in [&alog, &blog] {
        log.wait_for("both back in the room", WAIT, |s| s.has_members("room", 2))
            .await;
    }
    a.send("room", "ann-1").await.expect("send after restart");
    b.send("room", "bob-1").await.expect("send after restart");
    for log in [&alog, &blog] {
        log.wait_for("both messages", WAIT, |s| s.count("room") >= 3)
            .await;
    }
    assert_eq!(alog.deliveries("room"), blog.deliveries("room"));
    assert_eq!(alog.deliveries("room")[0].2, "ann-during-outage");
    a.quit().await.unwrap();
    b.quit().await.unwrap();
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_the_new_tracker_refuses_is_reported_as_rejoin_failed() {
    let first = tracker_on(local(), support::tracker_config()).await;
    let addr = first.local_addr();
    let (a, alog) = client(addr, "ann", None).await;
    a.join("room", Order::Fifo, None).await.expect("join");
    a.join("hall", Order::Fifo, None).await.expect("join");
    first.shutdown().await;
    alog.wait_for("tracker lost", WAIT, tracker_lost).await;
    // The tracker comes back with a policy: "room" now needs a password ann does not have.
    let policy = AccessPolicy::from_toml_str("[[group]]\nname = \"room\"\npassword = \"new\"")
        .expect("policy");
    let second = tracker_on(addr, support::tracker_config().with_policy(policy)).await;
    alog.wait_for("reconnected with one group refused", WAIT, |s| {
        s.events.iter().any(
            |e| matches!(e, ClientEvent::Reconnected { groups } if groups == &["hall".to_string()]),
        )
    })
    .await;
    let failed: Vec<(String, String)> = alog.with(|s| {
        s.events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::RejoinFailed { group, reason } => {
                    Some((group.clone(), reason.clone()))
                }
                _ => None,
            })
            .collect()
    });
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "room");
    assert!(
        failed[0].1.to_lowercase().contains("password"),
        "the reason says why: {}",
        failed[0].1
    );
    // The refused group is gone from the client; the other one works.
    assert!(a.send("room", "x").await.is_err());
    a.send("hall", "still here").await.expect("send to hall");
    a.quit().await.unwrap();
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quitting_clients_metrics_reach_the_tracker_log() {
    let path = std::env::temp_dir().join(format!(
        "messenger-e2e-metrics-{}-{}.jsonl",
        std::process::id(),
        line!()
    ));
    let _ = std::fs::remove_file(&path);
    let config = support::tracker_config().with_log_json(path.clone());
    let tracker = tracker_on(local(), config).await;
    let addr = tracker.local_addr();
    let (a, alog) = client(addr, "ann", None).await;
    let (b, blog) = client(addr, "bob", None).await;
    a.join("room", Order::Fifo, None).await.expect("join");
    b.join("room", Order::Fifo, None).await.expect("join");
    // The sender must have bob in its view: messages sent before are not for him.
    alog.wait_for("ann sees bob", WAIT, |s| s.has_members("room", 2))
        .await;
    for i in 1..=5 {
        a.send("room", format!("ann-{i}")).await.expect("send");
    }
    blog.wait_for("bob gets 5", WAIT, |s| s.count("room") >= 5)
        .await;
    let metrics = b.quit().await.expect("quit");
    assert_eq!((metrics.sent, metrics.received), (0, 5));
    a.quit().await.expect("quit");
    tracker.shutdown().await;
    let text = std::fs::read_to_string(&path).expect("the JSON log exists");
    let bob: serde_json::Value = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("each line is JSON"))
        .find(|v| v["user"] == "bob")
        .expect("a line for bob");
    assert_eq!(bob["reason"], "quit");
    assert_eq!(bob["sent"], 0);
    assert_eq!(bob["received"], 5);
    assert_eq!(bob["total"], 5);
    let _ = std::fs::remove_file(&path);
}

/// `flush` answers whether everything is stable: when the group goes away with a message no
/// other member acknowledged (bob loses every datagram it sends), the flush waiting on it says
/// "not stable" at once instead of "stable" (it used to count a group that was gone as done).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_over_a_group_left_with_unstable_messages_is_not_stable() {
    let tracker = tracker_on(local(), support::tracker_config()).await;
    let addr = tracker.local_addr();
    let log = Log::new();
    let mut config = support::client_config(addr, "ann");
    config.faults = Some(FaultConfig::default());
    config.leave_timeout = Duration::from_millis(200);
    let ann = Client::connect(config, log.handler()).await.expect("ann");
    let never_acks = FaultConfig::parse("loss=1.0").unwrap();
    let (bob, _bob_log) = client(addr, "bob", Some(never_acks)).await;
    ann.join("g", Order::Fifo, None).await.expect("ann joins");
    bob.join("g", Order::Fifo, None).await.expect("bob joins");
    log.wait_for("ann sees bob", WAIT, |s| s.has_members("g", 2))
        .await;
    ann.send("g", "never acknowledged").await.expect("send");
    // The flush is polled first, so it waits before the leave takes the group away.
    let (stable, left) = tokio::join!(ann.flush(Duration::from_secs(60)), ann.leave("g"));
    left.expect("ann leaves");
    assert!(!stable.expect("flush"), "the message never became stable");
    // With nothing in flight, a flush over no group at all is stable.
    assert!(ann.flush(WAIT).await.expect("flush"));
    ann.quit().await.expect("quit");
    bob.quit().await.expect("quit");
    tracker.shutdown().await;
}
