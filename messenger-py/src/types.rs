//! The values the module hands to Python: deliveries, views, events, metrics, tracker counters.
//! All are immutable snapshots (`frozen`), safe to keep and to pass between threads.
//!
//! Durations are float seconds, as in Python's `time` module; addresses are `"ip:port"`
//! strings; orders are `"fifo"` or `"total"`.

use bytes::Bytes;
use messenger_core::{
    ClientEvent, GroupInfo as CoreGroupInfo, GroupView as CoreView, Member as CoreMember,
    Message as CoreMessage, MetricsSnapshot, Order, TrackerStats as CoreStats,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// An order from its Python name.
pub(crate) fn parse_order(name: &str) -> PyResult<Order> {
    name.parse()
        .map_err(|e: messenger_core::ParseOrderError| PyValueError::new_err(e.to_string()))
}

/// A delivered message.
#[pyclass(module = "messenger", frozen)]
pub struct Message {
    /// The group it was sent to.
    #[pyo3(get)]
    group: String,
    /// The sender's username.
    #[pyo3(get)]
    sender: String,
    /// The sender's member id in the group (one per membership).
    #[pyo3(get)]
    sender_id: u64,
    /// The sender's sequence number in the group, from 1.
    #[pyo3(get)]
    seq: u64,
    /// From the sender's send to this delivery, in seconds (wall clocks of both hosts).
    #[pyo3(get)]
    latency: f64,
    /// True for this client's own messages, delivered back in the group's order.
    #[pyo3(get)]
    own: bool,
    payload: Bytes,
}

impl From<CoreMessage> for Message {
    fn from(m: CoreMessage) -> Self {
        Message {
            group: m.group.to_string(),
            sender: m.sender.to_string(),
            sender_id: m.sender_id.0,
            seq: m.seq,
            latency: m.latency.as_secs_f64(),
            own: m.own,
            payload: m.payload,
        }
    }
}

#[pymethods]
impl Message {
    /// The payload as sent.
    #[getter]
    fn data<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.payload)
    }

    /// The payload decoded as UTF-8 (invalid bytes replaced).
    #[getter]
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }

    fn __repr__(&self) -> String {
        format!(
            "Message(group={:?}, sender={:?}, seq={}, data={:?})",
            self.group,
            self.sender,
            self.seq,
            String::from_utf8_lossy(&self.payload)
        )
    }
}

/// A member of a group.
#[pyclass(module = "messenger", frozen)]
#[derive(Clone)]
pub struct Member {
    /// The member id of this membership.
    #[pyo3(get)]
    id: u64,
    /// The member's username.
    #[pyo3(get)]
    name: String,
    /// Where the member receives datagrams, `"ip:port"`.
    #[pyo3(get)]
    address: String,
}

impl From<&CoreMember> for Member {
    fn from(m: &CoreMember) -> Self {
        Member {
            id: m.id.0,
            name: m.name.clone(),
            address: m.addr.to_string(),
        }
    }
}

#[pymethods]
impl Member {
    fn __repr__(&self) -> String {
        format!(
            "Member(id={}, name={:?}, address={:?})",
            self.id, self.name, self.address
        )
    }
}

/// One membership of a group: who is in it after a change.
#[pyclass(module = "messenger", frozen)]
pub struct GroupView {
    #[pyo3(get)]
    group: String,
    /// `"fifo"` or `"total"`.
    #[pyo3(get)]
    order: &'static str,
    /// Grows with every membership change of the group.
    #[pyo3(get)]
    view_id: u64,
    /// The members, in the order they joined.
    #[pyo3(get)]
    members: Vec<Member>,
    /// Usernames that joined since the previous view this client saw.
    #[pyo3(get)]
    joined: Vec<String>,
    /// Usernames that left (or failed) since the previous view.
    #[pyo3(get)]
    left: Vec<String>,
}

impl From<CoreView> for GroupView {
    fn from(v: CoreView) -> Self {
        GroupView {
            order: v.order.as_str(),
            view_id: v.view_id,
            members: v.members.iter().map(Member::from).collect(),
            group: v.group,
            joined: v.joined,
            left: v.left,
        }
    }
}

#[pymethods]
impl GroupView {
    fn __repr__(&self) -> String {
        let names: Vec<&str> = self.members.iter().map(|m| m.name.as_str()).collect();
        format!(
            "GroupView(group={:?}, order={:?}, view_id={}, members={:?}, joined={:?}, left={:?})",
            self.group, self.order, self.view_id, names, self.joined, self.left
        )
    }
}

/// A group on the tracker, as `Client.groups()` lists it.
#[pyclass(module = "messenger", frozen)]
pub struct GroupInfo {
    #[pyo3(get)]
    name: String,
    /// `"fifo"` or `"total"`.
    #[pyo3(get)]
    order: &'static str,
    /// How many members it has.
    #[pyo3(get)]
    members: u32,
}

impl From<CoreGroupInfo> for GroupInfo {
    fn from(g: CoreGroupInfo) -> Self {
        GroupInfo {
            name: g.name,
            order: g.order.as_str(),
            members: g.members,
        }
    }
}

#[pymethods]
impl GroupInfo {
    fn __repr__(&self) -> String {
        format!(
            "GroupInfo(name={:?}, order={:?}, members={})",
            self.name, self.order, self.members
        )
    }
}

/// A client's metrics: what it sent and received, and how long delivery took.
///
/// `str()` gives the metrics block the chat prints on exit.
#[pyclass(module = "messenger", frozen)]
pub struct Metrics {
    snapshot: MetricsSnapshot,
}

impl From<MetricsSnapshot> for Metrics {
    fn from(snapshot: MetricsSnapshot) -> Self {
        Metrics { snapshot }
    }
}

#[pymethods]
impl Metrics {
    /// Messages this client sent.
    #[getter]
    fn sent(&self) -> u64 {
        self.snapshot.sent
    }
    /// Messages of others delivered to this client.
    #[getter]
    fn received(&self) -> u64 {
        self.snapshot.received
    }
    /// `sent + received`.
    #[getter]
    fn total(&self) -> u64 {
        self.snapshot.total
    }
    /// Seconds since the client connected.
    #[getter]
    fn elapsed(&self) -> f64 {
        self.snapshot.elapsed.as_secs_f64()
    }
    /// Messages (sent and received) per second since the client connected.
    #[getter]
    fn throughput(&self) -> f64 {
        self.snapshot.throughput
    }
    /// Mean delivery latency of received messages, in seconds.
    #[getter]
    fn latency_mean(&self) -> f64 {
        self.snapshot.latency_mean.as_secs_f64()
    }
    /// Median delivery latency, in seconds.
    #[getter]
    fn latency_p50(&self) -> f64 {
        self.snapshot.latency_p50.as_secs_f64()
    }
    /// 99th percentile of the delivery latency, in seconds.
    #[getter]
    fn latency_p99(&self) -> f64 {
        self.snapshot.latency_p99.as_secs_f64()
    }
    /// Largest delivery latency, in seconds.
    #[getter]
    fn latency_max(&self) -> f64 {
        self.snapshot.latency_max.as_secs_f64()
    }
    /// Incoming datagrams dropped as invalid, spoofed or stale.
    #[getter]
    fn dropped_datagrams(&self) -> u64 {
        self.snapshot.dropped_datagrams
    }
    /// Sends that found their group's send window full and waited for room (the application
    /// sends faster than the slowest member acknowledges).
    #[getter]
    fn window_waits(&self) -> u64 {
        self.snapshot.window_waits
    }

    fn __str__(&self) -> String {
        self.snapshot.to_string()
    }

    fn __repr__(&self) -> String {
        let s = &self.snapshot;
        format!(
            "Metrics(sent={}, received={}, total={}, throughput={:.2}, latency_mean={:.6})",
            s.sent,
            s.received,
            s.total,
            s.throughput,
            s.latency_mean.as_secs_f64()
        )
    }
}

/// What fault injection did to a client's outgoing datagrams (`Client.fault_counts()`).
#[pyclass(module = "messenger", frozen, get_all)]
pub struct FaultCounts {
    /// Datagrams never sent.
    dropped: u64,
    /// Datagrams sent twice.
    duplicated: u64,
    /// Copies held back and sent later (which reorders them).
    delayed: u64,
}

impl From<messenger_core::FaultCounts> for FaultCounts {
    fn from(c: messenger_core::FaultCounts) -> Self {
        FaultCounts {
            dropped: c.dropped,
            duplicated: c.duplicated,
            delayed: c.delayed,
        }
    }
}

#[pymethods]
impl FaultCounts {
    fn __repr__(&self) -> String {
        format!(
            "FaultCounts(dropped={}, duplicated={}, delayed={})",
            self.dropped, self.duplicated, self.delayed
        )
    }
}

/// The tracker's counters.
#[pyclass(module = "messenger", frozen, get_all)]
pub struct TrackerStats {
    /// Connected clients.
    clients: u32,
    /// Groups that exist.
    groups: u32,
    /// Memberships over all groups.
    memberships: u32,
    views_pushed: u64,
    requests: u64,
    /// Requests refused.
    errors: u64,
    /// Clients removed because they stopped answering heartbeats.
    clients_dropped: u64,
    /// Connections closed for a protocol violation.
    bad_connections: u64,
    /// Connections refused or closed for reaching a limit (connections, partial frames,
    /// wrong passwords).
    refused_connections: u64,
    /// Members taken out of a group because enough of its members reported them silent on the
    /// data plane.
    members_suspected: u64,
}

impl From<CoreStats> for TrackerStats {
    fn from(s: CoreStats) -> Self {
        TrackerStats {
            clients: s.clients,
            groups: s.groups,
            memberships: s.memberships,
            views_pushed: s.views_pushed,
            requests: s.requests,
            errors: s.errors,
            clients_dropped: s.clients_dropped,
            bad_connections: s.bad_connections,
            refused_connections: s.refused_connections,
            members_suspected: s.members_suspected,
        }
    }
}

#[pymethods]
impl TrackerStats {
    fn __repr__(&self) -> String {
        format!(
            "TrackerStats(clients={}, groups={}, memberships={}, views_pushed={}, requests={}, \
             errors={}, clients_dropped={}, bad_connections={}, refused_connections={}, \
             members_suspected={})",
            self.clients,
            self.groups,
            self.memberships,
            self.views_pushed,
            self.requests,
            self.errors,
            self.clients_dropped,
            self.bad_connections,
            self.refused_connections,
            self.members_suspected
        )
    }
}

/// The tracker connection dropped; delivery among known members goes on and the client
/// reconnects by itself.
#[pyclass(module = "messenger", frozen, get_all)]
pub struct TrackerLost {
    reason: String,
}

/// Back in touch with the tracker; re-joined these groups (as new memberships).
#[pyclass(module = "messenger", frozen, get_all)]
pub struct Reconnected {
    groups: Vec<String>,
}

/// Re-joining a group after reconnecting failed.
#[pyclass(module = "messenger", frozen, get_all)]
pub struct RejoinFailed {
    group: String,
    reason: String,
}

/// The tracker removed this client from a group it did not leave.
#[pyclass(module = "messenger", frozen, get_all)]
pub struct Removed {
    group: String,
}

/// Messages `first..=last` of a member that left or failed can never be delivered.
#[pyclass(module = "messenger", frozen, get_all)]
pub struct Lost {
    group: String,
    sender: String,
    first: u64,
    last: u64,
}

#[pymethods]
impl TrackerLost {
    fn __repr__(&self) -> String {
        format!("TrackerLost(reason={:?})", self.reason)
    }
}

#[pymethods]
impl Reconnected {
    fn __repr__(&self) -> String {
        format!("Reconnected(groups={:?})", self.groups)
    }
}

#[pymethods]
impl RejoinFailed {
    fn __repr__(&self) -> String {
        format!(
            "RejoinFailed(group={:?}, reason={:?})",
            self.group, self.reason
        )
    }
}

#[pymethods]
impl Removed {
    fn __repr__(&self) -> String {
        format!("Removed(group={:?})", self.group)
    }
}

#[pymethods]
impl Lost {
    fn __repr__(&self) -> String {
        format!(
            "Lost(group={:?}, sender={:?}, first={}, last={})",
            self.group, self.sender, self.first, self.last
        )
    }
}

/// The Python object for a client event.
pub(crate) fn event_object(py: Python<'_>, event: ClientEvent) -> PyResult<Bound<'_, PyAny>> {
    Ok(match event {
        ClientEvent::TrackerLost { reason } => Bound::new(py, TrackerLost { reason })?.into_any(),
        ClientEvent::Reconnected { groups } => Bound::new(py, Reconnected { groups })?.into_any(),
        ClientEvent::RejoinFailed { group, reason } => {
            Bound::new(py, RejoinFailed { group, reason })?.into_any()
        }
        ClientEvent::Removed { group } => Bound::new(py, Removed { group })?.into_any(),
        ClientEvent::Lost {
            group,
            sender,
            first,
            last,
        } => Bound::new(
            py,
            Lost {
                group,
                sender,
                first,
                last,
            },
        )?
        .into_any(),
        // An event newer than this module has no class: reported like a callback's error.
        other => {
            return Err(crate::errors::ProtocolError::new_err(format!(
                "an event this module has no class for: {other:?}"
            )))
        }
    })
}
