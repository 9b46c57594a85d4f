//! Loss recovery timing of one group state machine: new gaps are asked for at once, gaps
//! already asked for are asked again only after the retransmission timeout, and that timeout
//! follows the measured round trip within its bounds.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use messenger_core::protocol::wire::{Ack, Data, Datagram, Frame, Header, Nack};
use messenger_core::protocol::{
    Group, GroupConfig, GroupId, MemberId, Order, SeqNo, View, ViewId, ViewMember,
};
use messenger_core::testing::epoch;

const ME: MemberId = MemberId(1);
const PEER: MemberId = MemberId(2);
const GROUP: GroupId = GroupId(7);

fn addr(id: MemberId) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 31_000 + id.0 as u16))
}

fn group(now: Instant) -> Group {
    let view = View {
        group: GROUP,
        name: "g".into(),
        order: Order::Fifo,
        id: ViewId(1),
        members: [ME, PEER]
            .into_iter()
            .map(|id| ViewMember {
                id,
                name: format!("m{id}"),
                addr: addr(id),
                joined: ViewId(1),
            })
            .collect(),
    };
    Group::new(GroupConfig::default(), ME, view, now)
}

fn from_peer(frames: Vec<Frame>) -> Vec<u8> {
    Datagram {
        header: Header {
            group: GROUP,
            sender: PEER,
            recipient: ME,
            view: ViewId(1),
        },
        frames,
    }
    .encode()
    .expect("encodes")
}

fn data(seq: u64) -> Frame {
    Frame::Data(Data {
        seq: SeqNo(seq),
        view: ViewId(1),
        stamp: 0,
        payload: Bytes::from_static(b"x"),
    })
}

/// The NACKs this member sent, as lists of missing ranges.
fn nacks(g: &mut Group) -> Vec<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    while let Some(t) = g.poll_transmit() {
        for frame in Datagram::decode(&t.bytes).expect("own datagram").frames {
            if let Frame::Nack(Nack { missing }) = frame {
                out.push(missing.iter().map(|(a, b)| (a.0, b.0)).collect());
            }
        }
    }
    out
}

fn feed(g: &mut Group, now: Instant, frames: Vec<Frame>) {
    g.handle_datagram(now, addr(PEER), &from_peer(frames))
        .expect("accepted");
}

#[test]
fn new_gaps_are_asked_for_at_once_and_old_ones_after_the_timeout() {
    let t0 = epoch();
    let mut g = group(t0);
    feed(&mut g, t0, vec![data(1), data(3)]);
    assert_eq!(nacks(&mut g), vec![vec![(2, 2)]], "first gap asked at once");

    // A second gap 100 µs later: asked for at once, without repeating the first.
    let t1 = t0 + Duration::from_micros(100);
    feed(&mut g, t1, vec![data(6)]);
    assert_eq!(nacks(&mut g), vec![vec![(4, 5)]]);

    // More data without a new gap: nothing is asked before the timeout...
    feed(&mut g, t1, vec![data(4)]);
    assert_eq!(nacks(&mut g), Vec::<Vec<(u64, u64)>>::new());
    // ...and everything still missing once it passed (no round trip measured yet: the
    // configured ceiling, 5 ms).
    let due = g.poll_timeout().expect("repair armed");
    assert!(due <= t1 + GroupConfig::default().nack_interval);
    let t2 = t0 + GroupConfig::default().nack_interval + Duration::from_micros(1);
    g.handle_timeout(t2);
    assert_eq!(nacks(&mut g), vec![vec![(2, 2), (5, 5)]]);
}

#[test]
fn the_retransmission_timeout_follows_acknowledged_round_trips() {
    let t0 = epoch();
    let mut g = group(t0);
    // Our own messages, acknowledged 200 µs after each send: the timeout drops to the floor.
    for i in 1..=20u64 {
        let sent = t0 + Duration::from_millis(i);
        g.send(sent, Bytes::from_static(b"m"), 0).expect("room");
        feed(
            &mut g,
            sent + Duration::from_micros(200),
            vec![Frame::Ack(Ack {
                received: SeqNo(i),
                finals: SeqNo::ZERO,
                delivered: SeqNo::ZERO,
            })],
        );
        while g.poll_transmit().is_some() {}
    }
    let now = t0 + Duration::from_millis(30);
    feed(&mut g, now, vec![data(2)]);
    assert_eq!(nacks(&mut g), vec![vec![(1, 1)]]);
    // Repeated after the 1 ms floor (at the first repair tick past it), long before the 5 ms
    // ceiling.
    let floor = GroupConfig::default().min_rto;
    let (at, repeated) = loop {
        let at = g.poll_timeout().expect("repair armed");
        assert!(
            at < now + GroupConfig::default().nack_interval,
            "{:?}",
            at - now
        );
        g.handle_timeout(at);
        let n = nacks(&mut g);
        if !n.is_empty() {
            break (at, n);
        }
    };
    assert_eq!(repeated, vec![vec![(1, 1)]]);
    assert!(at - now >= floor && at - now <= floor * 2, "{:?}", at - now);
}

/// Status frames this member sent.
fn statuses(g: &mut Group) -> usize {
    let mut n = 0;
    while let Some(t) = g.poll_transmit() {
        let frames = Datagram::decode(&t.bytes).expect("own datagram").frames;
        n += frames
            .iter()
            .filter(|f| matches!(f, Frame::Status(_)))
            .count();
    }
    n
}

/// A sender blocked on a full window sends nothing that would reveal the loss of its last
/// messages; it repeats its session status to members behind every retransmission timeout
/// (at most `nack_interval`, 5 ms before any sample), not every `repair_interval` (10 ms).
#[test]
fn a_sender_blocked_on_its_window_reveals_its_tail_every_rto() {
    let t0 = epoch();
    let mut g = group(t0);
    let window = GroupConfig::default().window;
    for _ in 0..window {
        g.send(t0, Bytes::from_static(b"m"), 0).expect("room");
    }
    assert!(
        g.send(t0, Bytes::from_static(b"m"), 0).is_err(),
        "window full"
    );
    let _ = statuses(&mut g);
    // Let the first slow repair pass, then count what goes out before the next one.
    let mut now = t0;
    let mut sent = 0;
    while now < t0 + Duration::from_millis(30) {
        now = g.poll_timeout().expect("repair is due");
        g.handle_timeout(now);
        if now > t0 + Duration::from_millis(11) && now < t0 + Duration::from_millis(20) {
            sent += statuses(&mut g);
        } else {
            let _ = statuses(&mut g);
        }
    }
    assert!(sent >= 2, "{sent} status messages in 9 ms while blocked");
}

/// An idle member still tells every peer where its stream stands, once per
/// `status_interval` (that is how a peer learns of a lost tail when nothing else is sent), and
/// sends nothing else while idle.
#[test]
fn an_idle_member_sends_one_status_to_each_peer_every_status_interval() {
    let t0 = epoch();
    let mut g = group(t0);
    let _ = statuses(&mut g);
    let interval = GroupConfig::default().status_interval;
    let mut now = t0;
    let mut per_interval = Vec::new();
    for k in 1..=5u32 {
        let mut sent = 0;
        let mut other = 0;
        loop {
            let due = g
                .poll_timeout()
                .expect("the status timer is armed while idle");
            if due > t0 + interval * k {
                break;
            }
            now = due;
            g.handle_timeout(now);
            while let Some(t) = g.poll_transmit() {
                assert_eq!(t.member, PEER);
                for frame in Datagram::decode(&t.bytes).expect("own datagram").frames {
                    match frame {
                        Frame::Status(_) => sent += 1,
                        _ => other += 1,
                    }
                }
            }
        }
        assert_eq!(other, 0, "an idle member sends only status messages");
        per_interval.push(sent);
    }
    assert_eq!(per_interval, vec![1; 5], "one status per interval");
    assert!(
        now > t0 + interval * 4,
        "the timer ran through five intervals"
    );
}
