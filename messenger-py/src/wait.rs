//! Blocking on the core's futures from Python: without the GIL, and interruptible.
//!
//! Each `Client` and `Tracker` owns a tokio runtime (two worker threads, as
//! `messenger_core::BlockingClient` does). A blocking call drives its future with
//! `Runtime::block_on` on the calling thread after releasing the GIL, so other Python threads
//! and the client's callbacks run meanwhile. While the future is pending, the call wakes every
//! [`SIGNAL_CHECK`] to run Python's signal handlers: Ctrl-C raises `KeyboardInterrupt` in the
//! main thread and drops the future (on other threads `check_signals` does nothing).

use std::future::Future;
use std::io;
use std::ops::Deref;
use std::time::Duration;

use pyo3::prelude::*;
use tokio::runtime::Runtime;

/// How often a blocked call looks for a pending signal (Ctrl-C answers within this).
const SIGNAL_CHECK: Duration = Duration::from_millis(50);

/// The runtime of one client or tracker.
///
/// Dropping it does not wait for its tasks (`shutdown_background`): a Python object may be
/// freed by a thread that holds the GIL, which a task being waited for might need.
pub(crate) struct OwnedRuntime(Option<Runtime>);

impl OwnedRuntime {
    pub(crate) fn new(name: &str) -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(name)
            .enable_all()
            .build()?;
        Ok(OwnedRuntime(Some(runtime)))
    }
}

impl Deref for OwnedRuntime {
    type Target = Runtime;

    fn deref(&self) -> &Runtime {
        // Only `drop` takes it out.
        self.0.as_ref().expect("the runtime lives until dropped")
    }
}

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Runs `future` to completion on `runtime` with the GIL released; returns early with the
/// exception raised by a signal handler (typically `KeyboardInterrupt`), dropping the future.
pub(crate) fn block_on<F>(py: Python<'_>, runtime: &Runtime, future: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    py.detach(|| {
        runtime.block_on(async {
            tokio::pin!(future);
            // The first tick is one period away: a call that completes at once never
            // re-attaches to Python.
            let start = tokio::time::Instant::now() + SIGNAL_CHECK;
            let mut ticks = tokio::time::interval_at(start, SIGNAL_CHECK);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    output = &mut future => return Ok(output),
                    _ = ticks.tick() => Python::attach(|py| py.check_signals())?,
                }
            }
        })
    })
}
