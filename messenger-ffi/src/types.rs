//! The plain structs and enums C reads: orders, event kinds, members, group and member lists
//! (owned by the caller until their `*_free`), metrics and tracker counters.

use std::ffi::{c_char, CString};
use std::time::Duration;

use messenger_core::{FaultCounts, GroupInfo, GroupView, MetricsSnapshot, Order, TrackerStats};

use crate::args::{self, c_string};
use crate::error::{messenger_result, Failure};

/// Delivery order of a group, fixed when the group is created.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum messenger_order {
    /// Each sender's messages in the order it sent them.
    MESSENGER_ORDER_FIFO = 0,
    /// FIFO, and every member delivers all messages in the same order.
    MESSENGER_ORDER_TOTAL = 1,
}

impl From<Order> for messenger_order {
    fn from(order: Order) -> Self {
        match order {
            Order::Fifo => messenger_order::MESSENGER_ORDER_FIFO,
            Order::Total => messenger_order::MESSENGER_ORDER_TOTAL,
        }
    }
}

/// An order passed in by C: any `u32`, checked.
pub(crate) fn order_arg(value: u32) -> Result<Order, Failure> {
    match value {
        v if v == messenger_order::MESSENGER_ORDER_FIFO as u32 => Ok(Order::Fifo),
        v if v == messenger_order::MESSENGER_ORDER_TOTAL as u32 => Ok(Order::Total),
        other => Err(Failure::invalid(format!(
            "order {other} is neither MESSENGER_ORDER_FIFO nor MESSENGER_ORDER_TOTAL"
        ))),
    }
}

/// What an `on_event` callback reports.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum messenger_event_kind {
    /// The tracker connection dropped; delivery among known members goes on and the client
    /// reconnects by itself. `group` is NULL.
    MESSENGER_EVENT_TRACKER_LOST = 0,
    /// Back in touch with the tracker; the client re-joined its groups (as new memberships).
    /// `group` is NULL.
    MESSENGER_EVENT_RECONNECTED = 1,
    /// Re-joining `group` after reconnecting failed: the client is no longer in it.
    MESSENGER_EVENT_REJOIN_FAILED = 2,
    /// The tracker removed the client from `group`, which it did not leave.
    MESSENGER_EVENT_REMOVED = 3,
    /// Some messages of a member of `group` that left or failed can never be delivered.
    MESSENGER_EVENT_LOST = 4,
}

/// One member of a group.
#[repr(C)]
#[derive(Debug)]
pub struct messenger_member {
    /// The member's id in the group (one membership: a client that leaves and joins again
    /// gets a new one).
    pub id: u64,
    /// The member's username.
    pub name: *const c_char,
    /// The member's UDP address, `IP:PORT`.
    pub address: *const c_char,
}

/// A group's new membership, as `on_view` sees it. Every pointer in it is borrowed for the
/// duration of the callback.
#[repr(C)]
#[derive(Debug)]
pub struct messenger_view {
    pub group: *const c_char,
    /// Grows with every membership change of the group.
    pub view_id: u64,
    pub order: messenger_order,
    pub members: *const messenger_member,
    pub members_len: usize,
    /// Usernames that joined since the previous view this client saw (every member, in the
    /// view that added this client).
    pub joined: *const *const c_char,
    pub joined_len: usize,
    /// Usernames that left or failed since the previous view.
    pub left: *const *const c_char,
    pub left_len: usize,
}

/// The C strings and arrays behind one borrowed [`messenger_view`]; they must outlive it.
pub(crate) struct ViewStorage {
    group: CString,
    _strings: Vec<CString>,
    members: Vec<messenger_member>,
    joined: Vec<*const c_char>,
    left: Vec<*const c_char>,
    view_id: u64,
    order: messenger_order,
}

impl ViewStorage {
    pub(crate) fn new(view: &GroupView) -> Self {
        let mut strings = Vec::new();
        // A CString's buffer does not move when the CString is moved into `strings`.
        let mut keep = |s: String| -> *const c_char {
            let c = c_string(&s);
            let ptr = c.as_ptr();
            strings.push(c);
            ptr
        };
        let members = view
            .members
            .iter()
            .map(|m| messenger_member {
                id: m.id.0,
                name: keep(m.name.clone()),
                address: keep(m.addr.to_string()),
            })
            .collect();
        let joined = view.joined.iter().map(|n| keep(n.clone())).collect();
        let left = view.left.iter().map(|n| keep(n.clone())).collect();
        ViewStorage {
            group: c_string(&view.group),
            _strings: strings,
            members,
            joined,
            left,
            view_id: view.view_id,
            order: view.order.into(),
        }
    }

    /// The view, valid while `self` is.
    pub(crate) fn view(&self) -> messenger_view {
        messenger_view {
            group: self.group.as_ptr(),
            view_id: self.view_id,
            order: self.order,
            members: self.members.as_ptr(),
            members_len: self.members.len(),
            joined: self.joined.as_ptr(),
            joined_len: self.joined.len(),
            left: self.left.as_ptr(),
            left_len: self.left.len(),
        }
    }
}

/// A group on the tracker.
#[repr(C)]
#[derive(Debug)]
pub struct messenger_group {
    pub name: *const c_char,
    pub order: messenger_order,
    /// How many members it has.
    pub members: u32,
}

/// The groups on the tracker, owned by the caller: release with `messenger_group_list_free`.
#[repr(C)]
#[derive(Debug)]
pub struct messenger_group_list {
    pub groups: *const messenger_group,
    pub len: usize,
}

/// A group's members, owned by the caller: release with `messenger_member_list_free`.
#[repr(C)]
#[derive(Debug)]
pub struct messenger_member_list {
    pub members: *const messenger_member,
    pub len: usize,
    /// The view these members make up.
    pub view_id: u64,
    pub order: messenger_order,
}

/// A boxed slice handed to C as a pointer and a length.
fn leak_slice<T>(items: Vec<T>) -> (*const T, usize) {
    let len = items.len();
    (Box::into_raw(items.into_boxed_slice()).cast::<T>(), len)
}

/// Takes back a slice made by [`leak_slice`].
///
/// # Safety
///
/// `ptr` and `len` come from one `leak_slice` call, and are taken back once.
unsafe fn take_slice<T>(ptr: *const T, len: usize) -> Box<[T]> {
    let slice = std::ptr::slice_from_raw_parts_mut(ptr.cast_mut(), len);
    // SAFETY: a boxed slice of `len` items leaked by `leak_slice` (the function's contract).
    unsafe { Box::from_raw(slice) }
}

/// Takes back a string made by `CString::into_raw`.
///
/// # Safety
///
/// `ptr` comes from `CString::into_raw` and is taken back once.
unsafe fn take_string(ptr: *const c_char) {
    // SAFETY: the function's contract.
    drop(unsafe { CString::from_raw(ptr.cast_mut()) });
}

impl messenger_group_list {
    pub(crate) fn new(groups: Vec<GroupInfo>) -> Self {
        let items = groups
            .into_iter()
            .map(|g| messenger_group {
                name: c_string(&g.name).into_raw(),
                order: g.order.into(),
                members: g.members,
            })
            .collect();
        let (groups, len) = leak_slice(items);
        messenger_group_list { groups, len }
    }
}

impl messenger_member_list {
    pub(crate) fn new(view: GroupView) -> Self {
        let items = view
            .members
            .iter()
            .map(|m| messenger_member {
                id: m.id.0,
                name: c_string(&m.name).into_raw(),
                address: c_string(&m.addr.to_string()).into_raw(),
            })
            .collect();
        let (members, len) = leak_slice(items);
        messenger_member_list {
            members,
            len,
            view_id: view.view_id,
            order: view.order.into(),
        }
    }
}

/// Frees what a `messenger_group_list` owns and sets it to an empty list (`groups` NULL,
/// `len` 0), so that freeing it twice does nothing. `list` may be NULL.
#[no_mangle]
pub extern "C" fn messenger_group_list_free(list: *mut messenger_group_list) {
    ffi_panic_boundary! {
        // SAFETY: NULL or a list filled by `messenger_client_groups` (the documented rule).
        let Some(list) = (unsafe { list.as_mut() }) else { return };
        if !list.groups.is_null() {
            // SAFETY: `groups`/`len` were made by `leak_slice` and are taken back once: the
            // list is emptied below.
            let groups = unsafe { take_slice(list.groups, list.len) };
            for g in groups.iter() {
                // SAFETY: each name was made by `CString::into_raw`.
                unsafe { take_string(g.name) };
            }
        }
        list.groups = std::ptr::null();
        list.len = 0;
    }
}

/// Frees what a `messenger_member_list` owns and sets it to an empty list (`members` NULL,
/// `len` 0), so that freeing it twice does nothing. `list` may be NULL.
#[no_mangle]
pub extern "C" fn messenger_member_list_free(list: *mut messenger_member_list) {
    ffi_panic_boundary! {
        // SAFETY: NULL or a list filled by `messenger_client_members` (the documented rule).
        let Some(list) = (unsafe { list.as_mut() }) else { return };
        if !list.members.is_null() {
            // SAFETY: `members`/`len` were made by `leak_slice` and are taken back once.
            let members = unsafe { take_slice(list.members, list.len) };
            for m in members.iter() {
                // SAFETY: each string was made by `CString::into_raw`.
                unsafe {
                    take_string(m.name);
                    take_string(m.address);
                }
            }
        }
        list.members = std::ptr::null();
        list.len = 0;
    }
}

/// A client's metrics. Times are in microseconds.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct messenger_metrics {
    /// Messages this client sent (all groups).
    pub sent: u64,
    /// Messages of other members delivered to this client.
    pub received: u64,
    /// `sent + received`.
    pub total: u64,
    /// Time since the client connected.
    pub elapsed_us: u64,
    /// Messages (sent and received) per second since the client connected.
    pub throughput: f64,
    /// Delivery latency (send to delivery) of the received messages.
    pub latency_mean_us: u64,
    pub latency_p50_us: u64,
    pub latency_p99_us: u64,
    pub latency_max_us: u64,
    /// Datagrams dropped as malformed, spoofed, stale or for an unknown group.
    pub dropped_datagrams: u64,
    /// Sends that found their group's send window full and waited for room (the
    /// application sends faster than the slowest member acknowledges).
    pub window_waits: u64,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl From<MetricsSnapshot> for messenger_metrics {
    fn from(m: MetricsSnapshot) -> Self {
        messenger_metrics {
            sent: m.sent,
            received: m.received,
            total: m.total,
            elapsed_us: micros(m.elapsed),
            throughput: m.throughput,
            latency_mean_us: micros(m.latency_mean),
            latency_p50_us: micros(m.latency_p50),
            latency_p99_us: micros(m.latency_p99),
            latency_max_us: micros(m.latency_max),
            dropped_datagrams: m.dropped_datagrams,
            window_waits: m.window_waits,
        }
    }
}

impl From<&messenger_metrics> for MetricsSnapshot {
    fn from(m: &messenger_metrics) -> Self {
        // Field by field: the core's snapshot may grow (`#[non_exhaustive]`).
        let mut s = MetricsSnapshot::default();
        s.sent = m.sent;
        s.received = m.received;
        s.total = m.total;
        s.elapsed = Duration::from_micros(m.elapsed_us);
        s.throughput = m.throughput;
        s.latency_mean = Duration::from_micros(m.latency_mean_us);
        s.latency_p50 = Duration::from_micros(m.latency_p50_us);
        s.latency_p99 = Duration::from_micros(m.latency_p99_us);
        s.latency_max = Duration::from_micros(m.latency_max_us);
        s.dropped_datagrams = m.dropped_datagrams;
        s.window_waits = m.window_waits;
        s
    }
}

/// Writes the metrics block the `messenger chat` program prints on exit (four lines, no final
/// newline: `-----Performance analytics -----`, throughput, latency, counts) into `buf`,
/// following the rules of `messenger_last_error` for `buf`, `len` and `out_len`.
#[no_mangle]
pub extern "C" fn messenger_metrics_text(
    metrics: *const messenger_metrics,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> messenger_result {
    ffi_panic_boundary! {
        // SAFETY: NULL or a readable struct (the documented rule).
        let metrics = unsafe { args::handle(metrics, "metrics") }?;
        let text = MetricsSnapshot::from(metrics).to_string();
        // SAFETY: the caller's buffer rules.
        unsafe { args::write_str(&text, buf, len, out_len) }
    }
}

/// What the fault injector did to a client's outgoing datagrams so far (all zero without
/// faults); see `messenger_client_config_set_faults`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct messenger_fault_counts {
    /// Datagrams never sent.
    pub dropped: u64,
    /// Datagrams sent twice.
    pub duplicated: u64,
    /// Copies held back and sent later (which lets later datagrams overtake them).
    pub delayed: u64,
}

impl From<FaultCounts> for messenger_fault_counts {
    fn from(c: FaultCounts) -> Self {
        messenger_fault_counts {
            dropped: c.dropped,
            duplicated: c.duplicated,
            delayed: c.delayed,
        }
    }
}

/// The tracker's counters.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct messenger_tracker_counters {
    /// Connected clients.
    pub clients: u32,
    pub groups: u32,
    pub memberships: u32,
    pub views_pushed: u64,
    pub requests: u64,
    /// Requests refused.
    pub errors: u64,
    /// Clients removed because they stopped answering heartbeats.
    pub clients_dropped: u64,
    /// Connections closed for a malformed or oversized frame or a protocol violation.
    pub bad_connections: u64,
    /// Connections refused or closed for reaching a limit: connections in all or per address,
    /// bytes of partial frames, wrong passwords.
    pub refused_connections: u64,
    /// Members taken out of a group because enough of its members reported them.
    pub members_suspected: u64,
}

impl From<TrackerStats> for messenger_tracker_counters {
    fn from(s: TrackerStats) -> Self {
        messenger_tracker_counters {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn group_lists_are_freed_once() {
        let mut list = messenger_group_list::new(vec![
            GroupInfo {
                name: "a".into(),
                order: Order::Fifo,
                members: 1,
            },
            GroupInfo {
                name: "b".into(),
                order: Order::Total,
                members: 2,
            },
        ]);
        assert_eq!(list.len, 2);
        // SAFETY: the list was just made with two items.
        let second = unsafe { &*list.groups.add(1) };
        // SAFETY: a NUL-terminated name owned by the list.
        assert_eq!(unsafe { CStr::from_ptr(second.name) }.to_str(), Ok("b"));
        assert_eq!(second.order, messenger_order::MESSENGER_ORDER_TOTAL);
        messenger_group_list_free(&mut list);
        assert!(list.groups.is_null());
        messenger_group_list_free(&mut list);
        messenger_group_list_free(std::ptr::null_mut());
        let mut empty = messenger_group_list::new(Vec::new());
        messenger_group_list_free(&mut empty);
    }

    #[test]
    fn orders_are_checked() {
        assert_eq!(order_arg(0), Ok(Order::Fifo));
        assert_eq!(order_arg(1), Ok(Order::Total));
        assert_eq!(
            order_arg(7).map_err(|f| f.code),
            Err(messenger_result::MESSENGER_INVALID_ARGUMENT)
        );
    }

    #[test]
    fn metrics_round_trip_and_text() {
        let m = messenger_metrics {
            sent: 3,
            received: 5,
            total: 8,
            elapsed_us: 2_000_000,
            throughput: 4.0,
            latency_mean_us: 1_500,
            ..Default::default()
        };
        assert_eq!(messenger_metrics::from(MetricsSnapshot::from(&m)), m);
        let mut buf = [0 as c_char; 256];
        let mut len = 0;
        let r = messenger_metrics_text(&m, buf.as_mut_ptr(), buf.len(), &mut len);
        assert_eq!(r, messenger_result::MESSENGER_OK);
        // SAFETY: NUL-terminated by the call.
        let text = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
        assert!(
            text.starts_with("-----Performance analytics -----\n"),
            "{text}"
        );
        assert!(text.ends_with("Total messages = 8"), "{text}");
        assert_eq!(len, text.len());
    }
}
