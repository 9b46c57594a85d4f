//! Departures, and the group's side of failure resolution: what it holds of departed members'
//! streams (the report it makes, the content it has or lacks, applying a decision) and how it
//! drives its [`Resolution`](super::resolution::Resolution) with that.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use super::peer::{Departed, Stream};
use super::resolution::{Relayed, Repeat, Step};
use super::Group;
use crate::protocol::decision::{decided_seqs, decision_last};
use crate::protocol::isis::Queued;
use crate::protocol::types::{Content, MemberId, OrderKey, SeqNo, ViewId};
use crate::protocol::wire::{
    self, Decided, EntryState, Frame, Order, Part, ReportEntry, ResolutionAck, ResolutionDecision,
    ResolutionFetch, ResolutionRelay, ResolutionReport, StreamDecision, StreamReport,
};

use super::data::resend_cost;
use super::Event;

impl Group {
    // ----- departures ----------------------------------------------------------------------

    /// Member `id` left the view. FIFO: its stream ends. Total order: its stream waits for a
    /// resolution (delivery pauses).
    pub(super) fn depart(&mut self, id: MemberId) {
        let Some(peer) = self.peers.remove(&id) else {
            return;
        };
        self.outbox.remove(id);
        for (seq, f) in self.proposals.forget(id) {
            self.on_own_final(seq, f);
        }
        let mut stream = peer.stream;
        if self.view.order == Order::Fifo {
            // What is held behind a gap cannot be delivered in order any more.
            let dropped: Vec<SeqNo> = stream.rx.drain().map(|(s, _)| s).collect();
            self.report_lost(id, &dropped);
            return;
        }
        if let Some(previous) = self.departed.remove(&id) {
            // The same member left again before its earlier stream was forgotten.
            self.drop_stream_entries(id, &previous, SeqNo::ZERO);
            self.resolution.resolved(id);
        }
        self.departed.insert(id, Departed::new(stream));
        self.resolution.add_unresolved(id);
        // Bound the memory of resolved departed streams.
        while self.departed.len() > self.config.max_departed.max(1) {
            let Some(oldest) = self
                .departed
                .iter()
                .find(|(id, d)| d.closed.is_some() && !self.resolution.is_unresolved(**id))
                .map(|(id, _)| *id)
            else {
                break;
            };
            self.departed.remove(&oldest);
        }
    }

    fn report_lost(&mut self, origin: MemberId, seqs: &[SeqNo]) {
        let mut iter = seqs.iter().copied().peekable();
        while let Some(first) = iter.next() {
            let mut last = first;
            while iter.peek() == Some(&last.next()) {
                last = iter.next().unwrap_or(last);
            }
            self.stats.lost += last.0 - first.0 + 1;
            self.events.push_back(Event::Lost {
                origin,
                first,
                last,
            });
        }
    }

    /// Removes every trace of `origin`'s messages above `after` from the hold-back queue.
    fn drop_stream_entries(&mut self, origin: MemberId, departed: &Departed, after: SeqNo) {
        let queued: Vec<SeqNo> = self
            .holdback
            .iter()
            .filter(|(k, _)| k.origin == origin && k.seq > after)
            .map(|(k, _)| k.seq)
            .collect();
        for seq in &queued {
            self.holdback.remove(origin, *seq);
        }
        let mut dropped: BTreeSet<SeqNo> = queued.into_iter().collect();
        dropped.extend(
            departed
                .stream
                .rx
                .held()
                .map(|(s, _)| s)
                .filter(|s| *s > after),
        );
        dropped.extend(departed.relayed.keys().copied().filter(|s| *s > after));
        let dropped: Vec<SeqNo> = dropped.into_iter().collect();
        self.report_lost(origin, &dropped);
    }

    // ----- rounds --------------------------------------------------------------------------

    /// Starts a resolution round for the current view if any departed stream is unresolved.
    pub(super) fn open_resolution_round(&mut self, now: Instant) {
        let round = self.view.id;
        if self.resolution.round() == Some(round) {
            return;
        }
        if !self.resolution.is_pausing() {
            // Nothing to resolve here; if another member needs a round it will ask.
            self.resolution.close_round();
            return;
        }
        self.start_resolution_round(now, round);
    }

    fn start_resolution_round(&mut self, now: Instant, round: ViewId) {
        self.stats.resolution_rounds += 1;
        let report = self.build_report(round);
        let members: Vec<MemberId> = self.view.members.iter().map(|m| m.id).collect();
        self.resolution.start(now, round, &members, report);
        self.progress_resolution(now);
    }

    /// Moves the round on: the coordinator decides once every report is in; whoever has the
    /// decision fetches the content it lacks, or else applies it (the coordinator announces
    /// it first).
    fn progress_resolution(&mut self, now: Instant) {
        if self.resolution.decide_if_ready() {
            let missing = self.missing_content();
            if missing.is_empty() {
                if let Some(decision) = self.resolution.decision().cloned() {
                    if self.resolution.is_coordinator() {
                        let relay = self.decided_content(&decision);
                        self.resolution.announce(now, relay);
                    }
                    self.apply_decision(now, &decision);
                }
            } else {
                self.resolution.fetch(now, missing);
            }
        }
        self.send_resolution_frames();
    }

    /// The repair tick's part for the round.
    pub(super) fn repeat_resolution(&mut self, now: Instant) {
        if self.resolution.poll_timeout().is_none_or(|t| now < t) {
            return;
        }
        match self.resolution.handle_timeout(now) {
            None => {}
            Some(Repeat::Progress) => self.progress_resolution(now),
            Some(Repeat::Fetch) => {
                let missing = self.missing_content();
                self.resolution.fetch(now, missing);
            }
            Some(Repeat::Report(round)) => {
                let report = self.build_report(round);
                self.resolution.send_report(&report);
            }
        }
        self.send_resolution_frames();
    }

    /// Queues the frames the round produced.
    fn send_resolution_frames(&mut self) {
        while let Some((to, frame)) = self.resolution.poll_frame() {
            self.queue(to, &frame);
        }
    }

    // ----- inputs of a round ---------------------------------------------------------------

    pub(super) fn on_resolution_report(
        &mut self,
        now: Instant,
        from: MemberId,
        report: ResolutionReport,
    ) {
        if self.view.order != Order::Total || report.round != self.view.id {
            return;
        }
        if self.resolution.wants_round(report.round) {
            // Another member needs a round in this view: take part.
            self.start_resolution_round(now, report.round);
        }
        match self.resolution.handle_report(from, report) {
            Step::Nothing => self.send_resolution_frames(),
            Step::Progress => self.progress_resolution(now),
            Step::Invalid => self.stats.invalid_frames += 1,
        }
    }

    pub(super) fn on_resolution_decision(
        &mut self,
        now: Instant,
        from: MemberId,
        decision: ResolutionDecision,
    ) {
        match self.resolution.handle_decision(from, decision) {
            Step::Nothing => self.send_resolution_frames(),
            Step::Progress => self.progress_resolution(now),
            Step::Invalid => self.stats.invalid_frames += 1,
        }
    }

    pub(super) fn on_resolution_relay(&mut self, now: Instant, relay: ResolutionRelay) {
        match self.resolution.handle_relay(relay) {
            Relayed::Invalid => {
                self.stats.invalid_frames += 1;
                return;
            }
            Relayed::Gathered => {}
            Relayed::ForStream {
                origin,
                seq,
                content,
            } => {
                let Some(departed) = self.departed.get_mut(&origin) else {
                    return;
                };
                if departed.closed.is_some() {
                    return;
                }
                departed.relayed.entry(seq).or_insert(content);
            }
        }
        self.progress_resolution(now);
    }

    pub(super) fn on_resolution_ack(&mut self, from: MemberId, ack: ResolutionAck) {
        self.resolution.handle_ack(from, ack);
    }

    /// A member asks for the content of departed members' messages: relayed as far as its
    /// resend credit goes.
    pub(super) fn on_resolution_fetch(&mut self, from: MemberId, fetch: ResolutionFetch) {
        let mut frames = Vec::new();
        let mut credit = self.peers.get(&from).map_or(0, |p| p.resend_credit);
        for seq in fetch.seqs.into_iter().take(self.config.window as usize) {
            if let Some(content) = self.content_of(fetch.origin, seq) {
                let cost = resend_cost(content.payload.len());
                if credit < cost {
                    self.stats.resends_refused += 1;
                    break;
                }
                credit -= cost;
                frames.push(Frame::ResolutionRelay(ResolutionRelay {
                    origin: fetch.origin,
                    seq,
                    view: content.view,
                    stamp: content.stamp,
                    payload: content.payload,
                }));
            }
        }
        if let Some(peer) = self.peers.get_mut(&from) {
            peer.resend_credit = credit;
        }
        for frame in frames {
            self.queue(from, &frame);
        }
    }

    // ----- what this member holds of departed streams --------------------------------------

    /// This member's report for `round`: what it delivered, and every message of every
    /// departed stream it knows (content, proposal or final).
    fn build_report(&self, round: ViewId) -> ResolutionReport {
        let mut streams = Vec::new();
        for (&origin, departed) in &self.departed {
            let stream = &departed.stream;
            let mut entries: BTreeMap<SeqNo, ReportEntry> = BTreeMap::new();
            let mut put = |seq: SeqNo, state: EntryState, content: Option<&Content>| {
                let content =
                    content.map(|c| (c.view, wire::content_digest(c.view, c.stamp, &c.payload)));
                let e = entries.entry(seq).or_insert(ReportEntry {
                    seq,
                    state,
                    content: None,
                    digest: None,
                });
                if e.content.is_none() {
                    if let Some((view, digest)) = content {
                        e.content = Some(view);
                        e.digest = Some(digest);
                    }
                }
                match (e.state, state) {
                    (_, EntryState::Final(_)) => e.state = state,
                    (EntryState::Unproposed, s) => e.state = s,
                    _ => {}
                }
            };
            for &(seq, p) in &stream.finals.retained {
                put(seq, EntryState::Final(p), None);
            }
            for (&seq, &p) in &stream.finals.pending {
                put(seq, EntryState::Final(p), None);
            }
            for (key, q) in self.holdback.iter().filter(|(k, _)| k.origin == origin) {
                let state = if q.is_final {
                    EntryState::Final(key.priority)
                } else {
                    EntryState::Proposed(key.priority)
                };
                put(key.seq, state, Some(&q.content));
            }
            for (seq, content) in stream.rx.held() {
                put(seq, EntryState::Unproposed, Some(content));
            }
            for (&seq, content) in &departed.relayed {
                put(seq, EntryState::Unproposed, Some(content));
            }
            for (&seq, (content, p)) in &departed.kept {
                put(seq, EntryState::Final(*p), Some(content));
            }
            streams.push(StreamReport {
                origin,
                delivered: stream.rx.start_known().then_some(stream.delivered),
                closed: departed.closed,
                entries: entries.into_values().collect(),
            });
        }
        ResolutionReport {
            round,
            joined: self.joined,
            delivered_max: self.delivered_max,
            streams,
            part: Part::WHOLE,
        }
    }

    /// Decided messages this member must keep and holds no content for. The coordinator
    /// gathers every decided message, also those it delivered before the round: it is the one
    /// the members ask, and a member that joined late keeps messages it never received.
    fn missing_content(&self) -> Vec<(MemberId, SeqNo)> {
        let mut missing = Vec::new();
        let Some(decision) = self.resolution.decision() else {
            return missing;
        };
        let coordinator = self.resolution.is_coordinator();
        for sd in &decision.streams {
            let Some(departed) = self.departed.get(&sd.origin) else {
                continue;
            };
            if coordinator {
                missing.extend(
                    decided_seqs(sd)
                        .filter(|(seq, _)| self.content_of(sd.origin, *seq).is_none())
                        .map(|(seq, _)| (sd.origin, seq)),
                );
                continue;
            }
            if departed.closed.is_some() {
                continue;
            }
            for (seq, _) in to_keep(sd, &departed.stream, self.joined) {
                let held = self.holdback.contains(sd.origin, seq)
                    || departed.stream.rx.get(seq).is_some()
                    || departed.relayed.contains_key(&seq);
                if !held {
                    missing.push((sd.origin, seq));
                }
            }
        }
        missing
    }

    /// The content this member holds of a departed member's message (payloads are shared,
    /// not copied).
    fn content_of(&self, origin: MemberId, seq: SeqNo) -> Option<Content> {
        let departed = self.departed.get(&origin)?;
        self.holdback
            .get(origin, seq)
            .map(|(_, q)| q.content.clone())
            .or_else(|| departed.stream.rx.get(seq).cloned())
            .or_else(|| departed.relayed.get(&seq).cloned())
            .or_else(|| departed.kept.get(&seq).map(|(c, _)| c.clone()))
            .or_else(|| self.resolution.gathered(origin, seq).cloned())
    }

    /// Copies of every decided message this member holds.
    fn decided_content(
        &self,
        decision: &ResolutionDecision,
    ) -> BTreeMap<(MemberId, SeqNo), Content> {
        let mut out = BTreeMap::new();
        for sd in &decision.streams {
            for (seq, _) in decided_seqs(sd) {
                if let Some(content) = self.content_of(sd.origin, seq) {
                    out.insert((sd.origin, seq), content);
                }
            }
        }
        out
    }

    /// Applies the round's decision: the decided messages go into the hold-back queue at
    /// their finals, the rest of each departed stream is dropped and the stream closed; then
    /// delivery resumes.
    fn apply_decision(&mut self, now: Instant, decision: &ResolutionDecision) {
        for sd in &decision.streams {
            let Some(mut departed) = self.departed.remove(&sd.origin) else {
                continue;
            };
            if departed.closed.is_none() {
                for (seq, d) in to_keep(sd, &departed.stream, self.joined) {
                    let content = match self.holdback.remove(sd.origin, seq) {
                        Some((_, q)) => Some(q.content),
                        None => departed
                            .stream
                            .rx
                            .remove(seq)
                            .or_else(|| departed.relayed.remove(&seq))
                            // What the coordinator gathered for the round.
                            .or_else(|| self.resolution.gathered(sd.origin, seq).cloned()),
                    };
                    // `missing_content` made sure every message is here.
                    if let Some(content) = content {
                        departed.kept.insert(seq, (content.clone(), d.priority));
                        if d.view < self.joined {
                            // Sent before this member joined: not delivered here, but kept,
                            // so that a later round can still relay it to the members that
                            // deliver it (the coordinator and every other holder may be gone).
                            continue;
                        }
                        self.counters.observe_final(d.priority);
                        self.holdback.insert(
                            OrderKey {
                                priority: d.priority,
                                origin: sd.origin,
                                seq,
                            },
                            Queued {
                                content,
                                is_final: true,
                                proposed_at: now,
                            },
                        );
                    }
                }
                let last = decision_last(sd).max(departed.stream.delivered);
                self.drop_stream_entries(sd.origin, &departed, last);
                let _ = departed.stream.rx.drain().count();
                departed.relayed.clear();
                departed.stream.finals.pending.clear();
                departed.closed = Some(last);
            }
            self.departed.insert(sd.origin, departed);
            self.resolution.resolved(sd.origin);
        }
        self.resolution.mark_applied();
        self.deliver_ready(now);
    }
}

/// The decided messages a member keeps when it applies a decision: every one it has not
/// delivered, including those sent before it joined (which it does not deliver). Keeping those
/// too is what makes a later round repeat the decision: without them, a member that joined
/// late, delivered a later message of the stream and then outlived every holder of an earlier
/// one let the next round drop both while it had delivered one (found by the resolution oracle,
/// `tests/model.rs`).
fn to_keep(sd: &StreamDecision, stream: &Stream, joined: ViewId) -> Vec<(SeqNo, Decided)> {
    decided_seqs(sd)
        // Not delivered here: above what was delivered, or before this member's part of the
        // stream (which starts after what it counts as delivered).
        .filter(|(seq, d)| *seq > stream.delivered || d.view < joined)
        .collect()
}
