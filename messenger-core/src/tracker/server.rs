//! The accept loop and the tracker's lifetime: bind, serve until a shutdown future resolves,
//! then close every connection.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{error, info, warn};

use crate::protocol::wire::TrackerStats;
use crate::tls::{Fingerprint, TrackerIdentity};

use super::config::TrackerConfig;
use super::connection;
use super::hub::Hub;
use super::limits::{ConnectionLimiter, PartialBudget};
use super::log::{MetricsLog, Plausibility, TRACKER_TARGET};
use super::store::{MemoryStore, Store};
use super::transport;

/// Most refused connections whose TLS handshake may be under way at once (each to tell the
/// client why it is refused); past it, refused connections are closed without a word.
const MAX_REFUSALS: usize = 64;

/// Pause after a failed accept (typically: out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What the accept loop and every connection share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) hub: Hub,
    pub(crate) config: TrackerConfig,
    pub(crate) metrics_log: MetricsLog,
    pub(crate) connections: Arc<ConnectionLimiter>,
    pub(crate) partial: Arc<PartialBudget>,
    /// Sends the address probes (non-blocking; a probe is one small datagram).
    pub(crate) probe_socket: std::net::UdpSocket,
    /// The TLS acceptor and the certificate's fingerprint (none when insecure).
    pub(crate) identity: TrackerIdentity,
}

/// A tracker bound to its TCP port, ready to [`run`](Tracker::run).
#[derive(Debug)]
pub struct Tracker {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Tracker {
    /// Binds the tracker's TCP port (port 0 picks a free one) with the embedded
    /// [`MemoryStore`]. Fails if the port cannot be bound, the JSON metrics file (when
    /// configured) cannot be opened, or the TLS key and certificate cannot be loaded or (the
    /// first time, in a state directory) created.
    pub async fn bind(addr: SocketAddr, config: TrackerConfig) -> io::Result<Tracker> {
        let listener = TcpListener::bind(addr).await?;
        Tracker::from_listener(listener, config)
    }

    /// A tracker on an already bound listener, with the embedded [`MemoryStore`].
    pub fn from_listener(listener: TcpListener, config: TrackerConfig) -> io::Result<Tracker> {
        let store = MemoryStore::with_limits(config.policy.clone(), config.registry_limits());
        Tracker::with_store(listener, config, store)
    }

    /// A tracker on an already bound listener, keeping its registry in `store` (the store
    /// enforces its own access policy and group limits; `config.policy`, `max_groups`,
    /// `max_groups_per_client` and `default_max_members` are not used).
    pub fn with_store(
        listener: TcpListener,
        config: TrackerConfig,
        store: impl Store + 'static,
    ) -> io::Result<Tracker> {
        let local_addr = listener.local_addr()?;
        let identity = TrackerIdentity::load(&config.tls)?;
        // Probes leave from the address clients reach the tracker at.
        let probe_socket = std::net::UdpSocket::bind(SocketAddr::new(local_addr.ip(), 0))?;
        probe_socket.set_nonblocking(true)?;
        let metrics_log = MetricsLog::open(
            config.log_json.as_deref(),
            Plausibility {
                max_rate: config.max_plausible_rate,
                max_latency_micros: u64::try_from(config.max_plausible_latency.as_micros())
                    .unwrap_or(u64::MAX),
            },
        )?;
        Ok(Tracker {
            listener,
            local_addr,
            shared: Arc::new(Shared {
                hub: Hub::new(Box::new(store)),
                connections: Arc::new(ConnectionLimiter::new(
                    config.max_connections,
                    config.max_connections_per_ip,
                )),
                partial: Arc::new(PartialBudget::new(config.max_partial_frame_bytes)),
                probe_socket,
                identity,
                config,
                metrics_log,
            }),
        })
    }

    /// Binds a tracker and runs it in a task of the current tokio runtime until the returned
    /// handle is shut down (or dropped).
    pub async fn spawn(addr: SocketAddr, config: TrackerConfig) -> io::Result<TrackerHandle> {
        let tracker = Tracker::bind(addr, config).await?;
        let local_addr = tracker.local_addr;
        let shared = Arc::clone(&tracker.shared);
        let (stop, stopped) = oneshot::channel::<()>();
        // A dropped sender resolves the receiver too: dropping the handle stops the tracker.
        let task = tokio::spawn(tracker.run(async move {
            let _ = stopped.await;
        }));
        Ok(TrackerHandle {
            local_addr,
            shared,
            stop,
            task,
        })
    }

    /// The address the tracker listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The tracker-wide counters.
    pub fn stats(&self) -> TrackerStats {
        self.shared.hub.stats()
    }

    /// The fingerprint of the certificate the tracker presents (SHA-256 of its DER encoding);
    /// `None` for an insecure tracker.
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        self.shared.identity.fingerprint()
    }

    /// Accepts and serves clients until `shutdown` resolves; then stops accepting, ends every
    /// session (without metrics lines: the clients did not leave), closes every connection and
    /// returns once all of them are closed.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let Tracker {
            listener,
            local_addr,
            shared,
        } = self;
        let (stop, stopped) = watch::channel(false);
        let mut connections = JoinSet::new();
        let mut refusals = JoinSet::new();
        tokio::pin!(shutdown);
        match shared.identity.fingerprint() {
            Some(fingerprint) => info!(
                target: TRACKER_TARGET,
                addr = %local_addr,
                %fingerprint,
                "tracker listening on {local_addr} (TLS), fingerprint {fingerprint}"
            ),
            None => warn!(
                target: TRACKER_TARGET,
                addr = %local_addr,
                "tracker listening on {local_addr} without TLS (insecure)"
            ),
        }
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => match shared.connections.admit(peer.ip()) {
                        Ok(permit) => {
                            connections.spawn(connection::serve(
                                stream,
                                peer,
                                Arc::clone(&shared),
                                stopped.clone(),
                                permit,
                            ));
                        }
                        Err(message) => {
                            warn!(target: TRACKER_TARGET, peer = %peer, "connection refused: {message}");
                            shared.hub.note_refused_connection();
                            if let Some(telling) = transport::refuse(stream, &shared, message) {
                                if refusals.len() < MAX_REFUSALS {
                                    refusals.spawn(telling);
                                }
                            }
                        }
                    },
                    Err(e) => {
                        warn!(target: TRACKER_TARGET, error = %e, "accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
                Some(done) = connections.join_next(), if !connections.is_empty() => {
                    report_panic(done);
                }
                Some(done) = refusals.join_next(), if !refusals.is_empty() => {
                    report_panic(done);
                }
            }
        }
        drop(listener);
        refusals.abort_all();
        let open = connections.len();
        info!(target: TRACKER_TARGET, "tracker stopping, closing {open} connections");
        let _ = stop.send(true);
        while let Some(done) = connections.join_next().await {
            report_panic(done);
        }
        info!(target: TRACKER_TARGET, addr = %local_addr, "tracker stopped");
        Ok(())
    }
}

fn report_panic(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        if e.is_panic() {
            error!(target: TRACKER_TARGET, "a connection task panicked: {e}");
        }
    }
}

/// A tracker running in a task (see [`Tracker::spawn`]). Dropping the handle stops the
/// tracker without waiting for it; [`TrackerHandle::shutdown`] stops it and waits.
#[derive(Debug)]
pub struct TrackerHandle {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<io::Result<()>>,
}

impl TrackerHandle {
    /// The address the tracker listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The tracker-wide counters.
    pub fn stats(&self) -> TrackerStats {
        self.shared.hub.stats()
    }

    /// The fingerprint of the certificate the tracker presents (SHA-256 of its DER encoding);
    /// `None` for an insecure tracker.
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        self.shared.identity.fingerprint()
    }

    /// Stops the tracker and waits until every connection is closed.
    ///
    /// # Panics
    ///
    /// If the tracker's task panicked (a bug), the panic goes on here.
    pub async fn shutdown(self) {
        let TrackerHandle { stop, task, .. } = self;
        let _ = stop.send(());
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => error!(target: TRACKER_TARGET, error = %e, "the tracker failed"),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => error!(target: TRACKER_TARGET, error = %e, "the tracker task was cancelled"),
        }
    }
}
