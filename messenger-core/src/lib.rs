//! # messenger-core
//!
//! Group messaging for applications: clients register with a tracker (TCP control plane) and
//! exchange messages peer to peer over UDP. Each group delivers in FIFO order or in FIFO +
//! total order (ISIS), despite loss, duplication and reordering of datagrams and crashes of
//! members.
//!
//! ## Layout
//!
//! - [`protocol`]: the sans-IO core. State machines with `handle_*` inputs and `poll_*`
//!   outputs; time is an argument; no sockets, no tokio, no clock. `protocol::wire` is the
//!   codec (versioned, bounded, bundled): `wire/datagram.rs` for the data plane and
//!   `wire/control.rs` for the tracker's frames; `protocol::group` is one group at one member,
//!   one concern per file: `group/data.rs` (send, receive, FIFO delivery),
//!   `total.rs` (ISIS proposals and finals), `repair.rs`, `outbox.rs` (bundling), `peer.rs`,
//!   `departed.rs`, `timers.rs`, and `resolution.rs`, failure resolution as its own state
//!   machine, deciding with the rule in `protocol/decision.rs`; `fifo.rs`, `reliable.rs` and
//!   `isis.rs` are the building blocks. `protocol::tracker` is the tracker's registry:
//!   `names.rs`, `policy.rs` (the access policy and `admit`), `registry.rs` and `registry/`.
//! - [`client`]: the application's handle ([`Client`], async; [`BlockingClient`]) and the
//!   tokio shell behind it:
//!   - `client/handle.rs`, `config.rs`: [`Client`], [`ClientConfig`];
//!   - `client/delivery.rs`, `handler.rs`: what the application receives ([`Message`],
//!     [`GroupView`], [`ClientEvent`]) and the [`Handler`] that receives it, on the dispatcher
//!     thread;
//!   - `client/error.rs`: [`ClientError`];
//!   - `client/control.rs`: the control task (TCP to the tracker);
//!   - `client/data.rs`, `faults.rs`: the data plane (UDP socket, every group's state machine,
//!     timers) and fault injection ([`FaultConfig`]);
//!   - `client/metrics.rs`, `blocking.rs`: [`MetricsSnapshot`], [`BlockingClient`].
//! - [`tracker`]: the tracker server ([`Tracker`]): TCP sessions, heartbeats, limits, metrics
//!   log, around the registry.
//! - [`tls`]: the control plane's TLS 1.3, shared by both shells: the tracker's identity
//!   ([`TrackerTls`], a self-signed key kept in a state directory by default), the client's
//!   trust in it ([`TrackerTrust`]: first use recorded in a known-trackers file, a pinned
//!   [`Fingerprint`], a CA), the default directories.
//! - `testing` (feature `test-util`): a seeded network emulator (loss, duplication,
//!   reordering, partitions, crashes) and a simulation driver that runs many members in virtual
//!   time and collects their delivery logs.
//!
//! Dependencies point inwards: `client` and `tracker` use `protocol` and `tls` and never each
//! other; `protocol` and `tls` use neither (`tests/layers.rs` checks it).
//!
//! ## Public API
//!
//! What an application or a binding needs is re-exported here, at the crate root, and the
//! bindings (C, Python) and the `messenger` program import from here only. Enums and
//! configurations that may grow are `#[non_exhaustive]` ([`ClientError`], [`ClientEvent`],
//! [`ErrorCode`], [`ClientConfig`], [`GroupConfig`], [`FaultConfig`], [`TrackerConfig`],
//! [`MetricsSnapshot`]): match them with a catch-all arm, build a [`ClientConfig`] with
//! [`ClientConfig::new`], and the other configurations from their `Default` with their `with_*`
//! methods (`TrackerConfig::default().with_max_groups(100)`). [`Order`] reads and writes its name
//! (`"fifo"`, `"total"`) with `FromStr` and `Display`. The modules stay public for tests and
//! tools that need the protocol's insides (`protocol::wire`, the simulation).
//!
//! docs/ARCHITECTURE.md shows the tasks and who owns what.

#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

pub mod client;
pub mod protocol;
pub(crate) mod rng;
pub mod tls;
pub mod tracker;

#[cfg(any(test, feature = "test-util"))]
pub mod testing;

pub use client::{
    BlockingClient, Callbacks, Client, ClientConfig, ClientError, ClientEvent, FaultConfig,
    FaultCounts, FaultSpecError, GroupView, Handler, LatencyHistogram, Member, Message,
    MetricsSnapshot, FAULTS_ENV,
};
pub use protocol::wire::{ErrorCode, GroupInfo, ParseOrderError, TrackerStats};
pub use protocol::{
    Delivery, Event, Group, GroupConfig, GroupId, MemberId, Order, SeqNo, View, ViewId, ViewMember,
};
pub use tls::{Fingerprint, FingerprintError, TrackerTls, TrackerTrust};
pub use tracker::{AccessPolicy, ConfigError, Tracker, TrackerConfig, TrackerHandle};

/// The README's code blocks, compiled as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
