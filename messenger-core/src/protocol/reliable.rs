//! Reliable delivery over a lossy network: the sender keeps what it sent until every member
//! has it, receivers ask for gaps (NACK), and the sender's periodic session message carries its
//! highest sequence number so that losing the last messages of a burst is noticed too.
//!
//! This module holds the two pieces of state that involves: the sender's [`SendBuffer`] and the
//! receiver's [`NackPacer`]. `group.rs` decides when they act.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::types::{SeqNo, ViewId};

/// One message kept for retransmission.
#[derive(Debug, Clone)]
pub struct Sent {
    pub seq: SeqNo,
    pub view: ViewId,
    pub stamp: u64,
    pub payload: Bytes,
}

/// The sender's retransmission buffer: every message from the oldest one that some member may
/// still need up to the newest one sent. Its length is the sender's window in use; `group.rs`
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

    /// Forgets every message up to and including `seq` (all members have it).
    pub fn release_through(&mut self, seq: SeqNo) {
        while self.base <= seq && !self.msgs.is_empty() {
            self.msgs.pop_front();
            self.base = self.base.next();
        }
    }

    pub fn len(&self) -> usize {
        self.msgs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    /// Messages still kept, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Sent> {
        self.msgs.iter()
    }
}

/// Rate limit for NACKs of one stream: at most one per interval, so that a burst of loss costs
/// one request, not one per datagram that reveals the gap.
#[derive(Debug, Clone, Default)]
pub struct NackPacer {
    last: Option<Instant>,
}

impl NackPacer {
    /// True (and records the time) when a NACK may be sent now.
    pub fn ready(&mut self, now: Instant, interval: Duration) -> bool {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < interval => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(seq: u64) -> Sent {
        Sent {
            seq: SeqNo(seq),
            view: ViewId(1),
            stamp: 0,
            payload: Bytes::from_static(b"x"),
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
    fn nack_pacer_limits_rate() {
        let t0 = crate::testing::epoch();
        let mut p = NackPacer::default();
        let i = Duration::from_millis(10);
        assert!(p.ready(t0, i));
        assert!(!p.ready(t0 + Duration::from_millis(5), i));
        assert!(p.ready(t0 + Duration::from_millis(10), i));
    }
}
