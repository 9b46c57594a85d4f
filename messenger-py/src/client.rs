//! `messenger.Client`: a connected client whose calls block (without the GIL).
//!
//! It holds the core's async [`messenger_core::Client`] and the runtime its tasks run on, and
//! drives each call with [`block_on`], which is what `BlockingClient` does plus the signal
//! checks that let Ctrl-C interrupt a blocked call.
//!
//! A client must stop before the interpreter finalizes: its callback thread attaching to a
//! finalizing interpreter would be killed in the middle of Rust code. So a client that is
//! freed stops first (waiting, without the GIL, for its last callback), and an `atexit` hook
//! stops every client still alive at exit ([`stop_all_clients`]).

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use messenger_core::{ClientConfig, FaultConfig, TrackerTrust};
use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use crate::errors::{client_error, network_error, ConfigError};
use crate::handler::{Callbacks, PyHandler};
use crate::tracker::Tracker;
use crate::types::{parse_order, FaultCounts, GroupInfo, GroupView, Member, Metrics, TrackerStats};
use crate::wait::{block_on, OwnedRuntime};

/// The largest `window` accepted: 64 times the default. Every member holds back up to a window
/// of each sender's messages (1200 bytes each at most) and keeps as much for retransmission.
const MAX_WINDOW: u64 = messenger_core::GroupConfig::MAX_WINDOW;

/// A client connected to a tracker. See the package documentation.
#[pyclass(module = "messenger", frozen)]
pub struct Client {
    session: Arc<Session>,
    /// Set by `quit()`: `__exit__` then has nothing left to do.
    quit: AtomicBool,
}

/// The running client: what `Client` owns, and what the registry of live clients can reach.
struct Session {
    client: messenger_core::Client,
    runtime: OwnedRuntime,
}

impl Session {
    /// Stops the client's tasks and waits (without the GIL) until its last callback is over.
    /// Does nothing for a client that stopped already.
    fn stop(&self, py: Python<'_>) {
        py.detach(|| self.runtime.block_on(self.client.shutdown()));
    }
}

/// Every client not yet freed.
static LIVE: Mutex<Vec<Weak<Session>>> = Mutex::new(Vec::new());

fn register(session: &Arc<Session>) {
    let mut live = LIVE.lock().unwrap_or_else(PoisonError::into_inner);
    live.retain(|s| s.strong_count() > 0);
    live.push(Arc::downgrade(session));
}

/// Stops every live client: registered with `atexit` when the module loads.
#[pyfunction]
pub(crate) fn stop_all_clients(py: Python<'_>) {
    let live: Vec<Arc<Session>> = LIVE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .drain(..)
        .filter_map(|s| s.upgrade())
        .collect();
    for session in live {
        session.stop(py);
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // `None` once the interpreter finalizes; the atexit hook stopped the client before.
        let _ = Python::try_attach(|py| self.session.stop(py));
    }
}

#[pymethods]
impl Client {
    #[new]
    #[pyo3(signature = (
        tracker,
        username,
        udp = "127.0.0.1:0",
        on_message = None,
        on_view = None,
        on_event = None,
        on_error = None,
        *,
        window = None,
        faults = None,
        suspect_timeout = None,
        tracker_fingerprint = None,
        insecure = false,
        known_trackers = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        tracker: &Bound<'_, PyAny>,
        username: String,
        udp: &str,
        on_message: Option<Py<PyAny>>,
        on_view: Option<Py<PyAny>>,
        on_event: Option<Py<PyAny>>,
        on_error: Option<Py<PyAny>>,
        window: Option<&Bound<'_, PyAny>>,
        faults: Option<&str>,
        suspect_timeout: Option<f64>,
        tracker_fingerprint: Option<&str>,
        insecure: bool,
        known_trackers: Option<std::path::PathBuf>,
    ) -> PyResult<Self> {
        for (name, callback) in [
            ("on_message", &on_message),
            ("on_view", &on_view),
            ("on_event", &on_event),
            ("on_error", &on_error),
        ] {
            if let Some(callback) = callback {
                if !callback.bind(py).is_callable() {
                    return Err(PyTypeError::new_err(format!("{name} must be callable")));
                }
            }
        }
        let trust = trust(tracker, tracker_fingerprint, insecure, known_trackers)?;
        let tracker = tracker_address(py, tracker)?;
        let mut config = ClientConfig::new(tracker, username).with_trust(trust);
        config.udp_bind = resolve(py, udp, "udp")?;
        if let Some(window) = window {
            config.group.window = window_size(window)?;
        }
        if let Some(spec) = faults {
            // An explicit spec, even "", wins over MESSENGER_FAULTS.
            let parsed =
                FaultConfig::parse(spec).map_err(|e| ConfigError::new_err(e.to_string()))?;
            config.faults = Some(parsed);
        }
        if let Some(timeout) = suspect_timeout {
            let timeout = seconds(timeout, "suspect_timeout")?;
            if timeout.is_zero() {
                return Err(PyValueError::new_err(
                    "suspect_timeout must be greater than 0",
                ));
            }
            config.group.suspect_timeout = timeout;
        }
        let handler = PyHandler::new(Callbacks {
            on_message,
            on_view,
            on_event,
            on_error,
        });
        let runtime = OwnedRuntime::new("messenger-client")
            .map_err(|e| network_error(py, "cannot start the client's runtime", e))?;
        let client = block_on(
            py,
            &runtime,
            messenger_core::Client::connect(config, handler),
        )?
        .map_err(|e| client_error(py, e))?;
        let session = Arc::new(Session { client, runtime });
        register(&session);
        Ok(Client {
            session,
            quit: AtomicBool::new(false),
        })
    }

    /// This client's username.
    #[getter]
    fn username(&self) -> &str {
        self.session.client.username()
    }

    /// The UDP address peers send this client's datagrams to, `"ip:port"`.
    #[getter]
    fn address(&self) -> String {
        self.session.client.udp_addr().to_string()
    }

    /// Joins `group`, creating it with `order` ("fifo" or "total") if it does not exist.
    /// Returns the view that added this client.
    #[pyo3(signature = (group, order = "fifo", password = None))]
    fn join(
        &self,
        py: Python<'_>,
        group: &str,
        order: &str,
        password: Option<&str>,
    ) -> PyResult<GroupView> {
        let order = parse_order(order)?;
        self.call(py, self.session.client.join(group, order, password))
            .map(GroupView::from)
    }

    /// Leaves `group`.
    fn leave(&self, py: Python<'_>, group: &str) -> PyResult<()> {
        self.call(py, self.session.client.leave(group))
    }

    /// Sends `data` (str as UTF-8, bytes as they are) to every member of `group`; returns its
    /// sequence number. Waits while the group's send window is full.
    fn send(&self, py: Python<'_>, group: &str, data: &Bound<'_, PyAny>) -> PyResult<u64> {
        let payload = if let Ok(text) = data.cast::<PyString>() {
            Bytes::copy_from_slice(text.to_cow()?.as_bytes())
        } else if let Ok(bytes) = data.cast::<PyBytes>() {
            Bytes::copy_from_slice(bytes.as_bytes())
        } else {
            return Err(PyTypeError::new_err(format!(
                "data must be str or bytes, not {}",
                data.get_type().name()?
            )));
        };
        self.call(py, self.session.client.send(group, payload))
    }

    /// Waits until every message this client sent is held by every member, at most `timeout`
    /// seconds; returns whether they all are.
    #[pyo3(signature = (timeout = 5.0))]
    fn flush(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        let timeout = seconds(timeout, "timeout")?;
        self.call(py, self.session.client.flush(timeout))
    }

    /// Every group on the tracker.
    fn groups<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let groups = self.call(py, self.session.client.groups())?;
        PyList::new(py, groups.into_iter().map(GroupInfo::from))
    }

    /// The members of `group`, in the order they joined.
    fn members<'py>(&self, py: Python<'py>, group: &str) -> PyResult<Bound<'py, PyList>> {
        let view = self.call(py, self.session.client.members(group))?;
        PyList::new(py, view.members.iter().map(Member::from))
    }

    /// The tracker's counters.
    fn tracker_stats(&self, py: Python<'_>) -> PyResult<TrackerStats> {
        self.call(py, self.session.client.tracker_stats())
            .map(TrackerStats::from)
    }

    /// This client's metrics so far.
    fn metrics(&self) -> Metrics {
        Metrics::from(self.session.client.metrics())
    }

    /// What fault injection (`faults=` or `MESSENGER_FAULTS`) did to this client's outgoing
    /// datagrams so far; all zero without faults.
    fn fault_counts(&self) -> FaultCounts {
        FaultCounts::from(self.session.client.fault_counts())
    }

    /// Reports the metrics to the tracker, leaves every group and stops the client; returns
    /// the final metrics. Later calls raise `ClosedError`.
    fn quit(&self, py: Python<'_>) -> PyResult<Metrics> {
        self.quit.store(true, Ordering::SeqCst);
        self.call(py, self.session.client.quit()).map(Metrics::from)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Quits, unless `quit()` was called already.
    #[pyo3(signature = (*exc_info))]
    fn __exit__(&self, py: Python<'_>, exc_info: &Bound<'_, PyTuple>) -> PyResult<bool> {
        let _ = exc_info;
        if !self.quit.load(Ordering::SeqCst) {
            self.quit(py)?;
        }
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!(
            "Client(username={:?}, address={:?})",
            self.session.client.username(),
            self.session.client.udp_addr().to_string()
        )
    }
}

impl Client {
    /// Runs one of the core client's calls, without the GIL and interruptible.
    fn call<T: Send>(
        &self,
        py: Python<'_>,
        future: impl std::future::Future<Output = Result<T, messenger_core::ClientError>> + Send,
    ) -> PyResult<T> {
        block_on(py, &self.session.runtime, future)?.map_err(|e| client_error(py, e))
    }
}

/// Which tracker key the client believes: `insecure`, a pinned fingerprint, first use recorded
/// in `known_trackers` (or the default file); a `Tracker` of this process, given as such, is
/// pinned by its own fingerprint unless something else is asked.
fn trust(
    tracker: &Bound<'_, PyAny>,
    fingerprint: Option<&str>,
    insecure: bool,
    known_trackers: Option<std::path::PathBuf>,
) -> PyResult<TrackerTrust> {
    let chosen = usize::from(insecure)
        + usize::from(fingerprint.is_some())
        + usize::from(known_trackers.is_some());
    if chosen > 1 {
        return Err(PyValueError::new_err(
            "give at most one of insecure, tracker_fingerprint and known_trackers",
        ));
    }
    if insecure {
        return Ok(TrackerTrust::Insecure);
    }
    if let Some(text) = fingerprint {
        let pinned = text
            .parse()
            .map_err(|e: messenger_core::FingerprintError| PyValueError::new_err(e.to_string()))?;
        return Ok(TrackerTrust::Fingerprint(pinned));
    }
    if known_trackers.is_none() {
        if let Ok(tracker) = tracker.cast::<Tracker>() {
            return Ok(match tracker.get().fingerprint_of() {
                Some(own) => TrackerTrust::Fingerprint(own),
                None => TrackerTrust::Insecure,
            });
        }
    }
    Ok(TrackerTrust::FirstUse { known_trackers })
}

/// The tracker's address from a `Tracker`, an `"host:port"` string or a `(host, port)` tuple.
fn tracker_address(py: Python<'_>, tracker: &Bound<'_, PyAny>) -> PyResult<SocketAddr> {
    if let Ok(tracker) = tracker.cast::<Tracker>() {
        return Ok(tracker.get().local_addr());
    }
    if let Ok(text) = tracker.cast::<PyString>() {
        return resolve(py, &text.to_cow()?, "tracker");
    }
    if let Ok((host, port)) = tracker.extract::<(String, u16)>() {
        let shown = format!("({host:?}, {port})");
        return lookup(py, (host, port), &shown, "tracker");
    }
    Err(PyTypeError::new_err(
        "tracker must be a Tracker, a \"host:port\" string or a (host, port) tuple",
    ))
}

/// Resolves `"host:port"` (`"[::1]:port"` for IPv6).
pub(crate) fn resolve(py: Python<'_>, address: &str, what: &str) -> PyResult<SocketAddr> {
    match address.parse() {
        Ok(addr) => Ok(addr),
        Err(_) => lookup(py, address.to_string(), &format!("{address:?}"), what),
    }
}

/// The first address `address` resolves to, looked up without the GIL.
fn lookup<A>(py: Python<'_>, address: A, shown: &str, what: &str) -> PyResult<SocketAddr>
where
    A: ToSocketAddrs + Send,
{
    match py.detach(move || address.to_socket_addrs().map(|mut a| a.next())) {
        Ok(Some(addr)) => Ok(addr),
        Ok(None) => Err(ConfigError::new_err(format!(
            "{what} address {shown} resolves to nothing"
        ))),
        Err(e) => Err(ConfigError::new_err(format!(
            "invalid {what} address {shown} (expected \"host:port\"): {e}"
        ))),
    }
}

/// A send window from Python: a whole number of messages, 1 to [`MAX_WINDOW`].
fn window_size(value: &Bound<'_, PyAny>) -> PyResult<u64> {
    let size = match value.extract::<i64>() {
        Ok(n) => u64::try_from(n).ok(),
        Err(e) if e.is_instance_of::<PyOverflowError>(value.py()) => None,
        Err(e) => return Err(e),
    };
    match size {
        Some(n) if (1..=MAX_WINDOW).contains(&n) => Ok(n),
        _ => Err(PyValueError::new_err(format!(
            "window must be a number of messages from 1 to {MAX_WINDOW}, not {value}"
        ))),
    }
}

/// A duration in seconds from Python.
pub(crate) fn seconds(value: f64, what: &str) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        PyValueError::new_err(format!(
            "{what} must be a finite, non-negative number of seconds, not {value}"
        ))
    })
}
