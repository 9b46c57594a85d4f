//! The data-plane task: owns the client's UDP socket and one protocol [`Group`] per joined
//! group, and drives them: datagrams in, timers, sends; datagrams out, deliveries to the
//! dispatcher.
//!
//! One task, one socket, one timer: after every input it drains each group's transmits and
//! events and sleeps until the earliest `poll_timeout` (or the next delayed datagram of the
//! fault injector).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::faults::{FaultConfig, FaultInjector};
use crate::client::{ClientError, ClientEvent, Dispatch, Message, Shared};
use crate::protocol::wire::{self, View, MAX_DATAGRAM};
use crate::protocol::{Event, Group, GroupConfig, GroupId, MemberId, SendError};

/// Requests to the data task.
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
    Send {
        group: String,
        payload: Bytes,
        reply: oneshot::Sender<Result<u64, ClientError>>,
    },
    /// Answer once every group's own messages are stable.
    Flush {
        reply: oneshot::Sender<()>,
    },
    Shutdown,
}

struct Waiting {
    payload: Bytes,
    reply: oneshot::Sender<Result<u64, ClientError>>,
}

struct Joined {
    name: String,
    group: Group,
    /// Usernames of every member seen in the group's views (departed ones too, for events).
    names: HashMap<MemberId, String>,
    /// Sends waiting for room in the window, in order.
    waiting: VecDeque<Waiting>,
}

struct Driver {
    socket: UdpSocket,
    config: GroupConfig,
    faults: Option<FaultInjector>,
    shared: Arc<Shared>,
    dispatch: std::sync::mpsc::Sender<Dispatch>,
    groups: HashMap<GroupId, Joined>,
    by_name: HashMap<String, GroupId>,
    flush_waiters: Vec<oneshot::Sender<()>>,
    out: Vec<(SocketAddr, Vec<u8>)>,
}

/// Wall-clock microseconds since the Unix epoch: the send stamp carried in data frames, so a
/// receiver on any host with a synchronised clock can measure delivery latency.
pub(crate) fn wall_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

pub(crate) async fn run(
    socket: UdpSocket,
    config: GroupConfig,
    faults: Option<FaultConfig>,
    shared: Arc<Shared>,
    mut commands: mpsc::UnboundedReceiver<DataCommand>,
    dispatch: std::sync::mpsc::Sender<Dispatch>,
) {
    let mut driver = Driver {
        socket,
        config,
        faults: faults
            .filter(FaultConfig::is_active)
            .map(FaultInjector::new),
        shared,
        dispatch,
        groups: HashMap::new(),
        by_name: HashMap::new(),
        flush_waiters: Vec::new(),
        out: Vec::new(),
    };
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let deadline = driver.next_deadline();
        let sleep = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            command = commands.recv() => {
                match command {
                    None | Some(DataCommand::Shutdown) => break,
                    Some(command) => driver.command(command),
                }
                // Take every command already queued before polling outputs: bundles sends.
                let mut stop = false;
                while let Ok(command) = commands.try_recv() {
                    if matches!(command, DataCommand::Shutdown) {
                        stop = true;
                        break;
                    }
                    driver.command(command);
                }
                if stop {
                    break;
                }
            }
            received = driver.socket.recv_from(&mut buf) => {
                match received {
                    Ok((len, from)) => driver.datagram(from, &buf[..len]),
                    Err(e) => tracing::debug!(target: "messenger::runtime", "udp receive: {e}"),
                }
                // Drain what else is queued in the socket before answering.
                for _ in 0..64 {
                    match driver.socket.try_recv_from(&mut buf) {
                        Ok((len, from)) => driver.datagram(from, &buf[..len]),
                        Err(_) => break,
                    }
                }
            }
            () = sleep => driver.timeout(),
        }
        driver.drain().await;
    }
    // Fail whatever still waits.
    for (_, joined) in driver.groups.drain() {
        for w in joined.waiting {
            let _ = w.reply.send(Err(ClientError::Closed));
        }
    }
}

impl Driver {
    fn now() -> Instant {
        Instant::now()
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.groups
            .values()
            .filter_map(|j| j.group.poll_timeout())
            .chain(self.faults.as_ref().and_then(FaultInjector::next_due))
            .min()
    }

    fn command(&mut self, command: DataCommand) {
        let now = Self::now();
        match command {
            DataCommand::Join { member, view } => {
                let id = view.group;
                let name = view.name.clone();
                let names = view
                    .members
                    .iter()
                    .map(|m| (m.id, m.name.clone()))
                    .collect();
                let group = Group::new(self.config.clone(), member, view, now);
                // A re-join replaces the old membership; sends waiting in it carry over.
                let waiting = self
                    .by_name
                    .remove(&name)
                    .and_then(|old| self.groups.remove(&old))
                    .map(|old| old.waiting)
                    .unwrap_or_default();
                self.by_name.insert(name.clone(), id);
                self.groups.insert(
                    id,
                    Joined {
                        name,
                        group,
                        names,
                        waiting,
                    },
                );
                self.retry_waiting(id);
            }
            DataCommand::View(view) => {
                if let Some(j) = self.groups.get_mut(&view.group) {
                    for m in &view.members {
                        j.names.entry(m.id).or_insert_with(|| m.name.clone());
                    }
                    j.group.apply_view(now, view);
                }
            }
            DataCommand::Leave { group } => {
                if let Some(j) = self.groups.remove(&group) {
                    self.by_name.remove(&j.name);
                    for w in j.waiting {
                        let _ = w.reply.send(Err(ClientError::NotJoined(j.name.clone())));
                    }
                }
            }
            DataCommand::Send {
                group,
                payload,
                reply,
            } => {
                let Some(id) = self.by_name.get(&group).copied() else {
                    let _ = reply.send(Err(ClientError::NotJoined(group)));
                    return;
                };
                let Some(j) = self.groups.get_mut(&id) else {
                    let _ = reply.send(Err(ClientError::NotJoined(group)));
                    return;
                };
                if !j.waiting.is_empty() {
                    j.waiting.push_back(Waiting { payload, reply });
                    return;
                }
                self.try_send(id, payload, reply);
            }
            DataCommand::Flush { reply } => self.flush_waiters.push(reply),
            DataCommand::Shutdown => {}
        }
    }

    /// Sends now, or parks the send until the window has room.
    fn try_send(
        &mut self,
        id: GroupId,
        payload: Bytes,
        reply: oneshot::Sender<Result<u64, ClientError>>,
    ) {
        let Some(j) = self.groups.get_mut(&id) else {
            let _ = reply.send(Err(ClientError::Closed));
            return;
        };
        match j.group.send(Self::now(), payload.clone(), wall_micros()) {
            Ok(seq) => {
                self.shared
                    .metrics
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .sent += 1;
                let _ = reply.send(Ok(seq.0));
            }
            Err(SendError::WindowFull) => j.waiting.push_front(Waiting { payload, reply }),
            Err(SendError::TooLarge { len, limit }) => {
                let _ = reply.send(Err(ClientError::TooLarge { len, limit }));
            }
            Err(SendError::NotMember) => {
                let _ = reply.send(Err(ClientError::NotJoined(j.name.clone())));
            }
        }
    }

    fn retry_waiting(&mut self, id: GroupId) {
        loop {
            let Some(j) = self.groups.get_mut(&id) else {
                return;
            };
            let Some(w) = j.waiting.pop_front() else {
                return;
            };
            self.try_send(id, w.payload, w.reply);
            // A send that found the window full went back to the front: wait for Writable.
            if self.groups.get(&id).is_some_and(|j| {
                !j.waiting.is_empty() && j.group.in_flight() as u64 >= self.config.window
            }) {
                return;
            }
        }
    }

    fn datagram(&mut self, from: SocketAddr, bytes: &[u8]) {
        let now = Self::now();
        let group = wire::decode_header(bytes).ok().map(|(h, _)| h.group);
        let accepted = match group.and_then(|g| self.groups.get_mut(&g)) {
            Some(j) => j.group.handle_datagram(now, from, bytes).is_ok(),
            None => false,
        };
        if !accepted {
            self.shared
                .metrics
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .dropped_datagrams += 1;
        }
    }

    fn timeout(&mut self) {
        let now = Self::now();
        for j in self.groups.values_mut() {
            if j.group.poll_timeout().is_some_and(|t| t <= now) {
                j.group.handle_timeout(now);
            }
        }
        if let Some(f) = self.faults.as_mut() {
            while let Some(d) = f.pop_due(now) {
                self.out.push(d);
            }
        }
    }

    /// Sends every queued datagram and hands every event on.
    async fn drain(&mut self) {
        let now = Self::now();
        let mut writable = Vec::new();
        let mut removed = Vec::new();
        let mut batch = Vec::new();
        let mut latencies = Vec::new();
        for (&id, j) in self.groups.iter_mut() {
            take_transmits(&mut j.group, self.faults.as_mut(), now, &mut self.out);
            while let Some(event) = j.group.poll_event() {
                match event {
                    Event::Deliver(d) => {
                        let own = d.origin == j.group.me();
                        let latency = Duration::from_micros(wall_micros().saturating_sub(d.stamp));
                        if !own {
                            latencies.push(latency.as_micros() as u64);
                        }
                        let sender = j
                            .names
                            .get(&d.origin)
                            .cloned()
                            .unwrap_or_else(|| format!("member-{}", d.origin));
                        batch.push(Dispatch::Message(Message {
                            group: j.name.clone(),
                            sender,
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
                    } => {
                        batch.push(Dispatch::Event(ClientEvent::Lost {
                            group: j.name.clone(),
                            sender: j
                                .names
                                .get(&origin)
                                .cloned()
                                .unwrap_or_else(|| format!("member-{origin}")),
                            first: first.0,
                            last: last.0,
                        }));
                    }
                    Event::Writable => writable.push(id),
                    Event::Removed => removed.push(id),
                }
            }
        }
        if !latencies.is_empty() {
            let mut m = self
                .shared
                .metrics
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            m.received += latencies.len() as u64;
            for l in latencies {
                m.latency.record(l);
            }
        }
        match batch.len() {
            0 => {}
            1 => {
                let _ = self.dispatch.send(batch.remove(0));
            }
            _ => {
                let _ = self.dispatch.send(Dispatch::Batch(batch));
            }
        }
        for id in writable {
            self.retry_waiting(id);
            // Sends that went out now produced datagrams too.
            if let Some(j) = self.groups.get_mut(&id) {
                take_transmits(&mut j.group, self.faults.as_mut(), now, &mut self.out);
            }
        }
        for id in removed {
            // The control task reports removals the application did not ask for.
            if let Some(j) = self.groups.remove(&id) {
                self.by_name.remove(&j.name);
                for w in j.waiting {
                    let _ = w.reply.send(Err(ClientError::NotJoined(j.name.clone())));
                }
            }
        }
        if !self.flush_waiters.is_empty() && self.groups.values().all(|j| j.group.in_flight() == 0)
        {
            for w in self.flush_waiters.drain(..) {
                let _ = w.send(());
            }
        }
        for (to, bytes) in self.out.drain(..) {
            match self.socket.try_send_to(&bytes, to) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if let Err(e) = self.socket.send_to(&bytes, to).await {
                        tracing::debug!(target: "messenger::runtime", "udp send to {to}: {e}");
                    }
                }
                Err(e) => tracing::debug!(target: "messenger::runtime", "udp send to {to}: {e}"),
            }
        }
    }
}

/// Moves a group's queued datagrams to `out`, through the fault injector when there is one.
fn take_transmits(
    group: &mut Group,
    mut faults: Option<&mut FaultInjector>,
    now: Instant,
    out: &mut Vec<(SocketAddr, Vec<u8>)>,
) {
    while let Some(t) = group.poll_transmit() {
        match faults.as_deref_mut() {
            Some(f) => f.apply(now, t.to, t.bytes, out),
            None => out.push((t.to, t.bytes)),
        }
    }
}
