//! Reliable delivery over a lossy network: the sender keeps what it sent until every member
//! has it, receivers ask for gaps (NACK), and the sender's periodic session message carries its
//! highest sequence number so that losing the last messages of a burst is noticed too.
//!
//! This module holds the two pieces of state that involves: the sender's [`SendBuffer`] and the
//! receiver's [`NackPacer`]. `group/data.rs` decides when they act.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::types::{Content, SeqNo};

/// One message kept for retransmission.
#[derive(Debug, Clone)]
pub struct Sent {
    pub seq: SeqNo,
    pub content: Content,
    /// When it was first sent (round-trip samples come from its acknowledgement).
    pub at: Instant,
    /// Sent again since: its acknowledgement says nothing about the round trip (Karn).
    pub retransmitted: bool,
}

/// The sender's retransmission buffer: every message from the oldest one that some member may
/// still need up to the newest one sent. Its length is the sender's window in use; `Group`
/// refuses new sends when it is full, which bounds it.
#[derive(Debug, Default)]
pub struct SendBuffer {
    /// Sequence number of `msgs[0]`.
    base: SeqNo,
    msgs: VecDeque<Sent>,
}

impl SendBuffer {
    pub fn new() -> Self {
        SendBuffer {
            base: SeqNo(1),
            msgs: VecDeque::new(),
        }
    }

    /// Appends the next message; `seq` must follow the previous one.
    pub fn push(&mut self, sent: Sent) {
        debug_assert_eq!(sent.seq.0, self.base.0 + self.msgs.len() as u64);
        self.msgs.push_back(sent);
    }

    pub fn get(&self, seq: SeqNo) -> Option<&Sent> {
        let index = seq.0.checked_sub(self.base.0)?;
        self.msgs.get(usize::try_from(index).ok()?)
    }

    pub fn get_mut(&mut self, seq: SeqNo) -> Option<&mut Sent> {
        let index = seq.0.checked_sub(self.base.0)?;
        self.msgs.get_mut(usize::try_from(index).ok()?)
    }

    /// Forgets every message up to and including `seq` (all members have it).
    pub fn release_through(&mut self, seq: SeqNo) {
        while self.base <= seq && !self.msgs.is_empty() {
            self.msgs.pop_front();
            self.base = self.base.next();
        }
    }

    /// A peer that had acknowledged our messages through `after` now acknowledges them
    /// through `through`: the round trip of `through`, unless any message in
    /// `(after, through]` was sent again. That is Karn's rule, widened: an acknowledgement
    /// held back by a gap measures the repair, not the path, and an RTO inflated by it slows
    /// every later repair.
    pub fn round_trip(&self, now: Instant, after: SeqNo, through: SeqNo) -> Option<Duration> {
        let index = |seq: SeqNo| seq.0.checked_sub(self.base.0).map(|i| i as usize);
        let last = index(through)?;
        let sent = self.msgs.get(last)?;
        let first = index(after.next()).unwrap_or(0);
        if self
            .msgs
            .range(first.min(last)..=last)
            .any(|m| m.retransmitted)
        {
            return None;
        }
        Some(now.saturating_duration_since(sent.at))
    }

    pub fn len(&self) -> usize {
        self.msgs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }
}

/// Pacing of one stream's NACKs. A gap is asked for as soon as it is seen; asking again for
/// gaps already asked for waits one retransmission timeout, so that a burst of loss costs one
/// request, not one per datagram that reveals the gap, and a lost retransmission is asked for
/// again once it is overdue.
#[derive(Debug, Clone, Default)]
pub struct NackPacer {
    last: Option<Instant>,
    /// Highest sequence number asked for so far.
    through: SeqNo,
}

impl NackPacer {
    /// True (and records the time) when a NACK of everything missing may be sent now.
    pub fn ready(&mut self, now: Instant, interval: Duration) -> bool {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < interval => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }

    /// Records that everything up to `through` has been asked for; returns the highest number
    /// asked for before (ranges above it are new gaps, asked for without waiting).
    pub fn asked_through(&mut self, through: SeqNo) -> SeqNo {
        let before = self.through;
        self.through = self.through.max(through);
        before
    }

    pub fn through(&self) -> SeqNo {
        self.through
    }
}

/// Smoothed round-trip time (RFC 6298's estimator) from acknowledgement samples, and the
/// retransmission timeout derived from it, kept between a floor and a ceiling.
#[derive(Debug, Clone, Default)]
pub struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
}

impl RttEstimator {
    pub fn sample(&mut self, rtt: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let delta = srtt.abs_diff(rtt);
                self.rttvar = (self.rttvar * 3 + delta) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
    }

    /// `srtt + 4 rttvar`, within `[floor, ceiling]`; `ceiling` before the first sample.
    pub fn rto(&self, floor: Duration, ceiling: Duration) -> Duration {
        match self.srtt {
            None => ceiling,
            Some(srtt) => (srtt + self.rttvar * 4).clamp(floor, ceiling.max(floor)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::types::ViewId;
    use bytes::Bytes;

    fn sent(seq: u64) -> Sent {
        Sent {
            seq: SeqNo(seq),
            content: Content {
                view: ViewId(1),
                stamp: 0,
                payload: Bytes::from_static(b"x"),
            },
            at: crate::testing::epoch(),
            retransmitted: false,
        }
    }

    #[test]
    fn release_frees_only_acknowledged_prefix() {
        let mut b = SendBuffer::new();
        for s in 1..=5 {
            b.push(sent(s));
        }
        b.release_through(SeqNo(2));
        assert_eq!(b.len(), 3);
        assert!(b.get(SeqNo(2)).is_none());
        assert_eq!(b.get(SeqNo(3)).unwrap().seq, SeqNo(3));
        b.release_through(SeqNo(100));
        assert!(b.is_empty());
        b.push(sent(6));
        assert_eq!(b.get(SeqNo(6)).unwrap().seq, SeqNo(6));
    }

    #[test]
    fn no_round_trip_through_a_repaired_gap() {
        let mut b = SendBuffer::new();
        for seq in 1..=10 {
            b.push(sent(seq));
        }
        let later = crate::testing::epoch() + Duration::from_millis(3);
        assert_eq!(
            b.round_trip(later, SeqNo(0), SeqNo(4)),
            Some(Duration::from_millis(3))
        );
        b.get_mut(SeqNo(5)).unwrap().retransmitted = true;
        // 6..=10 waited at the receiver for the repair of 5: no sample, whichever of them
        // the acknowledgement names.
        assert_eq!(b.round_trip(later, SeqNo(4), SeqNo(10)), None);
        assert_eq!(b.round_trip(later, SeqNo(4), SeqNo(5)), None);
        assert_eq!(
            b.round_trip(later, SeqNo(5), SeqNo(10)),
            Some(Duration::from_millis(3))
        );
        b.release_through(SeqNo(5));
        assert_eq!(
            b.round_trip(later, SeqNo(2), SeqNo(10)),
            Some(Duration::from_millis(3)),
            "released messages are not looked at"
        );
        assert_eq!(
            b.round_trip(later, SeqNo(10), SeqNo(11)),
            None,
            "never sent"
        );
    }

    #[test]
    fn nack_pacer_limits_rate() {
        let t0 = crate::testing::epoch();
        let mut p = NackPacer::default();
        let i = Duration::from_millis(10);
        assert!(p.ready(t0, i));
        assert!(!p.ready(t0 + Duration::from_millis(5), i));
        assert!(p.ready(t0 + Duration::from_millis(10), i));
        assert_eq!(p.asked_through(SeqNo(5)), SeqNo::ZERO);
        assert_eq!(p.asked_through(SeqNo(3)), SeqNo(5));
        assert_eq!(p.through(), SeqNo(5));
    }

    #[test]
    fn rto_follows_the_round_trip_within_bounds() {
        let (floor, ceiling) = (Duration::from_millis(1), Duration::from_millis(50));
        let mut r = RttEstimator::default();
        assert_eq!(r.rto(floor, ceiling), ceiling);
        for _ in 0..50 {
            r.sample(Duration::from_millis(4));
        }
        let rto = r.rto(floor, ceiling);
        assert!(
            rto >= Duration::from_millis(4) && rto < Duration::from_millis(6),
            "{rto:?}"
        );
        for _ in 0..50 {
            r.sample(Duration::from_micros(10));
        }
        assert_eq!(r.rto(floor, ceiling), floor);
        for _ in 0..50 {
            r.sample(Duration::from_secs(1));
        }
        assert_eq!(r.rto(floor, ceiling), ceiling);
    }
}
