//! The control task: one TCP connection to the tracker. It sends requests and matches their
//! replies, forwards view pushes to the data task and the application, answers heartbeats with
//! the client's metrics, and when the connection drops, reconnects with backoff, registers
//! again and re-joins the client's groups.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use super::config::ClientConfig;
use super::data::{DataCommand, DataPlane, Probe, Reports};
use super::delivery::{ClientEvent, GroupView};
use super::error::ClientError;
use super::handle::Shared;
use super::handler::Dispatch;
use super::transport;
use crate::protocol::wire::{
    encode_control, ClientFrame, ErrorCode, FrameDecoder, Hello, Order, Password, Reply, Request,
    ServerFrame, View, ViewDelta, CONTROL_VERSION,
};
use crate::protocol::{GroupId, MemberId};
use crate::tls::ControlStream;

/// Where the answer to a request goes.
pub(crate) type ReplyTo = oneshot::Sender<Result<Reply, ClientError>>;

#[derive(Debug)]
pub(crate) enum Command {
    Request { request: Request, reply: ReplyTo },
    Shutdown,
}

/// An open, registered tracker connection.
pub(crate) struct Session {
    stream: ControlStream,
    decoder: FrameDecoder,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("buffered", &self.decoder.buffered())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Connects, says hello, proves the UDP address (the tracker sends a probe datagram to
    /// it, which the data task hands over in `probes`; its cookie goes back over TCP), and
    /// waits for the welcome.
    pub(crate) async fn open(
        config: &ClientConfig,
        udp_addr: SocketAddr,
        probes: &mut mpsc::Receiver<Probe>,
    ) -> Result<Session, ClientError> {
        let attempt = async {
            let mut stream = transport::connect(config.tracker, &config.trust).await?;
            // Probes of an earlier attempt must not be taken for this one's.
            while probes.try_recv().is_ok() {}
            let hello = ClientFrame::Hello(Hello {
                version: CONTROL_VERSION,
                username: config.username.clone(),
                udp_addr,
            });
            write_frame(&mut stream, &hello).await?;
            let mut session = Session {
                stream,
                decoder: FrameDecoder::new(),
            };
            loop {
                let frame = tokio::select! {
                    frame = session.read_frame() => frame?,
                    Some((from, cookie)) = probes.recv() => {
                        if !from_tracker(from, config.tracker) {
                            tracing::debug!(target: "messenger::client", %from, "address probe from elsewhere ignored");
                            continue;
                        }
                        write_frame(&mut session.stream, &ClientFrame::AddressProof { cookie })
                            .await?;
                        continue;
                    }
                };
                return match frame {
                    ServerFrame::Welcome { .. } => Ok(session),
                    ServerFrame::Error { code, message } => {
                        Err(ClientError::Rejected { code, message })
                    }
                    other => Err(ClientError::Protocol(format!(
                        "expected a welcome, got {other:?}"
                    ))),
                };
            }
        };
        tokio::time::timeout(config.request_timeout, attempt)
            .await
            .map_err(|_| {
                ClientError::TrackerUnavailable(format!("{}: no answer", config.tracker))
            })?
    }

    async fn read_frame(&mut self) -> Result<ServerFrame, ClientError> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            if let Some(frame) = self
                .decoder
                .next_frame::<ServerFrame>()
                .map_err(|e| ClientError::Protocol(e.to_string()))?
            {
                return Ok(frame);
            }
            let n = self.stream.read(&mut buf).await?;
            if n == 0 {
                return Err(ClientError::TrackerUnavailable("connection closed".into()));
            }
            self.decoder.extend(&buf[..n]);
        }
    }
}

/// Whether a probe comes from the tracker's host: probes leave from the address the tracker
/// listens on. (Anyone may send a probe; only the tracker's is worth echoing, since a wrong
/// cookie gets the hello refused.)
fn from_tracker(from: SocketAddr, tracker: SocketAddr) -> bool {
    tracker.ip().is_unspecified() || from.ip().to_canonical() == tracker.ip().to_canonical()
}

async fn write_frame(stream: &mut ControlStream, frame: &ClientFrame) -> Result<(), ClientError> {
    let bytes = encode_control(frame).map_err(|e| ClientError::Protocol(e.to_string()))?;
    stream.write_all(&bytes).await?;
    // TLS may hold the record back until flushed.
    stream.flush().await?;
    Ok(())
}

/// A group this client is in, remembered to re-join it after a reconnection.
#[derive(Debug, Clone)]
struct Membership {
    order: Order,
    password: Option<Password>,
    group: GroupId,
    member: MemberId,
}

struct Control {
    config: ClientConfig,
    shared: Arc<Shared>,
    data: Arc<DataPlane>,
    dispatch: std::sync::mpsc::Sender<Dispatch>,
    /// Address probes the data task received (for the hello of a reconnection) and peers it
    /// found silent (to report to the tracker).
    reports: Reports,
    next_id: u64,
    pending: HashMap<u64, (Request, Option<ReplyTo>)>,
    memberships: BTreeMap<String, Membership>,
    /// Last view seen per group, to tell the application who joined and left.
    views: HashMap<GroupId, View>,
    /// Groups this client asked to leave (their final view is not a removal).
    leaving: Vec<String>,
    /// A quit was sent: the tracker closing the connection is the expected end, not a loss.
    quitting: bool,
}

pub(crate) async fn run(
    config: ClientConfig,
    session: Session,
    shared: Arc<Shared>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    data: Arc<DataPlane>,
    dispatch: std::sync::mpsc::Sender<Dispatch>,
    reports: Reports,
) {
    let mut control = Control {
        config,
        shared,
        data,
        dispatch,
        reports,
        next_id: 1,
        pending: HashMap::new(),
        memberships: BTreeMap::new(),
        views: HashMap::new(),
        leaving: Vec::new(),
        quitting: false,
    };
    let mut session = Some(session);
    loop {
        let Some(current) = session.take() else {
            match control.reconnect(&mut commands).await {
                Some(s) => {
                    session = Some(s);
                    continue;
                }
                None => return,
            }
        };
        match control.serve(current, &mut commands).await {
            Served::Shutdown => return,
            Served::Lost(_) if control.quitting => {
                for (_, (_, reply)) in control.pending.drain() {
                    if let Some(reply) = reply {
                        let _ = reply.send(Ok(Reply::Bye));
                    }
                }
                return;
            }
            Served::Lost(reason) => {
                tracing::warn!(target: "messenger::client", "tracker connection lost: {reason}");
                for (_, (_, reply)) in control.pending.drain() {
                    if let Some(reply) = reply {
                        let _ = reply.send(Err(ClientError::TrackerUnavailable(reason.clone())));
                    }
                }
                let _ = control
                    .dispatch
                    .send(Dispatch::Event(ClientEvent::TrackerLost { reason }));
            }
        }
    }
}

enum Served {
    Shutdown,
    Lost(String),
}

impl Control {
    /// Serves one connection until it drops or the client shuts down.
    async fn serve(
        &mut self,
        mut session: Session,
        commands: &mut mpsc::UnboundedReceiver<Command>,
    ) -> Served {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // Handle every complete frame already buffered.
            loop {
                match session.decoder.next_frame::<ServerFrame>() {
                    Ok(Some(frame)) => {
                        if let Err(reason) = self.on_frame(&mut session, frame).await {
                            return Served::Lost(reason);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return Served::Lost(format!("bad frame from the tracker: {e}")),
                }
            }
            tokio::select! {
                read = session.stream.read(&mut buf) => match read {
                    Ok(0) => return Served::Lost("connection closed by the tracker".into()),
                    Ok(n) => session.decoder.extend(&buf[..n]),
                    Err(e) => return Served::Lost(e.to_string()),
                },
                command = commands.recv() => match command {
                    None | Some(Command::Shutdown) => return Served::Shutdown,
                    Some(Command::Request { request, reply }) => {
                        if let Err(e) = self.send_request(&mut session, request, Some(reply)).await {
                            return Served::Lost(e.to_string());
                        }
                    }
                },
                Some((group, member)) = self.reports.suspects.recv() => {
                    // Only for a group this client is still in (the report names its view's
                    // member id; an old membership's reports mean nothing now).
                    if !self.memberships.contains_key(&*group) {
                        continue;
                    }
                    let request = Request::Suspect { group: group.to_string(), member };
                    if let Err(e) = self.send_request(&mut session, request, None).await {
                        return Served::Lost(e.to_string());
                    }
                }
            }
        }
    }

    async fn send_request(
        &mut self,
        session: &mut Session,
        request: Request,
        reply: Option<ReplyTo>,
    ) -> Result<(), ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        match &request {
            Request::Leave { group } => self.leaving.push(group.clone()),
            Request::Quit { .. } => self.quitting = true,
            _ => {}
        }
        let frame = ClientFrame::Request {
            id,
            request: request.clone(),
        };
        self.pending.insert(id, (request, reply));
        write_frame(&mut session.stream, &frame).await
    }

    async fn on_frame(&mut self, session: &mut Session, frame: ServerFrame) -> Result<(), String> {
        match frame {
            ServerFrame::Reply { id, reply } => {
                let Some((request, waiter)) = self.pending.remove(&id) else {
                    return Err(format!("reply to unknown request {id}"));
                };
                self.after_reply(&request, &reply);
                match (waiter, reply) {
                    (Some(w), reply) => {
                        let _ = w.send(Ok(reply));
                    }
                    // The control task's own request for a view it could not follow.
                    (None, Reply::Members(view)) => self.on_view(view),
                    (None, Reply::Error { code, message }) => tracing::warn!(
                        target: "messenger::client",
                        ?code,
                        "the tracker refused {request:?}: {message}"
                    ),
                    (None, _) => {}
                }
            }
            ServerFrame::ViewChange(view) => self.on_view(view),
            ServerFrame::ViewDelta(delta) => self
                .on_delta(session, delta)
                .await
                .map_err(|e| e.to_string())?,
            ServerFrame::Heartbeat { nonce } => {
                let metrics = self.shared.metrics_report();
                write_frame(
                    &mut session.stream,
                    &ClientFrame::HeartbeatAck { nonce, metrics },
                )
                .await
                .map_err(|e| e.to_string())?;
            }
            ServerFrame::Error { code, message } => {
                return Err(format!("tracker error {code:?}: {message}"));
            }
            ServerFrame::Welcome { .. } => return Err("unexpected second welcome".into()),
        }
        Ok(())
    }

    /// Side effects of a successful reply on the data plane.
    fn after_reply(&mut self, request: &Request, reply: &Reply) {
        match (request, reply) {
            (
                Request::Join {
                    group,
                    order,
                    password,
                },
                Reply::Joined { member, view },
            ) => {
                self.memberships.insert(
                    group.clone(),
                    Membership {
                        order: *order,
                        password: password.clone(),
                        group: view.group,
                        member: *member,
                    },
                );
                // After a reconnection the group may have a new id: compare with the view the
                // client had under the old one, so only real changes are reported.
                let stale = self
                    .views
                    .iter()
                    .find(|(id, v)| v.name == view.name && **id != view.group)
                    .map(|(id, _)| *id);
                let previous = self
                    .views
                    .insert(view.group, view.clone())
                    .or_else(|| stale.and_then(|id| self.views.remove(&id)));
                let _ = self.data.command(DataCommand::Join {
                    member: *member,
                    view: view.clone(),
                });
                let _ = self.dispatch.send(Dispatch::View(GroupView::from_view(
                    view,
                    previous.as_ref(),
                )));
            }
            (Request::Leave { group }, Reply::Left) => {
                // The view pushed to the leaver comes after this reply and changes nothing.
                self.leaving.retain(|g| g != group);
                if let Some(m) = self.memberships.remove(group) {
                    self.views.remove(&m.group);
                    let _ = self.data.command(DataCommand::Leave { group: m.group });
                }
            }
            (Request::Leave { group }, _) => self.leaving.retain(|g| g != group),
            _ => {}
        }
    }

    /// Applies a view change to the view this client holds. A change it cannot apply (it
    /// does not hold the view the change starts from: a bug, or a tracker that lost track)
    /// makes it ask for the group's full view.
    async fn on_delta(
        &mut self,
        session: &mut Session,
        delta: ViewDelta,
    ) -> Result<(), ClientError> {
        let held = self.views.get(&delta.group);
        if let Some(view) = held.and_then(|v| delta.apply(v)) {
            self.on_view(view);
            return Ok(());
        }
        if held.is_some_and(|v| v.id >= delta.view) {
            return Ok(()); // Already past it.
        }
        // Only groups this client is in have views to follow; a leaver's last change (after
        // its `Left` reply) lands here too and needs nothing.
        let Some(name) = self
            .memberships
            .iter()
            .find(|(_, m)| m.group == delta.group)
            .map(|(n, _)| n.clone())
        else {
            return Ok(());
        };
        tracing::warn!(
            target: "messenger::client",
            group = %name,
            from_view = delta.from_view.0,
            view = delta.view.0,
            "cannot apply a view change to {name} (view {} is not held); asking for the full view",
            delta.from_view
        );
        self.send_request(session, Request::ListMembers { group: name }, None)
            .await
    }

    fn on_view(&mut self, view: View) {
        let Some((name, membership)) = self
            .memberships
            .iter()
            .find(|(_, m)| m.group == view.group)
            .map(|(n, m)| (n.clone(), m.clone()))
        else {
            // A view of a group this client left (or the final view after leaving).
            if let Some(pos) = self.leaving.iter().position(|g| *g == view.name) {
                self.leaving.remove(pos);
            }
            return;
        };
        if self.views.get(&view.group).is_some_and(|v| v.id >= view.id) {
            return;
        }
        let previous = self.views.insert(view.group, view.clone());
        let _ = self.data.command(DataCommand::View(view.clone()));
        if view.contains(membership.member) {
            let _ = self.dispatch.send(Dispatch::View(GroupView::from_view(
                &view,
                previous.as_ref(),
            )));
        } else {
            self.memberships.remove(&name);
            self.views.remove(&view.group);
            if let Some(pos) = self.leaving.iter().position(|g| *g == name) {
                self.leaving.remove(pos);
            } else {
                let _ = self
                    .dispatch
                    .send(Dispatch::Event(ClientEvent::Removed { group: name }));
            }
        }
    }

    /// Reconnects with exponential backoff, registers again, re-joins every group. Returns
    /// `None` when the client shuts down meanwhile.
    async fn reconnect(
        &mut self,
        commands: &mut mpsc::UnboundedReceiver<Command>,
    ) -> Option<Session> {
        let mut delay = self.config.reconnect_initial;
        loop {
            // Requests made while disconnected fail at once; shutdown ends the loop.
            let wait = tokio::time::sleep(delay);
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    () = &mut wait => break,
                    command = commands.recv() => match command {
                        None | Some(Command::Shutdown) => return None,
                        Some(Command::Request { reply, .. }) => {
                            let _ = reply.send(Err(ClientError::TrackerUnavailable(
                                "reconnecting to the tracker".into(),
                            )));
                        }
                    },
                }
            }
            delay = (delay * 2).min(self.config.reconnect_max);
            // Reports from before the loss name memberships that the re-join replaces.
            while self.reports.suspects.try_recv().is_ok() {}
            match Session::open(&self.config, self.shared.udp_addr, &mut self.reports.probes).await
            {
                Ok(mut session) => {
                    let rejoined = self.rejoin(&mut session).await;
                    match rejoined {
                        Ok(groups) => {
                            let _ = self
                                .dispatch
                                .send(Dispatch::Event(ClientEvent::Reconnected { groups }));
                            return Some(session);
                        }
                        Err(e) => {
                            tracing::warn!(target: "messenger::client", "re-joining after reconnect: {e}");
                            continue;
                        }
                    }
                }
                Err(ClientError::Rejected {
                    code: ErrorCode::UsernameTaken,
                    ..
                }) => {
                    // The tracker has not noticed our old connection is gone yet.
                    continue;
                }
                Err(e @ ClientError::TrackerNotTrusted(_)) => {
                    // Not a passing failure: say so at every attempt (at most every
                    // `reconnect_max`), the operator has to act.
                    tracing::error!(target: "messenger::client", "cannot reconnect: {e}");
                    continue;
                }
                Err(e) => {
                    tracing::debug!(target: "messenger::client", "reconnect attempt failed: {e}");
                    continue;
                }
            }
        }
    }

    /// Re-joins every remembered group on a fresh session, one request at a time.
    async fn rejoin(&mut self, session: &mut Session) -> Result<Vec<String>, ClientError> {
        let groups: Vec<(String, Membership)> =
            std::mem::take(&mut self.memberships).into_iter().collect();
        self.views.clear();
        let mut rejoined = Vec::new();
        for (name, m) in groups {
            let request = Request::Join {
                group: name.clone(),
                order: m.order,
                password: m.password.clone(),
            };
            let id = self.next_id;
            self.next_id += 1;
            write_frame(
                &mut session.stream,
                &ClientFrame::Request {
                    id,
                    request: request.clone(),
                },
            )
            .await?;
            // Wait for this reply; answer heartbeats and apply pushes meanwhile.
            loop {
                let frame = tokio::time::timeout(self.config.request_timeout, session.read_frame())
                    .await
                    .map_err(|_| {
                        ClientError::TrackerUnavailable("no answer to re-join".into())
                    })??;
                match frame {
                    ServerFrame::Reply { id: rid, reply } if rid == id => {
                        match &reply {
                            Reply::Joined { .. } => {
                                self.after_reply(&request, &reply);
                                rejoined.push(name.clone());
                            }
                            Reply::Error { message, .. } => {
                                let _ = self.dispatch.send(Dispatch::Event(
                                    ClientEvent::RejoinFailed {
                                        group: name.clone(),
                                        reason: message.clone(),
                                    },
                                ));
                                let _ = self.data.command(DataCommand::Leave { group: m.group });
                            }
                            _ => {}
                        }
                        break;
                    }
                    other => self
                        .on_frame(session, other)
                        .await
                        .map_err(ClientError::Protocol)?,
                }
            }
        }
        Ok(rejoined)
    }
}
