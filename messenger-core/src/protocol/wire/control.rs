//! The control plane (the tracker's TCP connection): [`ClientFrame`] and [`ServerFrame`] with
//! the requests, replies and views they carry, the address probe the tracker sends to a
//! client's UDP address, and the length-prefixed framing ([`encode_control`], [`FrameDecoder`]).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use super::{WireError, MAX_CONTROL_FRAME};
use crate::protocol::types::{GroupId, MemberId, ViewId};

/// Delivery order of a group, fixed when the group is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Order {
    Fifo,
    Total,
}

impl Order {
    /// The order's name: `"fifo"` or `"total"`, what [`FromStr`](std::str::FromStr) parses
    /// and [`Display`](std::fmt::Display) writes (command lines, bindings, logs).
    pub const fn as_str(self) -> &'static str {
        match self {
            Order::Fifo => "fifo",
            Order::Total => "total",
        }
    }
}

impl std::fmt::Display for Order {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not an [`Order`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("order must be \"fifo\" or \"total\", not {0:?}")]
pub struct ParseOrderError(pub String);

impl std::str::FromStr for Order {
    type Err = ParseOrderError;

    /// `"fifo"` or `"total"`, exactly (no other case or spelling).
    fn from_str(s: &str) -> Result<Order, ParseOrderError> {
        match s {
            "fifo" => Ok(Order::Fifo),
            "total" => Ok(Order::Total),
            other => Err(ParseOrderError(other.to_string())),
        }
    }
}

/// One member of a view as the tracker announces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewMember {
    pub id: MemberId,
    pub name: String,
    pub addr: SocketAddr,
    /// The view in which this member joined the group (datagrams it sent in earlier views
    /// belong to an earlier membership and are ignored).
    pub joined: ViewId,
}

/// A group's membership at one point of its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    pub group: GroupId,
    pub name: String,
    pub order: Order,
    pub id: ViewId,
    pub members: Vec<ViewMember>,
}

impl View {
    pub fn member(&self, id: MemberId) -> Option<&ViewMember> {
        self.members.iter().find(|m| m.id == id)
    }

    pub fn contains(&self, id: MemberId) -> bool {
        self.member(id).is_some()
    }
}

/// First frame of every client connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub version: u32,
    pub username: String,
    /// Where this client receives datagrams (the address peers send to).
    pub udp_addr: SocketAddr,
}

/// Delivery metrics of one client, sent with every heartbeat answer and when it quits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsReport {
    /// Messages this client sent (all groups).
    pub sent: u64,
    /// Messages from other members delivered to this client.
    pub received: u64,
    /// Time since the client connected.
    pub elapsed_micros: u64,
    /// Delivery latency (send to delivery) of the received messages.
    pub latency_mean_micros: u64,
    pub latency_p50_micros: u64,
    pub latency_p99_micros: u64,
    pub latency_max_micros: u64,
    /// Datagrams dropped as malformed, spoofed, stale or for an unknown group.
    pub dropped_datagrams: u64,
}

/// A group password as a join carries it: on the wire a plain string (the encoding of a
/// `String`), in `Debug` output never shown, so that logging a request cannot leak it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    pub fn new(password: impl Into<String>) -> Self {
        Password(password.into())
    }

    /// The password itself, for the one place that compares it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

// Wiped when dropped, so that a password does not linger in freed memory.
impl Drop for Password {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A request from a client; each gets exactly one [`Reply`] with the same id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// One page of the groups, in name order: at most [`GROUPS_PAGE`] of them, starting after
    /// the group named `after` (from the first when `None`). [`Reply::Groups`] says whether
    /// more exist; the next page starts after the last name of this one.
    ListGroups {
        after: Option<String>,
    },
    ListMembers {
        group: String,
    },
    /// Joins `group`, creating it with `order` if it does not exist (and the policy allows).
    Join {
        group: String,
        order: Order,
        password: Option<Password>,
    },
    Leave {
        group: String,
    },
    /// Leaves every group and closes the session; the metrics are logged by the tracker.
    Quit {
        metrics: MetricsReport,
    },
    /// Tracker-wide counters.
    Stats,
    /// Reports that `member` of `group` has been silent on the data plane (see
    /// [`Event::Suspect`](crate::protocol::Event::Suspect)); the tracker removes it from the
    /// group once enough of its members report it. Answered by [`Reply::Suspected`].
    Suspect {
        group: String,
        member: MemberId,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientFrame {
    Hello(Hello),
    Request {
        id: u64,
        request: Request,
    },
    /// Answer to [`ServerFrame::Heartbeat`], with the client's metrics so far (the tracker logs
    /// the last ones it heard if the client is dropped).
    HeartbeatAck {
        nonce: u64,
        metrics: MetricsReport,
    },
    /// The cookie of the address probe the tracker sent to the hello's UDP address (see
    /// [`encode_address_probe`]): proof that this client receives datagrams there.
    AddressProof {
        cookie: [u8; COOKIE_LEN],
    },
}

/// First two bytes of the tracker's address probe (distinct from the data plane's
/// [`MAGIC`](super::MAGIC)).
pub const PROBE_MAGIC: [u8; 2] = *b"GP";
/// Version of the address probe format.
pub const PROBE_VERSION: u8 = 1;
/// Length of an address-proof cookie.
pub const COOKIE_LEN: usize = 16;
/// Length of an address probe datagram: magic, version, cookie.
pub const PROBE_LEN: usize = 3 + COOKIE_LEN;

/// The datagram the tracker sends to a client's claimed UDP address: `"GP"`, the version,
/// and the cookie the client must send back over TCP in [`ClientFrame::AddressProof`].
pub fn encode_address_probe(cookie: &[u8; COOKIE_LEN]) -> [u8; PROBE_LEN] {
    let mut out = [0u8; PROBE_LEN];
    out[..2].copy_from_slice(&PROBE_MAGIC);
    out[2] = PROBE_VERSION;
    out[3..].copy_from_slice(cookie);
    out
}

/// The cookie of an address probe, or `None` if `bytes` is not one (any other datagram,
/// including every data-plane datagram, whose magic differs).
pub fn decode_address_probe(bytes: &[u8]) -> Option<[u8; COOKIE_LEN]> {
    if bytes.len() != PROBE_LEN || bytes[..2] != PROBE_MAGIC || bytes[2] != PROBE_VERSION {
        return None;
    }
    let mut cookie = [0u8; COOKIE_LEN];
    cookie.copy_from_slice(&bytes[3..]);
    Some(cookie)
}

/// Error codes of the control protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorCode {
    UnknownGroup,
    NotAMember,
    AlreadyMember,
    UsernameTaken,
    /// A username or group name that is empty, too long, or has spaces or control characters.
    InvalidName,
    /// Wrong password, or not on the group's allow-list, or the policy forbids creating it.
    AccessDenied,
    /// The group exists with the other order.
    OrderMismatch,
    GroupFull,
    BadRequest,
    VersionMismatch,
    /// A limit of the tracker was reached (connections, groups, partial frames, password
    /// attempts); the message names the limit.
    LimitReached,
    /// The client did not prove that it receives datagrams at the UDP address of its hello
    /// (no proof in time, or a wrong cookie); the message names the address.
    AddressUnverified,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    pub name: String,
    pub order: Order,
    pub members: u32,
}

/// Tracker-wide counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackerStats {
    pub clients: u32,
    pub groups: u32,
    pub memberships: u32,
    pub views_pushed: u64,
    pub requests: u64,
    pub errors: u64,
    /// Clients removed because they stopped answering heartbeats.
    pub clients_dropped: u64,
    /// Connections closed for a malformed or oversized frame or a protocol violation.
    pub bad_connections: u64,
    /// Connections refused or closed for reaching a limit: connections in all or per
    /// address, bytes of partial frames, wrong passwords.
    pub refused_connections: u64,
    /// Members taken out of a group because enough of its members reported them silent.
    pub members_suspected: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// One page of groups (see [`Request::ListGroups`]); `more` when further groups follow
    /// the last one listed.
    Groups {
        groups: Vec<GroupInfo>,
        more: bool,
    },
    Members(View),
    /// The joiner's member id in the group, and the view that added it.
    Joined {
        member: MemberId,
        view: View,
    },
    Left,
    Bye,
    Stats(TrackerStats),
    /// The report of a silent member was counted; `removed` when it was the one that made the
    /// tracker take the member out of the group.
    Suspected {
        removed: bool,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// Accepts the hello. `client` numbers the session; heartbeats come every
    /// `heartbeat_interval_ms`.
    Welcome {
        client: u64,
        heartbeat_interval_ms: u64,
    },
    Reply {
        id: u64,
        reply: Reply,
    },
    /// A group's new view in full: pushed to a member that joins it (and whenever the tracker
    /// cannot assume the client holds the previous view).
    ViewChange(View),
    /// A group's new view as a change of the previous one, pushed to the members that held
    /// the previous view (and to a member it removed): see [`ViewDelta::apply`].
    ViewDelta(ViewDelta),
    Heartbeat {
        nonce: u64,
    },
    /// A connection-level error (bad hello, protocol violation); the tracker closes the
    /// connection after it.
    Error {
        code: ErrorCode,
        message: String,
    },
}

/// A view as the change from the view before it: what a member that holds view `from_view`
/// of the group needs to compute view `view`. Members keep their order; added members come
/// last, in the order they joined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewDelta {
    pub group: GroupId,
    pub from_view: ViewId,
    pub view: ViewId,
    pub added: Vec<ViewMember>,
    pub removed: Vec<MemberId>,
}

impl ViewDelta {
    /// The change from `before` to `after` (two views of the same group).
    pub fn between(before: &View, after: &View) -> ViewDelta {
        ViewDelta {
            group: after.group,
            from_view: before.id,
            view: after.id,
            added: after
                .members
                .iter()
                .filter(|m| !before.contains(m.id))
                .cloned()
                .collect(),
            removed: before
                .members
                .iter()
                .filter(|m| !after.contains(m.id))
                .map(|m| m.id)
                .collect(),
        }
    }

    /// The view this change leads to from `previous`, or `None` when `previous` is not the
    /// view it starts from (another group or another view id).
    pub fn apply(&self, previous: &View) -> Option<View> {
        if previous.group != self.group || previous.id != self.from_view {
            return None;
        }
        let mut members: Vec<ViewMember> = previous
            .members
            .iter()
            .filter(|m| !self.removed.contains(&m.id))
            .cloned()
            .collect();
        members.extend(
            self.added
                .iter()
                .filter(|m| !previous.contains(m.id))
                .cloned(),
        );
        Some(View {
            group: previous.group,
            name: previous.name.clone(),
            order: previous.order,
            id: self.view,
            members,
        })
    }
}

/// Most groups in one [`Reply::Groups`] page.
pub const GROUPS_PAGE: usize = 256;

/// Encodes one control frame with its 4-byte big-endian length prefix.
pub fn encode_control<T: Serialize>(frame: &T) -> Result<Vec<u8>, WireError> {
    let mut out = vec![0u8; 4];
    out = postcard::to_extend(frame, out)?;
    let body = out.len() - 4;
    if body > MAX_CONTROL_FRAME {
        return Err(WireError::Oversized {
            len: body,
            limit: MAX_CONTROL_FRAME,
        });
    }
    out[..4].copy_from_slice(&(body as u32).to_be_bytes());
    Ok(out)
}

/// Buffer capacity a [`FrameDecoder`] gives back once it holds no partial frame.
const SHRINK_ABOVE: usize = 64 * 1024;

/// Splits a TCP byte stream into control frames (sans-IO: feed bytes in, take frames out).
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the connection.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet part of a complete frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Takes the next complete frame. `Ok(None)` means more bytes are needed; an error means
    /// the stream is corrupt and the connection should be closed.
    pub fn next_frame<T: for<'de> Deserialize<'de>>(&mut self) -> Result<Option<T>, WireError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if len > MAX_CONTROL_FRAME {
            return Err(WireError::Oversized {
                len,
                limit: MAX_CONTROL_FRAME,
            });
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let result = match postcard::take_from_bytes::<T>(&self.buf[4..4 + len]) {
            Ok((frame, [])) => Ok(frame),
            Ok((_, rest)) => Err(WireError::Malformed(format!(
                "{} trailing bytes after the frame",
                rest.len()
            ))),
            Err(e) => Err(e.into()),
        };
        self.buf.drain(..4 + len);
        // A large frame must not leave its buffer allocated for the rest of the connection.
        if self.buf.is_empty() && self.buf.capacity() > SHRINK_ABOVE {
            self.buf = Vec::new();
        }
        result.map(Some)
    }
}

#[cfg(test)]
mod order_names {
    use super::{Order, ParseOrderError};

    #[test]
    fn every_order_parses_back_from_its_name() {
        for order in [Order::Fifo, Order::Total] {
            assert_eq!(order.as_str().parse::<Order>(), Ok(order));
            assert_eq!(order.to_string(), order.as_str());
        }
        assert_eq!(Order::Fifo.as_str(), "fifo");
        assert_eq!(Order::Total.as_str(), "total");
        assert_eq!(
            "Total".parse::<Order>(),
            Err(ParseOrderError("Total".to_string()))
        );
    }
}
