//! ISIS total order at one member: the sender's proposals and finals, the receiver's
//! proposals and the finals it learns, and delivery from the hold-back queue.

use std::time::Instant;

use super::Group;
use crate::protocol::isis::{HoldBack, Queued};
use crate::protocol::types::{Content, MemberId, OrderKey, Priority, SeqNo};
use crate::protocol::wire::{Final, Frame, Order, Propose};

use super::peer::Stream;
use super::timers::Timer;

impl Group {
    /// Our own message `seq`, just sent: queued at our own proposal, waiting for the
    /// proposals of `targets`.
    pub(super) fn propose_own(
        &mut self,
        now: Instant,
        seq: SeqNo,
        content: Content,
        targets: &[MemberId],
    ) {
        let own = self.counters.propose(self.me);
        self.holdback.insert(
            OrderKey {
                priority: own,
                origin: self.me,
                seq,
            },
            Queued {
                content,
                is_final: false,
                proposed_at: now,
            },
        );
        for (s, f) in self.proposals.start(seq, own, targets.iter().copied()) {
            self.on_own_final(s, f);
        }
    }

    pub(super) fn on_propose(&mut self, from: MemberId, p: Propose) {
        if self.view.order != Order::Total {
            return;
        }
        let priority = Priority::new(p.counter, from);
        let decided = self.proposals.record(p.seq, from, priority);
        if decided.is_empty() {
            if let Some(f) = self.proposals.final_of(p.seq) {
                // A repeated proposal: the member lacks the final.
                self.queue(
                    from,
                    &Frame::Final(Final {
                        seq: p.seq,
                        priority: f,
                    }),
                );
            }
        }
        for (seq, f) in decided {
            self.on_own_final(seq, f);
        }
    }

    /// The final of our own message `seq` is decided: order it here and announce it to every
    /// member that delivers it.
    pub(super) fn on_own_final(&mut self, seq: SeqNo, f: Priority) {
        self.counters.observe_final(f);
        self.holdback.finalize(self.me, seq, f);
        let targets: Vec<MemberId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.start_for <= seq)
            .map(|(id, _)| *id)
            .collect();
        let frame = Frame::Final(Final { seq, priority: f });
        self.queue_to_all(&targets, &frame);
    }

    pub(super) fn on_final(&mut self, now: Instant, from: MemberId, f: Final) {
        if self.view.order != Order::Total {
            return;
        }
        let window = self.config.window;
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        peer.ack_due = true;
        self.timers
            .set_if_stopped(Timer::Ack, now + self.config.ack_delay);
        let stream = &mut peer.stream;
        // (Only departed streams are ever closed by a resolution, and a departed member's
        // datagrams are refused, so a live stream needs no such check.)
        if !stream.rx.start_known() || f.seq <= stream.delivered {
            return;
        }
        // Taken out and put back (at its final, or where it was): one search of the queue, as
        // before finals were checked.
        match self.holdback.remove(from, f.seq) {
            Some((key, mut queued)) => {
                // A message's final is taken once: a repeat is a retransmission, and a
                // different one comes from a faulty sender.
                if queued.is_final {
                    self.holdback.insert(key, queued);
                    return;
                }
                if !final_fits(
                    &self.holdback,
                    stream,
                    from,
                    f.seq,
                    f.priority,
                    key.priority,
                ) {
                    self.holdback.insert(key, queued);
                    self.stats.invalid_frames += 1;
                    return;
                }
                self.counters.observe_final(f.priority);
                queued.is_final = true;
                self.holdback.insert(
                    OrderKey {
                        priority: f.priority,
                        ..key
                    },
                    queued,
                );
                stream.note_final_known(f.seq);
                stream.finals.note_taken(f.seq, f.priority);
            }
            None => {
                // Checked by `final_fits` when the message reaches the hold-back queue.
                if f.seq.0 < stream.delivered.0.saturating_add(window).saturating_add(1) {
                    stream.finals.pending.entry(f.seq).or_insert(f.priority);
                    stream.note_final_known(f.seq);
                }
            }
        }
    }

    /// Delivers the hold-back queue's head while it is final (total order), unless a failure
    /// resolution pauses delivery.
    pub(super) fn deliver_ready(&mut self, now: Instant) {
        if self.view.order != Order::Total || self.is_paused() {
            return;
        }
        let window = self.config.window;
        let mut own = false;
        while let Some((key, queued)) = self.holdback.pop_deliverable() {
            self.delivered_max = Some(key);
            let stream = if key.origin == self.me {
                self.own_delivered = self.own_delivered.max(key.seq);
                own = true;
                None
            } else if let Some(peer) = self.peers.get_mut(&key.origin) {
                // The sender's window counts from what we delivered: tell it soon.
                peer.ack_due = true;
                self.timers
                    .set_if_stopped(Timer::Ack, now + self.config.ack_delay);
                Some(&mut peer.stream)
            } else {
                self.departed.get_mut(&key.origin).map(|d| &mut d.stream)
            };
            if let Some(stream) = stream {
                stream.delivered = stream.delivered.max(key.seq);
                stream.note_final_known(key.seq);
                stream.retain_final(key.seq, key.priority, window);
            }
            let content = queued.content;
            self.emit_delivery(key.origin, key.seq, content.stamp, content.payload);
        }
        if own {
            self.release_stable();
        }
    }

    /// Repair: proposals still waiting for their final after a retransmission timeout are
    /// repeated (this also asks the sender for a final that was lost).
    pub(super) fn repeat_proposals(&mut self, now: Instant) {
        let interval = self.rto();
        let mut repeats = Vec::new();
        let me = self.me;
        for (key, proposed_at) in self.holdback.tentative_mut() {
            if key.origin != me && now.saturating_duration_since(*proposed_at) >= interval {
                *proposed_at = now;
                repeats.push(*key);
            }
        }
        for key in repeats {
            // Only the proposal this member made is repeated; a key whose priority is not
            // ours came from elsewhere and is already final.
            if key.priority.member == self.me && self.peers.contains_key(&key.origin) {
                self.queue(
                    key.origin,
                    &Frame::Propose(Propose {
                        seq: key.seq,
                        counter: key.priority.counter,
                    }),
                );
            }
        }
    }

    /// Repair: the finals of our messages that member `id` has received and does not
    /// acknowledge as final are sent again.
    pub(super) fn repeat_finals(&mut self, id: MemberId) {
        let Some(peer) = self.peers.get(&id) else {
            return;
        };
        let after = peer.acked_finals.max(peer.start_for.prev());
        let finals: Vec<Frame> = self
            .proposals
            .finals_after(after)
            .filter(|(s, _)| *s <= peer.acked_received)
            .take(self.config.window as usize)
            .map(|(seq, priority)| Frame::Final(Final { seq, priority }))
            .collect();
        for f in finals {
            self.queue(id, &f);
        }
    }
}

/// Whether `priority`, announced by `origin` as the final of its message `seq`, can be taken by
/// this member, whose proposal for the message is `proposal` (for a final that arrived before
/// its message: the proposal the member would make now).
///
/// An honest sender's final is the largest proposal, so never below this member's, and finals
/// grow along a sender's sequence ([`crate::protocol::isis::final_priority`]), so it is neither
/// below the final of the sender's previous message nor above that of its next. A final that
/// breaks either rule comes from a faulty or hostile sender; taken, it would order the message
/// before its predecessor and break FIFO (or stall the queue behind a message that can never be
/// delivered). It is dropped instead: the message stays tentative and its proposal is repeated
/// until a final that fits arrives or a failure resolution decides it.
pub(super) fn final_fits(
    holdback: &HoldBack,
    stream: &Stream,
    origin: MemberId,
    seq: SeqNo,
    priority: Priority,
    proposal: Priority,
) -> bool {
    if priority < proposal {
        return false;
    }
    // The usual case, finals taken in sequence order, needs no lookup: every final taken
    // (delivered messages' included) is at or below `newest_taken`'s number.
    match stream.finals.newest_taken {
        None => return true,
        Some((s, _)) if s < seq.prev() => return true,
        Some((s, p)) if s == seq.prev() => return priority >= p,
        Some(_) => {}
    }
    let previous = match holdback.get(origin, seq.prev()) {
        Some((key, queued)) => queued.is_final.then_some(key.priority),
        None => stream
            .finals
            .retained
            .back()
            .filter(|(s, _)| *s == seq.prev())
            .map(|&(_, p)| p),
    };
    if previous.is_some_and(|p| priority < p) {
        return false;
    }
    let next = holdback
        .get(origin, seq.next())
        .and_then(|(key, queued)| queued.is_final.then_some(key.priority));
    next.is_none_or(|p| priority <= p)
}
