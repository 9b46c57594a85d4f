//! One group's state machine: FIFO streams, reliable delivery, ISIS total order and failure
//! resolution, composed behind one sans-IO interface.
//!
//! Inputs (`handle_*`, mutators) take `now`; outputs are polled:
//!
//! ```text
//! handle_datagram(now, from, bytes)   handle_timeout(now)   send(now, payload, stamp)
//! apply_view(now, view)
//! poll_transmit() -> Option<Transmit>  poll_timeout() -> Option<Instant>  poll_event() -> Option<Event>
//! ```
//!
//! After every input, drain `poll_transmit` and `poll_event` and re-arm the timer from
//! `poll_timeout`. Nothing here reads a clock or touches a socket.
//!
//! [`Group`] is the facade; each concern is a file of its own:
//!
//! - `config.rs`: [`GroupConfig`].
//! - `peer.rs`: per-member state (a sender's stream, a peer, a departed member's stream).
//! - `data.rs`: sending and receiving data, FIFO delivery, acknowledgements, NACKs,
//!   retransmission, stability and flow control.
//! - `total.rs`: ISIS proposals and finals, total-order delivery.
//! - `resolution.rs`: failure resolution, its own sub-state machine (`Resolution`: round,
//!   coordinator, reports, decision, acknowledgements, repeats) with its own tests.
//! - `departed.rs`: departures, and what the group does for a resolution with the streams of
//!   departed members (reports, content, applying a decision).
//! - `repair.rs`: the repair tick (what is repeated when) and the silence check.
//! - `outbox.rs`: frames queued per member and bundled into datagrams.
//! - `timers.rs`: the deadlines (`TimerTable`).

mod config;
mod data;
mod departed;
mod outbox;
mod peer;
mod repair;
mod resolution;
mod timers;
mod total;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use super::isis::{Counters, HoldBack, Proposals};
use super::reliable::{RttEstimator, SendBuffer};
use super::types::{GroupId, MemberId, OrderKey, Priority, SeqNo, ViewId};
use super::wire::{self, EntryState, Frame, Order, View, WireError};

pub use config::GroupConfig;
use outbox::Outbox;
use peer::{Departed, Peer, Stream};
use resolution::Resolution;
use timers::{Timer, TimerTable};

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub to: SocketAddr,
    pub member: MemberId,
    pub bytes: Vec<u8>,
}

/// A message delivered to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub origin: MemberId,
    pub seq: SeqNo,
    pub stamp: u64,
    pub payload: Bytes,
}

/// Something the application should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A message, in the group's order.
    Deliver(Delivery),
    /// Messages `first..=last` of a departed member can never be delivered (nobody has them,
    /// or an earlier one is missing everywhere). Every surviving member drops the same ones.
    Lost {
        origin: MemberId,
        first: SeqNo,
        last: SeqNo,
    },
    /// [`Group::send`] refused a message because the window was full; there is room again.
    Writable,
    /// This member is not in the group's view any more; the group does nothing further.
    Removed,
    /// `member` holds the group up. Either nothing has been heard from it for
    /// [`GroupConfig::suspect_timeout`] while other members were heard (or it is the only other
    /// member), or it talks but does not do its part: it has not acknowledged a message of ours
    /// or proposed for one for twice the timeout, or (total order) its message has waited at
    /// the head of the hold-back queue for a final for four times the timeout. The runtime
    /// reports it to the tracker, which removes it once enough members agree. Repeated every
    /// timeout while the condition lasts.
    Suspect { member: MemberId },
}

/// Why [`Group::send`] refused a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("send window full: wait for Event::Writable")]
    WindowFull,
    #[error("payload of {len} bytes exceeds the limit of {limit}")]
    TooLarge { len: usize, limit: usize },
    #[error("not a member of the group")]
    NotMember,
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    #[error("malformed datagram: {0}")]
    Malformed(#[from] WireError),
    #[error("datagram for another group")]
    WrongGroup,
    #[error("sender is not a member of the current view")]
    UnknownSender,
    #[error("source address does not match the member's address")]
    Spoofed,
    #[error("datagram from an earlier membership of the sender")]
    Stale,
    #[error("datagram for another membership (an earlier one of this address)")]
    Misdirected,
    #[error("this member is no longer in the group")]
    Removed,
}

/// Counters of what a group has seen and done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupStats {
    pub datagrams_received: u64,
    pub datagrams_dropped: u64,
    pub malformed: u64,
    /// Well-formed frames whose content no honest member sends (ignored).
    pub invalid_frames: u64,
    pub spoofed: u64,
    pub unknown_sender: u64,
    pub stale: u64,
    /// Datagrams addressed to another member id (an earlier membership on this address).
    pub misdirected: u64,
    pub wrong_group: u64,
    pub duplicates: u64,
    pub out_of_window: u64,
    pub retransmitted: u64,
    /// Retransmissions and relays not sent because the peer had used up its credit.
    pub resends_refused: u64,
    pub nacks_sent: u64,
    pub delivered: u64,
    pub lost: u64,
    pub sent: u64,
    pub datagrams_sent: u64,
    /// Failure-resolution rounds this member took part in.
    pub resolution_rounds: u64,
}

/// Sizes of the bounded structures, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BufferSizes {
    pub send_buffer: usize,
    pub hold_back: usize,
    /// Most messages of one origin in the total-order hold-back queue.
    pub hold_back_per_origin: usize,
    /// Largest FIFO hold-back of any stream.
    pub max_stream_held: usize,
    pub pending_finals: usize,
    pub departed_streams: usize,
}

/// One group's protocol state at one member.
#[derive(Debug)]
pub struct Group {
    config: GroupConfig,
    me: MemberId,
    view: View,
    /// The view in which this member joined the group.
    joined: ViewId,
    removed: bool,

    // Our own stream.
    last_seq: SeqNo,
    send_buf: SendBuffer,
    proposals: Proposals,
    window_blocked: bool,
    rtt: RttEstimator,

    // Everyone else's streams.
    peers: BTreeMap<MemberId, Peer>,
    departed: BTreeMap<MemberId, Departed>,

    // Total order.
    counters: Counters,
    holdback: HoldBack,
    delivered_max: Option<OrderKey>,
    /// Total order: the tentative head of the hold-back queue and when it was first seen
    /// there (a head that stays tentative holds up every member's delivery).
    head_watch: Option<(OrderKey, Instant)>,
    /// Our own messages delivered here, up to this one.
    own_delivered: SeqNo,
    resolution: Resolution,

    outbox: Outbox,
    /// Reused buffer of the send path (no allocation per message).
    scratch_targets: Vec<MemberId>,
    events: VecDeque<Event>,
    timers: TimerTable,
    stats: GroupStats,
}

impl Group {
    /// Creates the group state of member `me` from its first view (the one that added it).
    pub fn new(config: GroupConfig, me: MemberId, view: View, now: Instant) -> Self {
        let resolution = Resolution::new(me, config.repair_interval);
        let mut group = Group {
            config,
            me,
            view: View {
                members: Vec::new(),
                ..view.clone()
            },
            removed: false,
            joined: view.id,
            last_seq: SeqNo::ZERO,
            send_buf: SendBuffer::new(),
            proposals: Proposals::new(),
            window_blocked: false,
            rtt: RttEstimator::default(),
            peers: BTreeMap::new(),
            departed: BTreeMap::new(),
            counters: Counters::default(),
            holdback: HoldBack::new(),
            delivered_max: None,
            head_watch: None,
            own_delivered: SeqNo::ZERO,
            resolution,
            outbox: Outbox::default(),
            scratch_targets: Vec::new(),
            events: VecDeque::new(),
            timers: TimerTable::default(),
            stats: GroupStats::default(),
        };
        group.apply_view(now, view);
        group
    }

    // ----- getters -------------------------------------------------------------------------

    pub fn me(&self) -> MemberId {
        self.me
    }

    pub fn id(&self) -> GroupId {
        self.view.group
    }

    pub fn view(&self) -> &View {
        &self.view
    }

    pub fn order(&self) -> Order {
        self.view.order
    }

    pub fn stats(&self) -> &GroupStats {
        &self.stats
    }

    pub fn is_removed(&self) -> bool {
        self.removed
    }

    /// True while a failure resolution pauses delivery.
    pub fn is_paused(&self) -> bool {
        self.resolution.is_pausing()
    }

    /// Messages sent and not yet stable at every member.
    pub fn in_flight(&self) -> usize {
        self.send_buf.len()
    }

    pub fn buffer_sizes(&self) -> BufferSizes {
        let streams = self
            .peers
            .values()
            .map(|p| (&p.stream, 0))
            .chain(self.departed.values().map(|d| (&d.stream, d.relayed.len())));
        let mut sizes = BufferSizes {
            send_buffer: self.send_buf.len(),
            hold_back: self.holdback.len(),
            hold_back_per_origin: self.holdback.max_per_origin(),
            departed_streams: self.departed.len(),
            ..BufferSizes::default()
        };
        for (s, relayed) in streams {
            sizes.max_stream_held = sizes.max_stream_held.max(s.rx.held_len() + relayed);
            sizes.pending_finals = sizes.pending_finals.max(s.finals.pending.len());
        }
        sizes
    }

    // ----- inputs --------------------------------------------------------------------------

    /// Handles one datagram received from `from`. Invalid datagrams are dropped, counted and
    /// reported as the error; they change nothing else.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), DropReason> {
        let decoded = wire::Datagram::decode(bytes);
        self.handle_decoded(now, from, bytes.len(), decoded)
    }

    /// [`Group::handle_datagram`] for a datagram in a shared buffer: the payloads delivered
    /// are slices of it, not copies.
    pub fn handle_datagram_shared(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &Bytes,
    ) -> Result<(), DropReason> {
        let decoded = wire::Datagram::decode_shared(bytes);
        self.handle_decoded(now, from, bytes.len(), decoded)
    }

    fn handle_decoded(
        &mut self,
        now: Instant,
        from: SocketAddr,
        len: usize,
        decoded: Result<wire::Datagram, wire::WireError>,
    ) -> Result<(), DropReason> {
        self.stats.datagrams_received += 1;
        let result = self.check_and_decode(from, decoded);
        let (sender, frames) = match result {
            Ok(ok) => ok,
            Err(reason) => {
                self.stats.datagrams_dropped += 1;
                match reason {
                    DropReason::Malformed(_) => self.stats.malformed += 1,
                    DropReason::WrongGroup => self.stats.wrong_group += 1,
                    DropReason::UnknownSender => self.stats.unknown_sender += 1,
                    DropReason::Spoofed => self.stats.spoofed += 1,
                    DropReason::Stale => self.stats.stale += 1,
                    DropReason::Misdirected => self.stats.misdirected += 1,
                    DropReason::Removed => {}
                }
                return Err(reason);
            }
        };
        let cap = self.resend_cap();
        if let Some(peer) = self.peers.get_mut(&sender) {
            peer.last_heard = now;
            peer.suspected_at = None;
            peer.resend_credit = peer.resend_credit.saturating_add(3 * len).min(cap);
        }
        for frame in frames {
            self.handle_frame(now, sender, frame);
        }
        self.deliver_ready(now);
        self.arm_repair(now);
        Ok(())
    }

    fn check_and_decode(
        &self,
        from: SocketAddr,
        decoded: Result<wire::Datagram, wire::WireError>,
    ) -> Result<(MemberId, Vec<Frame>), DropReason> {
        if self.removed {
            return Err(DropReason::Removed);
        }
        let datagram = decoded?;
        let header = datagram.header;
        if header.group != self.view.group {
            return Err(DropReason::WrongGroup);
        }
        // Before anything of the datagram is used: it must be for this membership. Peers that
        // have not yet installed the view without an earlier membership on this address still
        // send that membership's traffic here (proposals, acks, stream starts).
        if header.recipient != self.me {
            return Err(DropReason::Misdirected);
        }
        let peer = self
            .peers
            .get(&header.sender)
            .ok_or(DropReason::UnknownSender)?;
        if peer.addr != from {
            return Err(DropReason::Spoofed);
        }
        // Nobody honest builds a datagram for this membership in a view before it joined, or
        // sends from a view before its own membership began.
        if header.view < peer.joined || header.view < self.joined {
            return Err(DropReason::Stale);
        }
        Ok((header.sender, datagram.frames))
    }

    fn handle_frame(&mut self, now: Instant, from: MemberId, frame: Frame) {
        if !frame_is_plausible(&frame, self.counters.known()) {
            self.stats.invalid_frames += 1;
            return;
        }
        match frame {
            Frame::Data(data) => self.on_data(now, from, data),
            Frame::Status(status) => self.on_status(now, from, status),
            Frame::Ack(ack) => self.on_ack(now, from, ack),
            Frame::Nack(nack) => self.on_nack(from, nack),
            Frame::Propose(p) => self.on_propose(from, p),
            Frame::Final(f) => self.on_final(now, from, f),
            // Failure resolution.
            Frame::ResolutionReport(r) => self.on_resolution_report(now, from, *r),
            Frame::ResolutionFetch(f) => self.on_resolution_fetch(from, f),
            Frame::ResolutionRelay(r) => self.on_resolution_relay(now, r),
            Frame::ResolutionDecision(d) => self.on_resolution_decision(now, from, d),
            Frame::ResolutionAck(a) => self.on_resolution_ack(from, a),
        }
    }

    /// Sends an application message to every other member. `stamp` is carried to receivers
    /// untouched (the runtime uses it for the send time). Returns the message's sequence number.
    pub fn send(&mut self, now: Instant, payload: Bytes, stamp: u64) -> Result<SeqNo, SendError> {
        if self.removed {
            return Err(SendError::NotMember);
        }
        if payload.len() > self.config.max_payload {
            return Err(SendError::TooLarge {
                len: payload.len(),
                limit: self.config.max_payload,
            });
        }
        if self.send_buf.len() as u64 >= self.config.window {
            self.window_blocked = true;
            return Err(SendError::WindowFull);
        }
        Ok(self.send_data(now, payload, stamp))
    }

    /// Installs a new view from the tracker. Views with an id not above the current one are
    /// ignored (views only grow).
    pub fn apply_view(&mut self, now: Instant, view: View) {
        let installed = !self.view.members.is_empty();
        if self.removed || (installed && view.id <= self.view.id) || view.group != self.view.group {
            return;
        }
        if !view.contains(self.me) {
            self.removed = true;
            self.view = view;
            self.outbox.clear();
            self.events.push_back(Event::Removed);
            return;
        }
        let old = std::mem::replace(&mut self.view, view);
        // Datagrams started from now on name the new view.
        self.outbox.set_view(&self.view, self.me);

        // Departures: members gone, or gone and back under a newer membership.
        let gone: Vec<MemberId> = old
            .members
            .iter()
            .filter(|m| m.id != self.me)
            .filter(|m| {
                self.view
                    .member(m.id)
                    .is_none_or(|n| n.joined != m.joined || n.addr != m.addr)
            })
            .map(|m| m.id)
            .collect();
        for id in gone {
            self.depart(id);
        }

        // Arrivals.
        let new: Vec<_> = self
            .view
            .members
            .iter()
            .filter(|m| m.id != self.me && !self.peers.contains_key(&m.id))
            .cloned()
            .collect();
        for m in new {
            // A member that joins now starts its stream at 1; members that were here before
            // this member tell it where to start (their status carries it).
            let start = (m.joined == self.view.id).then_some(SeqNo(1));
            self.peers.insert(
                m.id,
                Peer {
                    addr: m.addr,
                    joined: m.joined,
                    stream: Stream::new(start, self.config.window),
                    start_for: self.last_seq.next(),
                    acked_received: self.last_seq,
                    acked_finals: self.last_seq,
                    acked_delivered: self.last_seq,
                    ack_due: false,
                    last_heard: now,
                    suspected_at: None,
                    stall_reported_at: None,
                    resend_credit: self.resend_cap(),
                },
            );
            self.send_status(m.id);
        }

        if self.view.order == Order::Total {
            self.open_resolution_round(now);
        }
        self.release_stable();
        self.deliver_ready(now);
        self.timers
            .set_if_stopped(Timer::Status, now + self.config.status_interval);
        self.arm_repair(now);
    }

    /// Runs timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.removed {
            return;
        }
        if self.timers.is_expired(Timer::Ack, now) {
            self.timers.stop(Timer::Ack);
            let due: Vec<MemberId> = self
                .peers
                .iter()
                .filter(|(_, p)| p.ack_due)
                .map(|(id, _)| *id)
                .collect();
            for id in due {
                self.queue_ack(id);
            }
        }
        if self.timers.is_expired(Timer::Status, now) {
            self.timers
                .set(Timer::Status, now + self.config.status_interval);
            let all: Vec<MemberId> = self.peers.keys().copied().collect();
            for id in all {
                self.send_status(id);
            }
            self.detect_silence(now);
        }
        if self.timers.is_expired(Timer::Repair, now) {
            self.timers.stop(Timer::Repair);
            self.repair(now);
        }
        self.arm_repair(now);
    }

    // ----- outputs -------------------------------------------------------------------------

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if !self.outbox.has_transmits() {
            self.assemble_datagrams();
        }
        let t = self.outbox.pop_transmit();
        if t.is_some() {
            self.stats.datagrams_sent += 1;
        }
        t
    }

    /// When [`Group::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.removed {
            return None;
        }
        self.timers.next_wake_up()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

/// Rejects frames carrying values no honest member produces: priority counters at the limit,
/// or further above the highest counter this member knows (`known`) than honest counters ever
/// get ([`Priority::plausible_counter`]). Without the second rule one frame could push every
/// member's counters to the limit and stop total order for good.
fn frame_is_plausible(frame: &Frame, known: u128) -> bool {
    let ok = |p: &Priority| Priority::plausible_counter(p.counter, known);
    match frame {
        Frame::Propose(p) => Priority::plausible_counter(p.counter, known),
        Frame::Final(f) => ok(&f.priority),
        Frame::ResolutionReport(r) => {
            r.delivered_max.is_none_or(|k| ok(&k.priority))
                && r.streams.iter().all(|s| {
                    s.entries.iter().all(|e| match e.state {
                        EntryState::Unproposed => true,
                        EntryState::Proposed(p) | EntryState::Final(p) => ok(&p),
                    })
                })
        }
        Frame::ResolutionDecision(d) => d
            .streams
            .iter()
            .all(|s| s.decided.iter().all(|d| ok(&d.priority))),
        _ => true,
    }
}
