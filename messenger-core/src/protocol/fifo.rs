//! FIFO delivery of one sender's stream: sequence numbers from the stream's start, a bounded
//! hold-back queue for messages that arrive ahead of a gap, duplicates dropped.
//!
//! A [`FifoStream`] does not know about the network. It is told what arrived
//! ([`FifoStream::insert`]) and what the sender says it has sent ([`FifoStream::note_high`]),
//! hands out messages in order ([`FifoStream::pop_ready`]) and names the gaps to repair
//! ([`FifoStream::missing`]).

use std::collections::BTreeMap;

use super::types::SeqNo;

/// What became of an inserted message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// Stored; it will come out of [`FifoStream::pop_ready`] in order.
    Buffered,
    /// Already received (or before the stream's start): dropped.
    Duplicate,
    /// Too far ahead of the next expected number: dropped, an honest sender resends it.
    OutOfWindow,
}

/// Receive side of one sender's stream.
#[derive(Debug, Clone)]
pub struct FifoStream<T> {
    /// Next sequence number to hand out; `None` until the stream's start is known (a member
    /// that joined late learns it from the sender's status).
    next: Option<SeqNo>,
    held: BTreeMap<SeqNo, T>,
    /// Highest sequence number known to exist.
    high: SeqNo,
    /// End of the newest gap a message revealed by arriving ahead of it.
    newest_gap_end: SeqNo,
    window: u64,
}

impl<T> FifoStream<T> {
    /// A stream whose first message is `start` (or unknown yet), buffering at most `window`
    /// messages ahead of the next expected one.
    pub fn new(start: Option<SeqNo>, window: u64) -> Self {
        FifoStream {
            next: start,
            held: BTreeMap::new(),
            high: SeqNo::ZERO,
            newest_gap_end: SeqNo::ZERO,
            window: window.max(1),
        }
    }

    /// Sets the first sequence number to deliver, if it was unknown; drops what comes before.
    pub fn set_start(&mut self, start: SeqNo) {
        if self.next.is_some() {
            return;
        }
        self.next = Some(start);
        self.held = self.held.split_off(&start);
        let limit = SeqNo(start.0.saturating_add(self.window));
        self.held.split_off(&limit);
    }

    pub fn start_known(&self) -> bool {
        self.next.is_some()
    }

    /// Every message up to this one has come out of [`FifoStream::pop_ready`].
    pub fn received(&self) -> Option<SeqNo> {
        self.next.map(SeqNo::prev)
    }

    pub fn insert(&mut self, seq: SeqNo, msg: T) -> Accept {
        if seq.0 == 0 {
            return Accept::Duplicate;
        }
        match self.next {
            Some(next) if seq < next => return Accept::Duplicate,
            Some(next) if seq.0 >= next.0.saturating_add(self.window) => {
                return Accept::OutOfWindow
            }
            None if self.held.len() as u64 >= self.window && !self.held.contains_key(&seq) => {
                return Accept::OutOfWindow
            }
            _ => {}
        }
        if self.held.contains_key(&seq) {
            return Accept::Duplicate;
        }
        self.held.insert(seq, msg);
        let expected = self
            .high
            .max(self.next.map_or(SeqNo::ZERO, SeqNo::prev))
            .next();
        if seq > expected {
            self.newest_gap_end = seq.prev();
        }
        self.high = self.high.max(seq);
        Accept::Buffered
    }

    /// The common case without the hold-back queue: when `seq` is the next expected message
    /// and nothing is held, advances past it and gives it back (`Ok`) for the caller to hand
    /// on at once, as [`FifoStream::insert`] followed by [`FifoStream::pop_ready`] would; any
    /// other message comes back as `Err` for [`FifoStream::insert`].
    pub fn take_if_next(&mut self, seq: SeqNo, msg: T) -> Result<T, T> {
        if self.next != Some(seq) || !self.held.is_empty() {
            return Err(msg);
        }
        self.next = Some(seq.next());
        self.high = self.high.max(seq);
        Ok(msg)
    }

    /// The end of the newest gap that an arriving message revealed (messages missing below
    /// one that arrived); gaps known only from the sender's `high` do not count: those
    /// messages may still be on their way.
    pub fn newest_gap_end(&self) -> SeqNo {
        self.newest_gap_end
    }

    /// The sender says it has sent up to `high`.
    pub fn note_high(&mut self, high: SeqNo) {
        self.high = self.high.max(high);
    }

    /// The next message in sequence, if it is here.
    pub fn pop_ready(&mut self) -> Option<(SeqNo, T)> {
        let next = self.next?;
        let msg = self.held.remove(&next)?;
        self.next = Some(next.next());
        Some((next, msg))
    }

    /// True when a message is known to exist that has not been handed out (after draining
    /// [`FifoStream::pop_ready`], that means a gap).
    pub fn has_gap(&self) -> bool {
        self.next.is_some_and(|next| self.high >= next)
    }

    /// Missing sequence numbers as inclusive ranges, within the window, at most `max_ranges`.
    pub fn missing(&self, max_ranges: usize) -> Vec<(SeqNo, SeqNo)> {
        let mut out = Vec::new();
        let Some(next) = self.next else {
            return out;
        };
        let limit = self.high.0.min(next.0.saturating_add(self.window) - 1);
        let mut cursor = next.0;
        for &seq in self.held.keys() {
            if cursor > limit || out.len() >= max_ranges {
                return out;
            }
            if seq.0 > cursor {
                out.push((SeqNo(cursor), SeqNo((seq.0 - 1).min(limit))));
            }
            cursor = seq.0 + 1;
        }
        if cursor <= limit && out.len() < max_ranges {
            out.push((SeqNo(cursor), SeqNo(limit)));
        }
        out
    }

    pub fn held_len(&self) -> usize {
        self.held.len()
    }

    pub fn get(&self, seq: SeqNo) -> Option<&T> {
        self.held.get(&seq)
    }

    pub fn remove(&mut self, seq: SeqNo) -> Option<T> {
        self.held.remove(&seq)
    }

    /// Held messages, in sequence order.
    pub fn held(&self) -> impl Iterator<Item = (SeqNo, &T)> {
        self.held.iter().map(|(s, m)| (*s, m))
    }

    /// Removes and returns every held message.
    pub fn drain(&mut self) -> impl Iterator<Item = (SeqNo, T)> + '_ {
        std::mem::take(&mut self.held).into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_in_order_despite_reordering_and_duplicates() {
        let mut s = FifoStream::new(Some(SeqNo(1)), 16);
        assert_eq!(s.insert(SeqNo(3), "c"), Accept::Buffered);
        assert_eq!(s.pop_ready(), None);
        assert_eq!(s.insert(SeqNo(1), "a"), Accept::Buffered);
        assert_eq!(s.insert(SeqNo(3), "c"), Accept::Duplicate);
        assert_eq!(s.pop_ready(), Some((SeqNo(1), "a")));
        assert_eq!(s.pop_ready(), None);
        assert_eq!(s.missing(8), vec![(SeqNo(2), SeqNo(2))]);
        assert_eq!(s.insert(SeqNo(2), "b"), Accept::Buffered);
        assert_eq!(s.pop_ready(), Some((SeqNo(2), "b")));
        assert_eq!(s.pop_ready(), Some((SeqNo(3), "c")));
        assert_eq!(s.insert(SeqNo(1), "a"), Accept::Duplicate);
        assert_eq!(s.received(), Some(SeqNo(3)));
    }

    #[test]
    fn the_next_message_passes_without_the_queue_and_only_then() {
        let mut s = FifoStream::new(Some(SeqNo(1)), 16);
        assert_eq!(s.take_if_next(SeqNo(1), "a"), Ok("a"));
        assert_eq!(s.received(), Some(SeqNo(1)));
        // Not the next one: the caller inserts it.
        assert_eq!(s.take_if_next(SeqNo(3), "c"), Err("c"));
        assert_eq!(s.insert(SeqNo(3), "c"), Accept::Buffered);
        // Something is held: in-order delivery goes through the queue.
        assert_eq!(s.take_if_next(SeqNo(2), "b"), Err("b"));
        assert_eq!(s.insert(SeqNo(2), "b"), Accept::Buffered);
        assert_eq!(s.pop_ready(), Some((SeqNo(2), "b")));
        assert_eq!(s.pop_ready(), Some((SeqNo(3), "c")));
        // A duplicate is never taken.
        assert_eq!(s.take_if_next(SeqNo(1), "a"), Err("a"));
        assert_eq!(s.insert(SeqNo(1), "a"), Accept::Duplicate);
        let mut late: FifoStream<()> = FifoStream::new(None, 4);
        assert_eq!(late.take_if_next(SeqNo(1), ()), Err(()));
    }

    #[test]
    fn window_bounds_the_hold_back_queue() {
        let mut s = FifoStream::new(Some(SeqNo(1)), 4);
        assert_eq!(s.insert(SeqNo(4), ()), Accept::Buffered);
        assert_eq!(s.insert(SeqNo(5), ()), Accept::OutOfWindow);
        assert_eq!(s.insert(SeqNo(u64::MAX), ()), Accept::OutOfWindow);
        assert_eq!(s.held_len(), 1);
    }

    #[test]
    fn tail_gap_found_from_the_senders_high() {
        let mut s: FifoStream<()> = FifoStream::new(Some(SeqNo(1)), 100);
        s.note_high(SeqNo(3));
        assert!(s.has_gap());
        assert_eq!(s.missing(8), vec![(SeqNo(1), SeqNo(3))]);
        // A far-off high is clipped to the window.
        s.note_high(SeqNo(1_000_000));
        assert_eq!(s.missing(8), vec![(SeqNo(1), SeqNo(100))]);
    }

    #[test]
    fn late_joiner_buffers_until_start_is_known() {
        let mut s = FifoStream::new(None, 4);
        assert_eq!(s.insert(SeqNo(9), 9), Accept::Buffered);
        assert_eq!(s.insert(SeqNo(11), 11), Accept::Buffered);
        assert_eq!(s.pop_ready(), None);
        s.set_start(SeqNo(10));
        assert_eq!(s.held_len(), 1);
        assert_eq!(s.missing(8), vec![(SeqNo(10), SeqNo(10))]);
        assert_eq!(s.insert(SeqNo(10), 10), Accept::Buffered);
        assert_eq!(s.pop_ready(), Some((SeqNo(10), 10)));
        assert_eq!(s.pop_ready(), Some((SeqNo(11), 11)));
    }
}
