//! The data plane: one protocol [`Group`] per joined group behind one lock ([`DataPlane`]),
//! and the task that owns the client's UDP socket and drives them: datagrams in, timers;
//! datagrams out, deliveries to the dispatcher.
//!
//! Sends do not go through the task: [`DataPlane::send`] runs the protocol's send under the
//! lock, gets the sequence number back at once, and wakes the task. A sender that finds the
//! window full waits for the task to report room ([`Event::Writable`]); nobody spins. While the
//! task is busy or waking up, further sends accumulate in the groups' outboxes and leave
//! bundled in the task's next pass: the faster the application sends, the fuller each
//! datagram (see docs/ARCHITECTURE.md, "Data path").
//!
//! One pass of the task: receive what the socket holds (up to [`RECV_BATCH`] datagrams,
//! without the lock), then under the lock hand them to their groups, run due timers and take
//! every group's datagrams and events; then, without the lock, dispatch the events to the
//! callback thread in one batch and send the datagrams.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, Notify};

use super::delivery::{ClientEvent, Message};
use super::error::ClientError;
use super::faults::{FaultConfig, FaultCounters, FaultInjector};
use super::handle::Shared;
use super::handler::Dispatch;
use crate::protocol::wire::{self, View, MAX_DATAGRAM};
use crate::protocol::{Event, Group, GroupConfig, GroupId, MemberId, SendError};

/// Most datagrams taken from the socket in one pass before they are processed.
pub(crate) const RECV_BATCH: usize = 64;

/// An address probe received on the client's UDP socket: who sent it, and its cookie.
pub(crate) type Probe = (SocketAddr, [u8; wire::COOKIE_LEN]);

/// How many address probes wait for the control task at most (the tracker sends a few; more
/// are dropped).
pub(crate) const PROBE_QUEUE: usize = 4;

/// A peer silent on the data plane: the group's name and its member id.
pub(crate) type Suspicion = (Arc<str>, MemberId);

/// How many reports of silent peers wait for the control task at most (a group repeats its
/// report every suspect timeout; more are dropped).
pub(crate) const SUSPECT_QUEUE: usize = 64;

/// What the data task passes to the control task: address probes and silent peers.
#[derive(Debug)]
pub(crate) struct Reports {
    pub(crate) probes: mpsc::Receiver<Probe>,
    pub(crate) suspects: mpsc::Receiver<Suspicion>,
}

/// Requests from the control task and the client handle to the data plane.
#[derive(Debug)]
pub(crate) enum DataCommand {
    /// This client joined (or re-joined) a group: a new membership with this member id.
    Join {
        member: MemberId,
        view: View,
    },
    /// A view pushed by the tracker.
    View(View),
    /// This client left the group: forget it.
    Leave {
        group: GroupId,
    },
    /// Answer once this client's own messages are stable: in `group` (by name), or in every
    /// group when `None`. A group this client is not in is stable. The answer is `false` when a
    /// group it covers goes away (left, removed, replaced by a re-join) with messages not yet
    /// stable: they never will be.
    Flush {
        group: Option<String>,
        reply: oneshot::Sender<bool>,
    },
    Shutdown,
}

/// The data plane is closed (the client shut down).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Closed;

/// The groups of one client, shared by the client handles, the control task and the data
/// task.
#[derive(Debug)]
pub(crate) struct DataPlane {
    core: Mutex<Core>,
    /// Where address probes from the tracker go (to the control task, which proves the
    /// address over TCP); they never reach a group.
    probes: mpsc::Sender<Probe>,
    /// Peers the groups found silent, for the control task to report to the tracker.
    suspects: mpsc::Sender<Suspicion>,
    /// Wakes the data task: there is output to take or a command was applied.
    wake: Notify,
    /// Wakes senders waiting for room in a window (or for the group to go away).
    writable: Notify,
}

#[derive(Debug)]
struct Core {
    config: GroupConfig,
    groups: HashMap<GroupId, Joined>,
    by_name: HashMap<String, GroupId>,
    flush_waiters: Vec<(Option<String>, oneshot::Sender<bool>)>,
    closed: bool,
}

#[derive(Debug)]
struct Joined {
    name: Arc<str>,
    group: Group,
    /// Usernames of every member seen in the group's views (departed ones too, for events).
    names: HashMap<MemberId, Arc<str>>,
}

/// Wall-clock microseconds since the Unix epoch: the send stamp carried in data frames, so a
/// receiver on any host with a synchronised clock can measure delivery latency.
pub(crate) fn wall_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

impl DataPlane {
    pub(crate) fn new(
        config: GroupConfig,
        probes: mpsc::Sender<Probe>,
        suspects: mpsc::Sender<Suspicion>,
    ) -> Self {
        DataPlane {
            probes,
            suspects,
            core: Mutex::new(Core {
                config,
                groups: HashMap::new(),
                by_name: HashMap::new(),
                flush_waiters: Vec::new(),
                closed: false,
            }),
            wake: Notify::new(),
            writable: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies a command from the control task or the handle, and wakes the data task.
    pub(crate) fn command(&self, command: DataCommand) -> Result<(), Closed> {
        let mut core = self.lock();
        if core.closed {
            return Err(Closed);
        }
        let now = Instant::now();
        match command {
            DataCommand::Join { member, view } => {
                let id = view.group;
                let name: Arc<str> = view.name.as_str().into();
                let view_name = view.name.clone();
                let names = view
                    .members
                    .iter()
                    .map(|m| (m.id, Arc::from(m.name.as_str())))
                    .collect();
                let group = Group::new(core.config.clone(), member, view, now);
                // A re-join replaces the old membership.
                if let Some(&old) = core.by_name.get(&view_name) {
                    core.remove_group(old);
                }
                core.by_name.insert(view_name, id);
                core.groups.insert(id, Joined { name, group, names });
            }
            DataCommand::View(view) => {
                if let Some(j) = core.groups.get_mut(&view.group) {
                    for m in &view.members {
                        j.names
                            .entry(m.id)
                            .or_insert_with(|| m.name.as_str().into());
                    }
                    j.group.apply_view(now, view);
                }
            }
            DataCommand::Leave { group } => {
                core.remove_group(group);
            }
            DataCommand::Flush { group, reply } => core.flush_waiters.push((group, reply)),
            DataCommand::Shutdown => core.closed = true,
        }
        drop(core);
        self.wake.notify_one();
        // Senders waiting on a group that went away (or a re-joined one) try again.
        self.writable.notify_waiters();
        Ok(())
    }

    /// Sends `payload` to `group`: returns its sequence number as soon as the protocol took
    /// it, or waits while the group's window is full.
    pub(crate) async fn send(
        &self,
        shared: &Shared,
        group: &str,
        payload: Bytes,
    ) -> Result<u64, ClientError> {
        let mut waited = false;
        loop {
            // Registered before the attempt, so room made in between is not missed.
            let room = self.writable.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut core = self.lock();
                if core.closed {
                    return Err(ClientError::Closed);
                }
                let Some(j) = core
                    .by_name
                    .get(group)
                    .copied()
                    .and_then(|id| core.groups.get_mut(&id))
                else {
                    return Err(ClientError::NotJoined(group.to_string()));
                };
                match j.group.send(Instant::now(), payload.clone(), wall_micros()) {
                    Ok(seq) => {
                        drop(core);
                        self.wake.notify_one();
                        shared
                            .metrics
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .sent += 1;
                        return Ok(seq.0);
                    }
                    Err(SendError::WindowFull) => {
                        drop(core);
                        if !waited {
                            waited = true;
                            shared
                                .metrics
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .window_waits += 1;
                        }
                    }
                    Err(SendError::TooLarge { len, limit }) => {
                        return Err(ClientError::TooLarge { len, limit })
                    }
                    Err(SendError::NotMember) => {
                        return Err(ClientError::NotJoined(group.to_string()))
                    }
                }
            }
            room.await;
        }
    }
}

/// What one pass of the data task takes out of the groups, to act on without the lock.
#[derive(Default)]
struct Pass {
    out: Vec<(SocketAddr, Vec<u8>)>,
    dispatch: Vec<Dispatch>,
    latencies: Vec<u64>,
    dropped: u64,
    writable: bool,
    flushed: Vec<oneshot::Sender<bool>>,
    suspects: Vec<Suspicion>,
}

/// Datagrams received in one pass. Each is copied once, from the receive buffer into a large
/// shared arena, and handed on as a slice of it: the payloads delivered are slices too (no
/// allocation per message).
struct Received {
    scratch: Vec<u8>,
    arena: BytesMut,
    datagrams: Vec<(SocketAddr, Bytes)>,
}

/// Size of one receive arena; a new one starts when the current one is full (the old one is
/// freed once the last message in it is delivered and dropped).
const ARENA: usize = 256 * 1024;

impl Received {
    fn new() -> Self {
        Received {
            scratch: vec![0; MAX_DATAGRAM],
            arena: BytesMut::new(),
            datagrams: Vec::new(),
        }
    }

    /// Takes what the socket holds, up to [`RECV_BATCH`] datagrams, without waiting.
    fn fill(&mut self, socket: &UdpSocket) {
        self.datagrams.clear();
        while self.datagrams.len() < RECV_BATCH {
            match socket.try_recv_from(&mut self.scratch) {
                Ok((len, from)) => {
                    if self.arena.capacity() - self.arena.len() < len {
                        self.arena = BytesMut::with_capacity(ARENA.max(len));
                    }
                    self.arena.extend_from_slice(&self.scratch[..len]);
                    self.datagrams.push((from, self.arena.split().freeze()));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    // ICMP errors from a departed peer's port, for example: not fatal.
                    tracing::debug!(target: "messenger::data", "udp receive: {e}");
                    break;
                }
            }
        }
    }
}

/// The data task: runs until the plane is shut down.
pub(crate) async fn run(
    plane: Arc<DataPlane>,
    socket: UdpSocket,
    faults: Option<FaultConfig>,
    fault_counters: Arc<FaultCounters>,
    shared: Arc<Shared>,
    dispatch: std::sync::mpsc::Sender<Dispatch>,
) {
    let mut faults = faults
        .filter(FaultConfig::is_active)
        .map(|config| FaultInjector::with_counters(config, fault_counters));
    let mut received = Received::new();
    let mut pass = Pass::default();
    loop {
        let deadline = {
            let core = plane.lock();
            if core.closed {
                break;
            }
            core.next_deadline()
                .into_iter()
                .chain(faults.as_ref().and_then(FaultInjector::next_due))
                .min()
        };
        let sleep = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
                None => std::future::pending().await,
            }
        };
        let mut readable = false;
        tokio::select! {
            () = plane.wake.notified() => {}
            r = socket.readable() => readable = r.is_ok(),
            () = sleep => {}
        }
        if readable {
            received.fill(&socket);
        }
        {
            let mut core = plane.lock();
            let now = Instant::now();
            for (from, bytes) in received.datagrams.drain(..) {
                if let Some(cookie) = wire::decode_address_probe(&bytes) {
                    // For the control task; a full queue drops it (the tracker sends again).
                    let _ = plane.probes.try_send((from, cookie));
                    continue;
                }
                if !core.datagram(now, from, &bytes) {
                    pass.dropped += 1;
                }
            }
            core.timeouts(now);
            core.take(now, faults.as_mut(), &mut pass);
        }
        if let Some(f) = faults.as_mut() {
            let now = Instant::now();
            while let Some(d) = f.pop_due(now) {
                pass.out.push(d);
            }
        }
        deliver(&plane, &shared, &dispatch, &mut pass);
        for (to, bytes) in pass.out.drain(..) {
            match socket.try_send_to(&bytes, to) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if let Err(e) = socket.send_to(&bytes, to).await {
                        tracing::debug!(target: "messenger::data", "udp send to {to}: {e}");
                    }
                }
                Err(e) => tracing::debug!(target: "messenger::data", "udp send to {to}: {e}"),
            }
        }
    }
    // Senders still waiting see the plane closed.
    plane.writable.notify_waiters();
}

/// Hands a pass's events to the dispatcher thread and its counters to the metrics.
fn deliver(
    plane: &DataPlane,
    shared: &Shared,
    dispatch: &std::sync::mpsc::Sender<Dispatch>,
    pass: &mut Pass,
) {
    if !pass.latencies.is_empty() || pass.dropped > 0 {
        let mut m = shared.metrics.lock().unwrap_or_else(|e| e.into_inner());
        m.received += pass.latencies.len() as u64;
        m.dropped_datagrams += pass.dropped;
        for &l in &pass.latencies {
            m.latency.record(l);
        }
    }
    pass.latencies.clear();
    pass.dropped = 0;
    match pass.dispatch.len() {
        0 => {}
        1 => {
            let _ = dispatch.send(pass.dispatch.remove(0));
        }
        n => {
            // The next pass likely produces as many: one allocation instead of regrowing.
            let batch = std::mem::replace(&mut pass.dispatch, Vec::with_capacity(n));
            let _ = dispatch.send(Dispatch::Batch(batch));
        }
    }
    if std::mem::take(&mut pass.writable) {
        plane.writable.notify_waiters();
    }
    for w in pass.flushed.drain(..) {
        let _ = w.send(true);
    }
    // Fire and forget: the control task reports them; the data plane never waits for it.
    for (group, member) in pass.suspects.drain(..) {
        tracing::info!(
            target: "messenger::data",
            group = %group,
            member = member.0,
            "member {member} of {group} holds the group up (silent on the data plane, or not \
             acknowledging, proposing or finalizing); reporting it to the tracker"
        );
        if plane.suspects.try_send((group, member)).is_err() {
            tracing::debug!(target: "messenger::data", "report of a member dropped: queue full");
        }
    }
}

impl Core {
    /// Takes group `id` out of the data plane. Waiters for stability that cover it are told
    /// "not stable" at once if it still had messages in flight: those never will be.
    fn remove_group(&mut self, id: GroupId) -> Option<Joined> {
        let j = self.groups.remove(&id)?;
        self.by_name.remove(&*j.name);
        if j.group.in_flight() > 0 {
            let covers = |g: &Option<String>| g.as_deref().is_none_or(|g| g == &*j.name);
            let (unstable, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.flush_waiters)
                .into_iter()
                .partition(|(g, _)| covers(g));
            self.flush_waiters = waiting;
            for (_, reply) in unstable {
                let _ = reply.send(false);
            }
        }
        Some(j)
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.groups
            .values()
            .filter_map(|j| j.group.poll_timeout())
            .min()
    }

    /// Hands one datagram to its group; false when nobody took it.
    fn datagram(&mut self, now: Instant, from: SocketAddr, bytes: &Bytes) -> bool {
        let group = wire::decode_header(bytes).ok().map(|(h, _)| h.group);
        match group.and_then(|g| self.groups.get_mut(&g)) {
            Some(j) => j.group.handle_datagram_shared(now, from, bytes).is_ok(),
            None => false,
        }
    }

    fn timeouts(&mut self, now: Instant) {
        for j in self.groups.values_mut() {
            if j.group.poll_timeout().is_some_and(|t| t <= now) {
                j.group.handle_timeout(now);
            }
        }
    }

    /// Takes every group's datagrams and events into `pass`.
    fn take(&mut self, now: Instant, mut faults: Option<&mut FaultInjector>, pass: &mut Pass) {
        let mut removed = Vec::new();
        // One clock read per pass: latency is measured to the pass that delivers.
        let wall = wall_micros();
        for (&id, j) in self.groups.iter_mut() {
            while let Some(t) = j.group.poll_transmit() {
                match faults.as_deref_mut() {
                    Some(f) => f.apply(now, t.to, t.bytes, &mut pass.out),
                    None => pass.out.push((t.to, t.bytes)),
                }
            }
            let me = j.group.me();
            while let Some(event) = j.group.poll_event() {
                match event {
                    Event::Deliver(d) => {
                        let own = d.origin == me;
                        let latency = Duration::from_micros(wall.saturating_sub(d.stamp));
                        if !own {
                            pass.latencies.push(latency.as_micros() as u64);
                        }
                        pass.dispatch.push(Dispatch::Message(Message {
                            group: j.name.clone(),
                            sender: sender_name(&j.names, d.origin),
                            sender_id: d.origin,
                            seq: d.seq.0,
                            payload: d.payload,
                            latency,
                            own,
                        }));
                    }
                    Event::Lost {
                        origin,
                        first,
                        last,
                    } => pass.dispatch.push(Dispatch::Event(ClientEvent::Lost {
                        group: j.name.to_string(),
                        sender: sender_name(&j.names, origin).to_string(),
                        first: first.0,
                        last: last.0,
                    })),
                    Event::Writable => pass.writable = true,
                    // The control task reports removals the application did not ask for.
                    Event::Removed => removed.push(id),
                    // Reported to the tracker by the control task (see `client/control.rs`).
                    Event::Suspect { member } => pass.suspects.push((j.name.clone(), member)),
                }
            }
        }
        for id in removed {
            if self.remove_group(id).is_some() {
                pass.writable = true;
            }
        }
        if !self.flush_waiters.is_empty() {
            let stable = |group: &Joined| group.group.in_flight() == 0;
            let (groups, by_name) = (&self.groups, &self.by_name);
            let done = |name: &Option<String>| match name {
                None => groups.values().all(stable),
                Some(name) => by_name
                    .get(name.as_str())
                    .and_then(|id| groups.get(id))
                    .is_none_or(stable),
            };
            let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.flush_waiters)
                .into_iter()
                .partition(|(name, _)| done(name));
            self.flush_waiters = waiting;
            pass.flushed
                .extend(ready.into_iter().map(|(_, reply)| reply));
        }
    }
}

fn sender_name(names: &HashMap<MemberId, Arc<str>>, id: MemberId) -> Arc<str> {
    names
        .get(&id)
        .cloned()
        .unwrap_or_else(|| format!("member-{id}").into())
}
