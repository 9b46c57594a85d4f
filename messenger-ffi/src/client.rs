//! `messenger_client_config` (what to connect to, as whom, with which callbacks) and
//! `messenger_client` (a connected client: join, leave, send, flush, lists, metrics, quit).
//!
//! A client handle owns a tokio runtime and a [`Client`]; each call blocks the calling thread
//! on that runtime. Callbacks run on the client's callback thread, which is not a runtime
//! thread, so they may call back in.

use std::ffi::{c_char, c_void};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use messenger_core::{Client, ClientConfig, FaultConfig, Fingerprint, GroupConfig, TrackerTrust};
use tokio::runtime::Runtime;

use crate::args::{self, handle, out_ptr, str_arg};
use crate::callbacks::{
    messenger_event_callback, messenger_message_callback, messenger_userdata_free,
    messenger_view_callback, CHandler, Callback, CallbackSet, DispatchState, ForeignData,
};
use crate::error::{messenger_result, Failure};
use crate::types::{
    messenger_fault_counts, messenger_group_list, messenger_member_list, messenger_metrics,
    messenger_tracker_counters, order_arg,
};

/// The largest send window `messenger_client_config_set_window` accepts. Every member may hold
/// a window of messages (up to 1200 bytes each) per sender of each group: at this limit, 78 MB
/// per sender.
pub const MESSENGER_MAX_WINDOW: u64 = 65_536;
// cbindgen writes the literal above into the header; the core's bound is the one that counts.
const _: () = assert!(MESSENGER_MAX_WINDOW == GroupConfig::MAX_WINDOW);

/// How to connect a client: the tracker, a username, where to bind UDP, and callbacks. Made by
/// `messenger_client_config_new`; consumed by `messenger_client_new` or released with
/// `messenger_client_config_free`.
#[derive(Debug)]
pub struct messenger_client_config {
    tracker: SocketAddr,
    username: String,
    udp_bind: SocketAddr,
    /// Protocol limits and timers of every group the client joins.
    group: GroupConfig,
    /// `None` reads `MESSENGER_FAULTS` when the client connects.
    faults: Option<FaultConfig>,
    /// Which tracker key to believe (default: trust on first use, default file).
    trust: TrackerTrust,
    callbacks: CallbackSet,
}

/// A connected client. Made by `messenger_client_new`; released with `messenger_client_free`.
#[derive(Debug)]
pub struct messenger_client {
    runtime: Runtime,
    client: Client,
    dispatch: Arc<DispatchState>,
}

pub(crate) fn runtime(name: &str) -> Result<Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(|e| {
            Failure::new(
                messenger_result::MESSENGER_IO,
                format!("cannot start the runtime: {e}"),
            )
        })
}

/// A config handle the caller passes in, mutable.
///
/// # Safety
///
/// `ptr` is NULL or a live config, used by no other thread during the call.
unsafe fn config_mut<'a>(
    ptr: *mut messenger_client_config,
) -> Result<&'a mut messenger_client_config, Failure> {
    // SAFETY: the function's contract.
    unsafe { ptr.as_mut() }.ok_or_else(|| Failure::null("config"))
}

/// Starts a client configuration: the tracker's address (`"127.0.0.1:50000"`, or
/// `"HOST:PORT"`) and this client's username (checked by the tracker when connecting). The UDP
/// socket binds to `127.0.0.1:0` unless `messenger_client_config_set_udp_bind` says otherwise.
///
/// On success `*config_out` is a new config, to be passed to `messenger_client_new` or freed
/// with `messenger_client_config_free`.
#[no_mangle]
pub extern "C" fn messenger_client_config_new(
    tracker: *const c_char,
    username: *const c_char,
    config_out: *mut *mut messenger_client_config,
) -> messenger_result {
    ffi_panic_boundary! {
        // SAFETY: NUL-terminated strings or NULL (the documented rule).
        let tracker = unsafe { str_arg(tracker, "tracker") }?;
        // SAFETY: as above.
        let username = unsafe { str_arg(username, "username") }?;
        let out = out_ptr(config_out, "config_out")?;
        let config = messenger_client_config {
            tracker: args::address(tracker, "tracker address")?,
            username: username.to_string(),
            udp_bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            group: GroupConfig::default(),
            faults: None,
            trust: TrackerTrust::default(),
            callbacks: CallbackSet::default(),
        };
        // SAFETY: `out` is a non-NULL writable pointer (the documented rule).
        unsafe { out.write(Box::into_raw(Box::new(config))) };
        Ok(())
    }
}

/// Sets the address the client's UDP socket binds to (`"IP:PORT"`; port 0 picks a free
/// port). Peers send datagrams to it, so it must be reachable from them.
#[no_mangle]
pub extern "C" fn messenger_client_config_set_udp_bind(
    config: *mut messenger_client_config,
    address: *const c_char,
) -> messenger_result {
    ffi_panic_boundary! {
        // SAFETY: a live config or NULL (the documented rule).
        let config = unsafe { config_mut(config) }?;
        // SAFETY: a NUL-terminated string or NULL.
        let address = unsafe { str_arg(address, "address") }?;
        config.udp_bind = args::address(address, "UDP bind address")?;
        Ok(())
    }
}

/// Connects to the tracker over plain TCP, without TLS (`insecure` non-zero), or with TLS
/// again (0, the default). Without TLS, group passwords and the username travel in clear and
/// the tracker's identity is not checked; only a tracker started insecure accepts it.
#[no_mangle]
pub extern "C" fn messenger_client_config_set_insecure(
    config: *mut messenger_client_config,
    insecure: bool,
) -> messenger_result {
    ffi_panic_boundary! {
        // SAFETY: a live config or NULL (the documented rule).
        let config = unsafe { config_mut(config) }?;
        config.trust = if insecure {
            TrackerTrust::Insecure
        } else {
            TrackerTrust::default()
        };
        Ok(())
    }
}

/// Accepts only a tracker whose certificate has this SHA-256 fingerprint (32 hex bytes,
/// with or without colons, as `messenger_tracker_fingerprint` writes it), instead of trusting
/// the tracker on first use. Fails with `MESSENGER_INVALID_ARGUMENT` for a text that is not a
/// fingerprint, leaving the config as it was.
#[no_mangle]
pub extern "C" fn messenger_client_config_set_tracker_fingerprint(
    config: *mut messenger_client_config,
    fingerprint: *const c_char,
) -> messenger_result {
    ffi_panic_boundary! {
        // SAFETY: a live config or NULL (the documented rule).
        let config = unsafe { config_mut(config) }?;
        // SAFETY: a NUL-terminated string or NULL.
        let text = unsafe { str_arg(fingerprint, "fingerprint") }?;
        let fingerprint: Fingerprint = text
            .parse()
            .map_err(|e: messenger_core::FingerprintError| Failure::invalid(e.to_string()))?;
        config.trust = TrackerTrust::Fingerprint(fingerprint);
        Ok(())
    }
}

/// Trusts trackers on first use (the default) with the known-trackers file at `path` instead
/// of the default one (`$MESSENGER_CONFIG_DIR/known_trackers`, else
/// `$XDG_CONFIG_HOME/messenger/known_trackers`, else `~/.config/messenger/known_trackers`):
/// the first connection to a tracker address records its fingerprint there, later ones accept
/// that key only.
#[no_mangle]
pub extern "C" fn messenger_client_config_set_known_trackers_file(
    config: *mut messenger_client_config,
    path: *const c_char,
) -> messenger_result {
    ffi_panic_boundary! {
        // SAFETY: a live config or NULL (the documented rule).
        let config = unsafe { config_mut(config) }?;
        // SAFETY: a NUL-terminated string or NULL.
        let path = unsafe { str_arg(path, "path") }?;
        config.trust = TrackerTrust::FirstUse {
            known_trackers: Some(path.into()),
        };
        Ok(())
    }
}

/// Sets the send window of every group the client joins: how many of its messages a sender
/// may have in flight (not yet held by every member) before `messenger_client_send` waits for
/// room, and how many messages of each sender a member holds back while an earlier one is
/// missing. Every member of a group should use the same window: a member whose window is
/// smaller than a sender's drops the messages beyond it, which must then be sent again. The
/// default is 1024.
///
/// Fails with `MESSENGER_INVALID_ARGUMENT` for 0 (no message could ever be sent) or more than
/// `MESSENGER_MAX_WINDOW`.
#[no_mangle]
pub extern "C" fn messenger_client_config_set_window(
    config: *mut messenger_client_config,
    window: u64,
) -> messenger_result {
    ffi_panic_boundary! {
        // SAFETY: a live config or NULL (the documented rule).
        let config = unsafe { config_mut(config) }?;
        if window == 0 || window > MESSENGER_MAX_WINDOW {
            return Err(Failure::invalid(format!(
                "window {window} is not between 1 and {MESSENGER_MAX_WINDOW} messages"
            )));
        }
        config.group.window = window;
        Ok(())
    }
}

/// Sets how long a member of a group may stay silent on the data plane (no datagram from it)
/// while other members are heard before this client reports it to the tracker, which removes
/// it from the group once half of the other members agree. The default is 3000 ms. Members
/// send a status every 100 ms even when idle, so a timeout near that reports members that are
/// merely idle.
///
/// Fails with `MESSENGER_INVALID_ARGUMENT` for 0.
#[no_mangle]
pub extern "C" fn messenger_client_config_set_suspect_timeout_ms(
    config: *mut messenger_client_config,
    timeout_ms: u32,
) -> messenger_result {
    ffi_panic_boundary! {
        // SAFETY: a live config or NULL (the documented rule).
        let config = unsafe { config_mut(config) }?;
        if timeout_ms == 0 {
            return Err(Failure::invalid("a suspect timeout of 0 ms would report every member"));
        }
        config.group.suspect_timeout = Duration::from_millis(timeout_ms.into());
        Ok(())
    }
}

/// Injects faults into the client's outgoing datagrams, for tests and demos. `spec` has the
/// syntax of the `MESSENGER_FAULTS` environment variable: `"loss=0.1,dup=0.05,reorder=0.2"`,
/// with any subset of `loss`, `dup`, `reorder` (probabilities of dropping, duplicating and
/// holding back a datagram), `delay_ms` (how long at most one is held back, default 2) and
/// `seed` (of the draws, default 1), in any order.
/// Without this call the client reads `MESSENGER_FAULTS` when it connects; with it the
/// environment is ignored, and an empty `spec` means no faults. The tracker connection is
/// never affected. `messenger_client_fault_counts` tells what was done.
///
/// Fails with `MESSENGER_CONFIG` for a spec that does not parse (the message says why),
/// leaving the config as it was.
#[no_mangle]
pub extern "C" fn messenger_client_config_set_faults(
    config: *mut messenger_client_config,
    spec: *const c_char,
) -> messenger_result {
    ffi_panic_boundary! {
        // SAFETY: a live config or NULL (the documented rule).
        let config = unsafe { config_mut(config) }?;
        // SAFETY: a NUL-terminated string or NULL.
        let spec = unsafe { str_arg(spec, "spec") }?;
        let faults = FaultConfig::parse(spec)
            .map_err(|e| Failure::new(messenger_result::MESSENGER_CONFIG, e.to_string()))?;
        config.faults = Some(faults);
        Ok(())
    }
}

/// Registers the message callback with its `userdata` and an optional `free_userdata`
/// (called exactly once with `userdata`, after the callback's last call: when the client quits
/// or is freed, when the config is freed or consumed by a failed `messenger_client_new`, or
/// when another call of this function replaces the callback).
///
/// On failure (NULL config or callback), the library does not take `userdata`: its free
/// function is not called.
#[no_mangle]
pub extern "C" fn messenger_client_config_on_message(
    config: *mut messenger_client_config,
    callback: messenger_message_callback,
    userdata: *mut c_void,
    free_userdata: messenger_userdata_free,
) -> messenger_result {
    ffi_panic_boundary! {
        // SAFETY: a live config or NULL (the documented rule).
        let config = unsafe { config_mut(config) }?;
        let func = callback.ok_or_else(|| Failure::null("callback"))?;
        config.callbacks.message = Some(Callback {
            func,
            userdata: ForeignData::new(userdata, free_userdata),
        });
        Ok(())
    }
}

/// Registers the view callback; `userdata` and `free_userdata` as for
/// `messenger_client_config_on_message`.
#[no_mangle]
pub extern "C" fn messenger_client_config_on_view(
    config: *mut messenger_client_config,
    callback: messenger_view_callback,
    userdata: *mut c_void,
    free_userdata: messenger_userdata_free,
) -> messenger_result {
    ffi_panic_boundary! {
        // SAFETY: a live config or NULL (the documented rule).
        let config = unsafe { config_mut(config) }?;
        let func = callback.ok_or_else(|| Failure::null("callback"))?;
        config.callbacks.view = Some(Callback {
            func,
            userdata: ForeignData::new(userdata, free_userdata),
        });
        Ok(())
    }
}

/// Registers the event callback; `userdata` and `free_userdata` as for
/// `messenger_client_config_on_message`.
#[no_mangle]
pub extern "C" fn messenger_client_config_on_event(
    config: *mut messenger_client_config,
    callback: messenger_event_callback,
    userdata: *mut c_void,
    free_userdata: messenger_userdata_free,
) -> messenger_result {
    ffi_panic_boundary! {
        // SAFETY: a live config or NULL (the documented rule).
        let config = unsafe { config_mut(config) }?;
        let func = callback.ok_or_else(|| Failure::null("callback"))?;
        config.callbacks.event = Some(Callback {
            func,
            userdata: ForeignData::new(userdata, free_userdata),
        });
        Ok(())
    }
}

/// Frees a config that was not passed to `messenger_client_new`, calling the free functions
/// of its callbacks' userdata. `config` may be NULL.
#[no_mangle]
pub extern "C" fn messenger_client_config_free(config: *mut messenger_client_config) {
    ffi_panic_boundary! {
        if !config.is_null() {
            // SAFETY: a config made by `messenger_client_config_new`, freed once (the
            // documented rule).
            drop(unsafe { Box::from_raw(config) });
        }
    }
}

/// Connects a client: binds its UDP socket, registers with the tracker under the config's
/// username, and starts its threads (a runtime and the callback thread).
///
/// Takes `config` whatever the result: do not use or free it afterwards. If the call fails,
/// the config's userdata free functions have run by the time it returns.
///
/// Fails with `MESSENGER_TRACKER_UNAVAILABLE` when no tracker answers,
/// `MESSENGER_USERNAME_TAKEN` or `MESSENGER_INVALID_NAME` for the username, `MESSENGER_IO`
/// when the UDP address cannot be bound, `MESSENGER_CONFIG` when `MESSENGER_FAULTS` does not
/// parse (and `messenger_client_config_set_faults` was not called), `MESSENGER_PROTOCOL` when
/// what answers at the tracker's address does not speak the tracker's protocol.
#[no_mangle]
pub extern "C" fn messenger_client_new(
    config: *mut messenger_client_config,
    client_out: *mut *mut messenger_client,
) -> messenger_result {
    ffi_panic_boundary! {
        if config.is_null() {
            return Err(Failure::null("config"));
        }
        // SAFETY: a config made by `messenger_client_config_new`, which this call takes
        // (the documented rule).
        let config = unsafe { Box::from_raw(config) };
        let out = out_ptr(client_out, "client_out")?;
        let runtime = runtime("messenger-client")?;
        let messenger_client_config {
            tracker,
            username,
            udp_bind,
            group,
            faults,
            trust,
            callbacks,
        } = *config;
        let dispatch = Arc::new(DispatchState::default());
        let handler = CHandler::new(callbacks, Arc::clone(&dispatch));
        let mut core_config = ClientConfig::new(tracker, username);
        core_config.udp_bind = udp_bind;
        core_config.group = group;
        core_config.faults = faults;
        core_config.trust = trust;
        let client = runtime.block_on(Client::connect(core_config, handler))?;
        let client = Box::new(messenger_client {
            runtime,
            client,
            dispatch,
        });
        // SAFETY: `out` is a non-NULL writable pointer (the documented rule).
        unsafe { out.write(Box::into_raw(client)) };
        Ok(())
    }
}

impl messenger_client {
    /// Ends callbacks after a quit or free: from the app's thread, the callback thread is
    /// joined (it ran what was queued); from inside one of this client's callbacks, no other
    /// callback starts.
    fn end_callbacks(&self) {
        self.dispatch.stop();
        if !self.dispatch.is_current_thread() {
            self.dispatch.wait_gone();
        }
    }
}

/// Stops the client (without reporting to the tracker unless `messenger_client_quit` was
/// called first), waits for a callback that is running to return, frees the userdata of
/// every callback (if quit did not already), and frees the client. No callback starts once
/// this is called; when it returns on another thread than the client's callback thread, every
/// free function has run. It may be called from one of the client's own callbacks: the client
/// pointer is then invalid once the call returns, and the free functions run when the
/// callback returns. `client` may be NULL.
#[no_mangle]
pub extern "C" fn messenger_client_free(client: *mut messenger_client) {
    ffi_panic_boundary! {
        if client.is_null() {
            return;
        }
        {
            // SAFETY: a live client (the documented rule); shared: a callback running on the
            // callback thread may use it until `shutdown` and `end_callbacks` are done.
            let c = unsafe { &*client };
            c.dispatch.stop();
            c.runtime.block_on(c.client.shutdown());
            c.end_callbacks();
        }
        // SAFETY: made by `messenger_client_new`, freed once; no callback uses it any more.
        drop(unsafe { Box::from_raw(client) });
    }
}

/// A client handle the caller passes in.
///
/// # Safety
///
/// `ptr` is NULL or a live client.
unsafe fn client_ref<'a>(ptr: *const messenger_client) -> Result<&'a messenger_client, Failure> {
    // SAFETY: the function's contract.
    unsafe { handle(ptr, "client") }
}

/// Joins `group`, creating it with `order` (a `messenger_order`) if it does not exist. The
/// password is for groups the tracker's policy protects (NULL for none). The view that adds
/// this client arrives through the view callback.
///
/// Fails with `MESSENGER_ORDER_MISMATCH` when the group exists with the other order,
/// `MESSENGER_ALREADY_MEMBER`, `MESSENGER_ACCESS_DENIED`, `MESSENGER_GROUP_FULL`,
/// `MESSENGER_INVALID_NAME`, `MESSENGER_CLOSED` after quit.
#[no_mangle]
pub extern "C" fn messenger_client_join(
    client: *const messenger_client,
    group: *const c_char,
    order: u32,
    password: *const c_char,
) -> messenger_result {
    ffi_panic_boundary! {
        // SAFETY: the documented rules for handles and strings.
        let (c, group, password) = unsafe {
            (
                client_ref(client)?,
                str_arg(group, "group")?,
                args::opt_str_arg(password, "password")?,
            )
        };
        let order = order_arg(order)?;
        c.runtime.block_on(c.client.join(group, order, password))?;
        Ok(())
    }
}

/// Leaves `group`, once the messages this client sent in it are stable (every member has
/// them), waiting at most 2 seconds for that; past that, they may be lost.
///
/// Fails with `MESSENGER_UNKNOWN_GROUP`, `MESSENGER_NOT_A_MEMBER`, `MESSENGER_CLOSED`.
#[no_mangle]
pub extern "C" fn messenger_client_leave(
    client: *const messenger_client,
    group: *const c_char,
) -> messenger_result {
    ffi_panic_boundary! {
        // SAFETY: the documented rules for handles and strings.
        let (c, group) = unsafe { (client_ref(client)?, str_arg(group, "group")?) };
        c.runtime.block_on(c.client.leave(group))?;
        Ok(())
    }
}

/// Sends `len` bytes to every member of `group` (this client too: its own messages are
/// delivered back, in the group's order). Blocks while the group's send window is full. On
/// success `*seq_out` (when not NULL) is the message's sequence number. `bytes` may be NULL
/// when `len` is 0.
///
/// Fails with `MESSENGER_NOT_JOINED`, `MESSENGER_TOO_LARGE` (the limit is 1200 bytes),
/// `MESSENGER_CLOSED`.
#[no_mangle]
pub extern "C" fn messenger_client_send(
    client: *const messenger_client,
    group: *const c_char,
    bytes: *const u8,
    len: usize,
    seq_out: *mut u64,
) -> messenger_result {
    ffi_panic_boundary! {
        // SAFETY: the documented rules for handles, strings and byte buffers.
        let (c, group, payload) = unsafe {
            (
                client_ref(client)?,
                str_arg(group, "group")?,
                args::bytes_arg(bytes, len)?,
            )
        };
        let seq = c.runtime.block_on(c.client.send(group, payload.to_vec()))?;
        if !seq_out.is_null() {
            // SAFETY: a writable pointer when not NULL (the documented rule).
            unsafe { seq_out.write(seq) };
        }
        Ok(())
    }
}

/// Waits until every message this client sent is stable (held by every member of its group),
/// at most `timeout_ms` milliseconds. Fails with `MESSENGER_TIMED_OUT` if some still are not
/// (at once when a group they were sent to goes away first: they never will be),
/// `MESSENGER_CLOSED` after quit.
#[no_mangle]
pub extern "C" fn messenger_client_flush(
    client: *const messenger_client,
    timeout_ms: u32,
) -> messenger_result {
    ffi_panic_boundary! {
        // SAFETY: the documented rule for handles.
        let c = unsafe { client_ref(client) }?;
        let timeout = Duration::from_millis(timeout_ms.into());
        if c.runtime.block_on(c.client.flush(timeout))? {
            Ok(())
        } else {
            Err(Failure::new(
                messenger_result::MESSENGER_TIMED_OUT,
                format!("some messages were not stable after {timeout_ms} ms"),
            ))
        }
    }
}

/// Lists every group on the tracker into `*list_out`, which the caller then owns: release it
/// with `messenger_group_list_free`.
#[no_mangle]
pub extern "C" fn messenger_client_groups(
    client: *const messenger_client,
    list_out: *mut messenger_group_list,
) -> messenger_result {
    ffi_panic_boundary! {
        // SAFETY: the documented rule for handles.
        let c = unsafe { client_ref(client) }?;
        let out = out_ptr(list_out, "list_out")?;
        let groups = c.runtime.block_on(c.client.groups())?;
        // SAFETY: a writable pointer (the documented rule); whatever it held is not freed.
        unsafe { out.write(messenger_group_list::new(groups)) };
        Ok(())
    }
}

/// Lists the members of `group` into `*list_out`, which the caller then owns: release it with
/// `messenger_member_list_free`. Fails with `MESSENGER_UNKNOWN_GROUP`.
#[no_mangle]
pub extern "C" fn messenger_client_members(
    client: *const messenger_client,
    group: *const c_char,
    list_out: *mut messenger_member_list,
) -> messenger_result {
    ffi_panic_boundary! {
        // SAFETY: the documented rules for handles and strings.
        let (c, group) = unsafe { (client_ref(client)?, str_arg(group, "group")?) };
        let out = out_ptr(list_out, "list_out")?;
        let view = c.runtime.block_on(c.client.members(group))?;
        // SAFETY: a writable pointer (the documented rule).
        unsafe { out.write(messenger_member_list::new(view)) };
        Ok(())
    }
}

/// Writes this client's metrics so far into `*metrics_out`. Works after quit too (the final
/// metrics).
#[no_mangle]
pub extern "C" fn messenger_client_metrics(
    client: *const messenger_client,
    metrics_out: *mut messenger_metrics,
) -> messenger_result {
    ffi_panic_boundary! {
        // SAFETY: the documented rule for handles.
        let c = unsafe { client_ref(client) }?;
        let out = out_ptr(metrics_out, "metrics_out")?;
        // SAFETY: a writable pointer (the documented rule).
        unsafe { out.write(c.client.metrics().into()) };
        Ok(())
    }
}

/// Writes what the fault injector (`messenger_client_config_set_faults` or
/// `MESSENGER_FAULTS`) did to this client's outgoing datagrams so far into `*counts_out`: all
/// zero without faults. Works after quit too (the final counts).
#[no_mangle]
pub extern "C" fn messenger_client_fault_counts(
    client: *const messenger_client,
    counts_out: *mut messenger_fault_counts,
) -> messenger_result {
    ffi_panic_boundary! {
        // SAFETY: the documented rule for handles.
        let c = unsafe { client_ref(client) }?;
        let out = out_ptr(counts_out, "counts_out")?;
        // SAFETY: a writable pointer (the documented rule).
        unsafe { out.write(c.client.fault_counts().into()) };
        Ok(())
    }
}

/// Asks the tracker for its counters (clients, groups, requests...).
#[no_mangle]
pub extern "C" fn messenger_client_tracker_stats(
    client: *const messenger_client,
    stats_out: *mut messenger_tracker_counters,
) -> messenger_result {
    ffi_panic_boundary! {
        // SAFETY: the documented rule for handles.
        let c = unsafe { client_ref(client) }?;
        let out = out_ptr(stats_out, "stats_out")?;
        let stats = c.runtime.block_on(c.client.tracker_stats())?;
        // SAFETY: a writable pointer (the documented rule).
        unsafe { out.write(stats.into()) };
        Ok(())
    }
}

/// Writes the address of the client's UDP socket (`IP:PORT`, the port actually bound) into
/// `buf`, following the rules of `messenger_last_error` for `buf`, `len` and `out_len`.
#[no_mangle]
pub extern "C" fn messenger_client_udp_address(
    client: *const messenger_client,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> messenger_result {
    ffi_panic_boundary! {
        // SAFETY: the documented rule for handles.
        let c = unsafe { client_ref(client) }?;
        // SAFETY: the caller's buffer rules.
        unsafe { args::write_str(&c.client.udp_addr().to_string(), buf, len, out_len) }
    }
}

/// Reports this client's metrics to the tracker (which logs them), leaves every group and
/// stops the client; then `*metrics_out` (when not NULL) holds the final metrics. Callbacks
/// already queued run before it returns (unless it is called from a callback); none starts
/// after, and the callbacks' userdata free functions have run by the time it returns (when it
/// is called from a callback: once that callback returns). Every later call on the client
/// fails with `MESSENGER_CLOSED`, except `messenger_client_metrics`,
/// `messenger_client_fault_counts`, `messenger_client_udp_address` and
/// `messenger_client_free`.
/// Quitting when the tracker is gone still stops the client and succeeds.
#[no_mangle]
pub extern "C" fn messenger_client_quit(
    client: *const messenger_client,
    metrics_out: *mut messenger_metrics,
) -> messenger_result {
    ffi_panic_boundary! {
        // SAFETY: the documented rule for handles.
        let c = unsafe { client_ref(client) }?;
        c.dispatch.quitting();
        let result = c.runtime.block_on(c.client.quit());
        c.end_callbacks();
        let metrics = result?;
        if !metrics_out.is_null() {
            // SAFETY: a writable pointer when not NULL (the documented rule).
            unsafe { metrics_out.write(metrics.into()) };
        }
        Ok(())
    }
}
