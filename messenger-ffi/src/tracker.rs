//! `messenger_tracker`: a tracker running in the process, on a runtime of its own.

use std::ffi::c_char;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use messenger_core::{ConfigError, Fingerprint, Tracker, TrackerConfig, TrackerHandle};
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
    /// `None` for an insecure tracker.
    fingerprint: Option<Fingerprint>,
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
/// The tracker speaks TLS 1.3 with a key pair and self-signed certificate kept in the default
/// state directory (`$MESSENGER_STATE_DIR`, else `$XDG_STATE_HOME/messenger`, else
/// `~/.local/state/messenger`), created on first start; `messenger_tracker_new_with_tls`
/// chooses another directory, or plain TCP.
///
/// On success `*tracker_out` is a running tracker, to be freed with `messenger_tracker_free`.
/// Fails with `MESSENGER_INVALID_ARGUMENT` for an address that does not parse, `MESSENGER_IO`
/// when the address cannot be bound, the policy file read or the key created or read,
/// `MESSENGER_CONFIG` for an invalid policy.
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
        start(
            bind,
            policy_file,
            (heartbeat_interval_ms, heartbeat_misses),
            None,
            false,
            tracker_out,
        )
    }
}

/// `messenger_tracker_new` with its TLS settings: `state_dir` is the directory that keeps the
/// tracker's key pair and self-signed certificate (created there on first start; NULL for the
/// default state directory); `insecure` non-zero serves plain TCP without TLS instead (group
/// passwords and usernames then travel in clear, and only insecure clients connect).
#[no_mangle]
pub extern "C" fn messenger_tracker_new_with_tls(
    bind: *const c_char,
    policy_file: *const c_char,
    heartbeat_interval_ms: u32,
    heartbeat_misses: u32,
    state_dir: *const c_char,
    insecure: bool,
    tracker_out: *mut *mut messenger_tracker,
) -> messenger_result {
    ffi_panic_boundary! {
        // SAFETY: NUL-terminated strings or NULL (the documented rule).
        let (bind, policy_file, state_dir) = unsafe {
            (
                str_arg(bind, "bind")?,
                args::opt_str_arg(policy_file, "policy_file")?,
                args::opt_str_arg(state_dir, "state_dir")?,
            )
        };
        start(
            bind,
            policy_file,
            (heartbeat_interval_ms, heartbeat_misses),
            state_dir,
            insecure,
            tracker_out,
        )
    }
}

/// The tracker creation both constructors share (inside their panic boundary).
fn start(
    bind: &str,
    policy_file: Option<&str>,
    (heartbeat_interval_ms, heartbeat_misses): (u32, u32),
    state_dir: Option<&str>,
    insecure: bool,
    tracker_out: *mut *mut messenger_tracker,
) -> Result<(), Failure> {
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
    if insecure {
        config = config.insecure();
    } else if let Some(dir) = state_dir {
        config = config.with_state_dir(dir);
    }
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
        fingerprint: running.fingerprint(),
        runtime,
        running: Mutex::new(Some(running)),
    });
    // SAFETY: `out` is a non-NULL writable pointer (the documented rule).
    unsafe { out.write(Box::into_raw(tracker)) };
    Ok(())
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

/// Writes the SHA-256 fingerprint of the tracker's certificate (32 upper-case hex bytes
/// separated by colons, 95 characters) into `buf`, following the rules of
/// `messenger_last_error` for `buf`, `len` and `out_len`; an empty string for an insecure
/// tracker. Clients pin it with `messenger_client_config_set_tracker_fingerprint`.
#[no_mangle]
pub extern "C" fn messenger_tracker_fingerprint(
    tracker: *const messenger_tracker,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> messenger_result {
    ffi_panic_boundary! {
        // SAFETY: a live tracker or NULL (the documented rule).
        let t = unsafe { handle(tracker, "tracker") }?;
        let text = t.fingerprint.map(|f| f.to_string()).unwrap_or_default();
        // SAFETY: the caller's buffer rules.
        unsafe { args::write_str(&text, buf, len, out_len) }
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
