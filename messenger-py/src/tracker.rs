//! `messenger.Tracker`: a tracker running in the background of a Python process, on a runtime
//! of its own, until `close()`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use messenger_core::{Fingerprint, TrackerConfig, TrackerHandle};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::client::{resolve, seconds};
use crate::errors::{network_error, tracker_config_error, ClosedError};
use crate::types::TrackerStats;
use crate::wait::{block_on, OwnedRuntime};

/// A tracker serving clients in the background. See the package documentation.
#[pyclass(module = "messenger", frozen)]
pub struct Tracker {
    runtime: OwnedRuntime,
    local_addr: SocketAddr,
    /// `None` for an insecure tracker.
    fingerprint: Option<Fingerprint>,
    /// `None` once closed.
    handle: Mutex<Option<TrackerHandle>>,
}

impl Tracker {
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub(crate) fn fingerprint_of(&self) -> Option<Fingerprint> {
        self.fingerprint
    }

    fn take_handle(&self) -> Option<TrackerHandle> {
        self.handle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

#[pymethods]
impl Tracker {
    #[new]
    #[pyo3(signature = (
        bind = "127.0.0.1:0",
        policy = None,
        heartbeat_interval = 1.0,
        heartbeat_misses = 3,
        *,
        state_dir = None,
        insecure = false,
    ))]
    fn new(
        py: Python<'_>,
        bind: &str,
        policy: Option<PathBuf>,
        heartbeat_interval: f64,
        heartbeat_misses: u32,
        state_dir: Option<PathBuf>,
        insecure: bool,
    ) -> PyResult<Self> {
        let interval = seconds(heartbeat_interval, "heartbeat_interval")?;
        if interval.is_zero() || heartbeat_misses == 0 {
            return Err(PyValueError::new_err(
                "heartbeat_interval and heartbeat_misses must be greater than 0",
            ));
        }
        let mut config = TrackerConfig::default().with_heartbeat(interval, heartbeat_misses);
        match (insecure, state_dir) {
            (true, Some(_)) => {
                return Err(PyValueError::new_err(
                    "state_dir keeps the TLS key: it makes no sense with insecure=True",
                ))
            }
            (true, None) => config = config.insecure(),
            (false, Some(dir)) => config = config.with_state_dir(dir),
            (false, None) => {}
        }
        if let Some(path) = policy {
            config = config
                .with_policy_file(path)
                .map_err(tracker_config_error)?;
        }
        let addr = resolve(py, bind, "bind")?;
        let runtime = OwnedRuntime::new("messenger-tracker")
            .map_err(|e| network_error(py, "cannot start the tracker's runtime", e))?;
        let handle = block_on(py, &runtime, messenger_core::Tracker::spawn(addr, config))?
            .map_err(|e| network_error(py, &format!("cannot listen on {addr}"), e))?;
        Ok(Tracker {
            local_addr: handle.local_addr(),
            fingerprint: handle.fingerprint(),
            runtime,
            handle: Mutex::new(Some(handle)),
        })
    }

    /// The address the tracker listens on, `"ip:port"` (the port chosen when bound to 0).
    #[getter]
    fn address(&self) -> String {
        self.local_addr.to_string()
    }

    /// The SHA-256 fingerprint of the tracker's certificate (32 upper-case hex bytes separated
    /// by colons), which clients pin; `None` for an insecure tracker.
    #[getter]
    fn fingerprint(&self) -> Option<String> {
        self.fingerprint.map(|f| f.to_string())
    }

    /// The tracker's counters.
    fn stats(&self) -> PyResult<TrackerStats> {
        let handle = self.handle.lock().unwrap_or_else(PoisonError::into_inner);
        match handle.as_ref() {
            Some(h) => Ok(TrackerStats::from(h.stats())),
            None => Err(ClosedError::new_err("the tracker is closed")),
        }
    }

    /// Stops the tracker: closes every client connection (the clients keep delivering among
    /// themselves and try to reconnect). Closing twice does nothing.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        match self.take_handle() {
            Some(handle) => block_on(py, &self.runtime, handle.shutdown()),
            None => Ok(()),
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*exc_info))]
    fn __exit__(&self, py: Python<'_>, exc_info: &Bound<'_, PyTuple>) -> PyResult<bool> {
        let _ = exc_info;
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!("Tracker(address={:?})", self.local_addr.to_string())
    }
}
