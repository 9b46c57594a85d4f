//! How a client connects and behaves.

use std::net::SocketAddr;
use std::time::Duration;

use super::faults::FaultConfig;
use crate::protocol::GroupConfig;
use crate::tls::TrackerTrust;

/// How a client connects and behaves.
///
/// Built with [`ClientConfig::new`], then changed field by field; more fields may be added
/// (`#[non_exhaustive]`), each with a default.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The tracker's TCP address.
    pub tracker: SocketAddr,
    /// Which tracker key to believe (default: trust on first use, recorded in the default
    /// known-trackers file; see [`TrackerTrust`]). [`TrackerTrust::Insecure`] connects over
    /// plain TCP.
    pub trust: TrackerTrust,
    pub username: String,
    /// Where to bind the UDP socket (port 0 picks a free port).
    pub udp_bind: SocketAddr,
    /// Protocol limits and timers for every group.
    pub group: GroupConfig,
    /// Faults injected on outgoing datagrams; `None` reads `MESSENGER_FAULTS`.
    pub faults: Option<FaultConfig>,
    /// How long to wait for the tracker to answer a request (or the first connection).
    pub request_timeout: Duration,
    /// How long [`Client::leave`](super::Client::leave) waits for this client's messages in
    /// the group to be stable (held by every member) before it leaves anyway (default 2 s).
    pub leave_timeout: Duration,
    /// First and largest delay between reconnection attempts.
    pub reconnect_initial: Duration,
    pub reconnect_max: Duration,
}

impl ClientConfig {
    pub fn new(tracker: SocketAddr, username: impl Into<String>) -> Self {
        ClientConfig {
            tracker,
            trust: TrackerTrust::default(),
            username: username.into(),
            udp_bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            group: GroupConfig::default(),
            faults: None,
            request_timeout: Duration::from_secs(5),
            leave_timeout: Duration::from_secs(2),
            reconnect_initial: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
        }
    }

    /// This configuration trusting the tracker as `trust` says.
    #[must_use]
    pub fn with_trust(mut self, trust: TrackerTrust) -> Self {
        self.trust = trust;
        self
    }
}
