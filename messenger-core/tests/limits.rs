//! The tracker's limits as the Rust client sees them, over real sockets on loopback: paged
//! group lists fetched whole, view changes applied to the views the client holds, and the
//! errors that name a limit.

mod support;

use std::time::Duration;

use messenger_core::client::{Client, ClientConfig};
use messenger_core::protocol::wire::GROUPS_PAGE;
use messenger_core::tracker::{Tracker, TrackerConfig, TrackerHandle};
use messenger_core::{ErrorCode, Order, TrackerTrust};
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
    let client = Client::connect(
        support::client_config(tracker.local_addr(), name),
        log.handler(),
    )
    .await
    .expect("connects");
    (client, log)
}

#[tokio::test]
async fn groups_fetches_every_page() {
    let t = tracker(support::tracker_config().with_max_groups_per_client(1_000)).await;
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
    let t = tracker(support::tracker_config()).await;
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
    let t = tracker(support::tracker_config().with_max_groups_per_client(1)).await;
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

/// A fake tracker that sends a view change the client cannot apply (it starts from a view the
/// client does not hold): the client asks for the full view and goes on from it.
#[tokio::test]
async fn a_change_the_client_cannot_apply_makes_it_ask_for_the_full_view() {
    use messenger_core::protocol::wire::{
        encode_address_probe, encode_control, ClientFrame, FrameDecoder, Reply, Request,
        ServerFrame, View, ViewDelta, ViewMember,
    };
    use messenger_core::protocol::{GroupId, MemberId, ViewId};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream, UdpSocket};

    struct Fake {
        stream: TcpStream,
        decoder: FrameDecoder,
    }
    impl Fake {
        async fn next(&mut self) -> ClientFrame {
            let mut buf = [0u8; 4096];
            loop {
                if let Some(frame) = self.decoder.next_frame::<ClientFrame>().expect("valid") {
                    return frame;
                }
                let n = tokio::time::timeout(WAIT, self.stream.read(&mut buf))
                    .await
                    .expect("a frame in time")
                    .expect("read");
                assert!(n > 0, "the client hung up");
                self.decoder.extend(&buf[..n]);
            }
        }
        /// The next request, skipping heartbeat answers.
        async fn request(&mut self) -> (u64, Request) {
            loop {
                match self.next().await {
                    ClientFrame::Request { id, request } => return (id, request),
                    ClientFrame::HeartbeatAck { .. } => {}
                    other => panic!("expected a request, got {other:?}"),
                }
            }
        }
        async fn send(&mut self, frame: &ServerFrame) {
            let bytes = encode_control(frame).expect("encode");
            self.stream.write_all(&bytes).await.expect("write");
        }
    }

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let tracker_addr = listener.local_addr().expect("addr");
    let probe = UdpSocket::bind("127.0.0.1:0").await.expect("udp");
    let bob_udp = UdpSocket::bind("127.0.0.1:0").await.expect("udp");
    let log = Log::new();
    // The fake tracker speaks plain frames.
    let config = ClientConfig::new(tracker_addr, "alice").with_trust(TrackerTrust::Insecure);
    let connecting = Client::connect(config, log.handler());
    let serving = async {
        let (stream, _) = listener.accept().await.expect("accept");
        let mut fake = Fake {
            stream,
            decoder: FrameDecoder::new(),
        };
        let ClientFrame::Hello(hello) = fake.next().await else {
            panic!("expected a hello");
        };
        let cookie = [42u8; 16];
        probe
            .send_to(&encode_address_probe(&cookie), hello.udp_addr)
            .await
            .expect("probe");
        assert_eq!(fake.next().await, ClientFrame::AddressProof { cookie });
        fake.send(&ServerFrame::Welcome {
            client: 1,
            heartbeat_interval_ms: 60_000,
        })
        .await;
        (fake, hello.udp_addr)
    };
    let (client, (mut fake, alice_udp)) = tokio::join!(connecting, serving);
    let client = client.expect("connects");

    let alice = ViewMember {
        id: MemberId(1),
        name: "alice".into(),
        addr: alice_udp,
        joined: ViewId(1),
    };
    let bob = ViewMember {
        id: MemberId(2),
        name: "bob".into(),
        addr: bob_udp.local_addr().expect("addr"),
        joined: ViewId(6),
    };
    let view = |id: u64, members: Vec<ViewMember>| View {
        group: GroupId(7),
        name: "g".into(),
        order: Order::Fifo,
        id: ViewId(id),
        members,
    };
    let joining = client.join("g", Order::Fifo, None);
    let answering = async {
        let (id, request) = fake.request().await;
        assert!(matches!(request, Request::Join { .. }), "{request:?}");
        let v1 = view(1, vec![alice.clone()]);
        fake.send(&ServerFrame::Reply {
            id,
            reply: Reply::Joined {
                member: MemberId(1),
                view: v1.clone(),
            },
        })
        .await;
        fake.send(&ServerFrame::ViewChange(v1)).await;
    };
    let (joined, ()) = tokio::join!(joining, answering);
    joined.expect("joined");

    // A change from view 5, which the client never had.
    fake.send(&ServerFrame::ViewDelta(ViewDelta {
        group: GroupId(7),
        from_view: ViewId(5),
        view: ViewId(6),
        added: vec![bob.clone()],
        removed: vec![],
    }))
    .await;
    let (id, request) = fake.request().await;
    assert_eq!(request, Request::ListMembers { group: "g".into() });
    let v6 = view(6, vec![alice.clone(), bob.clone()]);
    fake.send(&ServerFrame::Reply {
        id,
        reply: Reply::Members(v6),
    })
    .await;
    // Then an ordinary change from the view it now holds.
    fake.send(&ServerFrame::ViewDelta(ViewDelta {
        group: GroupId(7),
        from_view: ViewId(6),
        view: ViewId(7),
        added: vec![],
        removed: vec![MemberId(2)],
    }))
    .await;
    log.wait_for("views 6 and 7", WAIT, |s| {
        s.views.iter().any(|v| v.view_id == 7)
    })
    .await;
    let views = log.with(|s| s.views.clone());
    let summary: Vec<(u64, usize, Vec<String>, Vec<String>)> = views
        .iter()
        .map(|v| (v.view_id, v.members.len(), v.joined.clone(), v.left.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, 1, vec!["alice".to_string()], vec![]),
            (6, 2, vec!["bob".to_string()], vec![]),
            (7, 1, vec![], vec!["bob".to_string()]),
        ]
    );
    client.shutdown().await;
}
