//! ISIS total order, the normal case.
//!
//! Every member proposes a priority for each message it receives, `(counter, own id)` with a
//! counter above everything it has proposed or seen agreed; the sender takes the largest
//! proposal as the message's final priority and announces it. Members hold messages back in
//! priority order ([`HoldBack`]) and deliver the head only once its priority is final: a
//! message's final is never below any proposal for it, so nothing can later be ordered before a
//! delivered message.
//!
//! The FIFO layer hands each sender's messages to ISIS in sequence order, so a member's
//! proposals for one sender grow with the sequence number, hence so do the finals: total order
//! keeps FIFO.
//!
//! [`Proposals`] is the sender's side: which members it still waits for and the largest
//! proposal so far. [`final_priority`] is the one rule that turns proposals into a final, here
//! for live senders and in `decision.rs` for departed ones (failure resolution, when a member
//! leaves with messages not yet final).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use super::types::{Content, MemberId, OrderKey, Priority, SeqNo};

/// A message's final priority: the best (largest) proposal for it, raised to the final of the
/// sender's previous message when that one is higher.
///
/// Finals never decrease along a sender's sequence, so total order keeps FIFO: without the
/// second term a member that proposed a high priority for message k and then left before
/// proposing for k + 1 would let k + 1's final fall below k's. Raising is always safe: every
/// member holds the message at or below its final. The sender uses this for its live stream
/// ([`Proposals`]); the failure-resolution coordinator uses it for a departed sender's stream,
/// with a best proposal it may first raise above what members delivered (`decision.rs`).
pub(crate) fn final_priority(
    best_proposal: Priority,
    previous_final: Option<Priority>,
) -> Priority {
    previous_final.map_or(best_proposal, |previous| best_proposal.max(previous))
}

/// A member's ISIS counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    proposed: u128,
    agreed: u128,
}

impl Counters {
    /// A new proposal: above every priority this member proposed or saw agreed.
    pub fn propose(&mut self, me: MemberId) -> Priority {
        let counter = self.proposed.max(self.agreed).saturating_add(1);
        self.proposed = counter;
        Priority::new(counter, me)
    }

    /// Records an agreed (final) priority.
    pub fn observe_final(&mut self, p: Priority) {
        self.agreed = self.agreed.max(p.counter);
    }

    /// The highest counter this member has proposed or seen agreed.
    pub fn known(&self) -> u128 {
        self.proposed.max(self.agreed)
    }
}

/// A message waiting in the hold-back queue.
#[derive(Debug, Clone)]
pub struct Queued {
    pub content: Content,
    pub is_final: bool,
    /// When this member last sent its proposal (repeated until the final arrives).
    pub proposed_at: Instant,
}

/// A fast hasher for the hold-back index, whose keys are (member id, sequence number) pairs
/// the protocol itself admitted: member ids come from the tracker and sequence numbers pass
/// the FIFO window first, so nobody can choose colliding keys (the default SipHash showed in
/// profiles). Multiply-rotate, as in rustc's FxHasher.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The hold-back queue, ordered by [`OrderKey`].
#[derive(Debug, Default)]
pub struct HoldBack {
    queue: BTreeMap<OrderKey, Queued>,
    index: HashMap<(MemberId, SeqNo), OrderKey, BuildHasherDefault<IdHasher>>,
    /// How many queued messages are not final yet (kept so that asking costs nothing).
    tentative: usize,
    /// How many messages of each origin are queued (the bound is per sender).
    per_origin: HashMap<MemberId, usize, BuildHasherDefault<IdHasher>>,
}

impl HoldBack {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn contains(&self, origin: MemberId, seq: SeqNo) -> bool {
        self.index.contains_key(&(origin, seq))
    }

    pub fn insert(&mut self, key: OrderKey, queued: Queued) {
        match self.index.insert((key.origin, key.seq), key) {
            Some(old) => {
                if self.queue.remove(&old).is_some_and(|q| !q.is_final) {
                    self.tentative -= 1;
                }
            }
            None => *self.per_origin.entry(key.origin).or_default() += 1,
        }
        if !queued.is_final {
            self.tentative += 1;
        }
        if let Some(displaced) = self.queue.insert(key, queued) {
            // Keys are unique per message, so this only happens for the entry replaced above.
            if !displaced.is_final {
                self.tentative -= 1;
            }
        }
    }

    /// True while some queued message waits for its final.
    pub fn has_tentative(&self) -> bool {
        self.tentative > 0
    }

    pub fn get(&self, origin: MemberId, seq: SeqNo) -> Option<(OrderKey, &Queued)> {
        let key = *self.index.get(&(origin, seq))?;
        self.queue.get(&key).map(|q| (key, q))
    }

    pub fn remove(&mut self, origin: MemberId, seq: SeqNo) -> Option<(OrderKey, Queued)> {
        let key = self.index.remove(&(origin, seq))?;
        self.forget_one(origin);
        let queued = self.queue.remove(&key)?;
        if !queued.is_final {
            self.tentative -= 1;
        }
        Some((key, queued))
    }

    /// Moves a message to its final priority. Returns false when the message is not queued.
    pub fn finalize(&mut self, origin: MemberId, seq: SeqNo, priority: Priority) -> bool {
        let Some((_, mut queued)) = self.remove(origin, seq) else {
            return false;
        };
        queued.is_final = true;
        self.insert(
            OrderKey {
                priority,
                origin,
                seq,
            },
            queued,
        );
        true
    }

    /// The head of the queue, if its priority is final.
    pub fn pop_deliverable(&mut self) -> Option<(OrderKey, Queued)> {
        let entry = self.queue.first_entry()?;
        if !entry.get().is_final {
            return None;
        }
        let (key, queued) = entry.remove_entry();
        self.index.remove(&(key.origin, key.seq));
        self.forget_one(key.origin);
        Some((key, queued))
    }

    fn forget_one(&mut self, origin: MemberId) {
        if let Some(n) = self.per_origin.get_mut(&origin) {
            *n -= 1;
            if *n == 0 {
                self.per_origin.remove(&origin);
            }
        }
    }

    /// The most messages queued from any one origin.
    pub fn max_per_origin(&self) -> usize {
        self.per_origin.values().copied().max().unwrap_or(0)
    }

    /// The first message in order, final or not.
    pub fn head(&self) -> Option<(&OrderKey, &Queued)> {
        self.queue.first_key_value()
    }

    /// Every queued message, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&OrderKey, &Queued)> {
        self.queue.iter()
    }

    /// Every queued message that is not final, in order, with the time its proposal was last
    /// sent (to repeat proposals).
    pub fn tentative_mut(&mut self) -> impl Iterator<Item = (&OrderKey, &mut Instant)> {
        self.queue
            .iter_mut()
            .filter(|(_, q)| !q.is_final)
            .map(|(k, q)| (k, &mut q.proposed_at))
    }
}

/// The sender's record of one of its messages while it collects proposals.
#[derive(Debug, Clone)]
struct Collect {
    awaiting: BTreeSet<MemberId>,
    best: Priority,
    final_priority: Option<Priority>,
}

/// The sender's side of ISIS: proposals collected per message, finals decided.
///
/// Finals are decided in sequence order, each by [`final_priority`] from the largest proposal and
/// the previous message's final, so they never decrease along the sequence.
#[derive(Debug, Default)]
pub struct Proposals {
    pending: BTreeMap<SeqNo, Collect>,
    decided_through: SeqNo,
    last_final: Option<Priority>,
}

impl Proposals {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts collecting for `seq`: the sender's own proposal and the members to wait for.
    /// Returns the finals this decides (when there is nobody to wait for).
    pub fn start(
        &mut self,
        seq: SeqNo,
        own: Priority,
        awaiting: impl IntoIterator<Item = MemberId>,
    ) -> Vec<(SeqNo, Priority)> {
        self.pending.insert(
            seq,
            Collect {
                awaiting: awaiting.into_iter().collect(),
                best: own,
                final_priority: None,
            },
        );
        self.advance()
    }

    /// Records `from`'s proposal; returns the finals this decides, in sequence order.
    pub fn record(&mut self, seq: SeqNo, from: MemberId, p: Priority) -> Vec<(SeqNo, Priority)> {
        let Some(c) = self.pending.get_mut(&seq) else {
            return Vec::new();
        };
        if c.final_priority.is_some() || !c.awaiting.remove(&from) {
            return Vec::new();
        }
        c.best = c.best.max(p);
        self.advance()
    }

    /// Stops waiting for `member` (it left the view). Returns the finals this decides.
    pub fn forget(&mut self, member: MemberId) -> Vec<(SeqNo, Priority)> {
        for c in self.pending.values_mut() {
            c.awaiting.remove(&member);
        }
        self.advance()
    }

    fn advance(&mut self) -> Vec<(SeqNo, Priority)> {
        let mut done = Vec::new();
        loop {
            let next = self.decided_through.next();
            let Some(c) = self.pending.get_mut(&next) else {
                break;
            };
            if !c.awaiting.is_empty() {
                break;
            }
            let f = final_priority(c.best, self.last_final);
            c.final_priority = Some(f);
            self.last_final = Some(f);
            self.decided_through = next;
            done.push((next, f));
        }
        done
    }

    /// The members whose proposals for `seq` are still missing.
    pub fn awaiting(&self, seq: SeqNo) -> impl Iterator<Item = MemberId> + '_ {
        self.pending
            .get(&seq)
            .into_iter()
            .flat_map(|c| c.awaiting.iter().copied())
    }

    pub fn final_of(&self, seq: SeqNo) -> Option<Priority> {
        self.pending.get(&seq).and_then(|c| c.final_priority)
    }

    /// Finals decided for sequence numbers in `(after, ..]`, in order.
    pub fn finals_after(&self, after: SeqNo) -> impl Iterator<Item = (SeqNo, Priority)> + '_ {
        self.pending
            .range(after.next()..)
            .map_while(|(s, c)| c.final_priority.map(|p| (*s, p)))
    }

    /// True while `seq` has no final yet.
    #[cfg(test)]
    pub fn is_open(&self, seq: SeqNo) -> bool {
        seq > self.decided_through
    }

    pub fn release_through(&mut self, seq: SeqNo) {
        // Popping from the front allocates nothing (`split_off` builds a new tree each call,
        // and this runs after every acknowledgement and every own delivery).
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() > seq {
                break;
            }
            entry.remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::types::ViewId;
    use bytes::Bytes;

    #[test]
    fn a_final_is_the_best_proposal_unless_the_previous_final_is_higher() {
        let (low, high) = (Priority::new(3, MemberId(2)), Priority::new(7, MemberId(1)));
        assert_eq!(
            final_priority(low, None),
            low,
            "the first message of a stream"
        );
        assert_eq!(final_priority(high, Some(low)), high);
        assert_eq!(
            final_priority(low, Some(high)),
            high,
            "raised to the previous final"
        );
        // Equal counters: the member id breaks the tie, as everywhere.
        let tie = Priority::new(7, MemberId(2));
        assert_eq!(final_priority(tie, Some(high)), tie);
        assert_eq!(final_priority(high, Some(tie)), tie);
    }

    fn key(counter: u64, by: u64, origin: u64, seq: u64) -> OrderKey {
        OrderKey {
            priority: Priority::new(u128::from(counter), MemberId(by)),
            origin: MemberId(origin),
            seq: SeqNo(seq),
        }
    }

    fn queued(is_final: bool) -> Queued {
        Queued {
            content: Content {
                view: ViewId(1),
                stamp: 0,
                payload: Bytes::new(),
            },
            is_final,
            proposed_at: crate::testing::epoch(),
        }
    }

    #[test]
    fn head_is_delivered_only_when_final() {
        let mut hb = HoldBack::new();
        hb.insert(key(1, 1, 7, 1), queued(false));
        hb.insert(key(2, 1, 8, 1), queued(true));
        assert!(hb.pop_deliverable().is_none(), "tentative head blocks");
        assert!(hb.finalize(MemberId(7), SeqNo(1), Priority::new(3, MemberId(2))));
        let (k, _) = hb.pop_deliverable().unwrap();
        assert_eq!(k.origin, MemberId(8));
        let (k, _) = hb.pop_deliverable().unwrap();
        assert_eq!((k.origin, k.priority.counter), (MemberId(7), 3));
        assert!(hb.is_empty());
    }

    #[test]
    fn tentative_count_follows_every_change() {
        let mut hb = HoldBack::new();
        assert!(!hb.has_tentative());
        hb.insert(key(1, 1, 7, 1), queued(false));
        hb.insert(key(2, 1, 7, 2), queued(false));
        hb.insert(key(3, 1, 8, 1), queued(true));
        assert!(hb.finalize(MemberId(7), SeqNo(1), Priority::new(4, MemberId(2))));
        assert!(hb.has_tentative());
        hb.remove(MemberId(7), SeqNo(2));
        assert!(!hb.has_tentative());
        // Re-inserting a message at a new key replaces it.
        hb.insert(key(9, 1, 9, 1), queued(false));
        hb.insert(key(10, 1, 9, 1), queued(true));
        assert!(!hb.has_tentative());
        while hb.pop_deliverable().is_some() {}
        assert!(hb.is_empty());
    }

    #[test]
    fn counters_propose_above_everything_seen() {
        let mut c = Counters::default();
        assert_eq!(c.propose(MemberId(1)), Priority::new(1, MemberId(1)));
        c.observe_final(Priority::new(10, MemberId(3)));
        assert_eq!(c.propose(MemberId(1)), Priority::new(11, MemberId(1)));
        assert_eq!(c.propose(MemberId(1)), Priority::new(12, MemberId(1)));
    }

    #[test]
    fn final_is_the_largest_proposal_once_all_arrived() {
        let mut p = Proposals::new();
        let own = Priority::new(1, MemberId(1));
        assert_eq!(p.start(SeqNo(1), own, [MemberId(2), MemberId(3)]), vec![]);
        assert_eq!(
            p.record(SeqNo(1), MemberId(2), Priority::new(5, MemberId(2))),
            vec![]
        );
        // A repeated proposal changes nothing.
        assert_eq!(
            p.record(SeqNo(1), MemberId(2), Priority::new(9, MemberId(2))),
            vec![]
        );
        assert_eq!(
            p.record(SeqNo(1), MemberId(3), Priority::new(4, MemberId(3))),
            vec![(SeqNo(1), Priority::new(5, MemberId(2)))]
        );
        assert_eq!(p.final_of(SeqNo(1)), Some(Priority::new(5, MemberId(2))));
    }

    #[test]
    fn forgetting_a_departed_member_completes_its_pending_messages() {
        let mut p = Proposals::new();
        let own = Priority::new(1, MemberId(1));
        p.start(SeqNo(1), own, [MemberId(2)]);
        assert_eq!(p.forget(MemberId(2)), vec![(SeqNo(1), own)]);
    }

    #[test]
    fn finals_never_decrease_along_the_sequence() {
        // Member 3 proposes high for message 1, then leaves before proposing for message 2.
        let (a, b) = (MemberId(2), MemberId(3));
        let mut p = Proposals::new();
        p.start(SeqNo(1), Priority::new(1, MemberId(1)), [a, b]);
        p.start(SeqNo(2), Priority::new(2, MemberId(1)), [a, b]);
        p.record(SeqNo(1), a, Priority::new(3, a));
        assert_eq!(
            p.record(SeqNo(1), b, Priority::new(18, b)),
            vec![(SeqNo(1), Priority::new(18, b))]
        );
        p.record(SeqNo(2), a, Priority::new(4, a));
        let done = p.forget(b);
        assert_eq!(done.len(), 1);
        assert!(done[0].1 >= Priority::new(18, b));
    }

    #[test]
    fn a_later_message_waits_for_the_earlier_final() {
        let a = MemberId(2);
        let mut p = Proposals::new();
        p.start(SeqNo(1), Priority::new(1, MemberId(1)), [a]);
        p.start(SeqNo(2), Priority::new(2, MemberId(1)), [a]);
        assert_eq!(p.record(SeqNo(2), a, Priority::new(5, a)), vec![]);
        assert!(p.is_open(SeqNo(2)));
        let done = p.record(SeqNo(1), a, Priority::new(4, a));
        assert_eq!(
            done.iter().map(|d| d.0).collect::<Vec<_>>(),
            vec![SeqNo(1), SeqNo(2)]
        );
    }
}
