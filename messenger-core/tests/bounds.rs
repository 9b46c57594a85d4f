//! Hostile and malformed input against one group state machine: every buffer stays within its
//! configured bound, bad datagrams are dropped and counted, and honest members are unaffected.

use std::time::{Duration, Instant};

use bytes::Bytes;
use messenger_core::protocol::wire::{
    Data, Datagram, Final, Frame, Header, Nack, Part, Propose, ResolutionDecision, ResolutionRelay,
    ResolutionReport, Status, StreamDecision,
};
use messenger_core::protocol::{
    DropReason, Event, Group, GroupConfig, GroupId, MemberId, Order, Priority, SeqNo, ViewId,
    ViewMember,
};
use messenger_core::testing::epoch;

mod trio;
use messenger_core::testing::rng::Rng;
use trio::{addr, datagram, view, GROUP, HONEST, MALLORY, ME};

fn data(seq: u64, text: &str) -> Frame {
    Frame::Data(Data {
        seq: SeqNo(seq),
        view: ViewId(1),
        stamp: 0,
        payload: Bytes::copy_from_slice(text.as_bytes()),
    })
}

fn config() -> GroupConfig {
    GroupConfig::default().with_window(64)
}

fn deliveries(g: &mut Group) -> Vec<(MemberId, u64)> {
    let mut out = Vec::new();
    while let Some(ev) = g.poll_event() {
        if let Event::Deliver(d) = ev {
            out.push((d.origin, d.seq.0));
        }
    }
    out
}

/// Feeds one honest message from HONEST (with its final in total order) and checks it arrives.
fn honest_message_still_delivered(g: &mut Group, now: Instant, order: Order) {
    let mut frames = vec![data(1, "hello")];
    if order == Order::Total {
        frames.push(Frame::Final(Final {
            seq: SeqNo(1),
            priority: Priority::new(1_000_000, HONEST),
        }));
    }
    g.handle_datagram(now, addr(HONEST), &datagram(HONEST, frames))
        .expect("honest datagram accepted");
    let got = deliveries(g);
    assert!(
        got.contains(&(HONEST, 1)),
        "honest message not delivered: {got:?}"
    );
}

#[test]
fn flooding_sequence_numbers_far_ahead_stays_within_the_window() {
    for order in [Order::Fifo, Order::Total] {
        let now = epoch();
        let mut g = Group::new(config(), ME, view(order), now);
        let mut rng = Rng::new(11);
        // Bursts inside and far beyond the window, out of order, with gaps at the front.
        for burst in 0..200u64 {
            let frames: Vec<Frame> = (0..8)
                .map(|_| {
                    let seq = match rng.below(3) {
                        0 => 2 + rng.below(64),
                        1 => rng.below(1_000_000),
                        _ => u64::MAX - rng.below(10),
                    };
                    data(seq, "flood")
                })
                .collect();
            let _ = g.handle_datagram(now, addr(MALLORY), &datagram(MALLORY, frames));
            // Announce absurd highs and finals far ahead too.
            let frames = vec![
                Frame::Status(Status {
                    high: SeqNo(u64::MAX),
                    start: SeqNo(1),
                    acks: vec![],
                }),
                Frame::Final(Final {
                    seq: SeqNo(burst * 7_919 % 5_000),
                    priority: Priority::new(1 << 40, MALLORY),
                }),
                // A counter at the limit would overflow the next proposal: refused.
                Frame::Final(Final {
                    seq: SeqNo(2),
                    priority: Priority::new(u128::MAX, MALLORY),
                }),
            ];
            let _ = g.handle_datagram(now, addr(MALLORY), &datagram(MALLORY, frames));
            g.handle_timeout(now + Duration::from_millis(burst));
            while g.poll_transmit().is_some() {}
            let sizes = g.buffer_sizes();
            assert!(sizes.max_stream_held <= 64, "{order:?} {sizes:?}");
            assert!(sizes.pending_finals <= 64, "{order:?} {sizes:?}");
            assert!(sizes.hold_back <= 64, "{order:?} {sizes:?}");
        }
        assert!(g.stats().out_of_window > 0);
        if order == Order::Total {
            assert_eq!(g.stats().invalid_frames, 200);
        }
        // The NACKs the flood provokes are bounded too: never more than the window per request.
        let mut nack_ranges = 0;
        g.handle_timeout(now + Duration::from_secs(1));
        while let Some(t) = g.poll_transmit() {
            let d = Datagram::decode(&t.bytes).expect("own datagrams decode");
            for f in d.frames {
                if let Frame::Nack(n) = f {
                    let count: u64 = n.missing.iter().map(|(a, b)| b.0 - a.0 + 1).sum();
                    assert!(count <= 64, "a NACK asks for {count} messages");
                    nack_ranges += n.missing.len();
                }
            }
        }
        assert!(nack_ranges <= 32);
        honest_message_still_delivered(&mut g, now, order);
    }
}

#[test]
fn a_huge_nack_resends_only_what_the_buffer_holds() {
    let now = epoch();
    let mut g = Group::new(config(), ME, view(Order::Fifo), now);
    for i in 0..5 {
        g.send(now, Bytes::from(format!("m{i}")), 0)
            .expect("window has room");
    }
    while g.poll_transmit().is_some() {}
    let nack = Frame::Nack(Nack {
        missing: vec![(SeqNo(0), SeqNo(u64::MAX)); 50],
    });
    g.handle_datagram(now, addr(MALLORY), &datagram(MALLORY, vec![nack]))
        .expect("well-formed");
    let mut resent = 0;
    while let Some(t) = g.poll_transmit() {
        assert_eq!(t.member, MALLORY);
        let d = Datagram::decode(&t.bytes).expect("decodes");
        resent += d
            .frames
            .iter()
            .filter(|f| matches!(f, Frame::Data(_)))
            .count();
    }
    assert!(resent <= 64, "resent {resent}");
    assert!(resent >= 5);
}

#[test]
fn bad_datagrams_are_dropped_counted_and_change_nothing() {
    let now = epoch();
    let mut g = Group::new(config(), ME, view(Order::Total), now);
    let before = g.buffer_sizes();

    // Garbage, truncated, wrong version.
    for bytes in [
        &b""[..],
        &b"GM"[..],
        &b"XX\x01\x00"[..],
        &b"GM\x63\x00\x00"[..],
        &[0xff; 300][..],
    ] {
        assert!(matches!(
            g.handle_datagram(now, addr(MALLORY), bytes),
            Err(DropReason::Malformed(_))
        ));
    }
    // A valid datagram with trailing garbage is malformed as a whole: none of its frames count.
    let mut bytes = datagram(MALLORY, vec![data(1, "x")]);
    bytes.extend_from_slice(&[0xff, 0xff, 0xff]);
    assert!(matches!(
        g.handle_datagram(now, addr(MALLORY), &bytes),
        Err(DropReason::Malformed(_))
    ));

    // Spoofed: HONEST's id from MALLORY's address.
    let spoofed = datagram(HONEST, vec![data(1, "forged")]);
    assert_eq!(
        g.handle_datagram(now, addr(MALLORY), &spoofed),
        Err(DropReason::Spoofed)
    );
    // Not a member, wrong group.
    let stranger = datagram(MemberId(99), vec![data(1, "x")]);
    assert_eq!(
        g.handle_datagram(now, addr(MemberId(99)), &stranger),
        Err(DropReason::UnknownSender)
    );
    let mut other_group = Datagram::decode(&datagram(MALLORY, vec![data(1, "x")])).unwrap();
    other_group.header.group = GroupId(8);
    assert_eq!(
        g.handle_datagram(now, addr(MALLORY), &other_group.encode().unwrap()),
        Err(DropReason::WrongGroup)
    );

    let stats = g.stats();
    assert_eq!(stats.malformed, 6);
    assert_eq!(stats.spoofed, 1);
    assert_eq!(stats.unknown_sender, 1);
    assert_eq!(stats.wrong_group, 1);
    assert_eq!(stats.datagrams_dropped, 9);
    assert_eq!(g.buffer_sizes(), before, "dropped input changed state");
    assert!(deliveries(&mut g).is_empty());

    // The forged message must not be delivered when HONEST's real one arrives.
    honest_message_still_delivered(&mut g, now, Order::Total);
}

#[test]
fn bogus_protocol_frames_from_a_member_do_no_harm() {
    let now = epoch();
    let mut g = Group::new(config(), ME, view(Order::Total), now);
    let frames = vec![
        // Proposals for messages never sent.
        Frame::Propose(Propose {
            seq: SeqNo(5),
            counter: 3,
        }),
        // Failure-resolution frames out of any round, from a member that is not coordinator.
        Frame::ResolutionReport(Box::new(ResolutionReport {
            round: ViewId(77),
            joined: ViewId(1),
            delivered_max: None,
            streams: vec![],
            part: Part::WHOLE,
        })),
        Frame::ResolutionRelay(ResolutionRelay {
            origin: HONEST,
            seq: SeqNo(1),
            view: ViewId(1),
            stamp: 0,
            payload: Bytes::from_static(b"forged"),
        }),
        Frame::ResolutionDecision(ResolutionDecision {
            round: ViewId(1),
            streams: vec![StreamDecision {
                origin: HONEST,
                first: SeqNo(1),
                decided: vec![],
            }],
            part: Part::WHOLE,
        }),
    ];
    g.handle_datagram(now, addr(MALLORY), &datagram(MALLORY, frames))
        .expect("well-formed");
    assert!(!g.is_paused());
    assert_eq!(g.in_flight(), 0);
    assert!(deliveries(&mut g).is_empty());
    honest_message_still_delivered(&mut g, now, Order::Total);
}

#[test]
fn send_refuses_oversized_payloads_and_a_full_window() {
    let now = epoch();
    let mut g = Group::new(config(), ME, view(Order::Fifo), now);
    assert!(matches!(
        g.send(now, Bytes::from(vec![0; 5_000]), 0),
        Err(messenger_core::protocol::SendError::TooLarge { .. })
    ));
    for _ in 0..64 {
        g.send(now, Bytes::from_static(b"x"), 0).expect("room");
    }
    assert_eq!(
        g.send(now, Bytes::from_static(b"x"), 0),
        Err(messenger_core::protocol::SendError::WindowFull)
    );
    assert_eq!(g.in_flight(), 64);
}

/// Issue 10, finding 1: a member that re-joined on the address of its earlier membership must
/// not take the traffic peers still send to that membership as its own. Here HONEST, still in
/// the old view, repeats its proposal for the old membership's message 1; the new membership
/// (ME) has its own message 1 waiting for HONEST's proposal. Counting it would finalize ME's
/// message with a proposal HONEST never made for it.
#[test]
fn a_datagram_for_an_earlier_membership_on_this_address_is_refused() {
    const OLD_ME: MemberId = MemberId(99);
    let now = epoch();
    let mut g = Group::new(config(), ME, view(Order::Total), now);
    g.send(now, Bytes::from_static(b"mine"), 0).expect("send");
    let mut for_old = Datagram {
        header: Header {
            group: GROUP,
            sender: HONEST,
            recipient: OLD_ME,
            view: ViewId(1),
        },
        frames: vec![
            Frame::Propose(Propose {
                seq: SeqNo(1),
                counter: 5,
            }),
            Frame::Propose(Propose {
                seq: SeqNo(1),
                counter: 5,
            }),
        ],
    };
    let bytes = for_old.encode().expect("encodes");
    assert_eq!(
        g.handle_datagram(now, addr(HONEST), &bytes),
        Err(DropReason::Misdirected)
    );
    assert_eq!(g.stats().misdirected, 1);
    // The same proposals from MALLORY, addressed to ME, are taken; HONEST's are still awaited,
    // so the message is not final and nothing is delivered.
    for_old.header.sender = MALLORY;
    for_old.header.recipient = ME;
    let bytes = for_old.encode().expect("encodes");
    g.handle_datagram(now, addr(MALLORY), &bytes)
        .expect("accepted");
    assert_eq!(
        deliveries(&mut g),
        vec![],
        "waits for HONEST's own proposal"
    );
}

/// Issue 10, finding 8: fifty NACKs of 26 bytes used to make a sender retransmit its whole
/// window fifty times (×19,745). Retransmissions to a peer are now paid from a credit earned
/// by what we first sent it and three times what it sent us, capped at one window.
#[test]
fn nacks_cannot_make_a_member_send_more_than_its_credit() {
    let window = 64usize;
    let now = epoch();
    let mut g = Group::new(config(), ME, view(Order::Fifo), now);
    let payload = Bytes::from(vec![7u8; 1000]);
    let mut fresh = 0usize;
    for _ in 0..window {
        g.send(now, payload.clone(), 0).expect("window has room");
    }
    while let Some(t) = g.poll_transmit() {
        if t.member == MALLORY {
            fresh += t.bytes.len();
        }
    }
    let mut asked = 0usize;
    let mut resent = 0usize;
    for _ in 0..50 {
        let nack = datagram(
            MALLORY,
            vec![Frame::Nack(Nack {
                missing: vec![(SeqNo(1), SeqNo(window as u64))],
            })],
        );
        asked += nack.len();
        let _ = g.handle_datagram(now, addr(MALLORY), &nack);
        while let Some(t) = g.poll_transmit() {
            if t.member == MALLORY {
                resent += t.bytes.len();
            }
        }
    }
    // One window of credit to start with, what we first sent, three times what was asked.
    let bound = 2 * window * (1200 + 32) + 3 * asked;
    assert!(resent >= fresh, "the first requests are answered: {resent}");
    assert!(resent <= bound, "resent {resent} bytes, bound {bound}");
    assert!(g.stats().resends_refused > 0);
}

/// A datagram built in a view before its sender's membership began (an earlier membership on
/// the same address, or a forgery) is dropped as stale and counted, and nothing in it is used;
/// the same frames in the member's own view are delivered.
#[test]
fn datagrams_from_before_a_membership_began_are_dropped_as_stale() {
    let now = epoch();
    let late = MemberId(4);
    let mut v = view(Order::Fifo);
    v.id = ViewId(3);
    v.members.push(ViewMember {
        id: late,
        name: "late".into(),
        addr: addr(late),
        joined: ViewId(3),
    });
    let mut g = Group::new(config(), ME, view(Order::Fifo), now);
    g.apply_view(now, v);
    let from_late = |view: ViewId| {
        Datagram {
            header: Header {
                group: GROUP,
                sender: late,
                recipient: ME,
                view,
            },
            frames: vec![data(1, "hello")],
        }
        .encode()
        .expect("encodes")
    };
    for stale in [ViewId(1), ViewId(2)] {
        assert_eq!(
            g.handle_datagram(now, addr(late), &from_late(stale)),
            Err(DropReason::Stale)
        );
    }
    assert_eq!(g.stats().stale, 2);
    assert_eq!(
        deliveries(&mut g),
        vec![],
        "nothing of a stale datagram is used"
    );
    g.handle_datagram(now, addr(late), &from_late(ViewId(3)))
        .expect("its own view is accepted");
    assert_eq!(deliveries(&mut g), vec![(late, 1)]);
    assert_eq!(g.stats().stale, 2);

    // A member that joined in view 3 takes nothing built for an earlier view, even from a
    // member that was there before it.
    let mut joined_late = view(Order::Fifo);
    joined_late.id = ViewId(3);
    for m in &mut joined_late.members {
        if m.id == ME {
            m.joined = ViewId(3);
        }
    }
    let mut g = Group::new(config(), ME, joined_late, now);
    assert_eq!(
        g.handle_datagram(now, addr(HONEST), &datagram(HONEST, vec![data(1, "old")])),
        Err(DropReason::Stale)
    );
    assert_eq!(g.stats().stale, 1);
    assert_eq!(deliveries(&mut g), vec![]);
}
