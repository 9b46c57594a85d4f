//! The repair tick: what is repeated, and how often, while anything waits for a repeat; and
//! the silence check that runs with the periodic status.

use std::time::Instant;

use super::peer::Peer;
use super::timers::Timer;
use super::{Event, Group};
use crate::protocol::types::MemberId;
use crate::protocol::wire::Order;

impl Group {
    /// True while anything waits for a repeat.
    fn has_repair_work(&self) -> bool {
        if !self.send_buf.is_empty() || self.resolution.is_active() {
            return true;
        }
        if self.peers.values().any(|p| p.stream.rx.has_gap()) {
            return true;
        }
        self.holdback.has_tentative()
    }

    /// Starts the repair timer (one retransmission timeout) if it is stopped and there is
    /// work for it.
    pub(super) fn arm_repair(&mut self, now: Instant) {
        if !self.timers.is_running(Timer::Repair) && !self.removed && self.has_repair_work() {
            self.timers.set(Timer::Repair, now + self.rto());
        }
    }

    /// The repair tick: every retransmission timeout the fast repairs, every repair interval
    /// the slow ones.
    pub(super) fn repair(&mut self, now: Instant) {
        let ids: Vec<MemberId> = self.peers.keys().copied().collect();
        // Gaps: ask again (every retransmission timeout).
        for &id in &ids {
            self.maybe_nack(now, id);
        }
        if self.view.order == Order::Total {
            self.repeat_proposals(now);
        }
        // A sender blocked on a full window sends nothing that would reveal the loss of its
        // last messages: members behind on our stream hear our highest number every RTO
        // instead of every repair interval (otherwise each such tail loss costs a repair
        // interval, and in total order, where the window counts from delivery, every sender
        // waits on it).
        if self.window_blocked {
            for &id in &ids {
                if self
                    .peers
                    .get(&id)
                    .is_some_and(|p| p.is_behind(self.last_seq))
                {
                    self.send_status(id);
                }
            }
        }
        // The rest every repair interval.
        if self.timers.get(Timer::SlowRepair).is_some_and(|t| now < t) {
            return;
        }
        self.timers
            .set(Timer::SlowRepair, now + self.config.repair_interval);
        // Session: members behind on our stream hear our highest number; finals they lack are
        // repeated.
        for &id in &ids {
            let Some(peer) = self.peers.get(&id) else {
                continue;
            };
            let behind = peer.is_behind(self.last_seq);
            if self.view.order == Order::Total {
                self.repeat_finals(id);
            }
            if behind {
                self.send_status(id);
            }
        }
        self.repeat_resolution(now);
    }

    /// Reports peers silent for the suspect timeout, unless every peer is silent (then this
    /// member is more likely the one cut off, and the tracker's heartbeats decide); then
    /// [`Group::detect_stalls`].
    pub(super) fn detect_silence(&mut self, now: Instant) {
        let timeout = self.config.suspect_timeout;
        let silent = |p: &Peer| now.saturating_duration_since(p.last_heard) >= timeout;
        let someone_heard = self.peers.values().any(|p| !silent(p));
        if !someone_heard && self.peers.len() > 1 {
            return;
        }
        for (&id, peer) in self.peers.iter_mut() {
            let due = peer
                .suspected_at
                .is_none_or(|t| now.saturating_duration_since(t) >= timeout);
            if silent(peer) && due {
                peer.suspected_at = Some(now);
                self.events.push_back(Event::Suspect { member: id });
            }
        }
        self.detect_stalls(now);
    }

    /// Reports peers that talk (so are never silent) but hold the group up:
    ///
    /// - a peer that has not acknowledged our oldest message it lacks for twice the suspect
    ///   timeout (our window, counted from its acknowledgements, would fill and stay full);
    /// - total order: a peer whose proposal for our message at the head of the hold-back queue
    ///   is still missing after twice the timeout;
    /// - total order: the sender of a message that has waited at the head of the queue for its
    ///   final for four times the timeout (no final, or none that fits: `total::final_fits`).
    ///
    /// An honest member does each of these within a few round trips. The last rule waits
    /// longer so that when the sender itself waits for a member of the first two kinds, that
    /// member is reported and removed first and the sender's finals follow.
    fn detect_stalls(&mut self, now: Instant) {
        let timeout = self.config.suspect_timeout;
        let own_limit = timeout.saturating_mul(2);
        let mut stalled: Vec<MemberId> = Vec::new();
        for (&id, peer) in &self.peers {
            if !peer.is_behind(self.last_seq) {
                continue;
            }
            let oldest = peer.acked_received.next().max(peer.start_for);
            if self
                .send_buf
                .get(oldest)
                .is_some_and(|sent| now.saturating_duration_since(sent.at) >= own_limit)
            {
                stalled.push(id);
            }
        }
        if self.view.order == Order::Total {
            match self.holdback.head() {
                Some((key, queued)) if !queued.is_final => {
                    let key = *key;
                    let since = match self.head_watch {
                        Some((watched, since)) if watched == key => since,
                        _ => {
                            self.head_watch = Some((key, now));
                            now
                        }
                    };
                    let waited = now.saturating_duration_since(since);
                    if key.origin == self.me {
                        if waited >= own_limit {
                            stalled.extend(self.proposals.awaiting(key.seq));
                        }
                    } else if waited >= timeout.saturating_mul(4) {
                        stalled.push(key.origin);
                    }
                }
                _ => self.head_watch = None,
            }
        }
        stalled.sort_unstable();
        stalled.dedup();
        for id in stalled {
            let Some(peer) = self.peers.get_mut(&id) else {
                continue;
            };
            let due = peer
                .stall_reported_at
                .is_none_or(|t| now.saturating_duration_since(t) >= timeout);
            if due {
                peer.stall_reported_at = Some(now);
                self.events.push_back(Event::Suspect { member: id });
            }
        }
    }
}
