//! The tracker server: the control plane over TCP.
//!
//! Clients connect, say hello, and then ask to list, join and leave groups; the tracker answers
//! every request once, pushes each group's new view to its members, probes every client with
//! heartbeats and removes those that stop answering. What to answer is decided by the sans-IO
//! [`Registry`](crate::protocol::tracker::Registry); this module only moves bytes, keeps time
//! and writes logs.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use messenger_core::tracker::{Tracker, TrackerConfig};
//!
//! let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
//! let tracker = Tracker::bind(addr, TrackerConfig::default()).await?;
//! let _bound_to = tracker.local_addr();
//! tracker.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! - `config`: [`TrackerConfig`] (heartbeats, access policy, JSON metrics file).
//! - `server`: [`Tracker`] (bind, accept loop, shutdown) and [`TrackerHandle`] (a tracker
//!   running in a task, for embedding and tests).
//! - `connection`: one task per client: hello, requests, heartbeats, the end of the session.
//! - `outbox`: the per-client channel of encoded frames and the task that writes it out.
//! - `hub`: the state shared by all connections: the [`Store`] and the clients' outboxes,
//!   behind one lock.
//! - `limits`: connections in all and per address, and the budget of bytes held in
//!   incomplete frames, shared by every connection.
//! - `store`: the [`Store`] seam and [`MemoryStore`], the embedded store.
//! - `transport`: TLS on each accepted connection (or plain TCP for an insecure tracker),
//!   and the refusal of connections over a limit.
//! - `log`: the metrics lines (human and JSON) written when a client's session ends.
//!
//! # Wire behaviour
//!
//! Every connection is TLS 1.3 ([`TrackerConfig::tls`], by default a self-signed key kept in
//! the state directory) unless the tracker is configured insecure; the handshake must end
//! within the hello timeout. A client that sends plain frames to a TLS tracker gets one plain
//! `Error` frame (`BadRequest`, "this tracker requires TLS") and is closed.
//!
//! Frames are a 4-byte big-endian length and a postcard body
//! ([`encode_control`](crate::protocol::wire::encode_control),
//! [`FrameDecoder`](crate::protocol::wire::FrameDecoder)). The first frame must be a
//! [`Hello`](crate::protocol::wire::Hello). The tracker then proves the hello's UDP address:
//! it sends a probe datagram with a random cookie there (again every 200 ms) and waits for the
//! cookie in [`ClientFrame::AddressProof`](crate::protocol::wire::ClientFrame::AddressProof).
//! It answers [`ServerFrame::Welcome`](crate::protocol::wire::ServerFrame::Welcome) once the
//! proof is right, or [`ServerFrame::Error`](crate::protocol::wire::ServerFrame::Error) (a
//! refused hello; `AddressUnverified` for a wrong or missing proof) and closes the
//! connection. A hello whose UDP address is unspecified (`0.0.0.0` or `::`) gets the IP
//! address the TCP connection comes from, and is proved like any other.
//!
//! A malformed or oversized frame, a request before the hello, a second hello, or no hello
//! within `heartbeat_interval * (heartbeat_misses + 1)` (at least one second) is a protocol
//! violation: an `Error` frame with [`ErrorCode::BadRequest`](crate::protocol::wire::ErrorCode),
//! then the connection is closed and counted in `TrackerStats::bad_connections`.
//!
//! # Ordering
//!
//! Every frame to a client goes through that client's outbox, a channel drained by the
//! connection's writer task, so a slow reader never blocks the tracker. Replies and view
//! pushes are queued while the hub's lock is held: every client sees the views of a group in
//! the same order, and the reply to a join comes before the view change it caused. A client
//! that leaves more than 16 MiB unread is disconnected (and counted as a bad connection).
//!
//! # Limits
//!
//! Connections (in all and per IP address), bytes held in incomplete frames (one budget for
//! all connections), groups (in all and per creator), members per group (a default when the
//! policy sets none), the size of replies (`ListGroups` is paged), wrong passwords per
//! connection (delayed replies, then a close) and the plausibility of self-reported metrics
//! are all bounded by [`TrackerConfig`]; each limit reached is answered with
//! [`ErrorCode::LimitReached`](crate::protocol::wire::ErrorCode) (or `GroupFull`) and a
//! message naming it. docs/SECURITY.md has the table.
//!
//! # Logs
//!
//! Through `tracing`: joins, leaves, refusals, violations and failures under the target
//! [`TRACKER_TARGET`] (`messenger::tracker`); the metrics of a client whose session ends under
//! [`METRICS_TARGET`] (`messenger::metrics`), as one human line and one JSON line (see
//! [`MetricsRecord`]).

mod config;
mod connection;
mod hub;
mod limits;
mod log;
mod outbox;
mod server;
mod store;
mod transport;

pub use crate::protocol::tracker::{
    AccessPolicy, ClientId, Departure, PolicyError, Push, Refusal, RegistryLimits,
};
pub use config::{load_policy, ConfigError, TrackerConfig};
pub use log::{MetricsRecord, METRICS_TARGET, TRACKER_TARGET};
pub use server::{Tracker, TrackerHandle};
pub use store::{MemoryStore, Store};
