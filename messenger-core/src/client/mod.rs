//! The client: connect to a tracker, join groups, send, and receive deliveries, view changes
//! and connection events through a [`Handler`].
//!
//! ```no_run
//! use messenger_core::{Callbacks, Client, ClientConfig, Order};
//!
//! # async fn demo() -> Result<(), messenger_core::ClientError> {
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
//! reconnection); a data task (`data.rs`) owns the UDP socket and every group's
//! protocol state machine; a dispatcher thread runs the handler's callbacks, one at a time, in
//! delivery order per group. Callbacks may call back into the client (a
//! [`BlockingClient`] too): the dispatcher is an OS thread outside the
//! runtime, and nothing waits for it.
//!
//! ## Layout
//!
//! - `handle.rs`: [`Client`], the application's handle, and the state it shares with the tasks.
//! - `config.rs`: [`ClientConfig`].
//! - `delivery.rs`: what the application receives: [`Message`], [`GroupView`] (with its
//!   [`Member`]s), [`ClientEvent`].
//! - `handler.rs`: the [`Handler`] trait, [`Callbacks`], and the dispatcher thread.
//! - `error.rs`: [`ClientError`] and the conversions into it.
//! - `control.rs`: the control task (TCP to the tracker: requests, views, heartbeats,
//!   reconnection).
//! - `transport.rs`: the connection to the tracker: TCP, TLS and the check of the tracker's
//!   key ([`TrackerTrust`](crate::tls::TrackerTrust)).
//! - `data.rs`: the data plane: every group's protocol state machine behind one lock, and the
//!   data task (UDP socket, timers, deliveries).
//! - `faults.rs`: fault injection on outgoing datagrams ([`FaultConfig`], `MESSENGER_FAULTS`).
//! - `metrics.rs`: counters and the latency histogram ([`MetricsSnapshot`]).
//! - `blocking.rs`: [`BlockingClient`], a facade that owns its runtime.
//!
//! Nothing here is imported by [`protocol`](crate::protocol) or [`tracker`](crate::tracker).

mod blocking;
mod config;
mod control;
mod data;
mod delivery;
mod error;
mod faults;
mod handle;
mod handler;
mod metrics;
mod transport;

pub use blocking::BlockingClient;
pub use config::ClientConfig;
pub use delivery::{ClientEvent, GroupView, Member, Message};
pub use error::ClientError;
pub use faults::{FaultConfig, FaultCounts, FaultSpecError, FAULTS_ENV};
pub use handle::Client;
pub use handler::{Callbacks, Handler};
pub use metrics::{LatencyHistogram, MetricsSnapshot};
