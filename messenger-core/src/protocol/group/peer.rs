//! Per-member state: the receive side of each sender's stream, what this member knows of each
//! other member of the view, and what it keeps of a departed member's stream.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use crate::protocol::fifo::FifoStream;
use crate::protocol::reliable::NackPacer;
use crate::protocol::types::{Content, Priority, SeqNo, ViewId};
use crate::protocol::wire::Ack;

/// The receive side of one sender's stream.
#[derive(Debug)]
pub(super) struct Stream {
    pub(super) rx: FifoStream<Content>,
    /// Highest sequence number delivered (total) or handed out (fifo).
    pub(super) delivered: SeqNo,
    pub(super) nack: NackPacer,
    /// Total order: the finals this member knows of the stream (in FIFO groups it stays at the
    /// stream's start).
    pub(super) finals: Finals,
}

/// Total order: what a receiver knows of one stream's finals.
#[derive(Debug, Default)]
pub(super) struct Finals {
    /// Every message up to here has a known final (acknowledged as `finals`).
    pub(super) through: SeqNo,
    /// Known finals above `through`, not contiguous yet.
    pub(super) above: BTreeSet<SeqNo>,
    /// Finals that arrived before their message.
    pub(super) pending: BTreeMap<SeqNo, Priority>,
    /// Finals of the last delivered messages (at most a window), reported if the sender
    /// departs: a failure resolution keeps every final somebody knows.
    pub(super) retained: VecDeque<(SeqNo, Priority)>,
    /// The final taken for the highest sequence number so far (`total::final_fits` compares
    /// with it instead of looking up the neighbours when finals come in order).
    pub(super) newest_taken: Option<(SeqNo, Priority)>,
}

impl Finals {
    /// Records that the final of `seq` was taken.
    pub(super) fn note_taken(&mut self, seq: SeqNo, priority: Priority) {
        if self.newest_taken.is_none_or(|(s, _)| seq > s) {
            self.newest_taken = Some((seq, priority));
        }
    }
}

impl Stream {
    pub(super) fn new(start: Option<SeqNo>, window: u64) -> Self {
        let base = start.map_or(SeqNo::ZERO, SeqNo::prev);
        Stream {
            rx: FifoStream::new(start, window),
            delivered: base,
            nack: NackPacer::default(),
            finals: Finals {
                through: base,
                ..Finals::default()
            },
        }
    }

    pub(super) fn set_start(&mut self, start: SeqNo) {
        if self.rx.start_known() {
            return;
        }
        self.rx.set_start(start);
        self.delivered = start.prev();
        self.finals.through = start.prev();
        self.finals.above = self.finals.above.split_off(&start);
        self.finals.pending = self.finals.pending.split_off(&start);
        self.advance_finals();
    }

    pub(super) fn note_final_known(&mut self, seq: SeqNo) {
        if seq > self.finals.through {
            self.finals.above.insert(seq);
            self.advance_finals();
        }
    }

    fn advance_finals(&mut self) {
        let finals = &mut self.finals;
        while finals.above.remove(&finals.through.next()) {
            finals.through = finals.through.next();
        }
        let through = finals.through;
        finals.above.retain(|s| *s > through);
    }

    /// Total order: remembers the final of a message just delivered, for the last `window`.
    pub(super) fn retain_final(&mut self, seq: SeqNo, priority: Priority, window: u64) {
        self.finals.retained.push_back((seq, priority));
        if self.finals.retained.len() as u64 > window {
            self.finals.retained.pop_front();
        }
    }

    /// This member's cumulative acknowledgement of the stream.
    pub(super) fn ack(&self) -> Ack {
        Ack {
            received: self.rx.received().unwrap_or(SeqNo::ZERO),
            finals: if self.rx.start_known() {
                self.finals.through
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
pub(super) struct Peer {
    pub(super) addr: SocketAddr,
    pub(super) joined: ViewId,
    pub(super) stream: Stream,
    /// First sequence number of this member's own stream that the peer delivers.
    pub(super) start_for: SeqNo,
    pub(super) acked_received: SeqNo,
    pub(super) acked_finals: SeqNo,
    /// Total order: the peer has delivered our messages up to here.
    pub(super) acked_delivered: SeqNo,
    pub(super) ack_due: bool,
    /// When a datagram of this member last passed the checks.
    pub(super) last_heard: Instant,
    /// When it was last reported silent.
    pub(super) suspected_at: Option<Instant>,
    /// When it was last reported for holding the group up while talking (not reset by
    /// hearing from it, unlike `suspected_at`).
    pub(super) stall_reported_at: Option<Instant>,
    /// Bytes this member may still send the peer again (retransmissions, relays): earned by
    /// what we first sent it and three times what it sent us, at most
    /// `Group::resend_cap`. A peer cannot make us send more than that on its request.
    pub(super) resend_credit: usize,
}

impl Peer {
    /// The peer has not acknowledged all of our stream that it delivers (up to `last_seq`).
    pub(super) fn is_behind(&self, last_seq: SeqNo) -> bool {
        self.acked_received < last_seq && last_seq >= self.start_for
    }
}

/// Total order: the stream of a member that left the view, kept until a failure resolution
/// has decided its fate and then, bounded by `max_departed`, for later rounds.
#[derive(Debug)]
pub(super) struct Departed {
    pub(super) stream: Stream,
    /// Content relayed during a resolution round.
    pub(super) relayed: BTreeMap<SeqNo, Content>,
    /// Messages a resolution decided (content and final), kept while the departed stream is
    /// remembered: a later round may need them relayed to members that missed the decision,
    /// and this member may be the only one left that has them.
    pub(super) kept: BTreeMap<SeqNo, (Content, Priority)>,
    /// A resolution ended the stream here.
    pub(super) closed: Option<SeqNo>,
}

impl Departed {
    pub(super) fn new(mut stream: Stream) -> Self {
        stream.nack = NackPacer::default();
        Departed {
            stream,
            relayed: BTreeMap::new(),
            kept: BTreeMap::new(),
            closed: None,
        }
    }
}
