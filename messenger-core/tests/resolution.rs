//! Failure resolution between a few `Group`s wired together by hand: specific interleavings
//! that the seeded simulations reach only by chance.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use messenger_core::protocol::wire::{
    content_digest, Data, Datagram, Decided, Final, Frame, Header, Part, ResolutionDecision,
    ResolutionRelay, StreamDecision,
};
use messenger_core::protocol::{
    Event, Group, GroupConfig, GroupId, MemberId, Order, Priority, SeqNo, View, ViewId, ViewMember,
};
use messenger_core::testing::epoch;

const GROUP: GroupId = GroupId(3);

fn addr(id: MemberId) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 31_000 + id.0 as u16))
}

fn view(id: u64, members: &[u64]) -> View {
    View {
        group: GROUP,
        name: "g".into(),
        order: Order::Total,
        id: ViewId(id),
        members: members
            .iter()
            .map(|&m| ViewMember {
                id: MemberId(m),
                name: format!("m{m}"),
                addr: addr(MemberId(m)),
                joined: ViewId(1),
            })
            .collect(),
    }
}

/// Members wired directly: every datagram arrives, in order, unless a test intervenes.
struct Net {
    now: Instant,
    groups: BTreeMap<MemberId, Group>,
    /// Every datagram sent: (from, to, bytes).
    sent: Vec<(MemberId, MemberId, Vec<u8>)>,
    delivered: BTreeMap<MemberId, Vec<(MemberId, u64)>>,
}

impl Net {
    fn new(members: &[u64]) -> Net {
        let now = epoch();
        let v = view(1, members);
        let groups = members
            .iter()
            .map(|&m| {
                let id = MemberId(m);
                (id, Group::new(GroupConfig::default(), id, v.clone(), now))
            })
            .collect();
        Net {
            now,
            groups,
            sent: Vec::new(),
            delivered: BTreeMap::new(),
        }
    }

    /// Moves datagrams and fires timers until nothing is left to do, for at most `span`.
    fn settle(&mut self, span: Duration) {
        let end = self.now + span;
        loop {
            let mut moved = false;
            let ids: Vec<MemberId> = self.groups.keys().copied().collect();
            for from in ids {
                let mut out = Vec::new();
                if let Some(g) = self.groups.get_mut(&from) {
                    while let Some(t) = g.poll_transmit() {
                        out.push(t);
                    }
                }
                for t in out {
                    moved = true;
                    self.sent.push((from, t.member, t.bytes.clone()));
                    if let Some(g) = self.groups.get_mut(&t.member) {
                        let _ = g.handle_datagram(self.now, addr(from), &t.bytes);
                    }
                }
            }
            self.drain_events();
            if moved {
                continue;
            }
            let next = self.groups.values().filter_map(|g| g.poll_timeout()).min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    for g in self.groups.values_mut() {
                        if g.poll_timeout().is_some_and(|d| d <= self.now) {
                            g.handle_timeout(self.now);
                        }
                    }
                }
                _ => return,
            }
        }
    }

    fn drain_events(&mut self) {
        for (&id, g) in self.groups.iter_mut() {
            while let Some(ev) = g.poll_event() {
                if let Event::Deliver(d) = ev {
                    self.delivered
                        .entry(id)
                        .or_default()
                        .push((d.origin, d.seq.0));
                }
            }
        }
    }

    fn install(&mut self, v: &View) {
        for g in self.groups.values_mut() {
            g.apply_view(self.now, v.clone());
        }
    }
}

/// Issue 10, finding 4: after the coordinator finished a round (every member acknowledged its
/// decision), a late copy of a member's report must not open a new round in the same view:
/// nobody would report to it, and it would repeat its call until the next view.
#[test]
fn a_late_report_after_the_round_does_not_open_another() {
    let (a, b, x) = (MemberId(1), MemberId(2), MemberId(3));
    let mut net = Net::new(&[1, 2, 3]);
    // X sends; its datagrams reach nobody (it crashes), except that A and B see the data.
    let now = net.now;
    let g = net.groups.get_mut(&x).expect("x");
    g.send(now, Bytes::from_static(b"x1"), 0).expect("send");
    net.settle(Duration::from_millis(1));
    net.groups.remove(&x);
    net.install(&view(2, &[1, 2]));
    net.settle(Duration::from_millis(200));
    for id in [a, b] {
        let g = &net.groups[&id];
        assert!(!g.is_paused(), "{id} still paused");
        assert!(
            net.delivered[&id].contains(&(x, 1)),
            "{id} delivered x1: {:?}",
            net.delivered[&id]
        );
    }
    let rounds = net.groups[&a].stats().resolution_rounds;
    assert!(rounds >= 1, "a round ran");
    // Replay every datagram B sent A (its report among them), long after the round.
    let replay: Vec<Vec<u8>> = net
        .sent
        .iter()
        .filter(|(f, t, _)| *f == b && *t == a)
        .map(|(_, _, bytes)| bytes.clone())
        .collect();
    assert!(!replay.is_empty());
    let sent_before = net.sent.len();
    let now = net.now;
    for bytes in &replay {
        let _ = net
            .groups
            .get_mut(&a)
            .expect("a")
            .handle_datagram(now, addr(b), bytes);
    }
    net.settle(Duration::from_millis(500));
    assert_eq!(
        net.groups[&a].stats().resolution_rounds,
        rounds,
        "no new round in the same view"
    );
    // Quiet afterwards: only periodic status messages (at most a few per 100 ms).
    let later = net.sent.len() - sent_before;
    assert!(later < 40, "{later} datagrams in 500 ms after the round");
}

fn datagram(from: MemberId, to: MemberId, view: u64, frames: Vec<Frame>) -> Vec<u8> {
    Datagram {
        header: Header {
            group: GROUP,
            sender: from,
            recipient: to,
            view: ViewId(view),
        },
        frames,
    }
    .encode()
    .expect("encodes")
}

/// Issue 10, findings 2 and 10: a member takes relayed content for exactly what the decision
/// names, however far the departed stream ran ahead of what it delivered (it used to drop
/// anything more than two windows ahead, and a round could then never end), and only with the
/// content digest the decision names.
#[test]
fn relays_are_taken_for_what_the_decision_names_and_nothing_else() {
    let (a, me, x) = (MemberId(1), MemberId(2), MemberId(3));
    let config = GroupConfig::default().with_window(4);
    let mut now = epoch();
    let mut g = Group::new(config, me, view(1, &[1, 2, 3]), now);
    g.apply_view(now, view(2, &[1, 2]));
    assert!(
        g.is_paused(),
        "x's stream awaits the coordinator's decision"
    );
    while g.poll_transmit().is_some() {}
    let content = |seq: u64| Bytes::from(format!("x{seq}"));
    let decided: Vec<Decided> = (1..=20u64)
        .map(|seq| Decided {
            priority: Priority::new(u128::from(seq), x),
            view: ViewId(1),
            digest: content_digest(ViewId(1), seq, &content(seq)),
        })
        .collect();
    let decision = ResolutionDecision {
        round: ViewId(2),
        streams: vec![StreamDecision {
            origin: x,
            first: SeqNo(1),
            decided,
        }],
        part: Part::WHOLE,
    };
    let relay = |seq: u64, payload: Bytes| {
        Frame::ResolutionRelay(ResolutionRelay {
            origin: x,
            seq: SeqNo(seq),
            view: ViewId(1),
            stamp: seq,
            payload,
        })
    };
    g.handle_datagram(
        now,
        addr(a),
        &datagram(a, me, 2, vec![Frame::ResolutionDecision(decision)]),
    )
    .expect("accepted");
    // A substituted copy, and a copy of a message the decision does not name, are refused.
    let invalid = g.stats().invalid_frames;
    let forged = vec![
        relay(1, Bytes::from_static(b"forged")),
        relay(21, content(21)),
    ];
    g.handle_datagram(now, addr(a), &datagram(a, me, 2, forged))
        .expect("accepted");
    assert_eq!(g.stats().invalid_frames, invalid + 2);
    now += Duration::from_millis(1);
    let frames = (1..=20u64).map(|seq| relay(seq, content(seq))).collect();
    g.handle_datagram(now, addr(a), &datagram(a, me, 2, frames))
        .expect("accepted");
    assert!(!g.is_paused(), "the decision is applied");
    let mut got = Vec::new();
    while let Some(ev) = g.poll_event() {
        if let Event::Deliver(d) = ev {
            assert_eq!(d.payload, content(d.seq.0), "the decided content");
            got.push(d.seq.0);
        }
    }
    assert_eq!(got, (1..=20).collect::<Vec<_>>());
}

fn view_with(id: u64, members: &[(u64, u64)]) -> View {
    let mut v = view(id, &[]);
    v.members = members
        .iter()
        .map(|&(m, joined)| ViewMember {
            id: MemberId(m),
            name: format!("m{m}"),
            addr: addr(MemberId(m)),
            joined: ViewId(joined),
        })
        .collect();
    v
}

/// Runs the attack of issue 10, finding 7 with one counter value: hostile member 3 sends one
/// `Final` for its own message with `counter` and leaves; then the survivors and a new joiner
/// send. Returns what each member delivered of the others' later messages.
fn after_a_hostile_final(counter: u128) -> BTreeMap<MemberId, Vec<(MemberId, u64)>> {
    let (a, b, m, j) = (MemberId(1), MemberId(2), MemberId(3), MemberId(4));
    let mut net = Net::new(&[1, 2, 3]);
    // The hostile member sends its message with a final of its choosing, at once.
    net.groups.remove(&m);
    for to in [a, b] {
        let frames = vec![
            Frame::Data(Data {
                seq: SeqNo(1),
                view: ViewId(1),
                stamp: 0,
                payload: Bytes::from_static(b"m1"),
            }),
            Frame::Final(Final {
                seq: SeqNo(1),
                priority: Priority::new(counter, m),
            }),
        ];
        let _ = net.groups.get_mut(&to).expect("member").handle_datagram(
            net.now,
            addr(m),
            &datagram(m, to, 1, frames),
        );
    }
    net.settle(Duration::from_millis(5));
    net.install(&view_with(2, &[(1, 1), (2, 1)]));
    net.settle(Duration::from_millis(50));
    let joiner_view = view_with(3, &[(1, 1), (2, 1), (4, 3)]);
    net.install(&joiner_view);
    net.groups.insert(
        j,
        Group::new(GroupConfig::default(), j, joiner_view, net.now),
    );
    net.delivered.clear();
    for round in 0..10u64 {
        let now = net.now;
        for id in [a, b, j] {
            let payload = Bytes::from(format!("{id}:{round}"));
            net.groups
                .get_mut(&id)
                .expect("member")
                .send(now, payload, 0)
                .expect("room");
        }
        net.settle(Duration::from_millis(5));
    }
    net.settle(Duration::from_millis(200));
    net.delivered.clone()
}

fn assert_group_goes_on(counter: u128) {
    let delivered = after_a_hostile_final(counter);
    let others = |me: u64| -> Vec<(MemberId, u64)> {
        delivered
            .get(&MemberId(me))
            .into_iter()
            .flatten()
            .copied()
            .filter(|(o, _)| o.0 != 3)
            .collect()
    };
    let first = others(1);
    assert_eq!(first.len(), 30, "counter {counter}: {first:?}");
    assert_eq!(others(2), first, "counter {counter}: same order");
    assert_eq!(others(4), first, "counter {counter}: the joiner too");
}

/// Issue 10, finding 7: one `Final` with a huge counter used to push every member's counters
/// to the limit, after which every proposal was refused and nobody, a new joiner included,
/// delivered again. Counters are now 128 bits and a counter further above what a member knows
/// than honest ones get is refused, so no value stops the group.
#[test]
fn no_counter_in_a_hostile_final_stops_the_group() {
    for counter in [
        (1u128 << 62) - 1,
        (1 << 62) - 2_000,
        1 << 62,
        u64::MAX as u128,
        (1 << 64) + 5,
        Priority::MAX_COUNTER - 1,
        u128::MAX,
    ] {
        assert_group_goes_on(counter);
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    #[test]
    fn no_counter_stops_the_group(counter in proptest::prelude::any::<u128>()) {
        assert_group_goes_on(counter);
    }
}

/// Six members leave at once, each with 600 messages that the two survivors hold without a
/// final: each survivor's report (3,600 entries with content digests) and the decision are far
/// larger than one datagram (65,507 bytes), so they travel in parts. A report that did not fit
/// used to be dropped whole, and the round never ended.
#[test]
fn a_resolution_larger_than_a_datagram_travels_in_parts() {
    let (a, b) = (MemberId(1), MemberId(2));
    let mut net = Net::new(&[1, 2, 3, 4, 5, 6, 7, 8]);
    let now = net.now;
    for x in 3..=8u64 {
        let mut out = Vec::new();
        let g = net.groups.get_mut(&MemberId(x)).expect("x");
        for k in 0..600u64 {
            g.send(now, Bytes::from(format!("{x}:{k}")), 0)
                .expect("room");
        }
        while let Some(t) = g.poll_transmit() {
            out.push(t);
        }
        for t in out {
            if let Some(to) = net.groups.get_mut(&t.member) {
                if t.member == a || t.member == b {
                    let _ = to.handle_datagram(now, addr(MemberId(x)), &t.bytes);
                }
            }
        }
    }
    // They vanish before any proposal reaches them: no final exists anywhere.
    for x in 3..=8u64 {
        net.groups.remove(&MemberId(x));
    }
    net.install(&view(2, &[1, 2]));
    net.settle(Duration::from_millis(300));
    for id in [a, b] {
        assert!(!net.groups[&id].is_paused(), "{id} still paused");
    }
    let from_departed = |id: MemberId| -> Vec<(MemberId, u64)> {
        net.delivered
            .get(&id)
            .into_iter()
            .flatten()
            .copied()
            .filter(|(o, _)| o.0 >= 3)
            .collect()
    };
    assert_eq!(from_departed(a).len(), 3_600);
    assert_eq!(from_departed(a), from_departed(b), "same order");
    let largest = net.sent.iter().map(|(_, _, d)| d.len()).max().unwrap_or(0);
    assert!(largest <= 65_507, "{largest}");
}
