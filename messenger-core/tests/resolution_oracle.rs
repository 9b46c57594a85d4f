//! An exhaustive oracle for the coordinator's decision rule, `decision::decide`.
//!
//! Instead of enumerating report sets (most of which no real run can produce), this test
//! enumerates *histories*: an abstract model of ISIS (the normal case of docs/PROTOCOL.md §5,
//! written here from the spec, independently of `protocol/group/`) is explored breadth-first over every
//! interleaving of its events, with state hashing. The cast:
//!
//! - X (id 4), the member that fails: sends up to `x_msgs` messages, collects proposals,
//!   computes finals (`max(own, every awaited proposal, previous final)`) and sends them;
//! - survivors A (id 1, also a live sender L with up to `l_msgs` messages), B (id 2), C (id 3),
//!   and optionally J (id 5), who joins in view 2 (then X's and L's later messages are sent in
//!   view 2 and wait for J too; J learns where X's stream starts only from X's status).
//!
//! Events: X sends; a survivor receives one of X's messages (in any order: FIFO hold-back,
//! then proposals in sequence order); X finalizes its next message once every member it waits
//! for has proposed; a survivor receives one of X's finals (before or after the message: a
//! pending final); L sends, its receivers (X included) receive and propose, L finalizes, its
//! receivers get the final; X crashes; each survivor installs the view without X (it then
//! builds its report exactly as `Group::build_report` does, pauses delivery, stops hearing X,
//! and L stops waiting for X). Members deliver the head of their hold-back queue as soon as it
//! is final, like `Group::deliver_ready`.
//!
//! In every state where all survivors have installed the new view, the reports go to `decide`
//! and the decision is checked against properties that must hold (see [`check_decision`]) and
//! against a brute-force oracle: every candidate outcome (a prefix length and a final for each
//! message, from the priorities that matter in this history) is tested for safety by applying
//! it to every survivor (what it delivered, then everything else it will deliver in key order)
//! and checking one common order, the same fate of X's messages and FIFO; `decide`'s outcome
//! must be among the safe ones.
//!
//! Then a second round: another survivor (B or C) leaves during the first round after the
//! coordinator and any subset of the others applied the first decision (`Group::apply_decision`
//! is modelled: decided messages kept with their finals, the stream closed, delivery resumed);
//! the second decision must repeat the first for every message a member that applied it keeps,
//! must not extend a closed stream, and every member with the decision it applied must stay
//! safe (same oracle).

use std::collections::{BTreeSet, HashSet};

use messenger_core::protocol::decision::decide;
use messenger_core::protocol::wire::{
    ContentDigest, EntryState, Part, ReportEntry, ResolutionDecision, ResolutionReport,
    StreamDecision, StreamReport,
};
use messenger_core::protocol::{MemberId, OrderKey, Priority, SeqNo, ViewId};
use messenger_core::testing::rng::Rng;

// ----- construction of wire structs: the one place that knows their fields ------------------

fn wire_priority(p: Pr) -> Priority {
    Priority::new(u128::from(p.c), MemberId(u64::from(p.m)))
}

fn wire_key(k: Key) -> OrderKey {
    OrderKey {
        priority: wire_priority(k.p),
        origin: MemberId(u64::from(k.origin)),
        seq: SeqNo(u64::from(k.seq)),
    }
}

fn wire_entry(seq: u8, state: EntryState, content: Option<u8>) -> ReportEntry {
    ReportEntry {
        seq: SeqNo(u64::from(seq)),
        state,
        content: content.map(|v| ViewId(u64::from(v))),
        // Every holder of a message holds the same content: the digest names the message.
        digest: content.map(|_| ContentDigest([seq; 16])),
    }
}

fn wire_stream(
    origin: u8,
    delivered: Option<u8>,
    closed: Option<u8>,
    entries: Vec<ReportEntry>,
) -> StreamReport {
    StreamReport {
        origin: MemberId(u64::from(origin)),
        delivered: delivered.map(|d| SeqNo(u64::from(d))),
        closed: closed.map(|c| SeqNo(u64::from(c))),
        entries,
    }
}

fn wire_report(
    round: u64,
    joined: u8,
    delivered_max: Option<Key>,
    streams: Vec<StreamReport>,
) -> ResolutionReport {
    ResolutionReport {
        round: ViewId(round),
        joined: ViewId(u64::from(joined)),
        delivered_max: delivered_max.map(wire_key),
        streams,
        part: Part::WHOLE,
    }
}

// ----- the abstract model -------------------------------------------------------------------

/// A priority `(counter, member)`, ordered like `Priority`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Pr {
    c: u8,
    m: u8,
}

/// An order key `(priority, origin, seq)`, ordered like `OrderKey`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    p: Pr,
    origin: u8,
    seq: u8,
}

const A: u8 = 1;
const X: u8 = 4;
/// Survivor ids by index (A is also the live sender L).
const IDS: [u8; 4] = [1, 2, 3, 5];
const MAXX: usize = 3;
const MAXL: usize = 2;
/// The view of the resolution round (after view 1 and J's view 2).
const ROUND: u64 = 3;
/// Guards memory: exploring more states than this is a mistake in the bounds.
const STATE_LIMIT: u64 = 3_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum St8 {
    Unproposed,
    Proposed(Pr),
    Final(Pr),
}

/// A survivor's report, as `Group::build_report` builds it (abstract form).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Rep {
    joined: u8,
    delivered: Option<u8>,
    delivered_max: Option<Key>,
    closed: Option<u8>,
    entries: Vec<(u8, St8, Option<u8>)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct HbEntry {
    key: Key,
    is_final: bool,
    view: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
struct Mem {
    /// ISIS counters: highest proposed, highest agreed.
    proposed: u8,
    agreed: u8,
    in_group: bool,
    joined: u8,
    installed: bool,
    // X's stream.
    x_start: Option<u8>,
    /// Bit k-1: X's message k is held in the FIFO layer (behind a gap or before the start).
    x_held: u8,
    /// Next X message to hand to ISIS.
    x_next: u8,
    x_pending: [Option<Pr>; MAXX],
    /// Bit k-1: X's final for k was received and acted on.
    x_final_rcvd: u8,
    x_delivered: u8,
    // L's stream (members other than A).
    l_next: u8,
    l_pending: [Option<Pr>; MAXL],
    l_final_rcvd: u8,
    l_delivered: u8,
    hb: Vec<HbEntry>,
    log: Vec<Key>,
    report: Option<Rep>,
    // After a resolution decision (second-round check only).
    /// Delivery resumed: the member applied the decision.
    resumed: bool,
    closed: Option<u8>,
    /// Decided messages kept: (seq, final, view).
    kept: Vec<(u8, Pr, u8)>,
}

impl Mem {
    fn propose(&mut self, me: u8) -> Pr {
        let c = self.proposed.max(self.agreed) + 1;
        self.proposed = c;
        Pr { c, m: me }
    }

    fn observe(&mut self, p: Pr) {
        self.agreed = self.agreed.max(p.c);
    }

    /// `Group::on_final` for a message this member holds: true when it was queued.
    fn observe_and_finalize(&mut self, origin: u8, seq: u8, p: Pr) -> bool {
        self.observe(p);
        self.hb_finalize(origin, seq, p)
    }

    fn hb_insert(&mut self, e: HbEntry) {
        self.hb
            .retain(|h| (h.key.origin, h.key.seq) != (e.key.origin, e.key.seq));
        let at = self.hb.partition_point(|h| h.key < e.key);
        self.hb.insert(at, e);
    }

    /// Moves a queued message to its final; false when it is not queued.
    fn hb_finalize(&mut self, origin: u8, seq: u8, p: Pr) -> bool {
        let Some(i) = self
            .hb
            .iter()
            .position(|h| h.key.origin == origin && h.key.seq == seq)
        else {
            return false;
        };
        let view = self.hb[i].view;
        self.hb.remove(i);
        self.hb_insert(HbEntry {
            key: Key { p, origin, seq },
            is_final: true,
            view,
        });
        true
    }

    /// `Group::deliver_ready`: the head while it is final, unless paused.
    fn deliver(&mut self) {
        if self.installed && !self.resumed {
            return;
        }
        while self.hb.first().is_some_and(|h| h.is_final) {
            let h = self.hb.remove(0);
            if h.key.origin == X {
                self.x_delivered = self.x_delivered.max(h.key.seq);
            } else {
                self.l_delivered = self.l_delivered.max(h.key.seq);
            }
            self.log.push(h.key);
        }
    }

    /// `Group::build_report` for X's stream (the only departed one).
    fn build_report(&self, x_view: &[u8; MAXX]) -> Rep {
        let mut entries: Vec<(u8, St8, Option<u8>)> = Vec::new();
        let mut put = |seq: u8, state: St8, content: Option<u8>| {
            let i = match entries.iter().position(|e| e.0 == seq) {
                Some(i) => i,
                None => {
                    entries.push((seq, state, content));
                    entries.len() - 1
                }
            };
            let e = &mut entries[i];
            e.2 = e.2.or(content);
            match (e.1, state) {
                (_, St8::Final(_)) => e.1 = state,
                (St8::Unproposed, s) => e.1 = s,
                _ => {}
            }
        };
        // Finals of delivered messages (`retained`).
        for k in self.log.iter().filter(|k| k.origin == X) {
            put(k.seq, St8::Final(k.p), None);
        }
        for (i, p) in self.x_pending.iter().enumerate() {
            if let Some(p) = p {
                put(i as u8 + 1, St8::Final(*p), None);
            }
        }
        for h in self.hb.iter().filter(|h| h.key.origin == X) {
            let state = if h.is_final {
                St8::Final(h.key.p)
            } else {
                St8::Proposed(h.key.p)
            };
            put(h.key.seq, state, Some(h.view));
        }
        for &(seq, p, view) in &self.kept {
            put(seq, St8::Final(p), Some(view));
        }
        // Held in the FIFO layer (behind a gap, or before the start is known).
        for seq in 1..=MAXX as u8 {
            if self.x_held & held_bit(seq) != 0 {
                put(seq, St8::Unproposed, Some(x_view[seq as usize - 1]));
            }
        }
        entries.sort_by_key(|e| e.0);
        Rep {
            joined: self.joined,
            delivered: self.x_start.map(|_| self.x_delivered),
            delivered_max: self.log.last().copied(),
            closed: self.closed,
            entries,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct St {
    view: u8,
    crashed: bool,
    // X, the sender that fails.
    x_proposed: u8,
    x_agreed: u8,
    x_sent: u8,
    x_view: [u8; MAXX],
    x_own: [Pr; MAXX],
    /// Members (bit = survivor index) X waits for, per message.
    x_await: [u8; MAXX],
    /// Proposals X has, per message and survivor index.
    x_props: [[Option<Pr>; 4]; MAXX],
    x_final: [Option<Pr>; MAXX],
    x_start_for_j: u8,
    /// X's receipt of L's messages.
    x_l_next: u8,
    x_l_final_rcvd: u8,
    // L (= A), the live sender.
    l_sent: u8,
    l_view: [u8; MAXL],
    l_own: [Pr; MAXL],
    /// Bit = survivor index; bit 4 = X.
    l_await: [u8; MAXL],
    l_props: [[Option<Pr>; 5]; MAXL],
    l_final: [Option<Pr>; MAXL],
    l_start_for_j: u8,
    mem: [Mem; 4],
}

#[derive(Debug, Clone, Copy)]
struct Bounds {
    x_msgs: u8,
    l_msgs: u8,
    joiner: bool,
    second: Second,
}

/// Who leaves during the first round, for the second-round check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Second {
    /// B or C (the coordinator stays).
    One,
    /// The coordinator A and one more survivor (only when the live sender A sent nothing, so
    /// that X's is the only departed stream with messages).
    CoordinatorAndOne {
        /// A member applying a decision keeps the content of every decided message, also of
        /// those it does not deliver (joined after they were sent). `Group::apply_decision`
        /// does not today (false); true models the fix this oracle suggests.
        keep_all: bool,
    },
}

fn held_bit(seq: u8) -> u8 {
    1 << (seq - 1)
}

impl St {
    fn initial() -> St {
        let mut mem: [Mem; 4] = Default::default();
        for (i, m) in mem.iter_mut().enumerate() {
            if i < 3 {
                m.in_group = true;
                m.joined = 1;
                m.x_start = Some(1);
                m.x_next = 1;
                m.l_next = 1;
            }
        }
        St {
            view: 1,
            crashed: false,
            x_proposed: 0,
            x_agreed: 0,
            x_sent: 0,
            x_view: [0; MAXX],
            x_own: [Pr { c: 0, m: X }; MAXX],
            x_await: [0; MAXX],
            x_props: [[None; 4]; MAXX],
            x_final: [None; MAXX],
            x_start_for_j: 0,
            x_l_next: 1,
            x_l_final_rcvd: 0,
            l_sent: 0,
            l_view: [0; MAXL],
            l_own: [Pr { c: 0, m: A }; MAXL],
            l_await: [0; MAXL],
            l_props: [[None; 5]; MAXL],
            l_final: [None; MAXL],
            l_start_for_j: 0,
            mem,
        }
    }

    fn members(&self) -> impl Iterator<Item = usize> + '_ {
        (0..4).filter(|&i| self.mem[i].in_group)
    }

    fn all_installed(&self) -> bool {
        self.crashed && self.members().all(|i| self.mem[i].installed)
    }

    /// Hands survivor `i`'s in-order X messages to ISIS.
    fn drain_x(&mut self, i: usize) {
        let me = IDS[i];
        loop {
            let m = &mut self.mem[i];
            if m.x_start.is_none() || m.x_next == 0 || m.x_next as usize > MAXX {
                return;
            }
            let seq = m.x_next;
            if m.x_held & held_bit(seq) == 0 {
                return;
            }
            m.x_held &= !held_bit(seq);
            m.x_next += 1;
            let own = m.propose(me);
            let view = self.x_view[seq as usize - 1];
            match m.x_pending[seq as usize - 1].take() {
                Some(f) => m.hb_insert(HbEntry {
                    key: Key {
                        p: f,
                        origin: X,
                        seq,
                    },
                    is_final: true,
                    view,
                }),
                None => {
                    m.hb_insert(HbEntry {
                        key: Key {
                            p: own,
                            origin: X,
                            seq,
                        },
                        is_final: false,
                        view,
                    });
                    self.x_props[seq as usize - 1][i] = Some(own);
                }
            }
        }
    }

    /// Every state one event away.
    fn successors(&self, b: Bounds) -> Vec<St> {
        let mut out = Vec::new();
        let x_alive = !self.crashed;
        // X sends its next message.
        if x_alive && self.x_sent < b.x_msgs {
            let mut s = self.clone();
            let k = s.x_sent as usize;
            let c = s.x_proposed.max(s.x_agreed) + 1;
            s.x_proposed = c;
            s.x_own[k] = Pr { c, m: X };
            s.x_view[k] = s.view;
            s.x_await[k] = s.members().fold(0, |acc, i| acc | 1 << i);
            s.x_sent += 1;
            out.push(s);
        }
        // X finalizes its next message once every awaited proposal is in.
        if x_alive {
            let k = self.x_final.iter().take_while(|f| f.is_some()).count();
            if k < self.x_sent as usize
                && (0..4).all(|i| self.x_await[k] & 1 << i == 0 || self.x_props[k][i].is_some())
            {
                let mut s = self.clone();
                let mut f = s.x_own[k];
                for p in s.x_props[k].iter().flatten() {
                    f = f.max(*p);
                }
                if k > 0 {
                    f = f.max(s.x_final[k - 1].expect("prefix"));
                }
                s.x_final[k] = Some(f);
                s.x_agreed = s.x_agreed.max(f.c);
                out.push(s);
            }
            // X crashes.
            let mut s = self.clone();
            s.crashed = true;
            out.push(s);
            // J joins (view 2).
            if b.joiner && self.view == 1 {
                let mut s = self.clone();
                s.view = 2;
                s.x_start_for_j = s.x_sent + 1;
                s.l_start_for_j = s.l_sent + 1;
                let j = &mut s.mem[3];
                j.in_group = true;
                j.joined = 2;
                j.l_next = s.l_start_for_j;
                j.l_delivered = s.l_start_for_j - 1;
                out.push(s);
            }
            // X's status tells J where X's stream starts for it.
            if self.mem[3].in_group && self.mem[3].x_start.is_none() && !self.mem[3].installed {
                let mut s = self.clone();
                let start = s.x_start_for_j;
                let j = &mut s.mem[3];
                j.x_start = Some(start);
                j.x_next = start;
                j.x_delivered = start - 1;
                // Nothing before the start is ever sent to J, so nothing held is dropped.
                s.drain_x(3);
                s.mem[3].deliver();
                out.push(s);
            }
        }
        for i in self.members() {
            let m = &self.mem[i];
            let me = IDS[i];
            let first_x = if i == 3 { self.x_start_for_j } else { 1 };
            if !m.installed {
                // Receipt of one of X's messages (any order; X's datagrams are in flight until
                // the member installs the view without X).
                for seq in first_x..=self.x_sent {
                    let passed = m.x_start.is_some() && seq < m.x_next;
                    if passed || m.x_held & held_bit(seq) != 0 {
                        continue;
                    }
                    let mut s = self.clone();
                    s.mem[i].x_held |= held_bit(seq);
                    s.drain_x(i);
                    s.mem[i].deliver();
                    out.push(s);
                }
                // Receipt of one of X's finals.
                for seq in first_x..=self.x_sent {
                    let Some(f) = self.x_final[seq as usize - 1] else {
                        continue;
                    };
                    if m.x_final_rcvd & held_bit(seq) != 0 || m.x_start.is_none() {
                        continue;
                    }
                    let mut s = self.clone();
                    let mm = &mut s.mem[i];
                    mm.x_final_rcvd |= held_bit(seq);
                    if seq > mm.x_delivered {
                        mm.observe(f);
                        if !mm.hb_finalize(X, seq, f) {
                            mm.x_pending[seq as usize - 1] = Some(f);
                        }
                        mm.deliver();
                    }
                    out.push(s);
                }
                // Installing the view without X: report, pause; L stops waiting for X.
                if self.crashed {
                    let mut s = self.clone();
                    let rep = s.mem[i].build_report(&s.x_view);
                    s.mem[i].report = Some(rep);
                    s.mem[i].installed = true;
                    if i == 0 {
                        for a in s.l_await.iter_mut() {
                            *a &= !(1 << 4);
                        }
                    }
                    out.push(s);
                }
            }
            // L (= A) sends.
            if i == 0 && !m.installed && self.l_sent < b.l_msgs {
                let mut s = self.clone();
                let j = s.l_sent as usize;
                let own = s.mem[0].propose(A);
                s.l_own[j] = own;
                s.l_view[j] = s.view;
                let mut awaiting = s
                    .members()
                    .filter(|&k| k != 0)
                    .fold(0, |acc, k| acc | 1 << k);
                if !s.crashed || !s.mem[0].installed {
                    awaiting |= 1 << 4;
                }
                s.l_await[j] = awaiting;
                s.l_sent += 1;
                s.mem[0].hb_insert(HbEntry {
                    key: Key {
                        p: own,
                        origin: A,
                        seq: j as u8 + 1,
                    },
                    is_final: false,
                    view: s.view,
                });
                out.push(s);
            }
            if i != 0 {
                // Receipt of L's next message (in order; L's stream is not the one under test).
                let seq = m.l_next;
                if seq >= 1 && seq <= self.l_sent {
                    let mut s = self.clone();
                    let mm = &mut s.mem[i];
                    mm.l_next += 1;
                    let own = mm.propose(me);
                    let view = self.l_view[seq as usize - 1];
                    match mm.l_pending[seq as usize - 1].take() {
                        Some(f) => mm.hb_insert(HbEntry {
                            key: Key {
                                p: f,
                                origin: A,
                                seq,
                            },
                            is_final: true,
                            view,
                        }),
                        None => {
                            mm.hb_insert(HbEntry {
                                key: Key {
                                    p: own,
                                    origin: A,
                                    seq,
                                },
                                is_final: false,
                                view,
                            });
                            s.l_props[seq as usize - 1][i] = Some(own);
                        }
                    }
                    s.mem[i].deliver();
                    out.push(s);
                }
                // Receipt of one of L's finals.
                let first_l = if i == 3 { self.l_start_for_j } else { 1 };
                for seq in first_l..=self.l_sent {
                    let Some(f) = self.l_final[seq as usize - 1] else {
                        continue;
                    };
                    if m.l_final_rcvd & held_bit(seq) != 0 {
                        continue;
                    }
                    let mut s = self.clone();
                    let mm = &mut s.mem[i];
                    mm.l_final_rcvd |= held_bit(seq);
                    if seq > mm.l_delivered {
                        mm.observe(f);
                        if !mm.hb_finalize(A, seq, f) {
                            mm.l_pending[seq as usize - 1] = Some(f);
                        }
                        mm.deliver();
                    }
                    out.push(s);
                }
            }
        }
        if x_alive {
            // X receives L's next message and proposes.
            let seq = self.x_l_next;
            if seq <= self.l_sent {
                let mut s = self.clone();
                s.x_l_next += 1;
                let c = s.x_proposed.max(s.x_agreed) + 1;
                s.x_proposed = c;
                s.l_props[seq as usize - 1][4] = Some(Pr { c, m: X });
                out.push(s);
            }
            // X receives one of L's finals.
            for seq in 1..=self.l_sent {
                if let Some(f) = self.l_final[seq as usize - 1] {
                    if self.x_l_final_rcvd & held_bit(seq) == 0 {
                        let mut s = self.clone();
                        s.x_l_final_rcvd |= held_bit(seq);
                        s.x_agreed = s.x_agreed.max(f.c);
                        out.push(s);
                    }
                }
            }
        }
        // L finalizes its next message (also after installing the view: finals go on).
        if let Some(f) = self.l_next_final() {
            let mut s = self.clone();
            let j = s.l_final.iter().take_while(|f| f.is_some()).count();
            s.l_final[j] = Some(f);
            let a = &mut s.mem[0];
            a.observe(f);
            a.hb_finalize(A, j as u8 + 1, f);
            a.deliver();
            out.push(s);
        }
        out
    }

    /// The final L can compute now for its next message, if every awaited proposal is in.
    fn l_next_final(&self) -> Option<Pr> {
        let j = self.l_final.iter().take_while(|f| f.is_some()).count();
        if j >= self.l_sent as usize {
            return None;
        }
        if !(0..5).all(|k| self.l_await[j] & 1 << k == 0 || self.l_props[j][k].is_some()) {
            return None;
        }
        let mut f = self.l_own[j];
        for (k, p) in self.l_props[j].iter().enumerate() {
            if self.l_await[j] & 1 << k != 0 {
                f = f.max(p.expect("awaited proposal"));
            }
        }
        if j > 0 {
            f = f.max(self.l_final[j - 1].expect("prefix"));
        }
        Some(f)
    }

    /// Finals of L's messages that are fixed already (computed, or computable from proposals
    /// that are all in: they cannot change any more).
    fn l_finals_eventually(&self) -> Vec<Option<Pr>> {
        let mut s = self.clone();
        while let Some(f) = s.l_next_final() {
            let j = s.l_final.iter().take_while(|f| f.is_some()).count();
            s.l_final[j] = Some(f);
        }
        s.l_final[..self.l_sent as usize].to_vec()
    }
}

// ----- checking one history -----------------------------------------------------------------

#[derive(Debug, Default)]
struct Counts {
    states: u64,
    histories: u64,
    with_decided: u64,
    with_delivered_x: u64,
    raised: u64,
    brute_forced: u64,
    candidates: u64,
    safe_candidates: u64,
    /// Brute-forced histories where decide's outcome is one of the enumerated safe outcomes.
    decide_among_safe: u64,
    second_rounds: u64,
}

/// The reports of every survivor, as the coordinator would hold them.
fn reports_of(st: &St) -> Vec<(MemberId, ResolutionReport)> {
    reports_of_round(st, ROUND)
}

fn reports_of_round(st: &St, round: u64) -> Vec<(MemberId, ResolutionReport)> {
    st.members()
        .map(|i| {
            let r = st.mem[i].report.as_ref().expect("installed");
            let entries = r
                .entries
                .iter()
                .map(|&(seq, state, content)| {
                    let state = match state {
                        St8::Unproposed => EntryState::Unproposed,
                        St8::Proposed(p) => EntryState::Proposed(wire_priority(p)),
                        St8::Final(p) => EntryState::Final(wire_priority(p)),
                    };
                    wire_entry(seq, state, content)
                })
                .collect();
            (
                MemberId(u64::from(IDS[i])),
                wire_report(
                    round,
                    r.joined,
                    r.delivered_max,
                    vec![wire_stream(X, r.delivered, r.closed, entries)],
                ),
            )
        })
        .collect()
}

/// An outcome for X's stream: the first decided number and each decided message's final.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    first: u8,
    finals: Vec<Pr>,
}

fn outcome_of(d: &ResolutionDecision) -> Result<Outcome, String> {
    let streams: Vec<&StreamDecision> = d
        .streams
        .iter()
        .filter(|s| s.origin == MemberId(u64::from(X)))
        .collect();
    if streams.len() != 1 || d.streams.len() != 1 {
        return Err(format!("expected one stream decision for X, got {d:?}"));
    }
    let s = streams[0];
    let first = u8::try_from(s.first.0).map_err(|_| format!("first {:?}", s.first))?;
    let finals = s
        .decided
        .iter()
        .map(|dd| {
            let p = dd.priority;
            Ok(Pr {
                c: u8::try_from(p.counter).map_err(|_| format!("counter {p:?}"))?,
                m: u8::try_from(p.member.0).map_err(|_| format!("member {p:?}"))?,
            })
        })
        .collect::<Result<Vec<Pr>, String>>()?;
    Ok(Outcome { first, finals })
}

/// Whether an outcome is safe: applied at every survivor (what it delivered, then everything
/// it will deliver, in key order) it gives one common order, the same fate for every message of
/// X that two survivors both deliver, and FIFO per sender.
fn safe(st: &St, l_finals: &[Option<Pr>], o: &Outcome) -> Result<(), String> {
    safe_mixed(st, l_finals, &|_| o)
}

/// [`safe`] when members apply different outcomes (`outcome_of(i)` at survivor `i`): members
/// that applied one decision ignore a later one for the stream they closed.
fn safe_mixed<'a>(
    st: &St,
    l_finals: &[Option<Pr>],
    outcome_of: &dyn Fn(usize) -> &'a Outcome,
) -> Result<(), String> {
    let mut seqs: Vec<(usize, Vec<Key>)> = Vec::new();
    for i in st.members() {
        let o = outcome_of(i);
        let last = o.first as usize + o.finals.len();
        let decided = |seq: u8| -> Option<Pr> {
            let s = seq as usize;
            (s >= o.first as usize && s < last).then(|| o.finals[s - o.first as usize])
        };
        let m = &st.mem[i];
        let mut rest: Vec<Key> = Vec::new();
        let first_l = if i == 3 { st.l_start_for_j } else { 1 };
        for (j, f) in l_finals.iter().enumerate() {
            let seq = j as u8 + 1;
            if let Some(f) = f {
                if seq >= first_l && !m.log.iter().any(|k| k.origin == A && k.seq == seq) {
                    rest.push(Key {
                        p: *f,
                        origin: A,
                        seq,
                    });
                }
            }
        }
        for seq in 1..=st.x_sent {
            if let Some(p) = decided(seq) {
                if seq > m.x_delivered && st.x_view[seq as usize - 1] >= m.joined {
                    rest.push(Key { p, origin: X, seq });
                }
            }
        }
        rest.sort();
        let mut all = m.log.clone();
        all.extend(rest);
        // FIFO, no gaps, no duplicates.
        for origin in [A, X] {
            let s: Vec<u8> = all
                .iter()
                .filter(|k| k.origin == origin)
                .map(|k| k.seq)
                .collect();
            if s.windows(2).any(|w| w[1] != w[0] + 1) {
                return Err(format!("{} delivers {origin}'s {s:?}", IDS[i]));
            }
        }
        seqs.push((i, all));
    }
    for (a, (ia, sa)) in seqs.iter().enumerate() {
        for (ib, sb) in seqs.iter().skip(a + 1) {
            let pos = |s: &Vec<Key>, origin: u8, seq: u8| {
                s.iter().position(|k| k.origin == origin && k.seq == seq)
            };
            // Same fate of X's messages both must deliver.
            let joined = st.mem[*ia].joined.max(st.mem[*ib].joined);
            for seq in 1..=st.x_sent {
                if st.x_view[seq as usize - 1] < joined {
                    continue;
                }
                let (pa, pb) = (pos(sa, X, seq), pos(sb, X, seq));
                if pa.is_some() != pb.is_some() {
                    return Err(format!(
                        "{} and {} disagree on the fate of X's {seq}",
                        IDS[*ia], IDS[*ib]
                    ));
                }
            }
            // One order on common messages.
            let common: Vec<(usize, usize)> = sa
                .iter()
                .enumerate()
                .filter_map(|(p, k)| pos(sb, k.origin, k.seq).map(|q| (p, q)))
                .collect();
            if common.windows(2).any(|w| w[1].1 < w[0].1) {
                return Err(format!(
                    "{} and {} deliver in different orders: {:?} vs {:?}",
                    IDS[*ia], IDS[*ib], sa, sb
                ));
            }
        }
    }
    Ok(())
}

/// The number of X's messages from `first` on that some survivor can relay.
fn content_prefix(st: &St, first: u8) -> usize {
    let mut n = 0;
    let mut seq = first;
    while seq <= st.x_sent
        && st.members().any(|i| {
            st.mem[i]
                .report
                .as_ref()
                .expect("installed")
                .entries
                .iter()
                .any(|e| e.0 == seq && e.2.is_some())
        })
    {
        n += 1;
        seq += 1;
    }
    n
}

fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let x = rest.remove(i);
        for mut p in permutations(&rest) {
            p.insert(0, x.clone());
            out.push(p);
        }
    }
    out
}

/// Checks `decide` on the history ending in `st` (every survivor has reported).
fn check_decision(
    st: &St,
    counts: &mut Counts,
    brute_force: bool,
    second: Second,
) -> Result<(), String> {
    let reports = reports_of(st);
    let decision = decide(ViewId(ROUND), &reports);
    let o = outcome_of(&decision)?;
    counts.histories += 1;
    if !o.finals.is_empty() {
        counts.with_decided += 1;
    }
    let l_finals = st.l_finals_eventually();

    // (e) The decision does not depend on the order of the reports.
    for p in permutations(&reports).into_iter().skip(1) {
        if decide(ViewId(ROUND), &p) != decision {
            return Err("the decision depends on the order of the reports".into());
        }
    }

    // (c) Starts right after the lowest number delivered (or, for a member that never learned
    // where X's stream starts for it, at the first message of its view anybody holds) and
    // stops exactly at the first message nobody can relay.
    let mut expect_first = st
        .members()
        .filter(|&i| st.mem[i].x_start.is_some())
        .map(|i| st.mem[i].x_delivered + 1)
        .min()
        .unwrap_or(1);
    for i in st.members().filter(|&i| st.mem[i].x_start.is_none()) {
        let joined = st.mem[i].joined;
        let held = (1..=st.x_sent).find(|&seq| {
            st.x_view[seq as usize - 1] >= joined
                && st.members().any(|k| {
                    st.mem[k]
                        .report
                        .as_ref()
                        .is_some_and(|r| r.entries.iter().any(|e| e.0 == seq && e.2.is_some()))
                })
        });
        if let Some(h) = held {
            expect_first = expect_first.min(h);
        }
    }
    if o.first != expect_first {
        return Err(format!("first is {}, expected {expect_first}", o.first));
    }
    let prefix = content_prefix(st, o.first);
    if o.finals.len() != prefix {
        return Err(format!(
            "decided {} messages from {}, but the first {prefix} can be relayed",
            o.finals.len(),
            o.first
        ));
    }

    // (b) Finals grow along X's sequence.
    if o.finals.windows(2).any(|w| w[1] < w[0]) {
        return Err(format!("finals decrease along X's stream: {:?}", o.finals));
    }

    for (n, &f) in o.finals.iter().enumerate() {
        let seq = o.first + n as u8;
        let view = st.x_view[seq as usize - 1];
        // (d) At least every proposal (and every known final) reported for it.
        for i in st.members() {
            for e in &st.mem[i].report.as_ref().expect("installed").entries {
                if let (s, St8::Proposed(p) | St8::Final(p), _) = *e {
                    if s == seq && p > f {
                        return Err(format!(
                            "X's {seq} decided at {f:?}, below {}'s reported {p:?}",
                            IDS[i]
                        ));
                    }
                }
            }
        }
        // (a) A message some survivor delivered keeps the final it was delivered at; one it
        // has not delivered (and will) lands above everything it delivered.
        for i in st.members() {
            let m = &st.mem[i];
            if let Some(k) = m.log.iter().find(|k| k.origin == X && k.seq == seq) {
                counts.with_delivered_x += 1;
                if k.p != f {
                    return Err(format!(
                        "{} delivered X's {seq} at {:?}, decided {f:?}",
                        IDS[i], k.p
                    ));
                }
            } else if view >= m.joined {
                let key = Key {
                    p: f,
                    origin: X,
                    seq,
                };
                if let Some(d) = m.log.last() {
                    if key <= *d {
                        return Err(format!(
                            "X's {seq} decided at {key:?}, not above {}'s delivered {d:?}",
                            IDS[i]
                        ));
                    }
                }
            }
        }
        let known_final = st.members().any(|i| {
            st.mem[i]
                .report
                .as_ref()
                .expect("installed")
                .entries
                .iter()
                .any(|e| e.0 == seq && matches!(e.1, St8::Final(_)))
        });
        if !known_final {
            counts.raised += 1;
        }
    }

    // The oracle: the outcome is safe ...
    safe(st, &l_finals, &o).map_err(|e| format!("decide's outcome {o:?} is unsafe: {e}"))?;

    // A survivor leaves during the round: the next round repeats what was applied.
    check_second_round(st, &o, second, counts)?;

    // ... and among the safe outcomes found by brute force over the priorities that matter.
    if brute_force {
        counts.brute_forced += 1;
        let mut cands: BTreeSet<Pr> = BTreeSet::new();
        let mut top = 0;
        for i in st.members() {
            let m = &st.mem[i];
            for k in &m.log {
                cands.insert(k.p);
                top = top.max(k.p.c);
            }
            for e in &m.report.as_ref().expect("installed").entries {
                if let St8::Proposed(p) | St8::Final(p) = e.1 {
                    cands.insert(p);
                    top = top.max(p.c);
                }
            }
        }
        for f in l_finals.iter().flatten() {
            cands.insert(*f);
            top = top.max(f.c);
        }
        cands.insert(Pr { c: top + 1, m: X });
        let cands: Vec<Pr> = cands.into_iter().collect();
        let mut found = false;
        let mut full_length_safe = false;
        let mut assignment = vec![0usize; prefix];
        loop {
            let finals: Vec<Pr> = assignment.iter().map(|&c| cands[c]).collect();
            let cand = Outcome {
                first: o.first,
                finals,
            };
            counts.candidates += 1;
            if safe(st, &l_finals, &cand).is_ok() {
                counts.safe_candidates += 1;
                full_length_safe = true;
                if cand == o {
                    found = true;
                }
            }
            // Next assignment (odometer).
            let mut d = 0;
            while d < prefix {
                assignment[d] += 1;
                if assignment[d] < cands.len() {
                    break;
                }
                assignment[d] = 0;
                d += 1;
            }
            if d == prefix {
                break;
            }
        }
        if !full_length_safe {
            return Err(format!(
                "no safe outcome keeps the {prefix} relayable messages (candidates {cands:?})"
            ));
        }
        if !found && o.finals.iter().all(|f| cands.contains(f)) {
            return Err(format!(
                "decide's outcome {o:?} is not among the safe ones (candidates {cands:?})"
            ));
        }
        if found {
            counts.decide_among_safe += 1;
        }
        // Otherwise decide chose a priority outside the candidate set (a raise to a counter
        // nobody used): it passed `safe` above, which is the same predicate.
    }
    Ok(())
}

/// The view of the second resolution round (a survivor left during the first).
const ROUND2: u64 = 4;

/// `Group::apply_decision` at survivor `i` for X's stream: the decided messages it delivers go
/// into its hold-back queue at their finals (content relayed when it lacks it) and are kept,
/// the rest of X's stream is dropped and the stream closed; delivery resumes. Then the finals
/// of the live sender's messages reach it.
fn apply_decision(st: &mut St, i: usize, o: &Outcome, l_finals: &[Option<Pr>], keep_all: bool) {
    let x_view = st.x_view;
    let m = &mut st.mem[i];
    for (n, &p) in o.finals.iter().enumerate() {
        let seq = o.first + n as u8;
        let view = x_view[seq as usize - 1];
        if seq > m.x_delivered && view >= m.joined {
            m.hb.retain(|h| !(h.key.origin == X && h.key.seq == seq));
            m.x_held &= !held_bit(seq);
            m.kept.push((seq, p, view));
            m.observe(p);
            m.hb_insert(HbEntry {
                key: Key { p, origin: X, seq },
                is_final: true,
                view,
            });
        } else if keep_all && view < m.joined {
            // Kept (content fetched if missing) but not delivered: a later round can relay it.
            m.kept.push((seq, p, view));
        }
    }
    let last = (o.first + o.finals.len() as u8)
        .saturating_sub(1)
        .max(m.x_delivered);
    m.hb.retain(|h| !(h.key.origin == X && h.key.seq > last));
    m.x_held = 0;
    m.x_pending = [None; MAXX];
    m.closed = Some(last);
    m.resumed = true;
    m.deliver();
    if i != 0 {
        for (j, f) in l_finals.iter().enumerate() {
            if let Some(f) = f {
                let seq = j as u8 + 1;
                if seq > m.l_delivered && m.observe_and_finalize(A, seq, *f) {
                    m.deliver();
                }
            }
        }
    } else {
        for (j, f) in l_finals.iter().enumerate() {
            if let Some(f) = f {
                m.observe(*f);
                m.hb_finalize(A, j as u8 + 1, *f);
            }
        }
        m.deliver();
    }
}

/// A survivor (`departs`) leaves during the first round after every subset of the others
/// applied its decision `o1`; the second round's decision must repeat `o1` for every message a
/// member that applied it keeps, must not extend the stream past where they closed it, and the
/// members (each with the decision it applied) must stay safe.
fn check_second_round(
    st: &St,
    o1: &Outcome,
    second: Second,
    counts: &mut Counts,
) -> Result<(), String> {
    let departures: Vec<Vec<usize>> = match second {
        Second::One => vec![vec![1], vec![2]],
        Second::CoordinatorAndOne { .. } if st.l_sent == 0 => st
            .members()
            .filter(|&i| i != 0)
            .map(|i| vec![0, i])
            .collect(),
        Second::CoordinatorAndOne { .. } => Vec::new(),
    };
    let keep_all = match second {
        Second::CoordinatorAndOne { keep_all } => keep_all,
        Second::One => false,
    };
    for departs in departures {
        let others: Vec<usize> = st.members().filter(|i| !departs.contains(i)).collect();
        for subset in 0u32..(1 << others.len()) {
            let mut s2 = st.clone();
            for &d in &departs {
                s2.mem[d].in_group = false;
            }
            let l_finals = s2.l_finals_eventually();
            let appliers: Vec<usize> = others
                .iter()
                .enumerate()
                .filter(|(k, _)| subset & (1 << k) != 0)
                .map(|(_, &i)| i)
                .collect();
            // The coordinator (A, the lowest id) sends its decision only once it holds the
            // content of every decided message, and applies it at once: whoever applied it,
            // the coordinator did.
            if !departs.contains(&0) && !appliers.is_empty() && !appliers.contains(&0) {
                continue;
            }
            for &i in &appliers {
                apply_decision(&mut s2, i, o1, &l_finals, keep_all);
            }
            for &i in &others {
                let rep = s2.mem[i].build_report(&s2.x_view);
                s2.mem[i].report = Some(rep);
            }
            let reports = reports_of_round(&s2, ROUND2);
            let o2 = outcome_of(&decide(ViewId(ROUND2), &reports))?;
            counts.second_rounds += 1;
            let what = || {
                format!(
                    "{:?} left during the first round after {:?} applied {o1:?}; second decision {o2:?}",
                    departs.iter().map(|&i| IDS[i]).collect::<Vec<_>>(),
                    appliers.iter().map(|&i| IDS[i]).collect::<Vec<_>>()
                )
            };
            if !appliers.is_empty() {
                let end1 = o1.first as usize + o1.finals.len();
                let end2 = o2.first as usize + o2.finals.len();
                if end2 > end1 {
                    return Err(format!("{}: extends a closed stream", what()));
                }
                for (n, p2) in o2.finals.iter().enumerate() {
                    let seq = o2.first as usize + n;
                    // Only where a member that applied the first decision delivers the
                    // message (a late joiner applies it without delivering older messages).
                    let kept = appliers
                        .iter()
                        .any(|&i| s2.mem[i].kept.iter().any(|k| k.0 as usize == seq));
                    if kept && seq >= o1.first as usize && seq < end1 {
                        let p1 = o1.finals[seq - o1.first as usize];
                        if p1 != *p2 {
                            return Err(format!(
                                "{}: X's {seq} moved from {p1:?} to {p2:?}",
                                what()
                            ));
                        }
                    }
                }
            }
            safe_mixed(&s2, &l_finals, &|i| {
                if appliers.contains(&i) {
                    o1
                } else {
                    &o2
                }
            })
            .map_err(|e| format!("{}: unsafe: {e}", what()))?;
        }
    }
    Ok(())
}

/// Visits every history within `b` that ends with every survivor having reported.
fn for_each_history(b: Bounds, mut visit: impl FnMut(&St)) -> u64 {
    let mut states = 0;
    let mut seen: HashSet<St> = HashSet::new();
    let mut frontier = vec![St::initial()];
    seen.insert(St::initial());
    while let Some(st) = frontier.pop() {
        states += 1;
        assert!(
            states <= STATE_LIMIT,
            "more than {STATE_LIMIT} states within {b:?}: bounds too large"
        );
        if st.all_installed() {
            visit(&st);
            // Later events (L's finals) change nothing a report says; the check uses L's
            // finals as they will end.
            continue;
        }
        for next in st.successors(b) {
            if seen.insert(next.clone()) {
                frontier.push(next);
            }
        }
    }
    states
}

/// Explores every history within `b`, checking each one where all survivors reported.
fn explore(b: Bounds, brute_force_every: u64) -> Counts {
    let mut counts = Counts::default();
    counts.states = for_each_history(b, |st| {
        let brute = brute_force_every > 0 && counts.histories % brute_force_every == 0;
        if let Err(e) = check_decision(st, &mut counts, brute, b.second) {
            panic!(
                "counterexample ({b:?}): {e}\nreports: {:#?}\nhistory state: {st:#?}",
                reports_of(st)
            );
        }
    });
    counts
}

/// Seeded random histories within `b`: `walks` random walks from the initial state to a state
/// where every survivor reported, each choosing uniformly among the enabled events (X's crash
/// rarely); each distinct history is visited once. Returns the number of states walked.
fn for_each_random_history(b: Bounds, seed: u64, walks: u64, mut visit: impl FnMut(&St)) -> u64 {
    let mut rng = Rng::new(seed);
    let mut states = 0;
    let mut distinct: HashSet<St> = HashSet::new();
    for _ in 0..walks {
        let mut st = St::initial();
        loop {
            states += 1;
            if st.all_installed() {
                break;
            }
            let mut next = st.successors(b);
            assert!(
                !next.is_empty(),
                "a state without events before the end: {st:?}"
            );
            // X's crash is enabled in every state: take it rarely, so that histories get long.
            let pick = loop {
                let pick = rng.below(next.len() as u64) as usize;
                if st.crashed || !next[pick].crashed || next.len() == 1 || rng.chance(0.05) {
                    break pick;
                }
            };
            st = next.swap_remove(pick);
        }
        if distinct.insert(st.clone()) {
            visit(&st);
        }
    }
    states
}

fn random_walks(b: Bounds, seed: u64, walks: u64, brute_force_every: u64) -> Counts {
    let mut counts = Counts::default();
    counts.states = for_each_random_history(b, seed, walks, |st| {
        let brute = brute_force_every > 0 && counts.histories % brute_force_every == 0;
        if let Err(e) = check_decision(st, &mut counts, brute, b.second) {
            panic!(
                "counterexample ({b:?}, seed {seed}): {e}\nreports: {:#?}\nhistory state: {st:#?}",
                reports_of(st)
            );
        }
    });
    counts
}

fn report(what: &str, b: Bounds, c: &Counts, t: std::time::Instant) {
    eprintln!(
        "{what} {b:?}: {} states, {} distinct histories checked ({} with decided messages, \
         {} with a message a survivor delivered, {} finals raised), {} brute-forced with {} \
         candidate outcomes ({} safe; decide's among them in {}), {} second rounds, in {:?}",
        c.states,
        c.histories,
        c.with_decided,
        c.with_delivered_x,
        c.raised,
        c.brute_forced,
        c.candidates,
        c.safe_candidates,
        c.decide_among_safe,
        c.second_rounds,
        t.elapsed()
    );
}

fn assert_floor(c: &Counts, floor: u64, brute_force: bool) {
    assert!(
        c.histories >= floor,
        "only {} histories checked (floor {floor}): the generator is broken",
        c.histories
    );
    assert!(
        c.with_decided > 0 && c.with_delivered_x > 0 && c.raised > 0,
        "the histories never exercise decided, delivered or raised messages: {c:?}"
    );
    if brute_force {
        assert!(c.brute_forced > 0 && c.safe_candidates > 0, "{c:?}");
    }
    assert!(c.second_rounds > 0, "no second round was checked: {c:?}");
}

fn exhaustive(b: Bounds, brute_force_every: u64, floor: u64) {
    let t = std::time::Instant::now();
    let c = explore(b, brute_force_every);
    report("exhaustive", b, &c, t);
    assert_floor(&c, floor, brute_force_every > 0);
}

/// Every history of X sending up to three messages to three survivors (no live sender).
#[test]
fn decide_is_safe_on_every_history_of_three_messages() {
    let b = Bounds {
        x_msgs: 3,
        l_msgs: 0,
        joiner: false,
        second: Second::One,
    };
    exhaustive(b, 1, 2_000);
}

/// Every history of one message of X interleaved with one message of a live sender: the
/// live sender's deliveries are what raise X's message.
#[test]
fn decide_is_safe_on_every_history_with_a_live_sender() {
    let b = Bounds {
        x_msgs: 1,
        l_msgs: 1,
        joiner: false,
        second: Second::One,
    };
    exhaustive(b, 1, 8_000);
}

/// Every history of two messages of X with a member joining in between (view 2): it delivers
/// only the later message and may never learn where X's stream starts for it.
#[test]
fn decide_is_safe_on_every_history_with_a_late_joiner() {
    let b = Bounds {
        x_msgs: 2,
        l_msgs: 0,
        joiner: true,
        second: Second::One,
    };
    exhaustive(b, 1, 2_000);
}

/// The coordinator and one more survivor leave during the first round, after any subset of
/// the others applied its decision (the coordinator had all the content then). Without a late
/// joiner every member that applied keeps the whole decided prefix, so the next round can
/// repeat it: safe.
#[test]
fn second_round_after_the_coordinator_and_another_survivor_leave() {
    let b = Bounds {
        x_msgs: 3,
        l_msgs: 0,
        joiner: false,
        second: Second::CoordinatorAndOne { keep_all: false },
    };
    exhaustive(b, 0, 2_000);
}

/// A mutant of the apply rule, and the counterexample that made the protocol change: a member
/// J that joined between X's two messages applies the first decision and delivers only the
/// later message; if it kept nothing of the earlier one (the old `Group::apply_decision` kept
/// only what the member delivers), then when the coordinator and the last other holder of the
/// earlier message leave, the next round cannot decide it (nobody holds it), hence not the
/// later one either (FIFO), which J has delivered: J and B, who both stay, disagree on its
/// fate. This test checks that the oracle still finds it with the old rule;
/// `tests/model.rs` (`late_joiner_and_a_member_agree_after_the_coordinator_and_the_last_holder_crash`)
/// runs the history with real groups, and `keeping_every_decided_message_...` checks the
/// protocol's rule exhaustively.
#[test]
fn the_oracle_finds_that_a_late_joiner_loses_agreement_under_the_old_apply_rule() {
    let b = Bounds {
        x_msgs: 2,
        l_msgs: 0,
        joiner: true,
        second: Second::CoordinatorAndOne { keep_all: false },
    };
    let mut counts = Counts::default();
    let mut found: Option<String> = None;
    let mut histories = 0u64;
    for_each_history(b, |st| {
        histories += 1;
        if found.is_none() {
            if let Err(e) = check_decision(st, &mut counts, false, b.second) {
                found = Some(e);
            }
        }
    });
    let found = found.unwrap_or_else(|| {
        panic!("no counterexample in {histories} histories: the oracle misses the old bug")
    });
    eprintln!("counterexample found among {histories} histories: {found}");
    assert!(
        found.contains("disagree on the fate of X's 2"),
        "another kind of failure: {found}"
    );
}

/// The protocol's rule (`Group::apply_decision`, since the counterexample above): a member
/// applying a decision keeps (fetching if needed) the content and final of every decided
/// message, also of those it does not deliver, and reports them in later rounds. Every
/// second round is then safe.
#[test]
fn keeping_every_decided_message_restores_agreement_with_a_late_joiner() {
    let b = Bounds {
        x_msgs: 2,
        l_msgs: 0,
        joiner: true,
        second: Second::CoordinatorAndOne { keep_all: true },
    };
    exhaustive(b, 0, 2_000);
}

/// Larger bounds, sampled: seeded random histories (three messages of X, two of a live
/// sender, a late joiner).
#[test]
fn decide_is_safe_on_random_histories_of_larger_bounds() {
    let b = Bounds {
        x_msgs: 3,
        l_msgs: 2,
        joiner: true,
        second: Second::One,
    };
    let walks = env_u64("ORACLE_WALKS", 20_000);
    let t = std::time::Instant::now();
    let c = random_walks(b, 0x5eed_0ac1e, walks, 4);
    report("random", b, &c, t);
    assert_floor(&c, walks / 4, true);
}

/// Bigger exhaustive bounds on request: `ORACLE_EXHAUSTIVE="x,l,j;..."` (X's messages, the
/// live sender's messages, 1 for a late joiner), e.g. `3,0,1;1,1,1;2,1,0` (run in --release).
#[test]
fn decide_is_safe_on_every_history_of_requested_bounds() {
    let Ok(spec) = std::env::var("ORACLE_EXHAUSTIVE") else {
        return;
    };
    for part in spec.split(';').filter(|p| !p.trim().is_empty()) {
        let v: Vec<u8> = part
            .split(',')
            .map(|x| x.trim().parse::<u8>())
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("ORACLE_EXHAUSTIVE: bad bounds {part:?}: {e}"));
        assert!(
            v.len() == 3
                && (1..=MAXX as u8).contains(&v[0])
                && v[1] as usize <= MAXL
                && v[2] <= 1,
            "ORACLE_EXHAUSTIVE: {part:?} is not x,l,j with x in 1..={MAXX}, l in 0..={MAXL}, j in 0..=1"
        );
        let b = Bounds {
            x_msgs: v[0],
            l_msgs: v[1],
            joiner: v[2] == 1,
            second: Second::One,
        };
        exhaustive(b, 8, 1);
    }
}

/// Variants of the decision rule, each with one of its safeguards removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mutant {
    /// A final nobody knows is not raised above what members delivered.
    NoRaiseAboveDelivered,
    /// A known final stays even when the previous message was raised above it (the first bug
    /// the chaos simulation found, seed 999).
    KnownFinalNotRaisedWithPrevious,
    /// Every member's deliveries raise a message, also those of members that joined after it
    /// was sent (the second bug the chaos simulation found).
    RaisedByLaterJoiners,
    /// Finals do not grow along the stream.
    NoPreviousFinal,
}

/// The outcome of a mutated rule on the same reports, for the same messages as `decide`.
fn mutant_outcome(st: &St, first: u8, len: usize, m: Mutant) -> Outcome {
    let reps: Vec<&Rep> = st
        .members()
        .map(|i| st.mem[i].report.as_ref().expect("installed"))
        .collect();
    let mut finals = Vec::new();
    let mut prev: Option<Pr> = None;
    for n in 0..len {
        let seq = first + n as u8;
        let view = st.x_view[seq as usize - 1];
        let states = reps
            .iter()
            .flat_map(|r| r.entries.iter())
            .filter(|e| e.0 == seq)
            .map(|e| e.1);
        let known = states.clone().find_map(|s| match s {
            St8::Final(p) => Some(p),
            _ => None,
        });
        let max_prop = states
            .filter_map(|s| match s {
                St8::Proposed(p) => Some(p),
                _ => None,
            })
            .max();
        let p = match known {
            Some(f) if m == Mutant::KnownFinalNotRaisedWithPrevious => f,
            Some(f) => prev.map_or(f, |q| f.max(q)),
            None => {
                let mut p = max_prop.unwrap_or(Pr { c: 0, m: 0 });
                let delivered = reps
                    .iter()
                    .filter(|r| m == Mutant::RaisedByLaterJoiners || r.joined <= view)
                    .filter_map(|r| r.delivered_max)
                    .max();
                if let Some(d) = delivered {
                    let key = Key { p, origin: X, seq };
                    if m != Mutant::NoRaiseAboveDelivered && key <= d {
                        p = Pr { c: d.p.c + 1, m: X };
                    }
                }
                if p.c == 0 {
                    p = Pr { c: 1, m: X };
                }
                if m == Mutant::NoPreviousFinal {
                    p
                } else {
                    prev.map_or(p, |q| p.max(q))
                }
            }
        };
        finals.push(p);
        prev = Some(p);
    }
    Outcome { first, finals }
}

/// The oracle has teeth: for each safeguard of the rule, some history makes the rule without
/// it unsafe (and the oracle says so), while `decide` stays safe on all of them.
#[test]
fn the_oracle_rejects_each_rule_without_one_of_its_safeguards() {
    let mutants = [
        Mutant::NoRaiseAboveDelivered,
        Mutant::KnownFinalNotRaisedWithPrevious,
        Mutant::RaisedByLaterJoiners,
        Mutant::NoPreviousFinal,
    ];
    let mut unsafe_histories = [0u64; 4];
    let mut histories = 0u64;
    let mut visit = |st: &St| {
        histories += 1;
        let o = outcome_of(&decide(ViewId(ROUND), &reports_of(st))).expect("one stream");
        let l_finals = st.l_finals_eventually();
        assert!(safe(st, &l_finals, &o).is_ok());
        for (n, m) in mutants.iter().enumerate() {
            let mo = mutant_outcome(st, o.first, o.finals.len(), *m);
            if safe(st, &l_finals, &mo).is_err() {
                unsafe_histories[n] += 1;
            }
        }
    };
    for b in [
        Bounds {
            x_msgs: 3,
            l_msgs: 0,
            joiner: false,
            second: Second::One,
        },
        Bounds {
            x_msgs: 1,
            l_msgs: 1,
            joiner: false,
            second: Second::One,
        },
        Bounds {
            x_msgs: 2,
            l_msgs: 0,
            joiner: true,
            second: Second::One,
        },
    ] {
        for_each_history(b, &mut visit);
    }
    // The two bugs the chaos simulation found need a live sender and two messages of X (and
    // a late joiner for the second): sampled.
    let b = Bounds {
        x_msgs: 2,
        l_msgs: 1,
        joiner: true,
        second: Second::One,
    };
    for_each_random_history(b, 7, env_u64("MUTANT_WALKS", 300_000), &mut visit);
    eprintln!(
        "{histories} histories; unsafe outcomes per mutant {mutants:?}: {unsafe_histories:?}"
    );
    // A known final below the previous message's raised final needs that earlier message to be
    // raised above a delivered key although its own final was computed from every survivor's
    // proposal: with one departure and one round (these bounds) that cannot happen (every
    // member that delivered past its proposals holds it tentatively or at its final), so this
    // safeguard only matters for histories beyond these bounds (several departures, later
    // rounds); the seeded simulation found it with those.
    let exhibited = [true, false, true, true];
    for (n, m) in mutants.iter().enumerate() {
        if exhibited[n] {
            assert!(
                unsafe_histories[n] > 0,
                "no history shows why the rule needs its safeguard against {m:?}"
            );
        }
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{name}={v:?} is not a number: {e}")),
        Err(_) => default,
    }
}
