//! Failure resolution at one member, as a sub-state machine of the group: which departed
//! streams wait for a decision, the current round (its coordinator, the reports, the decision,
//! the acknowledgements), when to repeat, and the frames the round sends. The decision rule
//! itself is `protocol/decision.rs`; what the group holds of departed streams (the reports it
//! makes, the content it has, applying a decision) is `departed.rs`.
//!
//! A round, for the view in which members left (docs/PROTOCOL.md §6):
//!
//! ```text
//! member                         coordinator (lowest member id of the view)
//! start: report ───────────────▶ start: its own report, and a call to report to everyone
//!                                every report in: decide; fetch content it lacks from holders
//!        ◀────────────── decision (in parts)
//! fetch what it lacks ─────────▶ relay it
//! apply, acknowledge ──────────▶ every acknowledgement in: the round is finished; a late
//!                                report gets the decision again
//! ```
//!
//! Like the group, [`Resolution`] reads no clock and sends nothing itself: inputs take `now`,
//! the frames it wants sent are drained with [`Resolution::poll_frame`], and where a step needs
//! what the group holds (its report, the content it lacks, applying the decision) an input
//! returns what the group should do next ([`Step`], [`Relayed`], [`Repeat`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use crate::protocol::decision::{
    decide, decided_at, merge_decision, merge_report, split_decision, split_report, Parts,
};
use crate::protocol::types::{Content, MemberId, SeqNo, ViewId};
use crate::protocol::wire::{
    self, Frame, ResolutionAck, ResolutionDecision, ResolutionFetch, ResolutionRelay,
    ResolutionReport,
};

/// What the group does after an input of the round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing more.
    Nothing,
    /// The round moved (a report or the decision is complete): the group calls
    /// `progress_resolution`.
    Progress,
    /// The frame was well-formed but impossible (parts that do not join): count it.
    Invalid,
}

/// What became of a relayed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Relayed {
    /// Not named by the round's decision, or not the content it names: count it.
    Invalid,
    /// The coordinator gathered it for the round.
    Gathered,
    /// A member's: the group keeps it with the departed stream.
    ForStream {
        origin: MemberId,
        seq: SeqNo,
        content: Content,
    },
}

/// What the round's repeat needs from the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repeat {
    /// Coordinator with a decision not applied yet: move on (ask holders again).
    Progress,
    /// Member with the decision: fetch again what it still lacks ([`Resolution::fetch`]).
    Fetch,
    /// Member without a decision: report again ([`Resolution::send_report`]).
    Report(ViewId),
}

/// Failure resolution at one member.
#[derive(Debug)]
pub(crate) struct Resolution {
    me: MemberId,
    /// How often the round's messages are repeated (`repair_interval`).
    interval: Duration,
    /// Departed streams without a decision yet: delivery pauses while there is any.
    unresolved: BTreeSet<MemberId>,
    round: Option<Round>,
    /// The decision of the last round this member coordinated to the end (every member
    /// acknowledged it): a late or repeated report for that round gets it again instead of
    /// starting a round that nobody would join.
    finished: Option<ResolutionDecision>,
    /// Frames for the group to send, in order.
    frames: VecDeque<(MemberId, Frame)>,
}

/// One round: the view's coordinator, reports and decisions assembled from parts, content
/// gathered, acknowledgements.
#[derive(Debug)]
struct Round {
    id: ViewId,
    coordinator: MemberId,
    /// The other members of the round's view, in id order.
    others: Vec<MemberId>,
    applied: bool,
    /// The decision being applied (member) or announced (coordinator).
    decision: Option<ResolutionDecision>,
    /// When this member last sent something of the round; it repeats `interval` later.
    last_sent: Instant,
    /// Member only: the parts of the decision received so far.
    decision_parts: Parts<ResolutionDecision>,
    // Coordinator only.
    reports: BTreeMap<MemberId, ResolutionReport>,
    /// Reports still arriving in parts.
    report_parts: BTreeMap<MemberId, Parts<ResolutionReport>>,
    /// Content of the decided messages, kept to relay to members that lack it (the
    /// coordinator may deliver its own copies before they ask).
    relay: BTreeMap<(MemberId, SeqNo), Content>,
    acked: BTreeSet<MemberId>,
}

impl Resolution {
    pub(crate) fn new(me: MemberId, interval: Duration) -> Self {
        Resolution {
            me,
            interval,
            unresolved: BTreeSet::new(),
            round: None,
            finished: None,
            frames: VecDeque::new(),
        }
    }

    // ----- getters -------------------------------------------------------------------------

    /// True while a departed stream waits for a decision: delivery pauses.
    pub(crate) fn is_pausing(&self) -> bool {
        !self.unresolved.is_empty()
    }

    /// True while anything of a resolution goes on (the group keeps its repair tick running).
    pub(crate) fn is_active(&self) -> bool {
        self.is_pausing() || self.round.is_some()
    }

    pub(crate) fn is_unresolved(&self, origin: MemberId) -> bool {
        self.unresolved.contains(&origin)
    }

    /// The current round's view.
    pub(crate) fn round(&self) -> Option<ViewId> {
        self.round.as_ref().map(|r| r.id)
    }

    /// True when this member coordinates the current round.
    pub(crate) fn is_coordinator(&self) -> bool {
        self.round
            .as_ref()
            .is_some_and(|r| r.coordinator == self.me)
    }

    /// The current round's decision, once known whole.
    pub(crate) fn decision(&self) -> Option<&ResolutionDecision> {
        self.round.as_ref()?.decision.as_ref()
    }

    /// Content the coordinator gathered for the current round.
    pub(crate) fn gathered(&self, origin: MemberId, seq: SeqNo) -> Option<&Content> {
        self.round.as_ref()?.relay.get(&(origin, seq))
    }

    /// True when `round` is neither the current round nor a finished one this member
    /// coordinated: a report for it means another member needs a round, so this member
    /// starts one.
    pub(crate) fn wants_round(&self, round: ViewId) -> bool {
        match &self.round {
            Some(r) => r.id != round,
            None => self.finished.as_ref().is_none_or(|d| d.round != round),
        }
    }

    // ----- outputs -------------------------------------------------------------------------

    /// The next frame to send, and to whom.
    pub(crate) fn poll_frame(&mut self) -> Option<(MemberId, Frame)> {
        self.frames.pop_front()
    }

    /// When the round's messages are due for a repeat. The group checks it on its repair
    /// tick, which runs while the round is open ([`Resolution::is_active`]).
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        Some(self.round.as_ref()?.last_sent + self.interval)
    }

    // ----- inputs --------------------------------------------------------------------------

    /// A member left with messages that may need a decision.
    pub(crate) fn add_unresolved(&mut self, origin: MemberId) {
        self.unresolved.insert(origin);
    }

    /// The stream of `origin` needs no decision (any more).
    pub(crate) fn resolved(&mut self, origin: MemberId) {
        self.unresolved.remove(&origin);
    }

    /// Ends the current round without a decision (a new view with nothing to resolve).
    pub(crate) fn close_round(&mut self) {
        self.round = None;
    }

    /// Starts round `id` among `members` (the view's, this one included) with this member's
    /// `report`. The coordinator calls everyone else to report; the others report to it. The
    /// group then calls `progress_resolution` (a coordinator alone may decide at once).
    pub(crate) fn start(
        &mut self,
        now: Instant,
        id: ViewId,
        members: &[MemberId],
        report: ResolutionReport,
    ) {
        let me = self.me;
        let coordinator = members.iter().copied().min().unwrap_or(me);
        let mut others: Vec<MemberId> = members.iter().copied().filter(|m| *m != me).collect();
        others.sort_unstable();
        others.dedup();
        let mut round = Round {
            id,
            coordinator,
            others,
            applied: false,
            decision: None,
            last_sent: now,
            decision_parts: Parts::default(),
            reports: BTreeMap::new(),
            report_parts: BTreeMap::new(),
            relay: BTreeMap::new(),
            acked: BTreeSet::new(),
        };
        if coordinator == me {
            // The coordinator's report asks everyone else to report too.
            for &to in &round.others {
                queue_call(&mut self.frames, to, &report);
            }
            round.reports.insert(me, report);
        } else {
            queue_report(&mut self.frames, coordinator, &report);
        }
        self.round = Some(round);
    }

    /// A report (or a part of one) from `from` for the current round. The group checked that
    /// it is for the current view and started the round if [`Resolution::wants_round`].
    pub(crate) fn handle_report(&mut self, from: MemberId, report: ResolutionReport) -> Step {
        let me = self.me;
        let Some(round) = self.round.as_mut().filter(|r| r.id == report.round) else {
            if let Some(decision) = self.finished.as_ref().filter(|d| d.round == report.round) {
                // The round is over: the member missed the decision, or the report is a late
                // copy.
                queue_decision(&mut self.frames, from, decision);
            }
            return Step::Nothing;
        };
        if round.coordinator != me {
            // A report from the coordinator is its call to report: ours went out at round
            // start, and repeats until the decision arrives.
            return Step::Nothing;
        }
        if let Some(decision) = &round.decision {
            if round.applied {
                // The member missed the decision.
                queue_decision(&mut self.frames, from, decision);
            }
            return Step::Nothing;
        }
        if round.reports.contains_key(&from) {
            return Step::Nothing;
        }
        let parts = round.report_parts.entry(from).or_default();
        let Some(parts) = parts.add(report.part, report) else {
            return Step::Nothing;
        };
        round.report_parts.remove(&from);
        match merge_report(parts) {
            Some(report) => {
                round.reports.insert(from, report);
                Step::Progress
            }
            None => Step::Invalid,
        }
    }

    /// A decision (or a part of one) from `from`.
    pub(crate) fn handle_decision(&mut self, from: MemberId, decision: ResolutionDecision) -> Step {
        let me = self.me;
        let Some(round) = self.round.as_mut() else {
            return Step::Nothing;
        };
        if decision.round != round.id || from != round.coordinator || round.coordinator == me {
            return Step::Nothing;
        }
        if round.applied {
            // Our acknowledgement was lost.
            let ack = Frame::ResolutionAck(ResolutionAck {
                round: decision.round,
            });
            self.frames.push_back((from, ack));
            return Step::Nothing;
        }
        if round.decision.is_none() {
            let Some(parts) = round.decision_parts.add(decision.part, decision) else {
                return Step::Nothing;
            };
            match merge_decision(parts) {
                Some(whole) => round.decision = Some(whole),
                None => return Step::Invalid,
            }
        }
        Step::Progress
    }

    /// Content relayed for the current round. Only content the round's decision names, with
    /// the digest it names: what relays can add is bounded by the decision (not by how far the
    /// departed stream ran ahead of what this member delivered), and a member cannot
    /// substitute content.
    pub(crate) fn handle_relay(&mut self, relay: ResolutionRelay) -> Relayed {
        let me = self.me;
        let Some(round) = self.round.as_mut() else {
            return Relayed::Invalid;
        };
        let expected = round
            .decision
            .as_ref()
            .and_then(|d| decided_at(d, relay.origin, relay.seq));
        let Some(expected) = expected else {
            return Relayed::Invalid;
        };
        if wire::content_digest(relay.view, relay.stamp, &relay.payload) != expected.digest {
            return Relayed::Invalid;
        }
        let content = Content {
            view: relay.view,
            stamp: relay.stamp,
            payload: relay.payload,
        };
        if round.coordinator == me {
            // The coordinator gathers every decided message, also of streams it already
            // closed in an earlier round (its members may still need them).
            round
                .relay
                .entry((relay.origin, relay.seq))
                .or_insert(content);
            return Relayed::Gathered;
        }
        Relayed::ForStream {
            origin: relay.origin,
            seq: relay.seq,
            content,
        }
    }

    /// A member applied the decision of round `ack.round`.
    pub(crate) fn handle_ack(&mut self, from: MemberId, ack: ResolutionAck) {
        let me = self.me;
        let Some(round) = self.round.as_mut() else {
            return;
        };
        if round.coordinator != me || round.id != ack.round {
            return;
        }
        round.acked.insert(from);
        if round.applied && round.acked.len() >= round.others.len() {
            self.finished = self.round.take().and_then(|r| r.decision);
        }
    }

    /// The repair tick: repeats what the round waits for, at most every `interval`. What
    /// needs the group's state comes back as a [`Repeat`].
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Option<Repeat> {
        let me = self.me;
        let round = self.round.as_mut()?;
        if now.saturating_duration_since(round.last_sent) < self.interval {
            return None;
        }
        round.last_sent = now;
        if round.coordinator == me {
            match (&round.decision, round.applied) {
                (Some(decision), true) => {
                    for &to in round.others.iter().filter(|m| !round.acked.contains(m)) {
                        queue_decision(&mut self.frames, to, decision);
                    }
                    None
                }
                (Some(_), false) => Some(Repeat::Progress),
                (None, _) => {
                    let report = round.reports.get(&me)?;
                    for &to in round
                        .others
                        .iter()
                        .filter(|m| !round.reports.contains_key(m))
                    {
                        queue_call(&mut self.frames, to, report);
                    }
                    None
                }
            }
        } else if round.applied {
            None
        } else if round.decision.is_some() {
            Some(Repeat::Fetch)
        } else {
            Some(Repeat::Report(round.id))
        }
    }

    // ----- steps the group drives ----------------------------------------------------------

    /// Coordinator: once every member has reported, decides ([`decide`]). True when the round
    /// has a decision that is not applied yet (for a member: once it arrived whole).
    pub(crate) fn decide_if_ready(&mut self) -> bool {
        let me = self.me;
        let Some(round) = self.round.as_mut() else {
            return false;
        };
        if round.applied {
            return false;
        }
        if round.decision.is_none() && round.coordinator == me {
            let everyone = std::iter::once(&me).chain(&round.others);
            if everyone.clone().all(|m| round.reports.contains_key(m)) {
                let reports: Vec<(MemberId, ResolutionReport)> =
                    round.reports.iter().map(|(m, r)| (*m, r.clone())).collect();
                round.decision = Some(decide(round.id, &reports));
            }
        }
        round.decision.is_some()
    }

    /// Coordinator: every decided message is here (`relay`: its copies of them); sends the
    /// decision to every other member.
    pub(crate) fn announce(&mut self, now: Instant, relay: BTreeMap<(MemberId, SeqNo), Content>) {
        let Some(round) = self.round.as_mut() else {
            return;
        };
        let Some(decision) = &round.decision else {
            return;
        };
        round.last_sent = now;
        round.relay = relay;
        for &to in &round.others {
            queue_decision(&mut self.frames, to, decision);
        }
    }

    /// The group applied the decision; a member acknowledges it to the coordinator.
    pub(crate) fn mark_applied(&mut self) {
        let me = self.me;
        let Some(round) = self.round.as_mut() else {
            return;
        };
        round.applied = true;
        if round.coordinator != me {
            let ack = Frame::ResolutionAck(ResolutionAck { round: round.id });
            self.frames.push_back((round.coordinator, ack));
        }
    }

    /// Asks for the content of decided messages this member lacks (`missing`): a member asks
    /// the coordinator; the coordinator asks a member whose report names the decided content.
    pub(crate) fn fetch(&mut self, now: Instant, missing: Vec<(MemberId, SeqNo)>) {
        let me = self.me;
        let Some(round) = self.round.as_mut() else {
            return;
        };
        let mut asks: BTreeMap<(MemberId, MemberId), Vec<SeqNo>> = BTreeMap::new();
        if round.coordinator == me {
            for (origin, seq) in missing {
                // A holder of the decided content (the one whose copy will be accepted).
                let digest = round
                    .decision
                    .as_ref()
                    .and_then(|d| decided_at(d, origin, seq))
                    .map(|d| d.digest);
                let holder = round.reports.iter().find(|(m, r)| {
                    **m != me
                        && r.streams.iter().any(|s| {
                            s.origin == origin
                                && s.entries.iter().any(|e| {
                                    e.seq == seq && e.content.is_some() && e.digest == digest
                                })
                        })
                });
                if let Some((holder, _)) = holder {
                    asks.entry((*holder, origin)).or_default().push(seq);
                }
            }
        } else {
            round.last_sent = now;
            for (origin, seq) in missing {
                asks.entry((round.coordinator, origin))
                    .or_default()
                    .push(seq);
            }
        }
        let id = round.id;
        for ((to, origin), seqs) in asks {
            let fetch = Frame::ResolutionFetch(ResolutionFetch {
                round: id,
                origin,
                seqs,
            });
            self.frames.push_back((to, fetch));
        }
    }

    /// Member: sends its report for the current round again.
    pub(crate) fn send_report(&mut self, report: &ResolutionReport) {
        if let Some(round) = &self.round {
            queue_report(&mut self.frames, round.coordinator, report);
        }
    }
}

/// A report in as many parts as it takes.
fn queue_report(frames: &mut VecDeque<(MemberId, Frame)>, to: MemberId, report: &ResolutionReport) {
    for part in split_report(report) {
        frames.push_back((to, Frame::ResolutionReport(Box::new(part))));
    }
}

/// The coordinator's call to report: the first part of its own report is enough.
fn queue_call(frames: &mut VecDeque<(MemberId, Frame)>, to: MemberId, report: &ResolutionReport) {
    if let Some(part) = split_report(report).into_iter().next() {
        frames.push_back((to, Frame::ResolutionReport(Box::new(part))));
    }
}

fn queue_decision(
    frames: &mut VecDeque<(MemberId, Frame)>,
    to: MemberId,
    decision: &ResolutionDecision,
) {
    for part in split_decision(decision) {
        frames.push_back((to, Frame::ResolutionDecision(part)));
    }
}

#[cfg(test)]
mod tests;
