//! Failure resolution between a few `Group`s wired together by hand: specific interleavings
//! that the seeded simulations reach only by chance.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use messenger_core::protocol::{
    Event, Group, GroupConfig, GroupId, MemberId, Order, View, ViewId, ViewMember,
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
    let rounds = net.groups[&a].stats().flush_rounds;
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
        net.groups[&a].stats().flush_rounds,
        rounds,
        "no new round in the same view"
    );
    // Quiet afterwards: only periodic status messages (at most a few per 100 ms).
    let later = net.sent.len() - sent_before;
    assert!(later < 40, "{later} datagrams in 500 ms after the round");
}
