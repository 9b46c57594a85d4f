//! The application's handle: [`Client`], and the state it shares with the client's tasks.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::config::ClientConfig;
use super::control;
use super::data::{self, DataCommand, DataPlane};
use super::delivery::GroupView;
use super::error::{unexpected, ClientError};
use super::faults::{FaultConfig, FaultCounters, FaultCounts};
use super::handler::{run_dispatcher, Dispatch, Handler};
use super::metrics::{Metrics, MetricsSnapshot};
use crate::protocol::wire::{GroupInfo, Order, Password, Reply, Request, TrackerStats};

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
    faults: Arc<FaultCounters>,
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
        config.group.validate().map_err(ClientError::Config)?;
        let faults = match config.faults {
            Some(f) => Some(f),
            None => FaultConfig::from_env()?,
        };
        let socket = tokio::net::UdpSocket::bind(config.udp_bind)
            .await
            .map_err(|e| {
                let why = format!("cannot bind the UDP socket to {}: {e}", config.udp_bind);
                ClientError::Io(std::io::Error::new(e.kind(), why))
            })?;
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
        let (probe_tx, probes) = mpsc::channel(data::PROBE_QUEUE);
        let (suspect_tx, suspects) = mpsc::channel(data::SUSPECT_QUEUE);
        let mut reports = data::Reports { probes, suspects };
        let plane = Arc::new(DataPlane::new(config.group.clone(), probe_tx, suspect_tx));
        let fault_counters = Arc::new(FaultCounters::default());
        let data = tokio::spawn(data::run(
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
                password: password.map(Password::new),
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
    /// timeout passes; returns whether everything was stable. It returns `false` at once when
    /// a group goes away (left, removed by the tracker) with messages of this client not yet
    /// stable there: they never will be.
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
            Ok(r) => r.map_err(|_| ClientError::Closed),
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
    pub fn fault_counts(&self) -> FaultCounts {
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
