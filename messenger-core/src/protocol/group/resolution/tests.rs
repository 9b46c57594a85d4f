//! Tests of [`Resolution`](super::Resolution) on its own, driven frame by frame: the
//! coordinator's round, fetching content, a member taking a decision in parts, repeats.

use bytes::Bytes;

use super::*;
use crate::protocol::types::Priority;
use crate::protocol::wire::{ContentDigest, EntryState, Part, ReportEntry, StreamReport};

const X: MemberId = MemberId(9);
const ROUND: ViewId = ViewId(5);
const INTERVAL: Duration = Duration::from_millis(10);

fn t0() -> Instant {
    crate::testing::epoch()
}

fn content(seq: u64) -> Content {
    Content {
        view: ViewId(1),
        stamp: seq,
        payload: Bytes::from(vec![seq as u8; 3]),
    }
}

fn digest(c: &Content) -> ContentDigest {
    wire::content_digest(c.view, c.stamp, &c.payload)
}

/// A report of departed member X's stream: `held` messages with content, each proposed.
fn report(by: u64, held: &[u64]) -> ResolutionReport {
    ResolutionReport {
        round: ROUND,
        joined: ViewId(1),
        delivered_max: None,
        streams: vec![StreamReport {
            origin: X,
            delivered: Some(SeqNo::ZERO),
            closed: None,
            entries: held
                .iter()
                .map(|&seq| ReportEntry {
                    seq: SeqNo(seq),
                    state: EntryState::Proposed(Priority::new(u128::from(seq), MemberId(by))),
                    content: Some(ViewId(1)),
                    digest: Some(digest(&content(seq))),
                })
                .collect(),
        }],
        part: Part::WHOLE,
    }
}

fn drain(r: &mut Resolution) -> Vec<(MemberId, Frame)> {
    std::iter::from_fn(|| r.poll_frame()).collect()
}

fn kinds(frames: &[(MemberId, Frame)]) -> Vec<(u64, &'static str)> {
    frames
        .iter()
        .map(|(to, f)| {
            let kind = match f {
                Frame::ResolutionReport(_) => "report",
                Frame::ResolutionFetch(_) => "fetch",
                Frame::ResolutionDecision(_) => "decision",
                Frame::ResolutionAck(_) => "ack",
                _ => "other",
            };
            (to.0, kind)
        })
        .collect()
}

/// Member 1 coordinates a round among 1, 2 and 3 about departed member X.
fn coordinator() -> Resolution {
    let mut r = Resolution::new(MemberId(1), INTERVAL);
    r.add_unresolved(X);
    let members = [MemberId(2), MemberId(1), MemberId(3)];
    r.start(t0(), ROUND, &members, report(1, &[1]));
    r
}

#[test]
fn the_coordinator_calls_for_reports_decides_once_all_are_in_and_finishes_on_every_ack() {
    let mut r = coordinator();
    assert!(r.is_coordinator() && r.is_pausing() && r.is_active());
    assert_eq!(
        kinds(&drain(&mut r)),
        vec![(2, "report"), (3, "report")],
        "the call to report"
    );
    assert!(!r.decide_if_ready(), "nobody else reported yet");
    assert_eq!(
        r.handle_report(MemberId(2), report(2, &[1, 2])),
        Step::Progress
    );
    assert_eq!(
        r.handle_report(MemberId(2), report(2, &[1, 2])),
        Step::Nothing,
        "a repeated report"
    );
    assert!(!r.decide_if_ready());
    assert_eq!(r.handle_report(MemberId(3), report(3, &[])), Step::Progress);
    assert!(r.decide_if_ready());
    let decision = r.decision().cloned().expect("decided");
    assert_eq!(
        decision.streams[0].decided.len(),
        2,
        "1 and 2, held by someone"
    );

    r.announce(t0(), BTreeMap::from([((X, SeqNo(1)), content(1))]));
    assert_eq!(
        kinds(&drain(&mut r)),
        vec![(2, "decision"), (3, "decision")]
    );
    assert_eq!(r.gathered(X, SeqNo(1)), Some(&content(1)));
    r.resolved(X);
    r.mark_applied();
    assert!(
        drain(&mut r).is_empty(),
        "the coordinator acknowledges to nobody"
    );
    assert!(!r.is_pausing() && !r.decide_if_ready());

    r.handle_ack(MemberId(2), ResolutionAck { round: ViewId(4) });
    r.handle_ack(MemberId(2), ResolutionAck { round: ROUND });
    assert_eq!(r.round(), Some(ROUND), "member 3 has not acknowledged");
    r.handle_ack(MemberId(3), ResolutionAck { round: ROUND });
    assert_eq!(r.round(), None);
    assert!(!r.is_active());

    // A late report for the finished round gets the decision again, and starts nothing.
    assert!(!r.wants_round(ROUND));
    assert!(r.wants_round(ViewId(6)));
    assert_eq!(r.handle_report(MemberId(3), report(3, &[])), Step::Nothing);
    let frames = drain(&mut r);
    assert_eq!(kinds(&frames), vec![(3, "decision")]);
    assert!(matches!(&frames[0].1, Frame::ResolutionDecision(d) if *d == decision));
}

#[test]
fn the_coordinator_fetches_missing_content_from_a_member_that_reported_it() {
    let mut r = coordinator();
    r.handle_report(MemberId(2), report(2, &[]));
    r.handle_report(MemberId(3), report(3, &[1, 2]));
    drain(&mut r);
    assert!(r.decide_if_ready());
    r.fetch(t0(), vec![(X, SeqNo(2))]);
    let frames = drain(&mut r);
    assert_eq!(kinds(&frames), vec![(3, "fetch")]);
    let Frame::ResolutionFetch(fetch) = &frames[0].1 else {
        unreachable!()
    };
    assert_eq!(
        (fetch.round, fetch.origin, &fetch.seqs[..]),
        (ROUND, X, &[SeqNo(2)][..])
    );
    // The content arrives: gathered, if it is what the decision names.
    let mut relay = ResolutionRelay {
        origin: X,
        seq: SeqNo(2),
        view: ViewId(1),
        stamp: 2,
        payload: Bytes::from_static(b"forged"),
    };
    assert_eq!(r.handle_relay(relay.clone()), Relayed::Invalid);
    relay.payload = content(2).payload;
    assert_eq!(r.handle_relay(relay), Relayed::Gathered);
    assert_eq!(r.gathered(X, SeqNo(2)), Some(&content(2)));
}

#[test]
fn a_member_reports_takes_the_decision_in_parts_only_from_the_coordinator_and_acknowledges() {
    let mut r = Resolution::new(MemberId(2), INTERVAL);
    r.add_unresolved(X);
    r.start(t0(), ROUND, &[MemberId(1), MemberId(2)], report(2, &[1]));
    assert!(!r.is_coordinator());
    assert_eq!(kinds(&drain(&mut r)), vec![(1, "report")]);
    // The coordinator's call to report changes nothing: ours went out.
    assert_eq!(r.handle_report(MemberId(1), report(1, &[])), Step::Nothing);

    // A decision large enough to travel in parts.
    let seqs: Vec<u64> = (1..=600).collect();
    let decision = decide(ROUND, &[(MemberId(1), report(1, &seqs))]);
    let parts = split_decision(&decision);
    assert!(parts.len() > 1);
    assert_eq!(
        r.handle_decision(MemberId(3), parts[0].clone()),
        Step::Nothing,
        "not from the coordinator"
    );
    let mut stale = parts[0].clone();
    stale.round = ViewId(4);
    assert_eq!(r.handle_decision(MemberId(1), stale), Step::Nothing);
    let (last, rest) = parts.split_last().expect("parts");
    for part in rest.iter().rev() {
        assert_eq!(r.handle_decision(MemberId(1), part.clone()), Step::Nothing);
    }
    assert!(!r.decide_if_ready(), "not whole yet");
    assert_eq!(r.handle_decision(MemberId(1), last.clone()), Step::Progress);
    assert!(r.decide_if_ready());
    assert_eq!(r.decision(), Some(&decision));

    // Relays: only what the decision names, with its content, kept with the stream.
    let relay = |seq: u64| ResolutionRelay {
        origin: X,
        seq: SeqNo(seq),
        view: ViewId(1),
        stamp: seq,
        payload: content(seq).payload,
    };
    assert_eq!(r.handle_relay(relay(601)), Relayed::Invalid);
    assert_eq!(
        r.handle_relay(relay(7)),
        Relayed::ForStream {
            origin: X,
            seq: SeqNo(7),
            content: content(7)
        }
    );

    r.fetch(t0(), vec![(X, SeqNo(8)), (X, SeqNo(9))]);
    assert_eq!(
        kinds(&drain(&mut r)),
        vec![(1, "fetch")],
        "one fetch per stream"
    );
    r.close_round();
    assert!(
        r.is_pausing() && r.is_active(),
        "closing a round resolves nothing"
    );
    r.start(t0(), ROUND, &[MemberId(1), MemberId(2)], report(2, &[1]));
    drain(&mut r);
    assert_eq!(
        r.handle_relay(relay(7)),
        Relayed::Invalid,
        "no decision yet"
    );
    for part in &parts {
        r.handle_decision(MemberId(1), part.clone());
    }
    r.resolved(X);
    r.mark_applied();
    assert_eq!(kinds(&drain(&mut r)), vec![(1, "ack")]);
    // A repeated decision means our acknowledgement was lost.
    assert_eq!(r.handle_decision(MemberId(1), last.clone()), Step::Nothing);
    assert_eq!(kinds(&drain(&mut r)), vec![(1, "ack")]);
    assert!(!r.is_pausing());
}

#[test]
fn repeats_come_once_per_interval_and_only_to_those_still_awaited() {
    let ms = Duration::from_millis;
    // Member: reports again until the decision arrives, then fetches again.
    let mut m = Resolution::new(MemberId(2), INTERVAL);
    m.start(t0(), ROUND, &[MemberId(1), MemberId(2)], report(2, &[1]));
    drain(&mut m);
    assert_eq!(m.poll_timeout(), Some(t0() + INTERVAL));
    assert_eq!(m.handle_timeout(t0() + ms(9)), None);
    assert_eq!(m.handle_timeout(t0() + ms(10)), Some(Repeat::Report(ROUND)));
    assert_eq!(m.poll_timeout(), Some(t0() + ms(20)));
    let decision = decide(ROUND, &[(MemberId(1), report(1, &[1]))]);
    m.handle_decision(MemberId(1), decision);
    assert_eq!(m.handle_timeout(t0() + ms(20)), Some(Repeat::Fetch));
    m.mark_applied();
    assert_eq!(
        m.handle_timeout(t0() + ms(40)),
        None,
        "applied: nothing to repeat"
    );

    // Coordinator: calls again only the members that have not reported.
    let mut c = coordinator();
    drain(&mut c);
    c.handle_report(MemberId(3), report(3, &[]));
    assert_eq!(c.handle_timeout(t0() + ms(10)), None);
    assert_eq!(kinds(&drain(&mut c)), vec![(2, "report")]);
    c.handle_report(MemberId(2), report(2, &[]));
    assert!(c.decide_if_ready());
    assert_eq!(c.handle_timeout(t0() + ms(20)), Some(Repeat::Progress));
    c.announce(t0() + ms(20), BTreeMap::new());
    c.mark_applied();
    drain(&mut c);
    c.handle_ack(MemberId(3), ResolutionAck { round: ROUND });
    assert_eq!(c.handle_timeout(t0() + ms(30)), None);
    assert_eq!(
        kinds(&drain(&mut c)),
        vec![(2, "decision")],
        "the decision again, to the member that has not acknowledged"
    );
}
