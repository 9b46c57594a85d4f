//! The group's limits and timers.

use std::time::Duration;

use crate::protocol::wire;

#[cfg(doc)]
use super::{Event, Group};

/// Limits and timers of one group. One struct configures everything.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// Size budget for bundling frames into one datagram.
    pub bundle_size: usize,
    /// Largest application payload accepted by [`Group::send`].
    pub max_payload: usize,
    /// Messages a sender may have in flight (not yet stable at every member); also the size of
    /// each receiver's per-sender hold-back window. Senders and receivers must agree.
    pub window: u64,
    /// How long a receiver waits before acknowledging, to acknowledge several messages at once.
    pub ack_delay: Duration,
    /// Longest time before a gap already asked for is asked for again. The retransmission
    /// timeout measured from acknowledgement round trips is used when it is shorter (new
    /// gaps are asked for at once).
    pub nack_interval: Duration,
    /// Shortest retransmission timeout, however short the measured round trip.
    pub min_rto: Duration,
    /// How often unfinished work is repeated: proposals, finals, session messages while data is
    /// unacknowledged, failure-resolution messages.
    pub repair_interval: Duration,
    /// Period of the status message sent to every member even when idle.
    pub status_interval: Duration,
    /// Departed members whose resolved streams are remembered (for later resolution rounds).
    pub max_departed: usize,
    /// A peer not heard from for this long on the data plane, while others are heard, is reported
    /// ([`Event::Suspect`]): it may answer the tracker's heartbeats and still hold the group up
    /// (a UDP firewall, a partition between members, a hostile member that sends nothing).
    /// A peer that talks but does not acknowledge or propose for our messages is reported
    /// after twice this, one whose message waits for its final at the head of the total-order
    /// queue after four times this (see [`Event::Suspect`]).
    pub suspect_timeout: Duration,
}

impl GroupConfig {
    /// The largest window the bindings accept: every member may hold a window of messages
    /// (up to `max_payload` bytes each) per sender, 78 MB per sender at this limit.
    pub const MAX_WINDOW: u64 = 65_536;
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            bundle_size: wire::DEFAULT_BUNDLE_SIZE,
            max_payload: 1200,
            window: 1024,
            ack_delay: Duration::from_micros(500),
            nack_interval: Duration::from_millis(5),
            min_rto: Duration::from_millis(1),
            repair_interval: Duration::from_millis(10),
            status_interval: Duration::from_millis(100),
            max_departed: 64,
            suspect_timeout: Duration::from_secs(3),
        }
    }
}
