//! `messenger_tracker`: a tracker running in the process, on a runtime of its own.

use std::ffi::c_char;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use messenger_core::{ConfigError, Tracker, TrackerConfig, TrackerHandle};
use tokio::runtime::Runtime;

use crate::args::{self, handle, out_ptr, str_arg};
use crate::client::runtime;
use crate::error::{messenger_result, Failure};
use crate::types::messenger_tracker_counters;

/// A running (or stopped) tracker. Made by `messenger_tracker_new`; released with
/// `messenger_tracker_free`.
#[derive(Debug)]
pub struct messenger_tracker {
    runtime: Runtime,
    local_addr: SocketAddr,
    /// `None` once stopped.
    running: Mutex<Option<TrackerHandle>>,
}

impl messenger_tracker {
    fn stop(&self) -> Option<()> {
        let handle = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        self.runtime.block_on(handle.shutdown());
        Some(())
    }
}

fn policy_failure(e: ConfigError) -> Failure {
    let code = match e {
        ConfigError::Read { .. } => messenger_result::MESSENGER_IO,
        ConfigError::Policy { .. } => messenger_result::MESSENGER_CONFIG,
    };
    Failure::new(code, e.to_string())
}

/// Starts a tracker listening on `bind` (`"IP:PORT"`; port 0 picks a free port, which
/// `messenger_tracker_address` then tells).
///
/// `policy_file` is a TOML access policy (passwords, allow-lists, member limits per group), or
/// NULL for an open tracker. A client is probed every `heartbeat_interval_ms` milliseconds and
/// removed after `heartbeat_misses` unanswered probes in a row; 0 for either means the default
/// (1000 ms, 3 misses).
///
/// On success `*tracker_out` is a running tracker, to be freed with `messenger_tracker_free`.
/// Fails with `MESSENGER_INVALID_ARGUMENT` for an address that does not parse, `MESSENGER_IO`
/// when the address cannot be bound or the policy file read, `MESSENGER_CONFIG` for an invalid
/// policy.
#[no_mangle]
pub extern "C" fn messenger_tracker_new(
    bind: *const c_char,
    policy_file: *const c_char,
    heartbeat_interval_ms: u32,
    heartbeat_misses: u32,
    tracker_out: *mut *mut messenger_tracker,
) -> messenger_result {
    ffi_panic_boundary! {
        // SAFETY: NUL-terminated strings or NULL (the documented rule).
        let (bind, policy_file) = unsafe {
            (
                str_arg(bind, "bind")?,
                args::opt_str_arg(policy_file, "policy_file")?,
            )
        };
        let out = out_ptr(tracker_out, "tracker_out")?;
        let bind = args::address(bind, "bind address")?;
        let defaults = TrackerConfig::default();
        let interval = match heartbeat_interval_ms {
            0 => defaults.heartbeat_interval,
            ms => Duration::from_millis(ms.into()),
        };
        let misses = match heartbeat_misses {
            0 => defaults.heartbeat_misses,
            n => n,
        };
        let mut config = defaults.with_heartbeat(interval, misses);
        if let Some(path) = policy_file {
            config = config.with_policy_file(path).map_err(policy_failure)?;
        }
        let runtime = runtime("messenger-tracker")?;
        let running = runtime
            .block_on(Tracker::spawn(bind, config))
            .map_err(|e| {
                Failure::new(
                    messenger_result::MESSENGER_IO,
                    format!("cannot listen on {bind}: {e}"),
                )
            })?;
        let tracker = Box::new(messenger_tracker {
            local_addr: running.local_addr(),
            runtime,
            running: Mutex::new(Some(running)),
        });
        // SAFETY: `out` is a non-NULL writable pointer (the documented rule).
        unsafe { out.write(Box::into_raw(tracker)) };
        Ok(())
    }
}

/// Writes the address the tracker listens on (`IP:PORT`, the port actually bound) into
/// `buf`, following the rules of `messenger_last_error` for `buf`, `len` and `out_len`. Works
/// after `messenger_tracker_stop` too.
#[no_mangle]
pub extern "C" fn messenger_tracker_address(
    tracker: *const messenger_tracker,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> messenger_result {
    ffi_panic_boundary! {
        // SAFETY: a live tracker or NULL (the documented rule).
        let t = unsafe { handle(tracker, "tracker") }?;
        // SAFETY: the caller's buffer rules.
        unsafe { args::write_str(&t.local_addr.to_string(), buf, len, out_len) }
    }
}

/// Writes the tracker's counters into `*stats_out`. Fails with `MESSENGER_CLOSED` once the
/// tracker is stopped.
#[no_mangle]
pub extern "C" fn messenger_tracker_stats(
    tracker: *const messenger_tracker,
    stats_out: *mut messenger_tracker_counters,
) -> messenger_result {
    ffi_panic_boundary! {
        // SAFETY: a live tracker or NULL (the documented rule).
        let t = unsafe { handle(tracker, "tracker") }?;
        let out = out_ptr(stats_out, "stats_out")?;
        let stats = t
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|h| h.stats())
            .ok_or_else(|| Failure::closed("the tracker is stopped"))?;
        // SAFETY: a writable pointer (the documented rule).
        unsafe { out.write(stats.into()) };
        Ok(())
    }
}

/// Stops the tracker: stops accepting, closes every client connection (the clients keep
/// delivering among themselves and try to reconnect) and waits until all are closed. Fails
/// with `MESSENGER_CLOSED` if it was already stopped.
#[no_mangle]
pub extern "C" fn messenger_tracker_stop(tracker: *const messenger_tracker) -> messenger_result {
    ffi_panic_boundary! {
        // SAFETY: a live tracker or NULL (the documented rule).
        let t = unsafe { handle(tracker, "tracker") }?;
        t.stop()
            .ok_or_else(|| Failure::closed("the tracker is already stopped"))
    }
}

/// Stops the tracker if it runs, and frees it. `tracker` may be NULL.
#[no_mangle]
pub extern "C" fn messenger_tracker_free(tracker: *mut messenger_tracker) {
    ffi_panic_boundary! {
        if tracker.is_null() {
            return;
        }
        // SAFETY: made by `messenger_tracker_new` and freed once (the documented rule).
        let t = unsafe { Box::from_raw(tracker) };
        t.stop();
    }
}
