//! The sans-IO protocol: state machines that take inputs (with the current time as an argument)
//! and are polled for outputs. No async runtime, no sockets, no clock in here.
//!
//! - [`types`]: identifiers, sequence numbers, priorities.
//! - [`wire`]: datagram and control-frame encoding, bundling, size limits.
//! - [`fifo`]: per-sender sequence numbers and hold-back.
//! - [`reliable`]: retransmission buffer and NACK pacing.
//! - [`isis`]: ISIS total order (proposals, finals, priority-ordered hold-back).
//! - [`flush`]: ISIS failure resolution (the coordinator's decision rule).
//! - [`group`]: one group's state machine composing all of the above.

pub mod fifo;
pub mod flush;
pub mod group;
pub mod isis;
pub mod reliable;
pub mod tracker;
pub mod types;
pub mod wire;

pub use group::{
    BufferSizes, Delivery, DropReason, Event, Group, GroupConfig, GroupStats, SendError, Transmit,
};
pub use types::{GroupId, MemberId, OrderKey, Priority, SeqNo, ViewId};
pub use wire::{Order, View, ViewMember};
