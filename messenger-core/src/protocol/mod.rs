//! The sans-IO protocol: state machines that take inputs (with the current time as an argument)
//! and are polled for outputs. No async runtime, no sockets, no clock in here.
//!
//! - [`types`]: identifiers, sequence numbers, priorities, a message's content.
//! - [`wire`]: datagram and control-frame encoding, bundling, size limits.
//! - `fifo`: per-sender sequence numbers and hold-back.
//! - `reliable`: retransmission buffer, NACK pacing, round-trip estimate.
//! - `isis`: ISIS total order (proposals, the rule for finals, priority-ordered hold-back).
//! - `decision`: failure resolution's decision rule, and reports and decisions in parts.
//! - [`group`]: one group's state machine composing all of the above (one file per concern,
//!   failure resolution a sub-state machine of its own).
//! - [`tracker`]: the tracker's registry.
//! - [`seal`]: sealed datagrams: pairwise keys per view, AEAD, replay windows (not yet used
//!   by the group).
//!
//! Only what a runtime or an application needs is public. With the `test-util` feature,
//! `decision` is public too, for the exhaustive oracle of its rule (`tests/resolution_oracle.rs`).

#[cfg(feature = "test-util")]
pub mod decision;
#[cfg(not(feature = "test-util"))]
pub(crate) mod decision;
pub(crate) mod fifo;
pub mod group;
pub(crate) mod isis;
pub(crate) mod reliable;
pub mod seal;
pub mod tracker;
pub mod types;
pub mod wire;

pub use group::{
    BufferSizes, Delivery, DropReason, Event, Group, GroupConfig, GroupStats, SendError, Transmit,
};
pub use types::{Content, GroupId, MemberId, OrderKey, Priority, SeqNo, ViewId};
pub use wire::{Order, View, ViewMember};
