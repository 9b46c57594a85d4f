//! A member that talks (so is never silent) but does not do its part is reported
//! ([`Event::Suspect`]) once it has held the group up for long enough, and an honest member
//! beside it is not: one that never acknowledges our messages, one that never proposes for
//! them, and one whose message never gets a final that fits.
//!
//! Time is virtual: the group is driven in steps of its status interval, and each step both
//! peers send a status, so neither is ever silent.

use std::time::{Duration, Instant};

use bytes::Bytes;

use messenger_core::protocol::wire::{Ack, Data, Final, Frame, Propose, Status};
use messenger_core::protocol::{
    Event, Group, GroupConfig, MemberId, Order, Priority, SeqNo, ViewId,
};
use messenger_core::testing::epoch;

mod trio;
use trio::{addr, datagram, view, HONEST, MALLORY, ME};

const STEP: Duration = Duration::from_millis(100);

fn group(order: Order) -> (Group, Instant, Duration) {
    let config = GroupConfig::default();
    let timeout = config.suspect_timeout;
    let now = epoch();
    (Group::new(config, ME, view(order), now), now, timeout)
}

fn feed(g: &mut Group, now: Instant, from: MemberId, frames: Vec<Frame>) {
    g.handle_datagram(now, addr(from), &datagram(from, frames))
        .expect("datagram accepted");
}

fn status(high: u64) -> Frame {
    Frame::Status(Status {
        high: SeqNo(high),
        start: SeqNo(1),
        acks: Vec::new(),
    })
}

/// Runs the group for `duration` in steps, feeding each peer's frames every step; returns when
/// each member was first reported, as time since the start.
fn run(
    g: &mut Group,
    mut now: Instant,
    duration: Duration,
    mut frames_of: impl FnMut(MemberId) -> Vec<Frame>,
) -> Vec<(MemberId, Duration)> {
    let start = now;
    let mut reported: Vec<(MemberId, Duration)> = Vec::new();
    while now - start < duration {
        now += STEP;
        for peer in [MALLORY, HONEST] {
            feed(g, now, peer, frames_of(peer));
        }
        g.handle_timeout(now);
        while g.poll_transmit().is_some() {}
        while let Some(ev) = g.poll_event() {
            if let Event::Suspect { member } = ev {
                if !reported.iter().any(|(m, _)| *m == member) {
                    reported.push((member, now - start));
                }
            }
        }
    }
    reported
}

fn when(reported: &[(MemberId, Duration)], member: MemberId) -> Option<Duration> {
    reported.iter().find(|(m, _)| *m == member).map(|(_, t)| *t)
}

/// Mallory talks but never acknowledges our message: reported after twice the suspect
/// timeout (not before), in both orders; the honest member, which acknowledges (and
/// proposes), never is.
#[test]
fn a_member_that_never_acknowledges_is_reported() {
    for order in [Order::Fifo, Order::Total] {
        let (mut g, now, timeout) = group(order);
        g.send(now, Bytes::from_static(b"m"), 0).expect("sent");
        let reported = run(&mut g, now, timeout * 3, |peer| {
            let mut frames = vec![status(0)];
            if peer == HONEST {
                frames.push(Frame::Ack(Ack {
                    received: SeqNo(1),
                    finals: SeqNo(0),
                    delivered: SeqNo(0),
                }));
                frames.push(Frame::Propose(Propose {
                    seq: SeqNo(1),
                    counter: 5,
                }));
            }
            frames
        });
        let at = when(&reported, MALLORY).expect("mallory reported");
        assert!(
            at >= timeout * 2 && at <= timeout * 2 + 2 * STEP,
            "{order}: {at:?}"
        );
        assert_eq!(when(&reported, HONEST), None, "{order}");
    }
}

/// Total order: Mallory acknowledges our message but never proposes for it, so it never gets
/// its final and sits at the head of every member's queue: reported after twice the timeout.
#[test]
fn a_member_that_never_proposes_is_reported() {
    let (mut g, now, timeout) = group(Order::Total);
    g.send(now, Bytes::from_static(b"m"), 0).expect("sent");
    let ack = Frame::Ack(Ack {
        received: SeqNo(1),
        finals: SeqNo(0),
        delivered: SeqNo(0),
    });
    let reported = run(&mut g, now, timeout * 3, |peer| {
        let mut frames = vec![status(0), ack.clone()];
        if peer == HONEST {
            frames.push(Frame::Propose(Propose {
                seq: SeqNo(1),
                counter: 5,
            }));
        }
        frames
    });
    let at = when(&reported, MALLORY).expect("mallory reported");
    assert!(at >= timeout * 2 && at <= timeout * 2 + 2 * STEP, "{at:?}");
    assert_eq!(when(&reported, HONEST), None);
}

/// Total order: Mallory's message never gets a final that fits (here: a final below every
/// proposal, refused): it holds the head of the queue and Mallory is reported after four
/// times the timeout, not before. The honest member's message, queued behind it, is not a
/// reason to report the honest member.
#[test]
fn a_sender_whose_message_never_gets_a_final_is_reported() {
    let (mut g, now, timeout) = group(Order::Total);
    feed(
        &mut g,
        now,
        MALLORY,
        vec![Frame::Data(Data {
            seq: SeqNo(1),
            view: ViewId(1),
            stamp: 0,
            payload: Bytes::from_static(b"stuck"),
        })],
    );
    feed(
        &mut g,
        now,
        HONEST,
        vec![
            Frame::Data(Data {
                seq: SeqNo(1),
                view: ViewId(1),
                stamp: 0,
                payload: Bytes::from_static(b"honest"),
            }),
            Frame::Final(Final {
                seq: SeqNo(1),
                priority: Priority::new(1_000, HONEST),
            }),
        ],
    );
    let reported = run(&mut g, now, timeout * 5, |peer| match peer {
        MALLORY => vec![
            status(1),
            Frame::Final(Final {
                seq: SeqNo(1),
                priority: Priority::new(0, MALLORY),
            }),
        ],
        _ => vec![status(1)],
    });
    let at = when(&reported, MALLORY).expect("mallory reported");
    assert!(at >= timeout * 4 && at <= timeout * 4 + 2 * STEP, "{at:?}");
    assert_eq!(when(&reported, HONEST), None);
}
