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
//!   outputs; time is an argument; no sockets, no tokio, no clock.
//!   - `protocol::wire`: datagrams and control frames, versioned, bounded, bundled.
//!   - `protocol::fifo`, `protocol::reliable`: per-sender order, NACK repair, session messages.
//!   - `protocol::isis`, `protocol::flush`: total order and its failure resolution.
//!   - `protocol::group`: one group's state machine composing the above.
//!   - `protocol::tracker`: the tracker's registry (groups, members, views, access policy).
//! - [`client`]: the application's handle ([`Client`], async; [`BlockingClient`]), with a
//!   [`Handler`] for deliveries, views and events, and the tokio tasks behind it: the control
//!   task (TCP to the tracker), the data plane (UDP socket, group state machines, timers, fault
//!   injection) and the dispatcher thread.
//! - [`tracker`]: the tracker server ([`Tracker`]): TCP sessions, heartbeats, metrics log.
//! - [`testing`] (feature `test-util`): a seeded network emulator (loss, duplication,
//!   reordering, partitions, crashes) and a simulation driver that runs many members in virtual
//!   time and collects their delivery logs.
//!
//! docs/ARCHITECTURE.md shows the tasks and who owns what.

#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

pub mod client;
pub mod protocol;
pub(crate) mod rng;
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
pub use tracker::{AccessPolicy, ConfigError, Tracker, TrackerConfig, TrackerHandle};

/// The README's code blocks, compiled as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
