//! The group's limits and timers.

use std::time::Duration;

use crate::protocol::wire;

#[cfg(doc)]
use super::{Event, Group};

/// Limits and timers of one group. One struct configures everything.
///
/// Built with [`GroupConfig::default`], then changed with the `with_*` methods; more fields
/// may be added (`#[non_exhaustive]`), each with a default.
#[derive(Debug, Clone)]
#[non_exhaustive]
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

    /// Checks the values that would stop a group from working: a window of 0 refuses every
    /// send, one above [`GroupConfig::MAX_WINDOW`] lets a member hold more than it should, a
    /// zero status interval or suspect timeout would report or repeat without pause.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=Self::MAX_WINDOW).contains(&self.window) {
            return Err(format!(
                "window {} is not between 1 and {} messages",
                self.window,
                Self::MAX_WINDOW
            ));
        }
        if self.max_payload == 0 {
            return Err("max_payload is 0: no message could be sent".into());
        }
        for (name, value) in [
            ("status_interval", self.status_interval),
            ("suspect_timeout", self.suspect_timeout),
            ("repair_interval", self.repair_interval),
            ("min_rto", self.min_rto),
        ] {
            if value.is_zero() {
                return Err(format!("{name} is 0"));
            }
        }
        Ok(())
    }

    /// Sets `bundle_size`, the size budget of one datagram in bytes (default 1400).
    #[must_use]
    pub fn with_bundle_size(mut self, bytes: usize) -> Self {
        self.bundle_size = bytes;
        self
    }

    /// Sets `max_payload`, the largest application payload in bytes (default 1200).
    #[must_use]
    pub fn with_max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    /// Sets `window`, the messages a sender may have in flight (default 1024).
    #[must_use]
    pub fn with_window(mut self, messages: u64) -> Self {
        self.window = messages;
        self
    }

    /// Sets `ack_delay`, how long a receiver waits before acknowledging (default 500 µs).
    #[must_use]
    pub fn with_ack_delay(mut self, delay: Duration) -> Self {
        self.ack_delay = delay;
        self
    }

    /// Sets `nack_interval`, the longest time before a gap is asked for again (default 5 ms).
    #[must_use]
    pub fn with_nack_interval(mut self, interval: Duration) -> Self {
        self.nack_interval = interval;
        self
    }

    /// Sets `min_rto`, the shortest retransmission timeout (default 1 ms).
    #[must_use]
    pub fn with_min_rto(mut self, rto: Duration) -> Self {
        self.min_rto = rto;
        self
    }

    /// Sets `repair_interval`, how often unfinished work is repeated (default 10 ms).
    #[must_use]
    pub fn with_repair_interval(mut self, interval: Duration) -> Self {
        self.repair_interval = interval;
        self
    }

    /// Sets `status_interval`, the period of the status message (default 100 ms).
    #[must_use]
    pub fn with_status_interval(mut self, interval: Duration) -> Self {
        self.status_interval = interval;
        self
    }

    /// Sets `max_departed`, the departed members remembered (default 64).
    #[must_use]
    pub fn with_max_departed(mut self, members: usize) -> Self {
        self.max_departed = members;
        self
    }

    /// Sets `suspect_timeout`, the data-plane silence that makes a peer suspect (default 3 s).
    #[must_use]
    pub fn with_suspect_timeout(mut self, timeout: Duration) -> Self {
        self.suspect_timeout = timeout;
        self
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_workable_configurations_pass() {
        assert_eq!(GroupConfig::default().validate(), Ok(()));
        let max = GroupConfig::default().with_window(GroupConfig::MAX_WINDOW);
        assert_eq!(max.validate(), Ok(()));
        for (bad, what) in [
            (GroupConfig::default().with_window(0), "window 0"),
            (GroupConfig::default().with_window(65_537), "window 65537"),
            (GroupConfig::default().with_max_payload(0), "max_payload"),
            (
                GroupConfig::default().with_suspect_timeout(Duration::ZERO),
                "suspect_timeout",
            ),
            (
                GroupConfig::default().with_status_interval(Duration::ZERO),
                "status_interval",
            ),
        ] {
            let e = bad.validate().expect_err(what);
            assert!(e.contains(what), "{e}");
        }
    }
}
