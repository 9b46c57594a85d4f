//! The client: connect to a tracker, join groups, send, and receive deliveries, view changes
//! and connection events through a [`Handler`].
//!
//! ```no_run
//! use messenger_core::client::{Callbacks, Client, ClientConfig};
//! use messenger_core::Order;
//!
//! # async fn demo() -> Result<(), messenger_core::client::ClientError> {
//! let config = ClientConfig::new("127.0.0.1:50000".parse().unwrap(), "alice");
//! let handler = Callbacks::new().on_message(|m| println!("{} says {}", m.sender, m.text()));
//! let client = Client::connect(config, handler).await?;
//! client.join("lobby", Order::Total, None).await?;
//! client.send("lobby", "hello").await?;
//! let metrics = client.quit().await?;
//! println!("{metrics}");
//! # Ok(()) }
//! ```
//!
//! Tasks: a control task owns the tracker connection (requests, view pushes, heartbeats,
//! reconnection); a data task (`runtime::driver`) owns the UDP socket and every group's
//! protocol state machine; a dispatcher thread runs the handler's callbacks, one at a time, in
//! delivery order per group. Callbacks may call back into the client (a
//! [`BlockingClient`](blocking::BlockingClient) too): the dispatcher is an OS thread outside the
//! runtime, and nothing waits for it.

pub mod blocking;
mod control;
pub mod metrics;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::protocol::wire::{ErrorCode, GroupInfo, Order, Reply, Request, TrackerStats, View};
use crate::protocol::{GroupConfig, GroupId, MemberId};
use crate::runtime::driver::{self, DataCommand, DataPlane};
use crate::runtime::faults::FaultConfig;
use metrics::Metrics;
pub use metrics::MetricsSnapshot;

/// How a client connects and behaves.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The tracker's TCP address.
    pub tracker: SocketAddr,
    pub username: String,
    /// Where to bind the UDP socket (port 0 picks a free port).
    pub udp_bind: SocketAddr,
    /// Protocol limits and timers for every group.
    pub group: GroupConfig,
    /// Faults injected on outgoing datagrams; `None` reads `MESSENGER_FAULTS`.
    pub faults: Option<FaultConfig>,
    /// How long to wait for the tracker to answer a request (or the first connection).
    pub request_timeout: Duration,
    /// How long [`Client::leave`] waits for this client's messages in the group to be
    /// stable (held by every member) before it leaves anyway (default 2 s).
    pub leave_timeout: Duration,
    /// First and largest delay between reconnection attempts.
    pub reconnect_initial: Duration,
    pub reconnect_max: Duration,
}

impl ClientConfig {
    pub fn new(tracker: SocketAddr, username: impl Into<String>) -> Self {
        ClientConfig {
            tracker,
            username: username.into(),
            udp_bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            group: GroupConfig::default(),
            faults: None,
            request_timeout: Duration::from_secs(5),
            leave_timeout: Duration::from_secs(2),
            reconnect_initial: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
        }
    }
}

/// A delivered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The group's name (shared by every message of the group: no allocation per message).
    pub group: Arc<str>,
    /// The sender's username (shared likewise).
    pub sender: Arc<str>,
    /// The sender's member id in the group (one membership).
    pub sender_id: MemberId,
    /// The sender's sequence number in the group, from 1.
    pub seq: u64,
    pub payload: Bytes,
    /// From the sender's send to this delivery (wall clocks of both hosts).
    pub latency: Duration,
    /// True for this client's own messages (delivered back in the group's order).
    pub own: bool,
}

impl Message {
    /// The payload as text (invalid UTF-8 replaced).
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.payload)
    }
}

/// A member as the application sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: MemberId,
    pub name: String,
    pub addr: SocketAddr,
}

/// A group's new membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    pub group: String,
    /// The tracker's number for the group (what datagrams carry).
    pub group_id: GroupId,
    pub order: Order,
    pub view_id: u64,
    pub members: Vec<Member>,
    /// Usernames that joined since the previous view this client saw.
    pub joined: Vec<String>,
    /// Usernames that left (or failed) since the previous view.
    pub left: Vec<String>,
}

impl GroupView {
    fn from_view(view: &View, previous: Option<&View>) -> Self {
        let names = |v: Option<&View>| -> Vec<String> {
            v.map(|v| v.members.iter().map(|m| m.name.clone()).collect())
                .unwrap_or_default()
        };
        let (now, before) = (names(Some(view)), names(previous));
        GroupView {
            group: view.name.clone(),
            group_id: view.group,
            order: view.order,
            view_id: view.id.0,
            members: view
                .members
                .iter()
                .map(|m| Member {
                    id: m.id,
                    name: m.name.clone(),
                    addr: m.addr,
                })
                .collect(),
            joined: now
                .iter()
                .filter(|n| !before.contains(n))
                .cloned()
                .collect(),
            left: before
                .iter()
                .filter(|n| !now.contains(n))
                .cloned()
                .collect(),
        }
    }
}

/// Connection and group events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The tracker connection dropped; delivery among known members goes on, and the client
    /// reconnects by itself.
    TrackerLost { reason: String },
    /// Back in touch with the tracker, registered again and re-joined these groups (as new
    /// memberships).
    Reconnected { groups: Vec<String> },
    /// Re-joining a group after reconnecting failed.
    RejoinFailed { group: String, reason: String },
    /// The tracker removed this client from a group it did not leave.
    Removed { group: String },
    /// Messages `first..=last` of a member that left or failed can never be delivered.
    Lost {
        group: String,
        sender: String,
        first: u64,
        last: u64,
    },
}

/// Receives deliveries, views and events, on the client's dispatcher thread.
///
/// Calls are serial, and for one group in delivery order. A callback may call into the client.
pub trait Handler: Send + 'static {
    fn on_message(&mut self, message: Message) {
        let _ = message;
    }
    fn on_view(&mut self, view: GroupView) {
        let _ = view;
    }
    fn on_event(&mut self, event: ClientEvent) {
        let _ = event;
    }
}

/// A handler that ignores everything.
impl Handler for () {}

type Callback<T> = Box<dyn FnMut(T) + Send>;

/// A [`Handler`] made of closures.
#[derive(Default)]
pub struct Callbacks {
    message: Option<Callback<Message>>,
    view: Option<Callback<GroupView>>,
    event: Option<Callback<ClientEvent>>,
}

impl std::fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callbacks").finish_non_exhaustive()
    }
}

impl Callbacks {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn on_message(mut self, f: impl FnMut(Message) + Send + 'static) -> Self {
        self.message = Some(Box::new(f));
        self
    }

    pub fn on_view(mut self, f: impl FnMut(GroupView) + Send + 'static) -> Self {
        self.view = Some(Box::new(f));
        self
    }

    pub fn on_event(mut self, f: impl FnMut(ClientEvent) + Send + 'static) -> Self {
        self.event = Some(Box::new(f));
        self
    }
}

impl Handler for Callbacks {
    fn on_message(&mut self, message: Message) {
        if let Some(f) = &mut self.message {
            f(message)
        }
    }
    fn on_view(&mut self, view: GroupView) {
        if let Some(f) = &mut self.view {
            f(view)
        }
    }
    fn on_event(&mut self, event: ClientEvent) {
        if let Some(f) = &mut self.event {
            f(event)
        }
    }
}

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The tracker refused the request.
    #[error("{message}")]
    Rejected { code: ErrorCode, message: String },
    #[error("tracker unavailable: {0}")]
    TrackerUnavailable(String),
    #[error("the client is closed")]
    Closed,
    #[error("not a member of group {0}")]
    NotJoined(String),
    #[error("payload of {len} bytes exceeds the limit of {limit}")]
    TooLarge { len: usize, limit: usize },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The tracker's error code, for rejections.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Rejected { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// What the dispatcher thread delivers to the handler.
pub(crate) enum Dispatch {
    Message(Message),
    View(GroupView),
    Event(ClientEvent),
    /// Everything one pass of the data task produced: one wake-up of the dispatcher thread
    /// instead of one per message.
    Batch(Vec<Dispatch>),
}

/// State shared by the handle and the tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) username: String,
    pub(crate) udp_addr: SocketAddr,
    pub(crate) metrics: Mutex<Metrics>,
}

impl Shared {
    pub(crate) fn metrics_report(&self) -> crate::protocol::wire::MetricsReport {
        let m = self.metrics.lock().unwrap_or_else(|e| e.into_inner());
        m.report(Instant::now())
    }

    pub(crate) fn metrics_snapshot(&self) -> MetricsSnapshot {
        let m = self.metrics.lock().unwrap_or_else(|e| e.into_inner());
        m.snapshot(Instant::now())
    }
}

/// A connected client. Cheap to clone; every clone drives the same connection.
#[derive(Debug, Clone)]
pub struct Client {
    shared: Arc<Shared>,
    request_timeout: Duration,
    leave_timeout: Duration,
    control: mpsc::UnboundedSender<control::Command>,
    data: Arc<DataPlane>,
    tasks: Arc<Mutex<Tasks>>,
    faults: Arc<crate::runtime::faults::FaultCounters>,
}

#[derive(Debug, Default)]
struct Tasks {
    control: Option<tokio::task::JoinHandle<()>>,
    data: Option<tokio::task::JoinHandle<()>>,
    dispatcher: Option<std::thread::JoinHandle<()>>,
}

impl Client {
    /// Binds the UDP socket, registers with the tracker and starts the client's tasks on the
    /// current tokio runtime.
    pub async fn connect(
        config: ClientConfig,
        handler: impl Handler,
    ) -> Result<Client, ClientError> {
        let faults = match config.faults {
            Some(f) => Some(f),
            None => FaultConfig::from_env().map_err(|e| ClientError::Config(e.to_string()))?,
        };
        let socket = tokio::net::UdpSocket::bind(config.udp_bind).await?;
        let udp_addr = socket.local_addr()?;
        let request_timeout = config.request_timeout;
        let leave_timeout = config.leave_timeout;
        let shared = Arc::new(Shared {
            username: config.username.clone(),
            udp_addr,
            metrics: Mutex::new(Metrics::new(Instant::now())),
        });

        let (dispatch_tx, dispatch_rx) = std::sync::mpsc::channel::<Dispatch>();
        let dispatcher = std::thread::Builder::new()
            .name(format!("messenger-callbacks-{}", config.username))
            .spawn(move || run_dispatcher(handler, dispatch_rx))?;

        // The data task runs before the hello: it receives the tracker's address probe.
        let (probe_tx, probes) = mpsc::channel(driver::PROBE_QUEUE);
        let (suspect_tx, suspects) = mpsc::channel(driver::SUSPECT_QUEUE);
        let mut reports = driver::Reports { probes, suspects };
        let plane = Arc::new(DataPlane::new(config.group.clone(), probe_tx, suspect_tx));
        let fault_counters = Arc::new(crate::runtime::faults::FaultCounters::default());
        let data = tokio::spawn(driver::run(
            plane.clone(),
            socket,
            faults,
            fault_counters.clone(),
            shared.clone(),
            dispatch_tx.clone(),
        ));
        let session = match control::Session::open(&config, udp_addr, &mut reports.probes).await {
            Ok(session) => session,
            Err(e) => {
                // Stops the data task; the dispatcher ends with the last sender.
                let _ = plane.command(DataCommand::Shutdown);
                let _ = data.await;
                drop(dispatch_tx);
                let _ = tokio::task::spawn_blocking(move || dispatcher.join()).await;
                return Err(e);
            }
        };
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let control = tokio::spawn(control::run(
            config,
            session,
            shared.clone(),
            control_rx,
            plane.clone(),
            dispatch_tx,
            reports,
        ));
        Ok(Client {
            shared,
            request_timeout,
            leave_timeout,
            control: control_tx,
            data: plane,
            tasks: Arc::new(Mutex::new(Tasks {
                control: Some(control),
                data: Some(data),
                dispatcher: Some(dispatcher),
            })),
            faults: fault_counters,
        })
    }

    pub fn username(&self) -> &str {
        &self.shared.username
    }

    /// The address peers send datagrams to.
    pub fn udp_addr(&self) -> SocketAddr {
        self.shared.udp_addr
    }

    async fn request(&self, request: Request) -> Result<Reply, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.control
            .send(control::Command::Request { request, reply: tx })
            .map_err(|_| ClientError::Closed)?;
        let reply = tokio::time::timeout(self.request_timeout, rx)
            .await
            .map_err(|_| ClientError::TrackerUnavailable("no answer from the tracker".into()))?
            .map_err(|_| ClientError::Closed)??;
        match reply {
            Reply::Error { code, message } => Err(ClientError::Rejected { code, message }),
            other => Ok(other),
        }
    }

    /// Joins `group`, creating it with `order` if it does not exist. Returns the view that
    /// added this client.
    pub async fn join(
        &self,
        group: &str,
        order: Order,
        password: Option<&str>,
    ) -> Result<GroupView, ClientError> {
        match self
            .request(Request::Join {
                group: group.to_string(),
                order,
                password: password.map(str::to_string),
            })
            .await?
        {
            Reply::Joined { view, .. } => Ok(GroupView::from_view(&view, None)),
            other => Err(unexpected(other)),
        }
    }

    /// Leaves `group`, after waiting until every message this client sent in it is stable
    /// (every member has it), for at most `ClientConfig::leave_timeout`: a message sent
    /// just before `leave` still reaches the others, unless they cannot get it in that time
    /// (then the client leaves anyway, and the message may be lost; a warning is logged).
    pub async fn leave(&self, group: &str) -> Result<(), ClientError> {
        if !self
            .wait_stable(Some(group.to_string()), self.leave_timeout)
            .await?
        {
            tracing::warn!(
                target: "messenger::client",
                group,
                "leaving {group} before every member has this client's messages ({} ms passed)",
                self.leave_timeout.as_millis()
            );
        }
        match self
            .request(Request::Leave {
                group: group.to_string(),
            })
            .await?
        {
            Reply::Left => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Sends `payload` to every other member of `group`. Waits while the group's send window
    /// is full (flow control); returns the message's sequence number.
    pub async fn send(&self, group: &str, payload: impl Into<Bytes>) -> Result<u64, ClientError> {
        self.data.send(&self.shared, group, payload.into()).await
    }

    /// Waits until every message this client sent is stable (held by every member), or the
    /// timeout passes; returns whether everything was stable.
    pub async fn flush(&self, timeout: Duration) -> Result<bool, ClientError> {
        self.wait_stable(None, timeout).await
    }

    /// Waits until this client's messages in `group` (every group when `None`) are stable,
    /// or `timeout` passes; returns whether they are.
    async fn wait_stable(
        &self,
        group: Option<String>,
        timeout: Duration,
    ) -> Result<bool, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.data
            .command(DataCommand::Flush { group, reply: tx })
            .map_err(|_| ClientError::Closed)?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(r) => r.map_err(|_| ClientError::Closed).map(|()| true),
            Err(_) => Ok(false),
        }
    }

    /// Every group on the tracker, in name order. The tracker answers in pages of at most
    /// [`GROUPS_PAGE`](crate::protocol::wire::GROUPS_PAGE) groups; this fetches every page
    /// (one request each), so a group created or deleted meanwhile may or may not be listed.
    pub async fn groups(&self) -> Result<Vec<GroupInfo>, ClientError> {
        let mut all: Vec<GroupInfo> = Vec::new();
        loop {
            let after = all.last().map(|g| g.name.clone());
            match self.request(Request::ListGroups { after }).await? {
                Reply::Groups { groups, more } => {
                    let progress = !groups.is_empty();
                    all.extend(groups);
                    // A page that lists nothing cannot advance the cursor.
                    if !more || !progress {
                        return Ok(all);
                    }
                }
                other => return Err(unexpected(other)),
            }
        }
    }

    /// The members of `group`.
    pub async fn members(&self, group: &str) -> Result<GroupView, ClientError> {
        match self
            .request(Request::ListMembers {
                group: group.to_string(),
            })
            .await?
        {
            Reply::Members(view) => Ok(GroupView::from_view(&view, None)),
            other => Err(unexpected(other)),
        }
    }

    /// Tracker-wide counters.
    pub async fn tracker_stats(&self) -> Result<TrackerStats, ClientError> {
        match self.request(Request::Stats).await? {
            Reply::Stats(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }

    /// This client's metrics so far.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.metrics_snapshot()
    }

    /// What the fault injector ([`ClientConfig::faults`] or `MESSENGER_FAULTS`) did to this
    /// client's outgoing datagrams so far; all zero without faults.
    pub fn fault_counts(&self) -> crate::runtime::FaultCounts {
        self.faults.counts()
    }

    /// Reports the metrics to the tracker, leaves every group, and stops the client. Returns
    /// the final metrics. Later calls on any clone fail with [`ClientError::Closed`].
    pub async fn quit(&self) -> Result<MetricsSnapshot, ClientError> {
        let (metrics, window_waits) = {
            let m = self
                .shared
                .metrics
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            (m.report(Instant::now()), m.window_waits)
        };
        let result = self.request(Request::Quit { metrics }).await;
        self.shutdown().await;
        match result {
            Ok(_) | Err(ClientError::TrackerUnavailable(_)) => {
                Ok(MetricsSnapshot::new(&metrics, window_waits))
            }
            Err(e) => Err(e),
        }
    }

    /// Stops the tasks without telling the tracker (it notices the closed connection).
    ///
    /// When it returns (unless it was called from a callback), no callback runs any more and
    /// the handler has been dropped, on the dispatcher thread, after its last callback.
    pub async fn shutdown(&self) {
        let _ = self.data.command(DataCommand::Shutdown);
        let _ = self.control.send(control::Command::Shutdown);
        let (control, data, dispatcher) = {
            let mut t = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
            (t.control.take(), t.data.take(), t.dispatcher.take())
        };
        if let Some(h) = control {
            let _ = h.await;
        }
        if let Some(h) = data {
            let _ = h.await;
        }
        if let Some(h) = dispatcher {
            // The dispatcher ends once both tasks dropped their senders; joining it must not
            // block the runtime, and must not deadlock when called from a callback.
            if h.thread().id() != std::thread::current().id() {
                let _ = tokio::task::spawn_blocking(move || h.join()).await;
            }
        }
    }
}

fn unexpected(reply: Reply) -> ClientError {
    ClientError::Protocol(format!("unexpected reply {reply:?}"))
}

/// Runs the handler's callbacks on this thread until every sender is gone. A panicking
/// callback is reported and does not stop later deliveries.
fn run_dispatcher(mut handler: impl Handler, rx: std::sync::mpsc::Receiver<Dispatch>) {
    while let Ok(item) = rx.recv() {
        dispatch(&mut handler, item);
    }
}

fn dispatch(handler: &mut impl Handler, item: Dispatch) {
    let item = match item {
        Dispatch::Batch(items) => {
            for item in items {
                dispatch(handler, item);
            }
            return;
        }
        other => other,
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match item {
        Dispatch::Message(m) => handler.on_message(m),
        Dispatch::View(v) => handler.on_view(v),
        Dispatch::Event(e) => handler.on_event(e),
        Dispatch::Batch(_) => {}
    }));
    if result.is_err() {
        tracing::error!(target: "messenger::client", "a handler callback panicked; delivery goes on");
    }
}
