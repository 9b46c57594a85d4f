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

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::fifo::{Accept, FifoStream};
use super::flush::{
    decide, decided_at, decided_seqs, decision_last, merge_decision, merge_report, split_decision,
    split_report, Parts,
};
use super::isis::{Counters, HoldBack, Proposals, Queued};
use super::reliable::{NackPacer, RttEstimator, SendBuffer, Sent};
use super::types::{GroupId, MemberId, OrderKey, Priority, SeqNo, ViewId};
use super::wire::{
    self, Ack, Data, DatagramBuilder, Decided, EntryState, Final, FlushAck, FlushDecision,
    FlushFetch, FlushRelay, FlushReport, Frame, Header, Nack, Order, Part, Propose, ReportEntry,
    Status, StreamAck, StreamDecision, StreamReport, View, WireError,
};

/// Limits and timers of one group. One struct configures everything.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// Size budget for bundling frames into one datagram.
    pub bundle_size: usize,
    /// Largest application payload accepted by [`Group::send`].
    pub max_payload: usize,
    /// Messages a sender may have in flight (not yet stable at every member); also the size of
    /// each receiver's per-sender hold-back window. Senders and receivers must agree.
    pub window: u64,
    /// How long a receiver waits before acknowledging, to acknowledge several messages at once.
    pub ack_delay: Duration,
    /// Longest time before a gap already asked for is asked for again. The retransmission
    /// timeout measured from acknowledgement round trips is used when it is shorter (new
    /// gaps are asked for at once).
    pub nack_interval: Duration,
    /// Shortest retransmission timeout, however short the measured round trip.
    pub min_rto: Duration,
    /// How often unfinished work is repeated: proposals, finals, session messages while data is
    /// unacknowledged, failure-resolution messages.
    pub repair_interval: Duration,
    /// Period of the status message sent to every member even when idle.
    pub status_interval: Duration,
    /// Departed members whose resolved streams are remembered (for later resolution rounds).
    pub max_departed: usize,
    /// A peer heard from for this long on the data plane, while others are heard, is reported
    /// ([`Event::Suspect`]): it may answer the tracker's heartbeats and still hold the group up
    /// (a UDP firewall, a partition between members, a hostile member that sends nothing).
    pub suspect_timeout: Duration,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            bundle_size: wire::DEFAULT_BUNDLE_SIZE,
            max_payload: 1200,
            window: 1024,
            ack_delay: Duration::from_micros(500),
            nack_interval: Duration::from_millis(5),
            min_rto: Duration::from_millis(1),
            repair_interval: Duration::from_millis(10),
            status_interval: Duration::from_millis(100),
            max_departed: 64,
            suspect_timeout: Duration::from_secs(3),
        }
    }
}

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
    /// Nothing has been heard from `member` for [`GroupConfig::suspect_timeout`] while other
    /// members were heard (or it is the only other member). The runtime reports it to the
    /// tracker, which removes it once enough members agree. Repeated every timeout while the
    /// silence lasts.
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
    pub flush_rounds: u64,
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

#[derive(Debug, Clone)]
struct Msg {
    view: ViewId,
    stamp: u64,
    payload: Bytes,
}

/// The receive side of one sender's stream.
#[derive(Debug)]
struct Stream {
    rx: FifoStream<Msg>,
    /// Highest sequence number delivered (total) or handed out (fifo).
    delivered: SeqNo,
    finals_through: SeqNo,
    finals_above: BTreeSet<SeqNo>,
    /// Finals that arrived before their message.
    pending_finals: BTreeMap<SeqNo, Priority>,
    /// Finals of the last delivered messages, for failure resolution.
    retained: VecDeque<(SeqNo, Priority)>,
    /// Content relayed during failure resolution.
    relayed: BTreeMap<SeqNo, Msg>,
    /// Messages a resolution decided (content and final), kept while the departed stream is
    /// remembered: a later round may need them relayed to members that missed the decision,
    /// and this member may be the only one left that has them.
    kept: BTreeMap<SeqNo, (Msg, Priority)>,
    nack: NackPacer,
    /// Failure resolution ended the stream here.
    closed: Option<SeqNo>,
}

impl Stream {
    fn new(start: Option<SeqNo>, window: u64) -> Self {
        let base = start.map_or(SeqNo::ZERO, SeqNo::prev);
        Stream {
            rx: FifoStream::new(start, window),
            delivered: base,
            finals_through: base,
            finals_above: BTreeSet::new(),
            pending_finals: BTreeMap::new(),
            retained: VecDeque::new(),
            relayed: BTreeMap::new(),
            kept: BTreeMap::new(),
            nack: NackPacer::default(),
            closed: None,
        }
    }

    fn set_start(&mut self, start: SeqNo) {
        if self.rx.start_known() {
            return;
        }
        self.rx.set_start(start);
        self.delivered = start.prev();
        self.finals_through = start.prev();
        self.finals_above = self.finals_above.split_off(&start);
        self.pending_finals = self.pending_finals.split_off(&start);
        self.advance_finals();
    }

    fn note_final_known(&mut self, seq: SeqNo) {
        if seq > self.finals_through {
            self.finals_above.insert(seq);
            self.advance_finals();
        }
    }

    fn advance_finals(&mut self) {
        while self.finals_above.remove(&self.finals_through.next()) {
            self.finals_through = self.finals_through.next();
        }
        let through = self.finals_through;
        self.finals_above.retain(|s| *s > through);
    }

    fn ack(&self) -> Ack {
        Ack {
            received: self.rx.received().unwrap_or(SeqNo::ZERO),
            finals: if self.rx.start_known() {
                self.finals_through
            } else {
                SeqNo::ZERO
            },
            delivered: if self.rx.start_known() {
                self.delivered
            } else {
                SeqNo::ZERO
            },
        }
    }
}

/// Another member of the view.
#[derive(Debug)]
struct Peer {
    addr: SocketAddr,
    joined: ViewId,
    stream: Stream,
    /// First sequence number of this member's own stream that the peer delivers.
    start_for: SeqNo,
    acked_received: SeqNo,
    acked_finals: SeqNo,
    /// Total order: the peer has delivered our messages up to here.
    acked_delivered: SeqNo,
    ack_due: bool,
    /// When a datagram of this member last passed the checks.
    last_heard: Instant,
    /// When it was last reported silent.
    suspected_at: Option<Instant>,
    /// Bytes this member may still send the peer again (retransmissions, relays): earned by
    /// what we first sent it and three times what it sent us, at most
    /// [`Group::resend_cap`]. A peer cannot make us send more than that on its request.
    resend_credit: usize,
}

impl Peer {
    /// The peer has not acknowledged all of our stream that it delivers (up to `last_seq`).
    fn is_behind(&self, last_seq: SeqNo) -> bool {
        self.acked_received < last_seq && last_seq >= self.start_for
    }
}

/// One failure-resolution round (see `flush.rs`).
#[derive(Debug)]
struct Flush {
    round: ViewId,
    coordinator: MemberId,
    applied: bool,
    /// The decision being applied (member) or announced (coordinator).
    decision: Option<FlushDecision>,
    last_sent: Option<Instant>,
    /// Member only: the parts of the decision received so far.
    decision_parts: Parts<FlushDecision>,
    // Coordinator only.
    reports: BTreeMap<MemberId, FlushReport>,
    /// Reports still arriving in parts.
    report_parts: BTreeMap<MemberId, Parts<FlushReport>>,
    /// Content of the decided messages, kept to relay to members that lack it (the
    /// coordinator may deliver its own copies before they ask).
    relay: BTreeMap<(MemberId, SeqNo), Msg>,
    acked: BTreeSet<MemberId>,
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

    last_seq: SeqNo,
    send_buf: SendBuffer,
    proposals: Proposals,
    window_blocked: bool,

    peers: BTreeMap<MemberId, Peer>,
    departed: BTreeMap<MemberId, Stream>,
    unresolved: BTreeSet<MemberId>,
    counters: Counters,
    holdback: HoldBack,
    delivered_max: Option<OrderKey>,
    /// Total order: our own messages delivered here, up to this one.
    own_delivered: SeqNo,
    flush: Option<Flush>,
    /// The decision of the last round this member coordinated to the end (every member
    /// acknowledged it): a late or repeated report for that round gets it again instead of
    /// starting a round that nobody would join.
    finished: Option<FlushDecision>,

    rtt: RttEstimator,
    /// When the repairs other than NACKs run next.
    slow_repair_at: Option<Instant>,
    outbox: BTreeMap<MemberId, DatagramBuilder>,
    /// Reused buffers of the send path (no allocation per message).
    scratch_targets: Vec<MemberId>,
    scratch_frame: Vec<u8>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    next_status: Option<Instant>,
    ack_deadline: Option<Instant>,
    next_repair: Option<Instant>,
    stats: GroupStats,
}

impl Group {
    /// Creates the group state of member `me` from its first view (the one that added it).
    pub fn new(config: GroupConfig, me: MemberId, view: View, now: Instant) -> Self {
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
            peers: BTreeMap::new(),
            departed: BTreeMap::new(),
            unresolved: BTreeSet::new(),
            counters: Counters::default(),
            holdback: HoldBack::new(),
            delivered_max: None,
            own_delivered: SeqNo::ZERO,
            flush: None,
            finished: None,
            rtt: RttEstimator::default(),
            slow_repair_at: None,
            outbox: BTreeMap::new(),
            scratch_targets: Vec::new(),
            scratch_frame: Vec::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_status: None,
            ack_deadline: None,
            next_repair: None,
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
        !self.unresolved.is_empty()
    }

    /// Messages sent and not yet stable at every member.
    pub fn in_flight(&self) -> usize {
        self.send_buf.len()
    }

    pub fn buffer_sizes(&self) -> BufferSizes {
        let streams = self
            .peers
            .values()
            .map(|p| &p.stream)
            .chain(self.departed.values());
        let mut sizes = BufferSizes {
            send_buffer: self.send_buf.len(),
            hold_back: self.holdback.len(),
            hold_back_per_origin: self.holdback.max_per_origin(),
            departed_streams: self.departed.len(),
            ..BufferSizes::default()
        };
        for s in streams {
            sizes.max_stream_held = sizes.max_stream_held.max(s.rx.held_len() + s.relayed.len());
            sizes.pending_finals = sizes.pending_finals.max(s.pending_finals.len());
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
            Frame::Propose(p) => self.on_propose(now, from, p),
            Frame::Final(f) => self.on_final(now, from, f),
            Frame::FlushReport(r) => self.on_flush_report(now, from, *r),
            Frame::FlushFetch(f) => self.on_flush_fetch(from, f),
            Frame::FlushRelay(r) => self.on_flush_relay(now, r),
            Frame::FlushDecision(d) => self.on_flush_decision(now, from, d),
            Frame::FlushAck(a) => self.on_flush_ack(from, a),
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
        self.send_buf.push(Sent {
            seq,
            view,
            stamp,
            payload: payload.clone(),
            at: now,
            retransmitted: false,
        });
        match self.view.order {
            Order::Fifo => {
                self.emit_delivery(self.me, seq, stamp, payload);
            }
            Order::Total => {
                let own = self.counters.propose(self.me);
                self.holdback.insert(
                    OrderKey {
                        priority: own,
                        origin: self.me,
                        seq,
                    },
                    Queued {
                        view,
                        stamp,
                        payload,
                        is_final: false,
                        proposed_at: now,
                    },
                );
                for (s, f) in self.proposals.start(seq, own, targets.clone()) {
                    self.on_own_final(s, f);
                }
            }
        }
        self.scratch_targets = targets;
        self.release_stable();
        self.deliver_ready(now);
        self.arm_repair(now);
        Ok(seq)
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
            self.transmits.clear();
            self.events.push_back(Event::Removed);
            return;
        }
        let old = std::mem::replace(&mut self.view, view);
        // Datagrams started from now on name the new view.
        for (&to, builder) in self.outbox.iter_mut() {
            builder.set_header(Header {
                group: self.view.group,
                sender: self.me,
                recipient: to,
                view: self.view.id,
            });
        }

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
                    resend_credit: self.resend_cap(),
                },
            );
            self.send_status(m.id);
        }

        if self.view.order == Order::Total {
            self.open_round(now);
        }
        self.release_stable();
        self.deliver_ready(now);
        if self.next_status.is_none() {
            self.next_status = Some(now + self.config.status_interval);
        }
        self.arm_repair(now);
    }

    /// Runs timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.removed {
            return;
        }
        if self.ack_deadline.is_some_and(|t| t <= now) {
            self.ack_deadline = None;
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
        if self.next_status.is_some_and(|t| t <= now) {
            self.next_status = Some(now + self.config.status_interval);
            let all: Vec<MemberId> = self.peers.keys().copied().collect();
            for id in all {
                self.send_status(id);
            }
            self.detect_silence(now);
        }
        if self.next_repair.is_some_and(|t| t <= now) {
            self.next_repair = None;
            self.repair(now);
        }
        self.arm_repair(now);
    }

    /// Reports peers silent for the suspect timeout, unless every peer is silent (then this
    /// member is more likely the one cut off, and the tracker's heartbeats decide).
    fn detect_silence(&mut self, now: Instant) {
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
    }

    // ----- outputs -------------------------------------------------------------------------

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if self.transmits.is_empty() {
            self.flush_outbox();
        }
        let t = self.transmits.pop_front();
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
        [self.next_status, self.ack_deadline, self.next_repair]
            .into_iter()
            .flatten()
            .min()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    // ----- data plane ----------------------------------------------------------------------

    fn on_data(&mut self, now: Instant, from: MemberId, data: Data) {
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        peer.ack_due = true;
        if self.ack_deadline.is_none() {
            self.ack_deadline = Some(now + self.config.ack_delay);
        }
        let msg = Msg {
            view: data.view,
            stamp: data.stamp,
            payload: data.payload,
        };
        let first = match peer.stream.rx.take_if_next(data.seq, msg) {
            Ok(msg) => Some((data.seq, msg)),
            Err(msg) => match peer.stream.rx.insert(data.seq, msg) {
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
    fn drain_stream(&mut self, now: Instant, from: MemberId) {
        self.drain_stream_from(now, from, None);
    }

    /// [`Group::drain_stream`], starting with `first`, a message the stream already passed
    /// in order.
    fn drain_stream_from(&mut self, now: Instant, from: MemberId, mut first: Option<(SeqNo, Msg)>) {
        loop {
            let Some(peer) = self.peers.get_mut(&from) else {
                return;
            };
            let Some((seq, msg)) = first.take().or_else(|| peer.stream.rx.pop_ready()) else {
                return;
            };
            match self.view.order {
                Order::Fifo => {
                    peer.stream.delivered = seq;
                    self.emit_delivery(from, seq, msg.stamp, msg.payload);
                }
                Order::Total => {
                    let own = self.counters.propose(self.me);
                    let pending = peer.stream.pending_finals.remove(&seq);
                    let (priority, is_final) = match pending {
                        Some(f) => (f, true),
                        None => (own, false),
                    };
                    self.holdback.insert(
                        OrderKey {
                            priority,
                            origin: from,
                            seq,
                        },
                        Queued {
                            view: msg.view,
                            stamp: msg.stamp,
                            payload: msg.payload,
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
    fn maybe_nack(&mut self, now: Instant, from: MemberId) {
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

    fn on_status(&mut self, now: Instant, from: MemberId, status: Status) {
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
        if self.ack_deadline.is_none() {
            self.ack_deadline = Some(now + self.config.ack_delay);
        }
        if let Some((after, seq)) = advanced {
            self.sample_rtt(now, after, seq);
        }
        self.drain_stream(now, from);
        self.maybe_nack(now, from);
        self.release_stable();
    }

    fn on_ack(&mut self, now: Instant, from: MemberId, ack: Ack) {
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
    /// (see [`SendBuffer::round_trip`]).
    fn sample_rtt(&mut self, now: Instant, after: SeqNo, seq: SeqNo) {
        if let Some(rtt) = self.send_buf.round_trip(now, after, seq) {
            self.rtt.sample(rtt);
        }
    }

    /// The retransmission timeout: how long before work already sent (a NACK, a repair) is
    /// repeated.
    fn rto(&self) -> Duration {
        self.rtt.rto(self.config.min_rto, self.config.nack_interval)
    }

    fn on_nack(&mut self, from: MemberId, nack: Nack) {
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
                    let cost = resend_cost(sent.payload.len());
                    if peer.resend_credit < cost {
                        // The rest waits: an honest peer asks again after its timeout, by
                        // when what it sends us has earned more.
                        self.stats.resends_refused += 1;
                        break 'ranges;
                    }
                    peer.resend_credit -= cost;
                    sent.retransmitted = true;
                    frames.push(Frame::Data(Data {
                        seq,
                        view: sent.view,
                        stamp: sent.stamp,
                        payload: sent.payload.clone(),
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
    fn release_stable(&mut self) {
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

    // ----- ISIS ----------------------------------------------------------------------------

    fn on_propose(&mut self, _now: Instant, from: MemberId, p: Propose) {
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

    fn on_own_final(&mut self, seq: SeqNo, f: Priority) {
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

    fn on_final(&mut self, now: Instant, from: MemberId, f: Final) {
        if self.view.order != Order::Total {
            return;
        }
        let window = self.config.window;
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        peer.ack_due = true;
        if self.ack_deadline.is_none() {
            self.ack_deadline = Some(now + self.config.ack_delay);
        }
        let stream = &mut peer.stream;
        if !stream.rx.start_known() || f.seq <= stream.delivered || stream.closed.is_some() {
            return;
        }
        self.counters.observe_final(f.priority);
        if self.holdback.finalize(from, f.seq, f.priority) {
            stream.note_final_known(f.seq);
        } else if f.seq.0 < stream.delivered.0.saturating_add(window).saturating_add(1) {
            stream.pending_finals.insert(f.seq, f.priority);
            stream.note_final_known(f.seq);
        }
    }

    /// Delivers the hold-back queue's head while it is final (total order), unless a failure
    /// resolution pauses delivery.
    fn deliver_ready(&mut self, now: Instant) {
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
                if self.ack_deadline.is_none() {
                    self.ack_deadline = Some(now + self.config.ack_delay);
                }
                Some(&mut peer.stream)
            } else {
                self.departed.get_mut(&key.origin)
            };
            if let Some(stream) = stream {
                stream.delivered = stream.delivered.max(key.seq);
                stream.note_final_known(key.seq);
                stream.retained.push_back((key.seq, key.priority));
                if stream.retained.len() as u64 > window {
                    stream.retained.pop_front();
                }
            }
            self.emit_delivery(key.origin, key.seq, queued.stamp, queued.payload);
        }
        if own {
            self.release_stable();
        }
    }

    fn emit_delivery(&mut self, origin: MemberId, seq: SeqNo, stamp: u64, payload: Bytes) {
        self.stats.delivered += 1;
        self.events.push_back(Event::Deliver(Delivery {
            origin,
            seq,
            stamp,
            payload,
        }));
    }

    // ----- membership and failure resolution -------------------------------------------------

    fn depart(&mut self, id: MemberId) {
        let Some(peer) = self.peers.remove(&id) else {
            return;
        };
        self.outbox.remove(&id);
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
            self.unresolved.remove(&id);
        }
        stream.nack = NackPacer::default();
        self.departed.insert(id, stream);
        self.unresolved.insert(id);
        // Bound the memory of resolved departed streams.
        while self.departed.len() > self.config.max_departed.max(1) {
            let Some(oldest) = self
                .departed
                .iter()
                .find(|(id, s)| s.closed.is_some() && !self.unresolved.contains(id))
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
    fn drop_stream_entries(&mut self, origin: MemberId, stream: &Stream, after: SeqNo) {
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
        dropped.extend(stream.rx.held().map(|(s, _)| s).filter(|s| *s > after));
        dropped.extend(stream.relayed.keys().copied().filter(|s| *s > after));
        let dropped: Vec<SeqNo> = dropped.into_iter().collect();
        self.report_lost(origin, &dropped);
    }

    fn coordinator(&self) -> MemberId {
        self.view
            .members
            .iter()
            .map(|m| m.id)
            .min()
            .unwrap_or(self.me)
    }

    /// Starts a resolution round for the current view if any departed stream is unresolved.
    fn open_round(&mut self, now: Instant) {
        let round = self.view.id;
        if self.flush.as_ref().is_some_and(|f| f.round == round) {
            return;
        }
        if self.unresolved.is_empty() {
            // Nothing to resolve here; if another member needs a round it will ask.
            self.flush = None;
            return;
        }
        self.start_round(now, round);
    }

    fn start_round(&mut self, now: Instant, round: ViewId) {
        self.stats.flush_rounds += 1;
        let coordinator = self.coordinator();
        self.flush = Some(Flush {
            round,
            coordinator,
            applied: false,
            decision: None,
            last_sent: None,
            decision_parts: Parts::default(),
            reports: BTreeMap::new(),
            report_parts: BTreeMap::new(),
            relay: BTreeMap::new(),
            acked: BTreeSet::new(),
        });
        let report = self.build_report(round);
        if coordinator == self.me {
            if let Some(f) = self.flush.as_mut() {
                f.reports.insert(self.me, report.clone());
            }
            // The coordinator's report asks everyone else to report too.
            let others: Vec<MemberId> = self.peers.keys().copied().collect();
            for to in others {
                self.queue_call(to, &report);
            }
            self.try_decide(now);
        } else {
            self.queue_report(coordinator, &report);
        }
        if let Some(f) = self.flush.as_mut() {
            f.last_sent = Some(now);
        }
    }

    fn build_report(&self, round: ViewId) -> FlushReport {
        let mut streams = Vec::new();
        for (&origin, stream) in &self.departed {
            let mut entries: BTreeMap<SeqNo, ReportEntry> = BTreeMap::new();
            let mut put = |seq: SeqNo, state: EntryState, content: Option<&Msg>| {
                let content =
                    content.map(|m| (m.view, wire::content_digest(m.view, m.stamp, &m.payload)));
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
            for &(seq, p) in &stream.retained {
                put(seq, EntryState::Final(p), None);
            }
            for (&seq, &p) in &stream.pending_finals {
                put(seq, EntryState::Final(p), None);
            }
            for (key, q) in self.holdback.iter().filter(|(k, _)| k.origin == origin) {
                let state = if q.is_final {
                    EntryState::Final(key.priority)
                } else {
                    EntryState::Proposed(key.priority)
                };
                let msg = Msg {
                    view: q.view,
                    stamp: q.stamp,
                    payload: q.payload.clone(),
                };
                put(key.seq, state, Some(&msg));
            }
            for (seq, m) in stream.rx.held() {
                put(seq, EntryState::Unproposed, Some(m));
            }
            for (&seq, m) in &stream.relayed {
                put(seq, EntryState::Unproposed, Some(m));
            }
            for (&seq, (m, p)) in &stream.kept {
                put(seq, EntryState::Final(*p), Some(m));
            }
            streams.push(StreamReport {
                origin,
                delivered: stream.rx.start_known().then_some(stream.delivered),
                closed: stream.closed,
                entries: entries.into_values().collect(),
            });
        }
        FlushReport {
            round,
            joined: self.joined,
            delivered_max: self.delivered_max,
            streams,
            part: Part::WHOLE,
        }
    }

    fn on_flush_report(&mut self, now: Instant, from: MemberId, report: FlushReport) {
        if self.view.order != Order::Total || report.round != self.view.id {
            return;
        }
        if let Some(decision) = self
            .finished
            .as_ref()
            .filter(|d| d.round == report.round && self.flush.is_none())
        {
            // The round is over: the member missed the decision, or the report is a late copy.
            let decision = decision.clone();
            self.queue_decision(from, &decision);
            return;
        }
        if self.flush.as_ref().is_none_or(|f| f.round != report.round) {
            // Another member needs a round in this view: take part.
            self.start_round(now, report.round);
        }
        let me = self.me;
        let Some(flush) = self.flush.as_mut() else {
            return;
        };
        if flush.coordinator != me {
            // A report from the coordinator is its call to report: ours went out at round start,
            // and repeats until the decision arrives.
            return;
        }
        if let Some(decision) = flush.decision.clone() {
            if flush.applied {
                // The member missed the decision.
                self.queue_decision(from, &decision);
            }
            return;
        }
        if flush.reports.contains_key(&from) {
            return;
        }
        let parts = flush.report_parts.entry(from).or_default();
        let Some(parts) = parts.add(report.part, report) else {
            return;
        };
        flush.report_parts.remove(&from);
        match merge_report(parts) {
            Some(report) => {
                flush.reports.insert(from, report);
                self.try_decide(now);
            }
            None => self.stats.invalid_frames += 1,
        }
    }

    /// Coordinator: decides once every member reported, after gathering the content of every
    /// decided message.
    fn try_decide(&mut self, now: Instant) {
        let me = self.me;
        let view_members: Vec<MemberId> = self.view.members.iter().map(|m| m.id).collect();
        let Some(flush) = self.flush.as_mut() else {
            return;
        };
        if flush.coordinator != me || flush.applied {
            return;
        }
        if flush.decision.is_none() {
            if !view_members.iter().all(|m| flush.reports.contains_key(m)) {
                return;
            }
            let reports: Vec<(MemberId, FlushReport)> =
                flush.reports.iter().map(|(m, r)| (*m, r.clone())).collect();
            flush.decision = Some(decide(flush.round, &reports));
        }
        let missing = self.missing_content();
        if missing.is_empty() {
            let Some(flush) = self.flush.as_mut() else {
                return;
            };
            let Some(decision) = flush.decision.clone() else {
                return;
            };
            flush.last_sent = Some(now);
            let relay = self.decided_content(&decision);
            if let Some(flush) = self.flush.as_mut() {
                flush.relay = relay;
            }
            let others: Vec<MemberId> = self.peers.keys().copied().collect();
            for to in others {
                self.queue_decision(to, &decision);
            }
            self.apply_decision(now, &decision);
            return;
        }
        // Ask the holders named in the reports.
        let Some(flush) = self.flush.as_ref() else {
            return;
        };
        let mut asks: BTreeMap<(MemberId, MemberId), Vec<SeqNo>> = BTreeMap::new();
        for (origin, seq) in missing {
            // A holder of the decided content (the one whose copy will be accepted).
            let digest = flush
                .decision
                .as_ref()
                .and_then(|d| decided_at(d, origin, seq))
                .map(|d| d.digest);
            let holder = flush.reports.iter().find(|(m, r)| {
                **m != me
                    && r.streams.iter().any(|s| {
                        s.origin == origin
                            && s.entries
                                .iter()
                                .any(|e| e.seq == seq && e.content.is_some() && e.digest == digest)
                    })
            });
            if let Some((holder, _)) = holder {
                asks.entry((*holder, origin)).or_default().push(seq);
            }
        }
        let round = flush.round;
        for ((holder, origin), seqs) in asks {
            self.queue(
                holder,
                &Frame::FlushFetch(FlushFetch {
                    round,
                    origin,
                    seqs,
                }),
            );
        }
    }

    /// Decided messages this member must keep and holds no content for. The coordinator
    /// gathers every decided message, also those it delivered before the round: it is the one
    /// the members ask, and a member that joined late keeps messages it never received.
    fn missing_content(&self) -> Vec<(MemberId, SeqNo)> {
        let mut missing = Vec::new();
        let Some(flush) = self.flush.as_ref() else {
            return missing;
        };
        let Some(decision) = flush.decision.as_ref() else {
            return missing;
        };
        let coordinator = flush.coordinator == self.me;
        for sd in &decision.streams {
            let Some(stream) = self.departed.get(&sd.origin) else {
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
            if stream.closed.is_some() {
                continue;
            }
            for (seq, _) in to_keep(sd, stream, self.joined) {
                let held = self.holdback.contains(sd.origin, seq)
                    || stream.rx.get(seq).is_some()
                    || stream.relayed.contains_key(&seq);
                if !held {
                    missing.push((sd.origin, seq));
                }
            }
        }
        missing
    }

    /// The content this member holds of a departed member's message.
    fn content_of(&self, origin: MemberId, seq: SeqNo) -> Option<Msg> {
        let stream = self.departed.get(&origin)?;
        self.holdback
            .get(origin, seq)
            .map(|(_, q)| Msg {
                view: q.view,
                stamp: q.stamp,
                payload: q.payload.clone(),
            })
            .or_else(|| stream.rx.get(seq).cloned())
            .or_else(|| stream.relayed.get(&seq).cloned())
            .or_else(|| stream.kept.get(&seq).map(|(m, _)| m.clone()))
            .or_else(|| {
                self.flush
                    .as_ref()
                    .and_then(|f| f.relay.get(&(origin, seq)).cloned())
            })
    }

    /// Copies of every decided message this member holds (payloads are shared, not copied).
    fn decided_content(&self, decision: &FlushDecision) -> BTreeMap<(MemberId, SeqNo), Msg> {
        let mut out = BTreeMap::new();
        for sd in &decision.streams {
            for (seq, _) in decided_seqs(sd) {
                if let Some(msg) = self.content_of(sd.origin, seq) {
                    out.insert((sd.origin, seq), msg);
                }
            }
        }
        out
    }

    fn on_flush_fetch(&mut self, from: MemberId, fetch: FlushFetch) {
        let mut frames = Vec::new();
        let mut credit = self.peers.get(&from).map_or(0, |p| p.resend_credit);
        for seq in fetch.seqs.into_iter().take(self.config.window as usize) {
            if let Some(msg) = self.content_of(fetch.origin, seq) {
                let cost = resend_cost(msg.payload.len());
                if credit < cost {
                    self.stats.resends_refused += 1;
                    break;
                }
                credit -= cost;
                frames.push(Frame::FlushRelay(FlushRelay {
                    origin: fetch.origin,
                    seq,
                    view: msg.view,
                    stamp: msg.stamp,
                    payload: msg.payload,
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

    /// Most resend credit a peer can hold: one window of the largest messages.
    fn resend_cap(&self) -> usize {
        usize::try_from(self.config.window)
            .unwrap_or(usize::MAX)
            .saturating_mul(resend_cost(self.config.max_payload))
    }

    fn on_flush_relay(&mut self, now: Instant, relay: FlushRelay) {
        // Only content the round's decision names, with the digest it names: what relays can
        // add is bounded by the decision (not by how far the departed stream ran ahead of what
        // this member delivered), and a member cannot substitute content.
        let expected = self
            .flush
            .as_ref()
            .and_then(|f| f.decision.as_ref())
            .and_then(|d| decided_at(d, relay.origin, relay.seq));
        let Some(expected) = expected else {
            self.stats.invalid_frames += 1;
            return;
        };
        if wire::content_digest(relay.view, relay.stamp, &relay.payload) != expected.digest {
            self.stats.invalid_frames += 1;
            return;
        }
        let msg = Msg {
            view: relay.view,
            stamp: relay.stamp,
            payload: relay.payload,
        };
        let me = self.me;
        if let Some(flush) = self.flush.as_mut().filter(|f| f.coordinator == me) {
            // The coordinator gathers every decided message, also of streams it already
            // closed in an earlier round (its members may still need them).
            flush.relay.entry((relay.origin, relay.seq)).or_insert(msg);
        } else {
            let Some(stream) = self.departed.get_mut(&relay.origin) else {
                return;
            };
            if stream.closed.is_some() {
                return;
            }
            stream.relayed.entry(relay.seq).or_insert(msg);
        }
        self.progress_flush(now);
    }

    fn on_flush_decision(&mut self, now: Instant, from: MemberId, decision: FlushDecision) {
        let me = self.me;
        let Some(flush) = self.flush.as_mut() else {
            return;
        };
        if decision.round != flush.round || from != flush.coordinator || flush.coordinator == me {
            return;
        }
        if flush.applied {
            self.queue(
                from,
                &Frame::FlushAck(FlushAck {
                    round: decision.round,
                }),
            );
            return;
        }
        if flush.decision.is_none() {
            let Some(parts) = flush.decision_parts.add(decision.part, decision) else {
                return;
            };
            match merge_decision(parts) {
                Some(whole) => flush.decision = Some(whole),
                None => {
                    self.stats.invalid_frames += 1;
                    return;
                }
            }
        }
        self.progress_flush(now);
    }

    /// Moves the round on after new content arrived.
    fn progress_flush(&mut self, now: Instant) {
        let me = self.me;
        let Some(flush) = self.flush.as_ref() else {
            return;
        };
        if flush.applied || flush.decision.is_none() {
            return;
        }
        if flush.coordinator == me {
            self.try_decide(now);
            return;
        }
        let missing = self.missing_content();
        if missing.is_empty() {
            let Some(decision) = self.flush.as_ref().and_then(|f| f.decision.clone()) else {
                return;
            };
            self.apply_decision(now, &decision);
        } else {
            self.fetch_from_coordinator(now, missing);
        }
    }

    fn fetch_from_coordinator(&mut self, now: Instant, missing: Vec<(MemberId, SeqNo)>) {
        let Some(flush) = self.flush.as_mut() else {
            return;
        };
        flush.last_sent = Some(now);
        let (round, coordinator) = (flush.round, flush.coordinator);
        let mut by_origin: BTreeMap<MemberId, Vec<SeqNo>> = BTreeMap::new();
        for (origin, seq) in missing {
            by_origin.entry(origin).or_default().push(seq);
        }
        for (origin, seqs) in by_origin {
            self.queue(
                coordinator,
                &Frame::FlushFetch(FlushFetch {
                    round,
                    origin,
                    seqs,
                }),
            );
        }
    }

    fn apply_decision(&mut self, now: Instant, decision: &FlushDecision) {
        for sd in &decision.streams {
            let Some(mut stream) = self.departed.remove(&sd.origin) else {
                continue;
            };
            if stream.closed.is_none() {
                for (seq, d) in to_keep(sd, &stream, self.joined) {
                    let msg = match self.holdback.remove(sd.origin, seq) {
                        Some((_, q)) => Some(Msg {
                            view: q.view,
                            stamp: q.stamp,
                            payload: q.payload,
                        }),
                        None => stream
                            .rx
                            .remove(seq)
                            .or_else(|| stream.relayed.remove(&seq))
                            .or_else(|| {
                                // What the coordinator gathered for the round.
                                self.flush
                                    .as_ref()
                                    .and_then(|f| f.relay.get(&(sd.origin, seq)).cloned())
                            }),
                    };
                    // `missing_content` made sure every message is here.
                    if let Some(msg) = msg {
                        stream.kept.insert(seq, (msg.clone(), d.priority));
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
                                view: msg.view,
                                stamp: msg.stamp,
                                payload: msg.payload,
                                is_final: true,
                                proposed_at: now,
                            },
                        );
                    }
                }
                let last = decision_last(sd).max(stream.delivered);
                self.drop_stream_entries(sd.origin, &stream, last);
                let _ = stream.rx.drain().count();
                stream.relayed.clear();
                stream.pending_finals.clear();
                stream.closed = Some(last);
            }
            self.departed.insert(sd.origin, stream);
            self.unresolved.remove(&sd.origin);
        }
        let me = self.me;
        if let Some(flush) = self.flush.as_mut() {
            flush.applied = true;
            if flush.coordinator != me {
                let (round, coordinator) = (flush.round, flush.coordinator);
                self.queue(coordinator, &Frame::FlushAck(FlushAck { round }));
            }
        }
        self.deliver_ready(now);
    }

    fn on_flush_ack(&mut self, from: MemberId, ack: FlushAck) {
        let me = self.me;
        let n = self.peers.len();
        let Some(flush) = self.flush.as_mut() else {
            return;
        };
        if flush.coordinator != me || flush.round != ack.round {
            return;
        }
        flush.acked.insert(from);
        if flush.applied && flush.acked.len() >= n {
            self.finished = self.flush.take().and_then(|f| f.decision);
        }
    }

    // ----- timers ----------------------------------------------------------------------------

    /// True while anything waits for a repeat.
    fn has_repair_work(&self) -> bool {
        if !self.send_buf.is_empty() || !self.unresolved.is_empty() {
            return true;
        }
        if self.flush.is_some() {
            return true;
        }
        if self.peers.values().any(|p| p.stream.rx.has_gap()) {
            return true;
        }
        self.holdback.has_tentative()
    }

    fn arm_repair(&mut self, now: Instant) {
        if self.next_repair.is_none() && !self.removed && self.has_repair_work() {
            self.next_repair = Some(now + self.rto());
        }
    }

    fn repair(&mut self, now: Instant) {
        let ids: Vec<MemberId> = self.peers.keys().copied().collect();
        // Gaps: ask again (every retransmission timeout).
        for &id in &ids {
            self.maybe_nack(now, id);
        }
        // Proposals still waiting for their final after a timeout: repeat them (this also asks
        // the sender for a final that was lost).
        if self.view.order == Order::Total {
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
        if self.slow_repair_at.is_some_and(|t| now < t) {
            return;
        }
        self.slow_repair_at = Some(now + self.config.repair_interval);
        // Session: members behind on our stream hear our highest number; finals they lack are
        // repeated.
        for &id in &ids {
            let Some(peer) = self.peers.get(&id) else {
                continue;
            };
            let behind = peer.is_behind(self.last_seq);
            if self.view.order == Order::Total {
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
            if behind {
                self.send_status(id);
            }
        }
        self.repair_flush(now);
    }

    fn repair_flush(&mut self, now: Instant) {
        let me = self.me;
        let interval = self.config.repair_interval;
        let Some(flush) = self.flush.as_mut() else {
            return;
        };
        if flush
            .last_sent
            .is_some_and(|t| now.saturating_duration_since(t) < interval)
        {
            return;
        }
        flush.last_sent = Some(now);
        let round = flush.round;
        if flush.coordinator == me {
            match (&flush.decision, flush.applied) {
                (Some(decision), true) => {
                    let decision = decision.clone();
                    let acked = flush.acked.clone();
                    let waiting: Vec<MemberId> = self
                        .peers
                        .keys()
                        .filter(|id| !acked.contains(id))
                        .copied()
                        .collect();
                    for to in waiting {
                        self.queue_decision(to, &decision);
                    }
                }
                (Some(_), false) => self.try_decide(now),
                (None, _) => {
                    let reported: BTreeSet<MemberId> = flush.reports.keys().copied().collect();
                    let Some(report) = flush.reports.get(&me).cloned() else {
                        return;
                    };
                    let waiting: Vec<MemberId> = self
                        .peers
                        .keys()
                        .filter(|id| !reported.contains(id))
                        .copied()
                        .collect();
                    for to in waiting {
                        self.queue_call(to, &report);
                    }
                }
            }
        } else if !flush.applied {
            let coordinator = flush.coordinator;
            if flush.decision.is_some() {
                let missing = self.missing_content();
                self.fetch_from_coordinator(now, missing);
            } else {
                let report = self.build_report(round);
                self.queue_report(coordinator, &report);
            }
        }
    }

    // ----- output assembly -------------------------------------------------------------------

    fn send_status(&mut self, to: MemberId) {
        let Some(peer) = self.peers.get(&to) else {
            return;
        };
        let start = peer.start_for;
        let acks = self
            .peers
            .iter()
            .map(|(&origin, p)| {
                let a = p.stream.ack();
                StreamAck {
                    origin,
                    received: a.received,
                    finals: a.finals,
                    delivered: a.delivered,
                }
            })
            .collect();
        let status = Frame::Status(Status {
            high: self.last_seq,
            start,
            acks,
        });
        self.queue(to, &status);
    }

    /// Queues a report in as many parts as it takes.
    fn queue_report(&mut self, to: MemberId, report: &FlushReport) {
        for part in split_report(report) {
            self.queue(to, &Frame::FlushReport(Box::new(part)));
        }
    }

    /// The coordinator's call to report: the first part of its own report is enough.
    fn queue_call(&mut self, to: MemberId, report: &FlushReport) {
        if let Some(part) = split_report(report).into_iter().next() {
            self.queue(to, &Frame::FlushReport(Box::new(part)));
        }
    }

    fn queue_decision(&mut self, to: MemberId, decision: &FlushDecision) {
        for part in split_decision(decision) {
            self.queue(to, &Frame::FlushDecision(part));
        }
    }

    fn queue_ack(&mut self, to: MemberId) {
        let Some(peer) = self.peers.get_mut(&to) else {
            return;
        };
        peer.ack_due = false;
        let ack = Frame::Ack(peer.stream.ack());
        self.queue(to, &ack);
    }

    /// Queues one frame for several members, encoding it once.
    fn queue_to_all(&mut self, targets: &[MemberId], frame: &Frame) {
        let mut scratch = std::mem::take(&mut self.scratch_frame);
        scratch.clear();
        let Ok(encoded) = wire::encode_frame_into(frame, scratch) else {
            return;
        };
        for &to in targets {
            if let Some(builder) = self.builder(to) {
                let _ = builder.push_encoded(&encoded);
            }
        }
        self.scratch_frame = encoded;
    }

    /// The datagram under construction for `to` (a member of the view).
    fn builder(&mut self, to: MemberId) -> Option<&mut DatagramBuilder> {
        if !self.peers.contains_key(&to) {
            return None;
        }
        let header = Header {
            group: self.view.group,
            sender: self.me,
            recipient: to,
            view: self.view.id,
        };
        let budget = self.config.bundle_size;
        Some(
            self.outbox
                .entry(to)
                .or_insert_with(|| DatagramBuilder::new(header, budget)),
        )
    }

    fn queue(&mut self, to: MemberId, frame: &Frame) {
        // Frames are bounded by construction (payload limit, window-bounded lists), so a frame
        // over the datagram limit is a configuration error; it is dropped rather than sent.
        if let Some(builder) = self.builder(to) {
            let _ = builder.push(frame);
        }
    }

    fn flush_outbox(&mut self) {
        // Piggyback due acknowledgements on datagrams that are going out anyway.
        let due: Vec<MemberId> = self
            .outbox
            .iter()
            .filter(|(id, b)| !b.is_empty() && self.peers.get(id).is_some_and(|p| p.ack_due))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.queue_ack(id);
        }
        for (id, builder) in self.outbox.iter_mut() {
            let Some(peer) = self.peers.get(id) else {
                continue;
            };
            for bytes in builder.finish() {
                self.transmits.push_back(Transmit {
                    to: peer.addr,
                    member: *id,
                    bytes,
                });
            }
        }
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

/// What sending a message of `payload` bytes again costs a peer's credit (frame overhead
/// included).
fn resend_cost(payload: usize) -> usize {
    payload.saturating_add(32)
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
        Frame::FlushReport(r) => {
            r.delivered_max.is_none_or(|k| ok(&k.priority))
                && r.streams.iter().all(|s| {
                    s.entries.iter().all(|e| match e.state {
                        EntryState::Unproposed => true,
                        EntryState::Proposed(p) | EntryState::Final(p) => ok(&p),
                    })
                })
        }
        Frame::FlushDecision(d) => d
            .streams
            .iter()
            .all(|s| s.decided.iter().all(|d| ok(&d.priority))),
        _ => true,
    }
}
