//! Python bindings over messenger-core: the private extension module `messenger._messenger`,
//! wrapped by the plain-Python package in `python/messenger/` (docs/PYTHON.md).
//!
//! # Layout
//!
//! - `client`: `Client`, a connected client whose calls block without the GIL.
//! - `tracker`: `Tracker`, a tracker running in the background.
//! - `handler`: the Python callbacks as the core's `Handler` (dispatcher thread, exceptions
//!   reported, never lost).
//! - `types`: the immutable values handed to Python (messages, views, events, metrics).
//! - `errors`: the exception hierarchy and the one mapping from the core's errors.
//! - `wait`: blocking on the core's futures without the GIL, interruptible by Ctrl-C.

mod client;
mod errors;
mod handler;
mod tracker;
mod types;
mod wait;

use pyo3::prelude::*;

/// Sends the core's logs (tracker joins, leaves, failures, clients' metrics) to stderr.
///
/// `filter` is a `tracing` filter such as `"info"` or `"messenger=debug"`; by default the
/// `RUST_LOG` environment variable, else `"info"`. Returns False if logging was set up already.
#[pyfunction]
#[pyo3(signature = (filter = None))]
fn log_to_stderr(filter: Option<&str>) -> PyResult<bool> {
    use tracing_subscriber::EnvFilter;
    let filter = match filter {
        Some(f) => EnvFilter::try_new(f)
            .map_err(|e| errors::ConfigError::new_err(format!("invalid log filter {f:?}: {e}")))?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    Ok(tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init()
        .is_ok())
}

/// The compiled core of the `messenger` package. Import `messenger`, not this module.
#[pymodule]
mod _messenger {
    #[pymodule_export]
    use super::client::Client;
    #[pymodule_export]
    use super::errors::{
        AccessDenied, AlreadyMember, ClosedError, ConfigError, GroupFull, InvalidName,
        LimitReached, MessageTooLarge, MessengerError, NetworkError, NotAMember, OrderMismatch,
        ProtocolError, TrackerNotTrusted, TrackerUnavailable, UnknownGroup, UsernameTaken,
    };
    #[pymodule_export]
    use super::log_to_stderr;
    #[pymodule_export]
    use super::tracker::Tracker;
    #[pymodule_export]
    use super::types::{
        FaultCounts, GroupInfo, GroupView, Lost, Member, Message, Metrics, Reconnected,
        RejoinFailed, Removed, TrackerLost, TrackerStats,
    };

    #[pymodule_init]
    fn init(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
        use pyo3::prelude::*;
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        // Clients must stop before the interpreter finalizes (see `client`).
        let stop = pyo3::wrap_pyfunction!(super::client::stop_all_clients, m)?;
        m.py().import("atexit")?.call_method1("register", (stop,))?;
        Ok(())
    }
}
