//! A multi-member simulation in virtual time.
//!
//! [`Simulation`] runs N [`Group`] state machines over the emulated [`Network`], plays the
//! tracker (it installs views, detects crashes after `failure_timeout`, adds joiners, removes
//! leavers), drives a workload (every member sends `messages` messages), and always steps to the
//! earliest pending deadline. When it is done, [`Simulation::check`] verifies every delivery log
//! against the guarantees of docs/PROTOCOL.md. A seed replays a run exactly.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::net::{LinkFaults, NetStats, Network};
use super::rng::Rng;
use crate::protocol::{
    Event, Group, GroupConfig, GroupId, MemberId, Order, SendError, View, ViewId, ViewMember,
};

/// A scripted disturbance. Times count from the start of the simulation.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// The member stops dead at `at`.
    Crash { member: usize, at: Duration },
    /// The member crashes right after sending its `nth` message; each datagram of that send
    /// reaches its destination with probability one half.
    CrashAfterSend { member: usize, nth: u64 },
    /// A new member joins at `at` and sends its own `messages`.
    Join { at: Duration },
    /// The member stops sending at `at`, waits until its messages are stable, and leaves.
    Leave { member: usize, at: Duration },
    /// The member leaves at `at` without waiting for its messages to be stable (what a client
    /// whose leave timed out does): its unstable messages are resolved as for a crash.
    LeaveAtOnce { member: usize, at: Duration },
    /// A member that left joins again at `at` (or as soon as it is out, if it is still
    /// leaving then), from the same UDP address: a new membership, so a new member id from
    /// the tracker and sequence numbers from 1.
    Rejoin { member: usize, at: Duration },
    /// From `at` on, every datagram to or from the member is dropped, while it stays connected
    /// to the tracker: only the other members' suspicion ([`Event::Suspect`]) can remove it.
    Silence { member: usize, at: Duration },
    /// Datagrams between the two members are dropped from `at` for `duration`.
    Partition {
        a: usize,
        b: usize,
        at: Duration,
        duration: Duration,
    },
}

impl Action {
    fn at(&self) -> Option<Duration> {
        match self {
            Action::Crash { at, .. }
            | Action::Join { at }
            | Action::Leave { at, .. }
            | Action::LeaveAtOnce { at, .. }
            | Action::Rejoin { at, .. }
            | Action::Silence { at, .. }
            | Action::Partition { at, .. } => Some(*at),
            Action::CrashAfterSend { .. } => None,
        }
    }
}

/// How a simulation runs.
///
/// Built with [`SimConfig::new`], then changed field by field; more fields may be added
/// (`#[non_exhaustive]`), each with a default.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SimConfig {
    pub seed: u64,
    /// Members at the start.
    pub members: usize,
    pub order: Order,
    /// Messages each member sends.
    pub messages: u64,
    /// Virtual time between two sends of one member (plus jitter of the same size).
    pub send_gap: Duration,
    pub faults: LinkFaults,
    pub group: GroupConfig,
    /// Time from a crash to the view that removes the member (the tracker's detection).
    pub failure_timeout: Duration,
    /// Largest delay of a view push to one member (views reach members at different times).
    pub view_delay: Duration,
    /// The run fails if it has not completed by then.
    pub time_limit: Duration,
    pub actions: Vec<Action>,
}

impl SimConfig {
    pub fn new(seed: u64, members: usize, order: Order) -> Self {
        SimConfig {
            seed,
            members,
            order,
            messages: 30,
            send_gap: Duration::from_micros(300),
            faults: LinkFaults::default(),
            group: GroupConfig::default(),
            failure_timeout: Duration::from_millis(300),
            view_delay: Duration::from_millis(5),
            time_limit: Duration::from_secs(60),
            actions: Vec::new(),
        }
    }
}

/// Identity of an application message: origin, the origin's membership number, sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MsgId {
    pub origin: MemberId,
    pub incarnation: u32,
    pub seq: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeState {
    /// Not yet (or no longer) in the group, but alive.
    Out,
    Alive,
    Crashed,
}

/// One member's run.
#[derive(Debug)]
struct Node {
    /// The current membership's id (the tracker numbers every membership anew).
    id: MemberId,
    /// The id of each membership, by incarnation.
    ids: Vec<MemberId>,
    addr: SocketAddr,
    state: NodeState,
    group: Option<Group>,
    incarnation: u32,
    /// The view in which the current incarnation joined.
    joined: ViewId,
    /// Messages sent by each incarnation, with the sender's view at send time.
    sent: Vec<Vec<ViewId>>,
    to_send: u64,
    next_send: Instant,
    blocked: bool,
    crash_after: Option<u64>,
    leaving: bool,
    /// Delivery log of each incarnation.
    logs: Vec<Vec<(MsgId, Instant)>>,
    /// Deliveries per origin membership, for the current incarnation (a cheap completion test).
    counts: HashMap<MemberId, u64>,
    /// Messages reported lost (origin, first, last), per incarnation.
    lost: Vec<Vec<(MemberId, u64, u64)>>,
    /// Largest buffer sizes seen.
    peak: crate::protocol::BufferSizes,
    /// Cut off from the data plane by [`Action::Silence`]: like a crashed member to the
    /// others, but alive and still connected to the tracker.
    silenced: bool,
    /// Per incarnation: it left with messages that may not be stable ([`Action::LeaveAtOnce`]).
    abrupt: Vec<bool>,
}

impl Node {
    /// True when incarnation `inc` went away with messages that may not be stable (crashed,
    /// silenced, or left at once): survivors agree on its messages but need not have them all.
    fn gone_unstable(&self, inc: usize) -> bool {
        let current = inc == self.incarnation as usize;
        (current && (self.state == NodeState::Crashed || self.silenced))
            || self.abrupt.get(inc).copied().unwrap_or(false)
    }
}

/// Outcome of a run.
#[derive(Debug, Clone)]
pub struct SimReport {
    pub seed: u64,
    pub completed: bool,
    /// Virtual time at which every expected delivery had happened.
    pub finished_at: Duration,
    /// Virtual time of the last disturbance: last send, crash, view change or partition end.
    pub quiet_since: Duration,
    pub net: NetStats,
    pub delivered: u64,
    pub steps: u64,
}

#[derive(Debug)]
struct TrackerModel {
    group: GroupId,
    order: Order,
    view: u64,
    members: Vec<ViewMember>,
    /// Last time a view was pushed to each member (pushes to one member stay in order).
    last_push: HashMap<MemberId, Instant>,
    /// Members reported silent, with who reported them.
    suspects: HashMap<MemberId, BTreeSet<MemberId>>,
}

/// The simulation.
#[derive(Debug)]
pub struct Simulation {
    config: SimConfig,
    start: Instant,
    now: Instant,
    rng: Rng,
    net: Network,
    nodes: Vec<Node>,
    tracker: TrackerModel,
    pending_views: BinaryHeap<Reverse<(Instant, u64, usize, u64)>>,
    view_store: HashMap<u64, View>,
    removals: BinaryHeap<Reverse<(Instant, usize)>>,
    actions: Vec<Action>,
    order: u64,
    quiet_since: Instant,
    steps: u64,
    next_id: u64,
    /// Members removed on the others' suspicion while neither silenced nor crashed.
    honest_removed: Vec<MemberId>,
}

impl Simulation {
    pub fn new(config: SimConfig) -> Self {
        let start = super::epoch();
        let rng = Rng::new(config.seed);
        let net = Network::new(config.seed.wrapping_mul(31).wrapping_add(7), config.faults);
        let mut sim = Simulation {
            start,
            now: start,
            rng,
            net,
            nodes: Vec::new(),
            tracker: TrackerModel {
                group: GroupId(1),
                order: config.order,
                view: 0,
                members: Vec::new(),
                last_push: HashMap::new(),
                suspects: HashMap::new(),
            },
            pending_views: BinaryHeap::new(),
            view_store: HashMap::new(),
            removals: BinaryHeap::new(),
            actions: config.actions.clone(),
            order: 0,
            quiet_since: start,
            steps: 0,
            honest_removed: Vec::new(),
            next_id: 0,
            config,
        };
        for _ in 0..sim.config.members {
            let i = sim.add_node();
            sim.nodes[i].state = NodeState::Alive;
            let m = sim.view_member(i);
            sim.tracker.members.push(m);
        }
        // The initial view reaches everyone at once: the group starts together.
        sim.tracker.view = 1;
        for m in &mut sim.tracker.members {
            m.joined = ViewId(1);
        }
        let view = sim.current_view();
        for i in 0..sim.nodes.len() {
            sim.nodes[i].joined = ViewId(1);
            let g = Group::new(
                sim.config.group.clone(),
                sim.nodes[i].id,
                view.clone(),
                start,
            );
            sim.nodes[i].group = Some(g);
            sim.after_input(i);
        }
        for action in &sim.config.actions {
            if let Action::CrashAfterSend { member, nth } = *action {
                sim.nodes[member].crash_after = Some(nth);
            }
        }
        sim.actions.retain(|a| a.at().is_some());
        sim
    }

    fn add_node(&mut self) -> usize {
        let i = self.nodes.len();
        self.next_id += 1;
        let id = MemberId(self.next_id);
        self.nodes.push(Node {
            id,
            ids: vec![id],
            addr: SocketAddr::from(([127, 0, 0, 1], 20_000 + i as u16)),
            state: NodeState::Out,
            group: None,
            incarnation: 0,
            joined: ViewId(0),
            sent: vec![Vec::new()],
            to_send: self.config.messages,
            next_send: self.start,
            blocked: false,
            crash_after: None,
            leaving: false,
            logs: vec![Vec::new()],
            counts: HashMap::new(),
            lost: vec![Vec::new()],
            peak: Default::default(),
            silenced: false,
            abrupt: vec![false],
        });
        i
    }

    fn view_member(&self, i: usize) -> ViewMember {
        ViewMember {
            id: self.nodes[i].id,
            name: format!("m{}", self.nodes[i].id),
            addr: self.nodes[i].addr,
            joined: ViewId(self.tracker.view + 1),
        }
    }

    fn current_view(&self) -> View {
        View {
            group: self.tracker.group,
            name: "sim".into(),
            order: self.tracker.order,
            id: ViewId(self.tracker.view),
            members: self.tracker.members.clone(),
        }
    }

    /// Pushes a new view to its members (and to `also`, a member that was removed).
    fn push_view(&mut self, also: Option<usize>) {
        let view = self.current_view();
        self.view_store.insert(view.id.0, view.clone());
        let mut targets: Vec<usize> = view
            .members
            .iter()
            .filter_map(|m| self.nodes.iter().position(|n| n.id == m.id))
            .collect();
        targets.extend(also);
        for i in targets {
            let id = self.nodes[i].id;
            let delay = Duration::from_micros(
                self.rng
                    .below(self.config.view_delay.as_micros() as u64 + 1),
            );
            let mut at = self.now + delay;
            if let Some(last) = self.tracker.last_push.get(&id) {
                at = at.max(*last);
            }
            self.tracker.last_push.insert(id, at);
            self.order += 1;
            self.pending_views
                .push(Reverse((at, self.order, i, view.id.0)));
            self.quiet_since = self.quiet_since.max(at);
        }
    }

    fn remove_member(&mut self, i: usize, tell_it: bool) {
        let id = self.nodes[i].id;
        if !self.tracker.members.iter().any(|m| m.id == id) {
            return;
        }
        self.tracker.members.retain(|m| m.id != id);
        self.tracker.view += 1;
        self.push_view(tell_it.then_some(i));
    }

    fn add_member(&mut self, i: usize) {
        let m = self.view_member(i);
        self.tracker.members.push(m);
        self.tracker.view += 1;
        self.nodes[i].joined = ViewId(self.tracker.view);
        self.push_view(None);
    }

    /// Runs to completion (or to the time limit).
    pub fn run(&mut self) -> SimReport {
        let limit = self.start + self.config.time_limit;
        let mut completed = false;
        loop {
            self.steps += 1;
            if (self.steps % 64 == 0 || self.pending_views.is_empty()) && self.is_complete() {
                completed = true;
                break;
            }
            let Some(next) = self.next_deadline() else {
                completed = self.is_complete();
                break;
            };
            if next > limit {
                break;
            }
            self.now = self.now.max(next);
            self.step();
        }
        // Bound the sizes once more at the end.
        for n in &mut self.nodes {
            if let Some(g) = &n.group {
                let s = g.buffer_sizes();
                n.peak.send_buffer = n.peak.send_buffer.max(s.send_buffer);
            }
        }
        SimReport {
            seed: self.config.seed,
            completed,
            finished_at: self.now - self.start,
            quiet_since: self.quiet_since - self.start,
            net: self.net.stats(),
            delivered: self
                .nodes
                .iter()
                .flat_map(|n| n.logs.iter())
                .map(|l| l.len() as u64)
                .sum(),
            steps: self.steps,
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        if let Some(t) = self.net.next_arrival() {
            consider(t);
        }
        if let Some(Reverse((t, ..))) = self.pending_views.peek() {
            consider(*t);
        }
        if let Some(Reverse((t, _))) = self.removals.peek() {
            consider(*t);
        }
        for a in &self.actions {
            if let Some(at) = a.at() {
                consider(self.start + at);
            }
        }
        for n in &self.nodes {
            if n.state != NodeState::Alive {
                continue;
            }
            if let Some(g) = &n.group {
                if let Some(t) = g.poll_timeout() {
                    consider(t);
                }
                if n.to_send > 0 && !n.blocked && !g.is_removed() {
                    consider(n.next_send);
                }
                if n.leaving && g.in_flight() == 0 {
                    consider(self.now);
                }
            }
        }
        next
    }

    fn step(&mut self) {
        let now = self.now;
        // Scripted actions.
        let due: Vec<Action> = self
            .actions
            .iter()
            .filter(|a| a.at().is_some_and(|at| self.start + at <= now))
            .cloned()
            .collect();
        self.actions
            .retain(|a| a.at().is_none_or(|at| self.start + at > now));
        for action in due {
            self.perform(action);
        }
        // Tracker removals after failure detection.
        while self
            .removals
            .peek()
            .is_some_and(|Reverse((t, _))| *t <= now)
        {
            let Some(Reverse((_, i))) = self.removals.pop() else {
                break;
            };
            self.remove_member(i, false);
        }
        // View pushes.
        while self
            .pending_views
            .peek()
            .is_some_and(|Reverse((t, ..))| *t <= now)
        {
            let Some(Reverse((_, _, i, view_id))) = self.pending_views.pop() else {
                break;
            };
            let view = self.view_store[&view_id].clone();
            self.deliver_view(i, view);
        }
        // Datagrams.
        while let Some((from, to, bytes)) = self.net.pop_due(now) {
            let Some(i) = self.nodes.iter().position(|n| n.addr == to) else {
                continue;
            };
            if self.nodes[i].state != NodeState::Alive {
                continue;
            }
            if let Some(g) = self.nodes[i].group.as_mut() {
                let _ = g.handle_datagram_shared(now, from, &bytes::Bytes::from(bytes));
                self.after_input(i);
            }
        }
        // Timers, sends, leaves.
        for i in 0..self.nodes.len() {
            if self.nodes[i].state != NodeState::Alive {
                continue;
            }
            let Some(g) = self.nodes[i].group.as_mut() else {
                continue;
            };
            if g.poll_timeout().is_some_and(|t| t <= now) {
                g.handle_timeout(now);
                self.after_input(i);
            }
            self.maybe_send(i);
            let n = &self.nodes[i];
            if n.leaving && n.group.as_ref().is_some_and(|g| g.in_flight() == 0) {
                self.nodes[i].leaving = false;
                self.remove_member(i, true);
            }
        }
    }

    fn perform(&mut self, action: Action) {
        match action {
            Action::Crash { member, .. } => self.crash(member),
            Action::CrashAfterSend { .. } => {}
            Action::Join { .. } => {
                let i = self.add_node();
                self.nodes[i].state = NodeState::Alive;
                self.add_member(i);
            }
            Action::Leave { member, .. } => {
                if self.nodes[member].state == NodeState::Alive {
                    self.nodes[member].to_send = 0;
                    self.nodes[member].leaving = true;
                }
            }
            Action::LeaveAtOnce { member, .. } => {
                let n = &mut self.nodes[member];
                if n.state == NodeState::Alive && n.group.as_ref().is_some_and(|g| !g.is_removed())
                {
                    n.to_send = 0;
                    n.leaving = false;
                    n.abrupt[n.incarnation as usize] = true;
                    self.remove_member(member, true);
                }
            }
            Action::Rejoin { member, .. } => {
                let n = &mut self.nodes[member];
                if n.state != NodeState::Out && n.state != NodeState::Alive {
                    return;
                }
                if n.group.as_ref().is_some_and(|g| !g.is_removed()) {
                    // Still leaving: re-join as soon as the view without it has arrived.
                    let at = self.now + Duration::from_micros(100) - self.start;
                    self.actions.push(Action::Rejoin { member, at });
                    return;
                }
                self.next_id += 1;
                n.id = MemberId(self.next_id);
                n.ids.push(n.id);
                n.incarnation += 1;
                n.sent.push(Vec::new());
                n.logs.push(Vec::new());
                n.counts.clear();
                n.lost.push(Vec::new());
                n.abrupt.push(false);
                n.group = None;
                n.to_send = self.config.messages;
                n.blocked = false;
                n.state = NodeState::Alive;
                self.add_member(member);
            }
            Action::Silence { member, .. } => {
                if self.nodes[member].state != NodeState::Alive {
                    return;
                }
                self.nodes[member].silenced = true;
                let until = self.start + self.config.time_limit;
                let addr = self.nodes[member].addr;
                for other in 0..self.nodes.len() {
                    if other != member {
                        self.net.cut(addr, self.nodes[other].addr, until);
                    }
                }
                // Detected within a suspect timeout and a status period.
                let detected = self.now
                    + self.config.group.suspect_timeout
                    + self.config.group.status_interval;
                self.quiet_since = self.quiet_since.max(detected);
            }
            Action::Partition { a, b, duration, .. } => {
                let (a, b) = (self.nodes[a].addr, self.nodes[b].addr);
                self.net.cut(a, b, self.now + duration);
                self.quiet_since = self.quiet_since.max(self.now + duration);
            }
        }
    }

    fn crash(&mut self, i: usize) {
        if self.nodes[i].state != NodeState::Alive {
            return;
        }
        self.nodes[i].state = NodeState::Crashed;
        self.nodes[i].group = None;
        self.removals
            .push(Reverse((self.now + self.config.failure_timeout, i)));
        self.quiet_since = self.quiet_since.max(self.now + self.config.failure_timeout);
    }

    fn deliver_view(&mut self, i: usize, view: View) {
        let now = self.now;
        let node = &mut self.nodes[i];
        if node.state != NodeState::Alive {
            return;
        }
        match node.group.as_mut() {
            Some(g) if !g.is_removed() => g.apply_view(now, view),
            _ => {
                if !view.contains(node.id) {
                    return;
                }
                // First view of a (re)joining member.
                node.group = Some(Group::new(self.config.group.clone(), node.id, view, now));
                node.next_send = now;
            }
        }
        self.after_input(i);
    }

    fn maybe_send(&mut self, i: usize) {
        let now = self.now;
        let gap = self.config.send_gap.as_micros() as u64;
        loop {
            let n = &mut self.nodes[i];
            let Some(g) = n.group.as_mut() else { return };
            if n.to_send == 0 || n.blocked || n.next_send > now || g.is_removed() {
                return;
            }
            let k = n.sent[n.incarnation as usize].len() as u64 + 1;
            let payload = Bytes::from(format!("{}:{}:{}", n.id, n.incarnation, k));
            let view = g.view().id;
            match g.send(now, payload, 0) {
                Ok(seq) => {
                    assert_eq!(seq.0, k, "sequence numbers count from 1 without gaps");
                    n.sent[n.incarnation as usize].push(view);
                    n.to_send -= 1;
                    let jitter = self.rng.below(gap + 1);
                    n.next_send = now + Duration::from_micros(gap + jitter);
                    self.quiet_since = self.quiet_since.max(now);
                    if n.crash_after == Some(k) {
                        self.crash_mid_send(i);
                        return;
                    }
                    self.after_input(i);
                }
                Err(SendError::WindowFull) => {
                    n.blocked = true;
                    return;
                }
                Err(e) => panic!("seed {}: unexpected send error {e}", self.config.seed),
            }
        }
    }

    /// The member's last datagrams reach a random half of their destinations, then it dies.
    fn crash_mid_send(&mut self, i: usize) {
        let now = self.now;
        let from = self.nodes[i].addr;
        if let Some(g) = self.nodes[i].group.as_mut() {
            while let Some(t) = g.poll_transmit() {
                if self.rng.chance(0.5) {
                    self.net.send(now, from, t.to, t.bytes);
                }
            }
        }
        self.crash(i);
    }

    /// Drains a node's outputs after an input.
    fn after_input(&mut self, i: usize) {
        let now = self.now;
        let node = &mut self.nodes[i];
        let Some(g) = node.group.as_mut() else {
            return;
        };
        let sizes = g.buffer_sizes();
        node.peak.send_buffer = node.peak.send_buffer.max(sizes.send_buffer);
        node.peak.hold_back = node.peak.hold_back.max(sizes.hold_back);
        node.peak.hold_back_per_origin = node
            .peak
            .hold_back_per_origin
            .max(sizes.hold_back_per_origin);
        node.peak.max_stream_held = node.peak.max_stream_held.max(sizes.max_stream_held);
        node.peak.pending_finals = node.peak.pending_finals.max(sizes.pending_finals);
        node.peak.departed_streams = node.peak.departed_streams.max(sizes.departed_streams);
        while let Some(t) = g.poll_transmit() {
            self.net.send(now, node.addr, t.to, t.bytes);
        }
        let inc = node.incarnation as usize;
        let mut suspects = Vec::new();
        while let Some(ev) = g.poll_event() {
            match ev {
                Event::Deliver(d) => {
                    let text = String::from_utf8_lossy(&d.payload).into_owned();
                    let mut parts = text
                        .split(':')
                        .map(|p| p.parse::<u64>().unwrap_or(u64::MAX));
                    let (o, inc_o, s) = (parts.next(), parts.next(), parts.next());
                    assert_eq!(
                        (o, s),
                        (Some(d.origin.0), Some(d.seq.0)),
                        "seed {}: payload does not match its origin and sequence",
                        self.config.seed
                    );
                    *node.counts.entry(d.origin).or_default() += 1;
                    node.logs[inc].push((
                        MsgId {
                            origin: d.origin,
                            incarnation: inc_o.unwrap_or(0) as u32,
                            seq: d.seq.0,
                        },
                        now,
                    ));
                }
                Event::Lost {
                    origin,
                    first,
                    last,
                } => node.lost[inc].push((origin, first.0, last.0)),
                Event::Writable => node.blocked = false,
                Event::Removed => {
                    node.state = NodeState::Out;
                    node.to_send = 0;
                }
                Event::Suspect { member } => suspects.push(member),
            }
        }
        let reporter = node.id;
        for suspect in suspects {
            self.suspect(reporter, suspect);
        }
    }

    /// The tracker's rule: a member reported silent by at least half of the others (and at
    /// least one) leaves the view.
    fn suspect(&mut self, reporter: MemberId, suspect: MemberId) {
        let members = &self.tracker.members;
        if reporter == suspect
            || !members.iter().any(|m| m.id == reporter)
            || !members.iter().any(|m| m.id == suspect)
        {
            return;
        }
        let needed = (members.len() - 1).div_ceil(2).max(1);
        let reporters = self.tracker.suspects.entry(suspect).or_default();
        reporters.insert(reporter);
        if reporters.len() >= needed {
            self.tracker.suspects.remove(&suspect);
            if let Some(i) = self.nodes.iter().position(|n| n.id == suspect) {
                let node = &self.nodes[i];
                if !node.silenced && node.state != NodeState::Crashed {
                    self.honest_removed.push(suspect);
                }
                self.remove_member(i, true);
            }
        }
    }

    /// Messages `member`'s current incarnation must deliver from each honest sender.
    fn expected(&self, m: usize) -> BTreeMap<(MemberId, u32), BTreeSet<u64>> {
        let mut out: BTreeMap<(MemberId, u32), BTreeSet<u64>> = BTreeMap::new();
        let joined = self.nodes[m].joined;
        for s in &self.nodes {
            for (inc, sent) in s.sent.iter().enumerate() {
                if s.gone_unstable(inc) {
                    continue;
                }
                let set = out.entry((s.ids[inc], inc as u32)).or_default();
                for (k, view) in sent.iter().enumerate() {
                    if *view >= joined {
                        set.insert(k as u64 + 1);
                    }
                }
            }
        }
        out
    }

    fn in_group(&self, i: usize) -> bool {
        let n = &self.nodes[i];
        n.state == NodeState::Alive && n.group.as_ref().is_some_and(|g| !g.is_removed())
    }

    fn is_complete(&self) -> bool {
        if !self.pending_views.is_empty() || !self.removals.is_empty() || !self.actions.is_empty() {
            return false;
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if !self.in_group(i) {
                continue;
            }
            if n.to_send > 0 || n.leaving || n.group.as_ref().is_some_and(|g| g.is_paused()) {
                return false;
            }
            // Counting is enough here: `check` compares the exact sets afterwards.
            for s in &self.nodes {
                for (inc, sent) in s.sent.iter().enumerate() {
                    if s.gone_unstable(inc) {
                        continue;
                    }
                    // Views only grow along a sender's stream: the expected part is a suffix.
                    let before = sent.partition_point(|v| *v < n.joined);
                    let expected = (sent.len() - before) as u64;
                    let got = n.counts.get(&s.ids[inc]).copied().unwrap_or(0);
                    if got < expected {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// Checks every guarantee on the logs; returns what is wrong.
    pub fn check(&self, report: &SimReport) -> Result<(), String> {
        let seed = self.config.seed;
        if !report.completed {
            return Err(format!(
                "seed {seed}: stalled: not every expected message was delivered by {:?} \
                 ({})",
                report.finished_at,
                self.describe_missing()
            ));
        }
        // Only a silenced or crashed member is removed on suspicion, unless a partition lasted
        // long enough to make members silent to each other.
        let long_partition = self.config.actions.iter().any(|a| {
            matches!(a, Action::Partition { duration, .. }
                if *duration >= self.config.group.suspect_timeout)
        });
        if !self.honest_removed.is_empty() && !long_partition {
            return Err(format!(
                "seed {seed}: {:?} reported and removed while neither silenced nor crashed",
                self.honest_removed
            ));
        }
        // No stall: done within one failure timeout after the last disturbance.
        let bound = report.quiet_since + self.config.failure_timeout;
        if report.finished_at > bound {
            return Err(format!(
                "seed {seed}: finished at {:?}, later than {:?} after the last disturbance at {:?}",
                report.finished_at, self.config.failure_timeout, report.quiet_since
            ));
        }
        let window = self.config.group.window as usize;
        for n in &self.nodes {
            // Exactly once, FIFO without gaps.
            for log in &n.logs {
                let mut seen = BTreeSet::new();
                let mut last: HashMap<(MemberId, u32), u64> = HashMap::new();
                for (id, _) in log {
                    if !seen.insert(*id) {
                        return Err(format!("seed {seed}: {} delivered {id:?} twice", n.id));
                    }
                    let key = (id.origin, id.incarnation);
                    if let Some(prev) = last.get(&key) {
                        if id.seq != prev + 1 {
                            return Err(format!(
                                "seed {seed}: {} delivered {:?} seq {} after {}",
                                n.id, key, id.seq, prev
                            ));
                        }
                    }
                    last.insert(key, id.seq);
                }
            }
            // Bounded buffers.
            if n.peak.send_buffer > window
                || n.peak.hold_back_per_origin > window
                || n.peak.max_stream_held > window
                || n.peak.pending_finals > window
            {
                return Err(format!(
                    "seed {seed}: buffers of {} exceeded bounds: {:?}",
                    n.id, n.peak
                ));
            }
        }
        // Progress: nobody left the group unless the scenario's tracker removed it, somebody
        // is still in it, and something was delivered (a checker that only looks at the
        // members still in the group must not pass because nobody is).
        for (i, n) in self.nodes.iter().enumerate() {
            let listed = self.tracker.members.iter().any(|m| m.id == n.id);
            if listed && !self.in_group(i) && n.state != NodeState::Crashed {
                return Err(format!(
                    "seed {seed}: {} is out of the group although the tracker never removed it",
                    n.id
                ));
            }
        }
        if !(0..self.nodes.len()).any(|i| self.in_group(i)) {
            return Err(format!("seed {seed}: nobody is left in the group"));
        }
        if report.delivered == 0 {
            return Err(format!("seed {seed}: nothing was delivered"));
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if !self.in_group(i) {
                continue;
            }
            let log = &n.logs[n.incarnation as usize];
            let delivered: BTreeSet<MsgId> = log.iter().map(|(m, _)| *m).collect();
            // Completeness for honest senders, and each stream starts where the member joined.
            for ((origin, inc), seqs) in self.expected(i) {
                let got: BTreeSet<u64> = delivered
                    .iter()
                    .filter(|m| m.origin == origin && m.incarnation == inc)
                    .map(|m| m.seq)
                    .collect();
                if got != seqs {
                    return Err(format!(
                        "seed {seed}: {} from {origin}/{inc}: expected {} messages, got {} \
                         (first expected {:?}, first got {:?})",
                        n.id,
                        seqs.len(),
                        got.len(),
                        seqs.first(),
                        got.first()
                    ));
                }
            }
        }
        // Messages reported lost: only of a sender that went away without making them stable,
        // only ones it sent, and never ones this member delivered.
        for (i, n) in self.nodes.iter().enumerate() {
            if !self.in_group(i) {
                continue;
            }
            let log = &n.logs[n.incarnation as usize];
            for &(origin, first, last) in &n.lost[n.incarnation as usize] {
                let sender = self.nodes.iter().find_map(|x| {
                    x.ids
                        .iter()
                        .position(|id| *id == origin)
                        .map(|inc| (x, inc))
                });
                let Some((x, inc)) = sender else {
                    return Err(format!(
                        "seed {seed}: {} was told messages of unknown {origin} are lost",
                        n.id
                    ));
                };
                if !x.gone_unstable(inc) {
                    return Err(format!(
                        "seed {seed}: {} was told {origin}'s messages {first}..={last} are lost, \
                         but {origin} did not go away with unstable messages",
                        n.id
                    ));
                }
                if first == 0 || first > last || last > x.sent[inc].len() as u64 {
                    return Err(format!(
                        "seed {seed}: {} was told {origin}'s messages {first}..={last} are lost, \
                         but {origin} sent {}",
                        n.id,
                        x.sent[inc].len()
                    ));
                }
                if let Some((m, _)) = log.iter().find(|(m, _)| {
                    m.origin == origin
                        && m.incarnation == inc as u32
                        && (first..=last).contains(&m.seq)
                }) {
                    return Err(format!(
                        "seed {seed}: {} delivered {origin}'s message {} and was told it is lost",
                        n.id, m.seq
                    ));
                }
            }
        }
        // Crashed senders: every survivor delivers the same messages of theirs.
        let survivors: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.in_group(*i))
            .collect();
        let gone = self.nodes.iter().flat_map(|x| {
            (0..x.sent.len())
                .filter(|&inc| x.gone_unstable(inc))
                .map(move |inc| (x, inc))
        });
        for (x, inc) in gone {
            let mut reference: Option<(MemberId, ViewId, BTreeSet<u64>)> = None;
            for &i in &survivors {
                let n = &self.nodes[i];
                let got: BTreeSet<u64> = n.logs[n.incarnation as usize]
                    .iter()
                    .filter(|(m, _)| m.origin == x.ids[inc] && m.incarnation == inc as u32)
                    .map(|(m, _)| m.seq)
                    .collect();
                // Compare only on what both were members for.
                let sent = &x.sent[inc];
                match &reference {
                    None => reference = Some((n.id, n.joined, got)),
                    Some((rid, rjoined, rgot)) => {
                        let joined = (*rjoined).max(n.joined);
                        let keep =
                            |s: &u64| sent.get(*s as usize - 1).is_some_and(|v| *v >= joined);
                        let a: BTreeSet<u64> = rgot.iter().copied().filter(keep).collect();
                        let b: BTreeSet<u64> = got.iter().copied().filter(keep).collect();
                        if a != b && self.config.order == Order::Total {
                            return Err(format!(
                                "seed {seed}: survivors {rid} and {} disagree on departed {}'s messages: \
                                 {} vs {} delivered",
                                n.id,
                                x.ids[inc],
                                a.len(),
                                b.len()
                            ));
                        }
                    }
                }
            }
        }
        if self.config.order == Order::Total {
            self.check_total_order()?;
        }
        Ok(())
    }

    /// The members that are in the group at the end order their common messages the same way.
    ///
    /// Members that left or crashed are not compared: a member may have delivered a message
    /// whose final priority only it (and the departed sender) knew, and the survivors then
    /// agree on another place for it (docs/PROTOCOL.md, "What total order promises").
    fn check_total_order(&self) -> Result<(), String> {
        let seed = self.config.seed;
        let logs: Vec<(String, &Vec<(MsgId, Instant)>)> = (0..self.nodes.len())
            .filter(|i| self.in_group(*i))
            .map(|i| {
                let n = &self.nodes[i];
                (format!("{}", n.id), &n.logs[n.incarnation as usize])
            })
            .collect();
        for (a, (an, al)) in logs.iter().enumerate() {
            let pos: HashMap<MsgId, usize> =
                al.iter().enumerate().map(|(i, (m, _))| (*m, i)).collect();
            for (bn, bl) in logs.iter().skip(a + 1) {
                let mut last: Option<(usize, MsgId)> = None;
                for (m, _) in bl.iter() {
                    if let Some(&p) = pos.get(m) {
                        if let Some((lp, lm)) = last {
                            if p < lp {
                                return Err(format!(
                                    "seed {seed}: {an} and {bn} disagree: {bn} delivers {lm:?} before {m:?}"
                                ));
                            }
                        }
                        last = Some((p, *m));
                    }
                }
            }
        }
        Ok(())
    }

    fn describe_missing(&self) -> String {
        let mut out = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            if !self.in_group(i) {
                continue;
            }
            let delivered: BTreeSet<MsgId> = n.logs[n.incarnation as usize]
                .iter()
                .map(|(m, _)| *m)
                .collect();
            let g = n.group.as_ref().expect("in group");
            let missing: usize = self
                .expected(i)
                .into_iter()
                .map(|((o, inc), seqs)| {
                    seqs.into_iter()
                        .filter(|s| {
                            !delivered.contains(&MsgId {
                                origin: o,
                                incarnation: inc,
                                seq: *s,
                            })
                        })
                        .count()
                })
                .sum();
            out.push(format!(
                "{}: missing {missing}, to send {}, paused {}, sizes {:?}, stats {:?}",
                n.id,
                n.to_send,
                g.is_paused(),
                g.buffer_sizes(),
                g.stats()
            ));
        }
        out.join("; ")
    }

    /// Largest buffer sizes any member reached.
    pub fn peak_sizes(&self) -> crate::protocol::BufferSizes {
        let mut p = crate::protocol::BufferSizes::default();
        for n in &self.nodes {
            p.send_buffer = p.send_buffer.max(n.peak.send_buffer);
            p.hold_back = p.hold_back.max(n.peak.hold_back);
            p.hold_back_per_origin = p.hold_back_per_origin.max(n.peak.hold_back_per_origin);
            p.max_stream_held = p.max_stream_held.max(n.peak.max_stream_held);
            p.pending_finals = p.pending_finals.max(n.peak.pending_finals);
            p.departed_streams = p.departed_streams.max(n.peak.departed_streams);
        }
        p
    }

    /// Every delivery log, by member id and membership number.
    pub fn logs(&self) -> Vec<(MemberId, u32, Vec<MsgId>)> {
        self.nodes
            .iter()
            .flat_map(|n| {
                n.logs
                    .iter()
                    .enumerate()
                    .map(move |(inc, l)| (n.id, inc as u32, l.iter().map(|(m, _)| *m).collect()))
            })
            .collect()
    }
}

/// Runs one configuration and checks it.
pub fn run_and_check(config: SimConfig) -> Result<SimReport, String> {
    let mut sim = Simulation::new(config);
    let report = sim.run();
    sim.check(&report)?;
    Ok(report)
}
