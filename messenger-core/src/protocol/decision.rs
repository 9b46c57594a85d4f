//! The failure-resolution decision rule: what happens to the messages of a member that left
//! the view before all of them had a final priority, and how reports and decisions travel in
//! datagram-sized parts. Pure functions; the round that gathers reports and hands out the
//! decision is `group/resolution.rs`.
//!
//! The rule (docs/PROTOCOL.md §6 explains why it is safe):
//!
//! 1. Senders stop waiting for the departed member's proposals (`isis::Proposals::forget`).
//! 2. Every member of the new view pauses delivery and reports to the coordinator (the lowest
//!    member id of the view): the highest order key it has delivered, and for each departed
//!    stream what it has delivered and what it holds, with its proposal or the final it knows.
//! 3. The coordinator ([`decide`]) takes each departed stream in sequence order from the lowest
//!    undelivered number, up to the first number nobody holds. A final some member knows is
//!    kept; otherwise the best proposal is the largest reported one, raised above every key
//!    delivered by a member that delivers the message (one that joined in its view or before).
//!    Either way the final is `isis::final_priority` of that and the previous message's final (the
//!    same rule the sender applies to a live stream), so a known final is raised only when a
//!    message before it had to be. The rest is dropped.
//! 4. The coordinator announces the decision (relaying content members lack); every member
//!    applies it, acknowledges it and resumes delivery. A new view during the round restarts it
//!    with that view's coordinator; reports and decisions are idempotent.
//!
//! The frames of a round are the `Resolution*` frames of `wire` (`ResolutionReport`,
//! `ResolutionFetch`, `ResolutionRelay`, `ResolutionDecision`, `ResolutionAck`).

use std::collections::BTreeMap;

use super::isis::final_priority;
use super::types::ViewId as View;
use super::types::{MemberId, OrderKey, Priority, SeqNo, ViewId};
use super::wire::{
    ContentDigest, Decided, EntryState, Part, ResolutionDecision, ResolutionReport, StreamDecision,
    StreamReport,
};

/// Computes the coordinator's decision from every member's report of one round.
pub fn decide(round: ViewId, reports: &[(MemberId, ResolutionReport)]) -> ResolutionDecision {
    let mut origins: Vec<MemberId> = reports
        .iter()
        .flat_map(|(_, r)| r.streams.iter().map(|s| s.origin))
        .collect();
    origins.sort();
    origins.dedup();

    let streams = origins
        .into_iter()
        .map(|origin| decide_stream(origin, reports))
        .collect();
    ResolutionDecision {
        round,
        streams,
        part: Part::WHOLE,
    }
}

/// What the reports say about one sequence number of one stream.
#[derive(Default)]
struct Known {
    /// Each reported content: how many members hold it, and the view it was sent in.
    contents: BTreeMap<ContentDigest, (usize, View)>,
    final_priority: Option<Priority>,
    max_proposal: Option<Priority>,
}

impl Known {
    /// The content the decision delivers: the one most members hold (only a sender that sent
    /// different contents under one number, or a member that lies, makes them differ), the
    /// smallest digest on a tie, so that every coordinator picks the same.
    fn content(&self) -> Option<(ContentDigest, View)> {
        let (digest, (_, view)) = self
            .contents
            .iter()
            .max_by(|a, b| a.1 .0.cmp(&b.1 .0).then(b.0.cmp(a.0)))?;
        Some((*digest, *view))
    }
}

fn decide_stream(origin: MemberId, reports: &[(MemberId, ResolutionReport)]) -> StreamDecision {
    // The highest key delivered by a member that delivers messages sent in `view` (it joined
    // in that view or before): only those constrain where such a message may go. A member
    // that joined later never delivers it, whatever it delivered meanwhile.
    let delivered_max = |view: View| -> Option<OrderKey> {
        reports
            .iter()
            .filter(|(_, r)| r.joined <= view)
            .filter_map(|(_, r)| r.delivered_max)
            .max()
    };
    let stream_reports = || {
        reports
            .iter()
            .flat_map(move |(_, r)| r.streams.iter().filter(move |s| s.origin == origin))
    };
    // Where the decision starts: after what every member has delivered. A member that never
    // learned where its part of the stream starts reports no number; it needs every message
    // sent in a view it was in, so the decision reaches back to the first of those anybody holds.
    let delivered_floor = stream_reports()
        .filter_map(|s| s.delivered)
        .min()
        .map(SeqNo::next);
    let unknown_floor = reports
        .iter()
        .filter(|(_, r)| {
            r.streams
                .iter()
                .any(|s| s.origin == origin && s.delivered.is_none())
        })
        .filter_map(|(_, r)| {
            stream_reports()
                .flat_map(|s| s.entries.iter())
                .filter(|e| e.content.is_some_and(|v| v >= r.joined))
                .map(|e| e.seq)
                .min()
        })
        .min();
    let first = match (delivered_floor, unknown_floor) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).unwrap_or(SeqNo(1)),
    };
    let closed = stream_reports().filter_map(|s| s.closed).min();

    let mut known: BTreeMap<SeqNo, Known> = BTreeMap::new();
    for stream in stream_reports() {
        for entry in &stream.entries {
            let k = known.entry(entry.seq).or_default();
            if let (Some(view), Some(digest)) = (entry.content, entry.digest) {
                k.contents.entry(digest).or_insert((0, view)).0 += 1;
            }
            match entry.state {
                EntryState::Unproposed => {}
                EntryState::Proposed(p) => k.max_proposal = k.max_proposal.max(Some(p)),
                EntryState::Final(p) => k.final_priority = Some(p),
            }
        }
    }

    let mut decided = Vec::new();
    let mut previous: Option<Priority> = None;
    let mut seq = first;
    loop {
        if closed.is_some_and(|c| seq > c) {
            break;
        }
        let Some(k) = known.get(&seq) else { break };
        let Some((digest, view)) = k.content() else {
            // Nobody can relay it: it and everything after it cannot be delivered in FIFO order.
            break;
        };
        let best = match k.final_priority {
            // A known final stays, unless a message before it had to be raised above it: then
            // nobody has delivered this one yet (it waits behind the raised one everywhere),
            // and raising it too (`final_priority`) keeps the stream in FIFO order.
            Some(p) => p,
            None => {
                let mut p = k.max_proposal.unwrap_or_default();
                let key = OrderKey {
                    priority: p,
                    origin,
                    seq,
                };
                if let Some(d) = delivered_max(view) {
                    if key <= d {
                        p = Priority::new(d.priority.counter.saturating_add(1), origin);
                    }
                }
                if p.counter == 0 {
                    p = Priority::new(1, origin);
                }
                p
            }
        };
        let priority = final_priority(best, previous);
        decided.push(Decided {
            priority,
            view,
            digest,
        });
        previous = Some(priority);
        seq = seq.next();
    }
    StreamDecision {
        origin,
        first,
        decided,
    }
}

/// Most report entries or decided messages in one frame: a part stays far below the datagram
/// limit (about 35 bytes an entry), however many departed members and messages a round has.
pub const PART_ITEMS: usize = 256;
/// Most parts a report or decision may have (bounds what a coordinator keeps per member).
pub const MAX_PARTS: u32 = 256;

/// Packs the items of several streams into parts of at most [`PART_ITEMS`] items, in order; a
/// stream's items may span parts, and a stream without items still takes one place (it says
/// something: a report's delivered number, a decision that ends the stream). `piece` makes one
/// part's piece of a stream from its offset in the stream and its items.
fn pack<S, I, P>(
    streams: &[S],
    items: impl Fn(&S) -> &[I],
    piece: impl Fn(&S, usize, &[I]) -> P,
) -> Vec<Vec<P>> {
    let mut parts: Vec<Vec<P>> = vec![Vec::new()];
    let mut used = 0;
    for stream in streams {
        let mut rest = items(stream);
        let mut offset = 0;
        loop {
            if used == PART_ITEMS {
                parts.push(Vec::new());
                used = 0;
            }
            let take = rest.len().min(PART_ITEMS - used);
            let (chunk, tail) = rest.split_at(take);
            used += take.max(1);
            if let Some(part) = parts.last_mut() {
                part.push(piece(stream, offset, chunk));
            }
            offset += take;
            rest = tail;
            if rest.is_empty() {
                break;
            }
        }
    }
    parts
}

/// Numbers the parts `pack` made.
fn numbered<P>(parts: Vec<P>) -> impl Iterator<Item = (Part, P)> {
    let count = parts.len() as u32;
    parts.into_iter().enumerate().map(move |(index, p)| {
        (
            Part {
                index: index as u32,
                count,
            },
            p,
        )
    })
}

/// Splits a report into parts of at most [`PART_ITEMS`] entries.
pub fn split_report(report: &ResolutionReport) -> Vec<ResolutionReport> {
    let parts = pack(
        &report.streams,
        |s| &s.entries,
        |s, _, chunk| StreamReport {
            entries: chunk.to_vec(),
            ..s.clone()
        },
    );
    numbered(parts)
        .map(|(part, streams)| ResolutionReport {
            streams,
            part,
            ..report.clone()
        })
        .collect()
}

/// Joins the parts of one report (in any order); `None` when they do not form one.
pub fn merge_report(mut parts: Vec<ResolutionReport>) -> Option<ResolutionReport> {
    parts.sort_by_key(|p| p.part.index);
    let first = parts.first()?.clone();
    let mut streams: Vec<StreamReport> = Vec::new();
    for part in parts {
        if part.round != first.round
            || part.joined != first.joined
            || part.delivered_max != first.delivered_max
        {
            return None;
        }
        for stream in part.streams {
            match streams.iter_mut().find(|s| s.origin == stream.origin) {
                Some(s) => s.entries.extend(stream.entries),
                None => streams.push(stream),
            }
        }
    }
    Some(ResolutionReport {
        streams,
        part: Part::WHOLE,
        ..first
    })
}

/// Splits a decision into parts of at most [`PART_ITEMS`] decided messages; every piece names
/// the first sequence number it covers.
pub fn split_decision(decision: &ResolutionDecision) -> Vec<ResolutionDecision> {
    let parts = pack(
        &decision.streams,
        |s| &s.decided,
        |s, offset, chunk| StreamDecision {
            origin: s.origin,
            first: SeqNo(s.first.0.saturating_add(offset as u64)),
            decided: chunk.to_vec(),
        },
    );
    numbered(parts)
        .map(|(part, streams)| ResolutionDecision {
            round: decision.round,
            streams,
            part,
        })
        .collect()
}

/// Joins the parts of one decision; `None` when a stream's pieces do not follow each other.
pub fn merge_decision(mut parts: Vec<ResolutionDecision>) -> Option<ResolutionDecision> {
    parts.sort_by_key(|p| p.part.index);
    let round = parts.first()?.round;
    let mut streams: Vec<StreamDecision> = Vec::new();
    for part in parts {
        if part.round != round {
            return None;
        }
        for piece in part.streams {
            match streams.iter_mut().find(|s| s.origin == piece.origin) {
                Some(s) => {
                    if decision_last(s).next() != piece.first {
                        return None;
                    }
                    s.decided.extend(piece.decided);
                }
                None => streams.push(piece),
            }
        }
    }
    Some(ResolutionDecision {
        round,
        streams,
        part: Part::WHOLE,
    })
}

/// Collects the parts of one report or decision from one member.
#[derive(Debug, Clone)]
pub struct Parts<T> {
    count: u32,
    got: BTreeMap<u32, T>,
}

impl<T> Default for Parts<T> {
    fn default() -> Self {
        Parts {
            count: 0,
            got: BTreeMap::new(),
        }
    }
}

impl<T> Parts<T> {
    /// Adds a part; returns every part once all have arrived. A part with another count
    /// starts over (a sender's report is fixed within a round, so only a confused or hostile
    /// sender changes it); counts above [`MAX_PARTS`] are refused.
    pub fn add(&mut self, part: Part, item: T) -> Option<Vec<T>> {
        if part.count == 0 || part.count > MAX_PARTS || part.index >= part.count {
            return None;
        }
        if part.count != self.count {
            self.count = part.count;
            self.got.clear();
        }
        self.got.entry(part.index).or_insert(item);
        if self.got.len() as u32 == self.count {
            self.count = 0;
            return Some(std::mem::take(&mut self.got).into_values().collect());
        }
        None
    }
}

/// The messages of a stream decision with their sequence numbers, in order.
pub fn decided_seqs(sd: &StreamDecision) -> impl Iterator<Item = (SeqNo, Decided)> + '_ {
    sd.decided
        .iter()
        .enumerate()
        .map_while(|(i, d)| Some((SeqNo(sd.first.0.checked_add(i as u64)?), *d)))
}

/// What `decision` decided for message `seq` of `origin`, if it names it.
pub fn decided_at(decision: &ResolutionDecision, origin: MemberId, seq: SeqNo) -> Option<Decided> {
    let sd = decision.streams.iter().find(|s| s.origin == origin)?;
    let index = usize::try_from(seq.0.checked_sub(sd.first.0)?).ok()?;
    sd.decided.get(index).copied()
}

/// Last sequence number a decision delivers (`first - 1` when it delivers nothing).
pub fn decision_last(d: &StreamDecision) -> SeqNo {
    SeqNo(
        d.first
            .0
            .saturating_add(d.decided.len() as u64)
            .saturating_sub(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::wire::ReportEntry;

    const X: MemberId = MemberId(9);

    fn prio(c: u64, m: u64) -> Priority {
        Priority::new(u128::from(c), MemberId(m))
    }

    fn report(
        delivered_max: Option<OrderKey>,
        delivered: u64,
        entries: Vec<(u64, EntryState, bool)>,
    ) -> ResolutionReport {
        report_opt(delivered_max, Some(delivered), entries)
    }

    fn report_opt(
        delivered_max: Option<OrderKey>,
        delivered: Option<u64>,
        entries: Vec<(u64, EntryState, bool)>,
    ) -> ResolutionReport {
        ResolutionReport {
            part: Part::WHOLE,
            round: ViewId(5),
            joined: ViewId(1),
            delivered_max,
            streams: vec![StreamReport {
                origin: X,
                delivered: delivered.map(SeqNo),
                closed: None,
                entries: entries
                    .into_iter()
                    .map(|(seq, state, has_content)| ReportEntry {
                        seq: SeqNo(seq),
                        state,
                        content: has_content.then_some(ViewId(1)),
                        digest: has_content.then_some(ContentDigest([seq as u8; 16])),
                    })
                    .collect(),
            }],
        }
    }

    #[test]
    fn keeps_known_finals_and_stops_at_the_first_message_nobody_holds() {
        let a = report(
            None,
            1,
            vec![
                (1, EntryState::Final(prio(3, 1)), false),
                (2, EntryState::Proposed(prio(4, 1)), true),
            ],
        );
        let b = report(
            None,
            0,
            vec![
                (1, EntryState::Proposed(prio(2, 2)), true),
                (2, EntryState::Proposed(prio(5, 2)), true),
                (4, EntryState::Unproposed, true),
            ],
        );
        let d = decide(ViewId(5), &[(MemberId(1), a), (MemberId(2), b)]);
        let s = &d.streams[0];
        assert_eq!(s.first, SeqNo(1));
        let finals: Vec<Priority> = s.decided.iter().map(|d| d.priority).collect();
        assert_eq!(finals, vec![prio(3, 1), prio(5, 2)]);
        assert_eq!(
            decision_last(s),
            SeqNo(2),
            "seq 3 is held by nobody, so 3 and 4 are dropped"
        );
    }

    #[test]
    fn final_is_raised_above_everything_delivered() {
        let delivered = OrderKey {
            priority: prio(10, 2),
            origin: MemberId(2),
            seq: SeqNo(4),
        };
        let a = report(Some(delivered), 0, vec![(1, EntryState::Unproposed, true)]);
        let b = report(None, 0, vec![(1, EntryState::Proposed(prio(3, 3)), true)]);
        let d = decide(ViewId(5), &[(MemberId(1), a), (MemberId(3), b)]);
        let f = d.streams[0].decided[0].priority;
        assert!(
            OrderKey {
                priority: f,
                origin: X,
                seq: SeqNo(1)
            } > delivered
        );
    }

    /// Found by the chaos simulation (seed 999 of 2000): message 2's final was lost everywhere
    /// and had to be raised above what a member had delivered, past the known final of
    /// message 3; keeping 3's final would have delivered 3 before 2.
    #[test]
    fn a_known_final_after_a_raised_one_is_raised_too() {
        let delivered = OrderKey {
            priority: prio(300, 2),
            origin: MemberId(2),
            seq: SeqNo(40),
        };
        let a = report(
            Some(delivered),
            1,
            vec![
                (2, EntryState::Proposed(prio(20, 1)), true),
                (3, EntryState::Final(prio(45, 7)), true),
                (4, EntryState::Final(prio(500, 7)), true),
            ],
        );
        let d = decide(ViewId(5), &[(MemberId(1), a)]);
        let finals: Vec<Priority> = d.streams[0].decided.iter().map(|d| d.priority).collect();
        assert_eq!(finals.len(), 3);
        assert!(finals[0] > prio(300, 2), "{finals:?}");
        assert_eq!(finals[1], finals[0], "raised with the message before it");
        assert_eq!(finals[2], prio(500, 7), "a final above stays as it is");
    }

    /// Found by the chaos simulation (seed 999 of 2000, after the fix above): a member that
    /// joined after a message was sent kept delivering other messages; raising the message
    /// above those put it after a later message of its stream that member had delivered.
    #[test]
    fn deliveries_of_a_later_joiner_do_not_raise_a_message_it_never_delivers() {
        let joiner_delivered = OrderKey {
            priority: prio(300, 9),
            origin: MemberId(4),
            seq: SeqNo(40),
        };
        let old = report(
            None,
            1,
            vec![
                (2, EntryState::Proposed(prio(20, 1)), true),
                (3, EntryState::Proposed(prio(30, 1)), true),
            ],
        );
        let mut joiner = report(
            Some(joiner_delivered),
            2,
            vec![(3, EntryState::Final(prio(45, 7)), true)],
        );
        joiner.joined = ViewId(2);
        let d = decide(ViewId(5), &[(MemberId(1), old), (MemberId(9), joiner)]);
        let finals: Vec<Priority> = d.streams[0].decided.iter().map(|d| d.priority).collect();
        assert_eq!(finals, vec![prio(20, 1), prio(45, 7)]);
    }

    /// Issue 10, finding 10: the decision names the content most members hold, so a relay of
    /// anything else is refused.
    #[test]
    fn the_decision_names_the_content_most_members_hold() {
        let honest = ContentDigest([7; 16]);
        let forged = ContentDigest([1; 16]);
        let with = |digest| {
            let mut r = report(None, 0, vec![(1, EntryState::Proposed(prio(2, 1)), true)]);
            r.streams[0].entries[0].digest = Some(digest);
            r
        };
        let d = decide(
            ViewId(5),
            &[
                (MemberId(1), with(honest)),
                (MemberId(2), with(forged)),
                (MemberId(3), with(honest)),
            ],
        );
        assert_eq!(d.streams[0].decided[0].digest, honest);
        // Reports without a digest do not count as holding the content.
        let mut bare = report(None, 0, vec![(1, EntryState::Unproposed, true)]);
        bare.streams[0].entries[0].digest = None;
        let d = decide(ViewId(5), &[(MemberId(1), bare)]);
        assert!(d.streams[0].decided.is_empty());
    }

    #[test]
    fn reports_and_decisions_split_into_parts_and_join_again_in_any_order() {
        let mut r = report(None, 0, vec![]);
        r.streams = (0..3u64)
            .map(|o| StreamReport {
                origin: MemberId(10 + o),
                delivered: Some(SeqNo(o)),
                closed: None,
                entries: (1..=(300 * o))
                    .map(|seq| ReportEntry {
                        seq: SeqNo(seq),
                        state: EntryState::Proposed(prio(seq, 1)),
                        content: Some(ViewId(1)),
                        digest: Some(ContentDigest([1; 16])),
                    })
                    .collect(),
            })
            .collect();
        let mut parts = split_report(&r);
        assert_eq!(
            parts.len(),
            4,
            "900 entries and one empty stream, 256 a part"
        );
        parts.reverse();
        let mut collect = Parts::default();
        let mut whole = None;
        for p in parts {
            whole = collect.add(p.part, p);
        }
        assert!(merge_report(whole.expect("complete")) == Some(r.clone()));

        let d = decide(ViewId(5), &[(MemberId(1), r)]);
        let parts = split_decision(&d);
        assert!(parts.len() > 1);
        assert!(merge_decision(parts.clone()) == Some(d));
        // Pieces that do not follow each other are refused.
        let mut gap = parts;
        let last = gap.len() - 1;
        let piece = gap[last].streams.first_mut().expect("a piece");
        piece.first = piece.first.next();
        assert!(merge_decision(gap).is_none());
    }

    #[test]
    fn parts_with_impossible_numbers_are_refused() {
        let mut collect: Parts<u8> = Parts::default();
        assert_eq!(collect.add(Part { index: 0, count: 0 }, 1), None);
        assert_eq!(collect.add(Part { index: 3, count: 2 }, 1), None);
        assert_eq!(
            collect.add(
                Part {
                    index: 0,
                    count: MAX_PARTS + 1
                },
                1
            ),
            None
        );
        assert_eq!(collect.add(Part { index: 1, count: 2 }, 2), None);
        assert_eq!(
            collect.add(Part { index: 0, count: 2 }, 1),
            Some(vec![1, 2])
        );
    }

    #[test]
    fn finals_grow_along_the_sequence() {
        let a = report(
            None,
            0,
            vec![
                (1, EntryState::Proposed(prio(8, 1)), true),
                (2, EntryState::Unproposed, true),
            ],
        );
        let d = decide(ViewId(5), &[(MemberId(1), a)]);
        let f = &d.streams[0].decided;
        assert_eq!(f.len(), 2);
        assert!(f[1].priority >= f[0].priority);
    }

    #[test]
    fn a_closed_stream_is_not_extended() {
        let mut a = report(None, 2, vec![]);
        a.streams[0].closed = Some(SeqNo(2));
        let b = report(None, 2, vec![(3, EntryState::Unproposed, true)]);
        let d = decide(ViewId(5), &[(MemberId(1), a), (MemberId(2), b)]);
        assert!(d.streams[0].decided.is_empty());
    }

    #[test]
    fn a_member_that_never_learned_the_start_does_not_pull_it_back() {
        let a = report(None, 4, vec![(5, EntryState::Proposed(prio(9, 1)), true)]);
        let j = report_opt(None, None, vec![(5, EntryState::Unproposed, true)]);
        let d = decide(ViewId(5), &[(MemberId(1), a), (MemberId(7), j)]);
        assert_eq!(d.streams[0].first, SeqNo(5));
        assert_eq!(d.streams[0].decided.len(), 1);
    }

    #[test]
    fn a_member_that_never_learned_the_start_gets_what_others_already_decided() {
        // Member 1 applied an earlier decision (closed at 3, kept 2 and 3, sent in view 2);
        // member 7 joined in view 2, never learned the start and missed that decision.
        let mut a = report(
            None,
            3,
            vec![
                (2, EntryState::Final(prio(4, 1)), true),
                (3, EntryState::Final(prio(5, 1)), true),
            ],
        );
        a.streams[0].closed = Some(SeqNo(3));
        for e in &mut a.streams[0].entries {
            e.content = Some(ViewId(2));
        }
        let mut j = report_opt(None, None, vec![]);
        j.joined = ViewId(2);
        let d = decide(ViewId(5), &[(MemberId(1), a), (MemberId(7), j)]);
        let s = &d.streams[0];
        assert_eq!(s.first, SeqNo(2));
        let finals: Vec<Priority> = s.decided.iter().map(|d| d.priority).collect();
        assert_eq!(finals, vec![prio(4, 1), prio(5, 1)]);
    }
}
