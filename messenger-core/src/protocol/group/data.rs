//! The data path: sending, receiving, FIFO delivery, acknowledgements, NACKs and
//! retransmission, stability and flow control. Total order takes over from the FIFO layer in
//! `total.rs`.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Delivery, Event, Group};
use crate::protocol::fifo::Accept;
use crate::protocol::isis::Queued;
use crate::protocol::reliable::Sent;
use crate::protocol::types::{Content, MemberId, OrderKey, SeqNo};
use crate::protocol::wire::{Ack, Data, Final, Frame, Nack, Order, Propose, Status};

use super::timers::Timer;
use super::total::final_fits;

impl Group {
    /// [`Group::send`] once the message is accepted: numbers it, queues its data frame for
    /// every member (encoded once), keeps it for retransmission and delivers it here (FIFO) or
    /// proposes for it (total order).
    pub(super) fn send_data(&mut self, now: Instant, payload: Bytes, stamp: u64) -> SeqNo {
        let seq = self.last_seq.next();
        self.last_seq = seq;
        self.stats.sent += 1;
        let view = self.view.id;
        let data = Frame::Data(Data {
            seq,
            view,
            stamp,
            payload: payload.clone(),
        });
        let mut targets = std::mem::take(&mut self.scratch_targets);
        targets.clear();
        targets.extend(self.peers.keys().copied());
        self.queue_to_all(&targets, &data);
        let (earned, cap) = (resend_cost(payload.len()), self.resend_cap());
        for peer in self.peers.values_mut() {
            peer.resend_credit = peer.resend_credit.saturating_add(earned).min(cap);
        }
        let content = Content {
            view,
            stamp,
            payload,
        };
        self.send_buf.push(Sent {
            seq,
            content: content.clone(),
            at: now,
            retransmitted: false,
        });
        match self.view.order {
            Order::Fifo => {
                self.emit_delivery(self.me, seq, content.stamp, content.payload);
            }
            Order::Total => self.propose_own(now, seq, content, &targets),
        }
        self.scratch_targets = targets;
        self.release_stable();
        self.deliver_ready(now);
        self.arm_repair(now);
        seq
    }

    pub(super) fn on_data(&mut self, now: Instant, from: MemberId, data: Data) {
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        peer.ack_due = true;
        self.timers
            .set_if_stopped(Timer::Ack, now + self.config.ack_delay);
        let seq = data.seq;
        let content = Content {
            view: data.view,
            stamp: data.stamp,
            payload: data.payload,
        };
        let first = match peer.stream.rx.take_if_next(seq, content) {
            Ok(content) => Some((seq, content)),
            Err(content) => match peer.stream.rx.insert(seq, content) {
                Accept::Buffered => None,
                Accept::Duplicate => {
                    self.stats.duplicates += 1;
                    return;
                }
                Accept::OutOfWindow => {
                    self.stats.out_of_window += 1;
                    return;
                }
            },
        };
        self.drain_stream_from(now, from, first);
        self.maybe_nack(now, from);
    }

    /// Hands a stream's in-order messages to delivery (fifo) or to ISIS (total).
    pub(super) fn drain_stream(&mut self, now: Instant, from: MemberId) {
        self.drain_stream_from(now, from, None);
    }

    /// [`Group::drain_stream`], starting with `first`, a message the stream already passed
    /// in order.
    fn drain_stream_from(
        &mut self,
        now: Instant,
        from: MemberId,
        mut first: Option<(SeqNo, Content)>,
    ) {
        loop {
            let Some(peer) = self.peers.get_mut(&from) else {
                return;
            };
            let Some((seq, content)) = first.take().or_else(|| peer.stream.rx.pop_ready()) else {
                return;
            };
            match self.view.order {
                Order::Fifo => {
                    peer.stream.delivered = seq;
                    self.emit_delivery(from, seq, content.stamp, content.payload);
                }
                Order::Total => {
                    let own = self.counters.propose(self.me);
                    let pending = peer.stream.finals.pending.remove(&seq);
                    let fits = pending
                        .filter(|&f| final_fits(&self.holdback, &peer.stream, from, seq, f, own));
                    if pending.is_some() && fits.is_none() {
                        self.stats.invalid_frames += 1;
                    }
                    let (priority, is_final) = match fits {
                        Some(f) => {
                            self.counters.observe_final(f);
                            peer.stream.finals.note_taken(seq, f);
                            (f, true)
                        }
                        None => (own, false),
                    };
                    self.holdback.insert(
                        OrderKey {
                            priority,
                            origin: from,
                            seq,
                        },
                        Queued {
                            content,
                            is_final,
                            proposed_at: now,
                        },
                    );
                    if !is_final {
                        self.queue(
                            from,
                            &Frame::Propose(Propose {
                                seq,
                                counter: own.counter,
                            }),
                        );
                    }
                }
            }
        }
    }

    /// Asks `from` for the gaps in its stream: new gaps at once, gaps already asked for again
    /// once the retransmission timeout has passed.
    pub(super) fn maybe_nack(&mut self, now: Instant, from: MemberId) {
        let rto = self.rto();
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        if !peer.stream.rx.has_gap() {
            return;
        }
        let asked = peer.stream.nack.through();
        // A gap revealed by a later message is asked for at once; the rest (repeats, and the
        // tail the sender's status reveals, likely still in flight) waits for the timeout.
        let new_gap = peer.stream.rx.newest_gap_end() > asked;
        let due = peer.stream.nack.ready(now, rto);
        if !new_gap && !due {
            return;
        }
        let mut missing = peer.stream.rx.missing(32);
        if !due {
            // Only what was never asked for; the rest waits for its timeout.
            missing.retain(|&(_, hi)| hi > asked);
            for range in &mut missing {
                range.0 = range.0.max(asked.next());
            }
        }
        let last = missing.last().map_or(SeqNo::ZERO, |&(_, hi)| hi);
        peer.stream
            .nack
            .asked_through(last.max(peer.stream.rx.newest_gap_end()));
        if missing.is_empty() {
            // Filled meanwhile.
            return;
        }
        self.stats.nacks_sent += 1;
        self.queue(from, &Frame::Nack(Nack { missing }));
    }

    pub(super) fn on_status(&mut self, now: Instant, from: MemberId, status: Status) {
        let me = self.me;
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        peer.stream.set_start(status.start);
        peer.stream.rx.note_high(status.high);
        let mut advanced = None;
        if let Some(a) = status.acks.iter().find(|a| a.origin == me) {
            if a.received > peer.acked_received {
                advanced = Some((peer.acked_received, a.received));
            }
            peer.acked_received = peer.acked_received.max(a.received);
            peer.acked_finals = peer.acked_finals.max(a.finals);
            peer.acked_delivered = peer.acked_delivered.max(a.delivered);
        }
        // A session message means the sender may not have our acknowledgement yet.
        peer.ack_due = true;
        self.timers
            .set_if_stopped(Timer::Ack, now + self.config.ack_delay);
        if let Some((after, seq)) = advanced {
            self.sample_rtt(now, after, seq);
        }
        self.drain_stream(now, from);
        self.maybe_nack(now, from);
        self.release_stable();
    }

    pub(super) fn on_ack(&mut self, now: Instant, from: MemberId, ack: Ack) {
        if let Some(peer) = self.peers.get_mut(&from) {
            let after = peer.acked_received;
            let advanced = ack.received > after;
            peer.acked_received = peer.acked_received.max(ack.received);
            peer.acked_finals = peer.acked_finals.max(ack.finals);
            peer.acked_delivered = peer.acked_delivered.max(ack.delivered);
            if advanced {
                self.sample_rtt(now, after, ack.received);
            }
        }
        self.release_stable();
    }

    /// A member acknowledged our messages `(after, seq]`: a round-trip sample, if it is one
    /// (see [`SendBuffer::round_trip`](crate::protocol::reliable::SendBuffer::round_trip)).
    fn sample_rtt(&mut self, now: Instant, after: SeqNo, seq: SeqNo) {
        if let Some(rtt) = self.send_buf.round_trip(now, after, seq) {
            self.rtt.sample(rtt);
        }
    }

    /// The retransmission timeout: how long before work already sent (a NACK, a repair) is
    /// repeated.
    pub(super) fn rto(&self) -> Duration {
        self.rtt.rto(self.config.min_rto, self.config.nack_interval)
    }

    pub(super) fn on_nack(&mut self, from: MemberId, nack: Nack) {
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        let start = peer.start_for;
        let mut frames = Vec::new();
        let budget = self.config.window as usize;
        'ranges: for (lo, hi) in nack.missing {
            let lo = lo.max(start);
            let hi = hi.min(self.last_seq);
            let mut seq = lo;
            while seq <= hi {
                if frames.len() >= budget {
                    break 'ranges;
                }
                if let Some(sent) = self.send_buf.get_mut(seq) {
                    let cost = resend_cost(sent.content.payload.len());
                    if peer.resend_credit < cost {
                        // The rest waits: an honest peer asks again after its timeout, by
                        // when what it sends us has earned more.
                        self.stats.resends_refused += 1;
                        break 'ranges;
                    }
                    peer.resend_credit -= cost;
                    sent.retransmitted = true;
                    let content = &sent.content;
                    frames.push(Frame::Data(Data {
                        seq,
                        view: content.view,
                        stamp: content.stamp,
                        payload: content.payload.clone(),
                    }));
                    if let Some(f) = self.proposals.final_of(seq) {
                        frames.push(Frame::Final(Final { seq, priority: f }));
                    }
                }
                seq = seq.next();
            }
        }
        self.stats.retransmitted += frames.len() as u64;
        for frame in frames {
            self.queue(from, &frame);
        }
    }

    /// Frees what every member has (and, in total order, knows the final of).
    pub(super) fn release_stable(&mut self) {
        let total = self.view.order == Order::Total;
        let stable = self
            .peers
            .values()
            .map(|p| {
                if total {
                    // Delivered implies received and final; the window counts from here so
                    // that a member stuck behind a missing final holds at most a window of
                    // ours, and senders wait while a resolution pauses delivery.
                    p.acked_received.min(p.acked_finals).min(p.acked_delivered)
                } else {
                    p.acked_received
                }
            })
            .min()
            .unwrap_or(self.last_seq);
        // Our own messages become stable only once delivered here too.
        let stable = if total {
            stable.min(self.own_delivered)
        } else {
            stable.min(self.last_seq)
        };
        self.send_buf.release_through(stable);
        self.proposals.release_through(stable);
        if self.window_blocked && (self.send_buf.len() as u64) < self.config.window {
            self.window_blocked = false;
            self.events.push_back(Event::Writable);
        }
    }

    pub(super) fn emit_delivery(
        &mut self,
        origin: MemberId,
        seq: SeqNo,
        stamp: u64,
        payload: Bytes,
    ) {
        self.stats.delivered += 1;
        self.events.push_back(Event::Deliver(Delivery {
            origin,
            seq,
            stamp,
            payload,
        }));
    }

    /// Most resend credit a peer can hold: one window of the largest messages.
    pub(super) fn resend_cap(&self) -> usize {
        usize::try_from(self.config.window)
            .unwrap_or(usize::MAX)
            .saturating_mul(resend_cost(self.config.max_payload))
    }
}

/// What sending a message of `payload` bytes again costs a peer's credit (frame overhead
/// included).
pub(super) fn resend_cost(payload: usize) -> usize {
    payload.saturating_add(32)
}
