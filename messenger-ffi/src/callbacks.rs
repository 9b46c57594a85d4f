//! C callbacks: each one a function, a `void *userdata` and an optional free function for the
//! userdata, run by the client's callback thread through a [`Handler`].
//!
//! `ForeignData` (after wasmtime's C API) is the one type that owns a userdata pointer: it
//! is `Send + Sync` because the header makes the caller promise the userdata may be used from
//! the library's thread, and it calls the free function exactly once, when it is dropped.

use std::cell::Cell;
use std::ffi::{c_char, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use messenger_core::{ClientEvent, GroupView, Handler, Message};

use crate::args::c_string;
use crate::types::{messenger_event_kind, messenger_view, ViewStorage};

/// Called for each delivered message: `group` and `sender` (the sender's username) are
/// NUL-terminated; `bytes` holds `len` bytes (not NUL-terminated; any pointer when `len` is
/// 0); `seq` is the sender's sequence number in the group, from 1. The pointers are borrowed
/// for the duration of the call.
pub type messenger_message_callback = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        group: *const c_char,
        sender: *const c_char,
        bytes: *const u8,
        len: usize,
        seq: u64,
    ),
>;

/// Called when a group's membership changes, including the view that adds this client. The
/// view and everything it points to are borrowed for the duration of the call.
pub type messenger_view_callback =
    Option<unsafe extern "C" fn(userdata: *mut c_void, view: *const messenger_view)>;

/// Called for connection changes and group events: `group` is NULL for events about the
/// tracker connection; `text` is a one-line description. Both are borrowed for the call.
pub type messenger_event_callback = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        kind: messenger_event_kind,
        group: *const c_char,
        text: *const c_char,
    ),
>;

/// Frees a callback's userdata; called exactly once, after the callback's last call (when the
/// client quits or is freed, or the config is freed).
pub type messenger_userdata_free = Option<unsafe extern "C" fn(userdata: *mut c_void)>;

/// A userdata pointer and its free function, owned by the library.
#[derive(Debug)]
pub(crate) struct ForeignData {
    data: *mut c_void,
    free: messenger_userdata_free,
}

// SAFETY: the header requires every userdata to be usable, and its free function callable,
// from the library's callback thread and from the thread that frees the client; the library
// never uses it from two threads at once (callbacks are serial).
unsafe impl Send for ForeignData {}
// SAFETY: as for Send; the library only copies the pointer.
unsafe impl Sync for ForeignData {}

impl ForeignData {
    pub(crate) fn new(data: *mut c_void, free: messenger_userdata_free) -> Self {
        ForeignData { data, free }
    }
}

impl Drop for ForeignData {
    fn drop(&mut self) {
        if let Some(free) = self.free {
            // SAFETY: the caller gave us `free` for `data`; Drop runs once.
            unsafe { free(self.data) }
        }
    }
}

/// One registered callback.
#[derive(Debug)]
pub(crate) struct Callback<F> {
    pub(crate) func: F,
    pub(crate) userdata: ForeignData,
}

type MessageFn =
    unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char, *const u8, usize, u64);
type ViewFn = unsafe extern "C" fn(*mut c_void, *const messenger_view);
type EventFn =
    unsafe extern "C" fn(*mut c_void, messenger_event_kind, *const c_char, *const c_char);

/// The callbacks a client config holds; dropping it frees their userdata.
#[derive(Debug, Default)]
pub(crate) struct CallbackSet {
    pub(crate) message: Option<Callback<MessageFn>>,
    pub(crate) view: Option<Callback<ViewFn>>,
    pub(crate) event: Option<Callback<EventFn>>,
}

/// What the client handle and its callback thread share.
#[derive(Debug, Default)]
pub(crate) struct DispatchState {
    /// Set by quit and free: no callback starts afterwards.
    stopped: AtomicBool,
    /// Set when quit starts: the tracker then closes the connection, which is no news.
    quitting: AtomicBool,
    /// Set once the handler (and every userdata) is dropped.
    gone: Mutex<bool>,
    gone_changed: Condvar,
}

thread_local! {
    /// While a callback runs: the state of the client it belongs to.
    static IN_CALLBACK: Cell<*const DispatchState> = const { Cell::new(std::ptr::null()) };
}

impl DispatchState {
    /// No callback starts after this returns (one may be running on the callback thread).
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }

    /// Quit started: connection events are no longer reported.
    pub(crate) fn quitting(&self) {
        self.quitting.store(true, Ordering::SeqCst);
    }

    /// Whether the current thread is inside one of this client's callbacks.
    pub(crate) fn is_current_thread(&self) -> bool {
        IN_CALLBACK.with(|c| std::ptr::eq(c.get(), self))
    }

    /// Waits until the handler is dropped: every callback returned and every userdata's free
    /// function ran. Must not be called from this client's callback thread.
    pub(crate) fn wait_gone(&self) {
        let mut gone = self.gone.lock().unwrap_or_else(|e| e.into_inner());
        while !*gone {
            gone = self
                .gone_changed
                .wait(gone)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    fn set_gone(&self) {
        *self.gone.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.gone_changed.notify_all();
    }
}

/// Marks the state gone when dropped: the last field of [`CHandler`], so it runs after the
/// callbacks' userdata are freed.
#[derive(Debug)]
struct GoneOnDrop(Arc<DispatchState>);

impl Drop for GoneOnDrop {
    fn drop(&mut self) {
        self.0.set_gone();
    }
}

/// Marks the current thread as inside a callback of one client, for its duration.
struct Entered(*const DispatchState);

impl Entered {
    fn enter(state: &Arc<DispatchState>) -> Self {
        Entered(IN_CALLBACK.with(|c| c.replace(Arc::as_ptr(state))))
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        IN_CALLBACK.with(|c| c.set(self.0));
    }
}

/// The [`Handler`] that calls C.
#[derive(Debug)]
pub(crate) struct CHandler {
    callbacks: CallbackSet,
    state: Arc<DispatchState>,
    _gone: GoneOnDrop,
}

impl CHandler {
    pub(crate) fn new(callbacks: CallbackSet, state: Arc<DispatchState>) -> Self {
        CHandler {
            callbacks,
            _gone: GoneOnDrop(Arc::clone(&state)),
            state,
        }
    }

    fn may_call(&self) -> bool {
        !self.state.stopped.load(Ordering::SeqCst)
    }
}

impl Handler for CHandler {
    fn on_message(&mut self, message: Message) {
        let Some(cb) = &self.callbacks.message else {
            return;
        };
        if !self.may_call() {
            return;
        }
        let group = c_string(&message.group);
        let sender = c_string(&message.sender);
        let _entered = Entered::enter(&self.state);
        // SAFETY: a function the caller registered, with its own userdata; every pointer is
        // valid for the call (locals that outlive it).
        unsafe {
            (cb.func)(
                cb.userdata.data,
                group.as_ptr(),
                sender.as_ptr(),
                message.payload.as_ptr(),
                message.payload.len(),
                message.seq,
            )
        }
    }

    fn on_view(&mut self, view: GroupView) {
        let Some(cb) = &self.callbacks.view else {
            return;
        };
        if !self.may_call() {
            return;
        }
        let storage = ViewStorage::new(&view);
        let c_view = storage.view();
        let _entered = Entered::enter(&self.state);
        // SAFETY: as in on_message; `c_view` points into `storage`, which outlives the call.
        unsafe { (cb.func)(cb.userdata.data, &c_view) }
    }

    fn on_event(&mut self, event: ClientEvent) {
        let Some(cb) = &self.callbacks.event else {
            return;
        };
        if !self.may_call() {
            return;
        }
        // The core reports the connection the tracker closes after a quit as lost.
        if self.state.quitting.load(Ordering::SeqCst)
            && matches!(
                event,
                ClientEvent::TrackerLost { .. } | ClientEvent::Reconnected { .. }
            )
        {
            return;
        }
        // An event newer than the C API has no kind to report it with.
        let Some((kind, group, text)) = describe(&event) else {
            return;
        };
        let group = group.map(c_string);
        let text = c_string(&text);
        let _entered = Entered::enter(&self.state);
        // SAFETY: as in on_message.
        unsafe {
            (cb.func)(
                cb.userdata.data,
                kind,
                group.as_ref().map_or(std::ptr::null(), |g| g.as_ptr()),
                text.as_ptr(),
            )
        }
    }
}

/// An event's kind, group and one-line text; `None` for an event the C API has no kind for.
fn describe(event: &ClientEvent) -> Option<(messenger_event_kind, Option<&str>, String)> {
    use messenger_event_kind::*;
    Some(match event {
        ClientEvent::TrackerLost { reason } => (
            MESSENGER_EVENT_TRACKER_LOST,
            None,
            format!("lost the tracker ({reason}); messages still flow, reconnecting"),
        ),
        ClientEvent::Reconnected { groups } if groups.is_empty() => (
            MESSENGER_EVENT_RECONNECTED,
            None,
            "reconnected to the tracker".to_string(),
        ),
        ClientEvent::Reconnected { groups } => (
            MESSENGER_EVENT_RECONNECTED,
            None,
            format!(
                "reconnected to the tracker and re-joined {}",
                groups.join(", ")
            ),
        ),
        ClientEvent::RejoinFailed { group, reason } => (
            MESSENGER_EVENT_REJOIN_FAILED,
            Some(group),
            format!("could not re-join {group}: {reason}"),
        ),
        ClientEvent::Removed { group } => (
            MESSENGER_EVENT_REMOVED,
            Some(group),
            format!("the tracker removed this client from {group}"),
        ),
        ClientEvent::Lost {
            group,
            sender,
            first,
            last,
        } => (
            MESSENGER_EVENT_LOST,
            Some(group),
            if first == last {
                format!("message {first} of {sender} in {group} is lost")
            } else {
                format!("messages {first} to {last} of {sender} in {group} are lost")
            },
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    static FREED: AtomicUsize = AtomicUsize::new(0);

    unsafe extern "C" fn count_free(data: *mut c_void) {
        assert_eq!(data as usize, 42);
        FREED.fetch_add(1, Ordering::SeqCst);
    }

    unsafe extern "C" fn ignore_event(
        _: *mut c_void,
        _: messenger_event_kind,
        _: *const c_char,
        _: *const c_char,
    ) {
    }

    #[test]
    fn userdata_is_freed_once_and_then_the_state_is_gone() {
        let state = Arc::new(DispatchState::default());
        let callbacks = CallbackSet {
            event: Some(Callback {
                func: ignore_event as EventFn,
                userdata: ForeignData::new(42 as *mut c_void, Some(count_free)),
            }),
            ..Default::default()
        };
        let mut handler = CHandler::new(callbacks, Arc::clone(&state));
        handler.on_event(ClientEvent::Removed { group: "g".into() });
        assert!(!state.is_current_thread());
        assert_eq!(FREED.load(Ordering::SeqCst), 0);
        drop(handler);
        assert_eq!(FREED.load(Ordering::SeqCst), 1);
        state.wait_gone();
    }

    /// What `record_event` saw: kind, group (None for NULL) and text, copied.
    type Recorded = Mutex<Vec<(messenger_event_kind, Option<String>, String)>>;

    /// A C-ABI event callback that copies what it is given into the `Recorded` its userdata
    /// points to.
    unsafe extern "C" fn record_event(
        userdata: *mut c_void,
        kind: messenger_event_kind,
        group: *const c_char,
        text: *const c_char,
    ) {
        // SAFETY: the test passes a `Recorded` that outlives the handler.
        let recorded = unsafe { &*userdata.cast::<Recorded>() };
        let group = (!group.is_null()).then(|| {
            // SAFETY: a non-NULL group is NUL-terminated and valid for the call (the callback
            // contract).
            unsafe { std::ffi::CStr::from_ptr(group) }
                .to_string_lossy()
                .into_owned()
        });
        // SAFETY: as for the group; the text is never NULL.
        let text = unsafe { std::ffi::CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned();
        recorded.lock().unwrap().push((kind, group, text));
    }

    /// The conversion of `ClientEvent::Lost` into the C event, through a C-ABI callback, for
    /// both text forms (one message, a range); `tests/c/test_departures.c` produces the
    /// one-message form on real sockets.
    #[test]
    fn a_lost_event_reaches_c_with_its_group_sender_and_range() {
        let recorded: Recorded = Mutex::new(Vec::new());
        let state = Arc::new(DispatchState::default());
        let callbacks = CallbackSet {
            event: Some(Callback {
                func: record_event as EventFn,
                userdata: ForeignData::new(std::ptr::from_ref(&recorded).cast_mut().cast(), None),
            }),
            ..Default::default()
        };
        let mut handler = CHandler::new(callbacks, Arc::clone(&state));
        handler.on_event(ClientEvent::Lost {
            group: "room".into(),
            sender: "bob".into(),
            first: 7,
            last: 9,
        });
        handler.on_event(ClientEvent::Lost {
            group: "hall".into(),
            sender: "cid".into(),
            first: 4,
            last: 4,
        });
        // Lost is a group event: it is still reported while the client quits.
        state.quitting();
        handler.on_event(ClientEvent::Lost {
            group: "room".into(),
            sender: "dee".into(),
            first: 1,
            last: 2,
        });
        drop(handler);
        let recorded = recorded.into_inner().unwrap();
        use messenger_event_kind::MESSENGER_EVENT_LOST as LOST;
        assert_eq!(
            recorded,
            vec![
                (
                    LOST,
                    Some("room".to_string()),
                    "messages 7 to 9 of bob in room are lost".to_string()
                ),
                (
                    LOST,
                    Some("hall".to_string()),
                    "message 4 of cid in hall is lost".to_string()
                ),
                (
                    LOST,
                    Some("room".to_string()),
                    "messages 1 to 2 of dee in room are lost".to_string()
                ),
            ]
        );
    }

    #[test]
    fn events_have_one_line_texts() {
        let lost = ClientEvent::Lost {
            group: "g".into(),
            sender: "bob".into(),
            first: 3,
            last: 5,
        };
        let (kind, group, text) = describe(&lost).expect("Lost has a kind");
        assert_eq!(kind, messenger_event_kind::MESSENGER_EVENT_LOST);
        assert_eq!(group, Some("g"));
        assert_eq!(text, "messages 3 to 5 of bob in g are lost");
    }
}
