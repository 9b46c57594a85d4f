//! Result codes, the one mapping from the core's errors to them, and the thread's last error
//! message.

use std::cell::RefCell;
use std::ffi::c_char;

use messenger_core::{ClientError, ErrorCode};

/// What a call did. `MESSENGER_OK` (0) is success; every other value is a failure whose
/// message `messenger_last_error` returns on the same thread.
///
/// Values 1 to 99 are failures of the call itself; values from 100 on are the tracker's
/// refusals. New values may be added.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum messenger_result {
    /// Success.
    MESSENGER_OK = 0,
    /// A required pointer argument was NULL.
    MESSENGER_NULL_ARGUMENT = 1,
    /// An argument was invalid: a string that is not UTF-8, an address that does not parse,
    /// an unknown enum value, a setting out of its range.
    MESSENGER_INVALID_ARGUMENT = 2,
    /// The library panicked (a bug); the handle involved may be unusable, but may be freed.
    MESSENGER_PANIC = 3,
    /// The caller's buffer is too small; `*out_len` tells the length needed (without the NUL).
    MESSENGER_BUFFER_TOO_SMALL = 4,
    /// No tracker answered (connection refused, closed, or no reply in time).
    MESSENGER_TRACKER_UNAVAILABLE = 5,
    /// The client has quit, or the tracker was stopped.
    MESSENGER_CLOSED = 6,
    /// The client is not a member of that group (send).
    MESSENGER_NOT_JOINED = 7,
    /// The message is longer than the largest payload a datagram carries.
    MESSENGER_TOO_LARGE = 8,
    /// An operating-system error (binding a socket, reading a file).
    MESSENGER_IO = 9,
    /// The tracker sent something unexpected.
    MESSENGER_PROTOCOL = 10,
    /// A configuration could not be used (an invalid access-policy file, a fault spec or
    /// `MESSENGER_FAULTS` setting that does not parse).
    MESSENGER_CONFIG = 11,
    /// `messenger_client_flush` returned before every message was stable.
    MESSENGER_TIMED_OUT = 12,
    /// The tracker did not prove the identity this client trusts (TLS): a key other than the
    /// one recorded in the known-trackers file (the message names the file and the line to
    /// delete if the change is expected) or pinned, a certificate the CA did not issue, or a
    /// tracker without TLS.
    MESSENGER_TRACKER_NOT_TRUSTED = 13,
    /// The tracker knows no group of that name.
    MESSENGER_UNKNOWN_GROUP = 100,
    /// The client is not a member of that group (leave).
    MESSENGER_NOT_A_MEMBER = 101,
    /// The client is already a member of that group.
    MESSENGER_ALREADY_MEMBER = 102,
    /// Another connected client has that username.
    MESSENGER_USERNAME_TAKEN = 103,
    /// A username or group name that is empty, too long, or has spaces or control characters.
    MESSENGER_INVALID_NAME = 104,
    /// A wrong or missing password, not on the group's allow-list, or the policy forbids
    /// creating the group.
    MESSENGER_ACCESS_DENIED = 105,
    /// The group exists with the other order.
    MESSENGER_ORDER_MISMATCH = 106,
    /// The group has as many members as its policy allows.
    MESSENGER_GROUP_FULL = 107,
    /// The tracker found a request malformed.
    MESSENGER_BAD_REQUEST = 108,
    /// The tracker speaks another version of the control protocol.
    MESSENGER_VERSION_MISMATCH = 109,
    /// A limit of the tracker was reached (connections, groups, incomplete frames, password
    /// attempts); the message names it.
    MESSENGER_LIMIT_REACHED = 110,
    /// The client did not prove that it receives datagrams at its UDP address (the tracker's
    /// probe did not come back in time, or came back wrong).
    MESSENGER_ADDRESS_UNVERIFIED = 111,
}

use messenger_result::*;

impl messenger_result {
    /// Every value, for tests and for `messenger_result_name`.
    pub(crate) const ALL: [messenger_result; 26] = [
        MESSENGER_OK,
        MESSENGER_NULL_ARGUMENT,
        MESSENGER_INVALID_ARGUMENT,
        MESSENGER_PANIC,
        MESSENGER_BUFFER_TOO_SMALL,
        MESSENGER_TRACKER_UNAVAILABLE,
        MESSENGER_CLOSED,
        MESSENGER_NOT_JOINED,
        MESSENGER_TOO_LARGE,
        MESSENGER_IO,
        MESSENGER_PROTOCOL,
        MESSENGER_CONFIG,
        MESSENGER_TIMED_OUT,
        MESSENGER_TRACKER_NOT_TRUSTED,
        MESSENGER_UNKNOWN_GROUP,
        MESSENGER_NOT_A_MEMBER,
        MESSENGER_ALREADY_MEMBER,
        MESSENGER_USERNAME_TAKEN,
        MESSENGER_INVALID_NAME,
        MESSENGER_ACCESS_DENIED,
        MESSENGER_ORDER_MISMATCH,
        MESSENGER_GROUP_FULL,
        MESSENGER_BAD_REQUEST,
        MESSENGER_VERSION_MISMATCH,
        MESSENGER_LIMIT_REACHED,
        MESSENGER_ADDRESS_UNVERIFIED,
    ];

    /// The constant's name, NUL-terminated.
    pub(crate) fn name(self) -> &'static str {
        match self {
            MESSENGER_OK => "MESSENGER_OK\0",
            MESSENGER_NULL_ARGUMENT => "MESSENGER_NULL_ARGUMENT\0",
            MESSENGER_INVALID_ARGUMENT => "MESSENGER_INVALID_ARGUMENT\0",
            MESSENGER_PANIC => "MESSENGER_PANIC\0",
            MESSENGER_BUFFER_TOO_SMALL => "MESSENGER_BUFFER_TOO_SMALL\0",
            MESSENGER_TRACKER_UNAVAILABLE => "MESSENGER_TRACKER_UNAVAILABLE\0",
            MESSENGER_CLOSED => "MESSENGER_CLOSED\0",
            MESSENGER_NOT_JOINED => "MESSENGER_NOT_JOINED\0",
            MESSENGER_TOO_LARGE => "MESSENGER_TOO_LARGE\0",
            MESSENGER_IO => "MESSENGER_IO\0",
            MESSENGER_PROTOCOL => "MESSENGER_PROTOCOL\0",
            MESSENGER_CONFIG => "MESSENGER_CONFIG\0",
            MESSENGER_TIMED_OUT => "MESSENGER_TIMED_OUT\0",
            MESSENGER_TRACKER_NOT_TRUSTED => "MESSENGER_TRACKER_NOT_TRUSTED\0",
            MESSENGER_UNKNOWN_GROUP => "MESSENGER_UNKNOWN_GROUP\0",
            MESSENGER_NOT_A_MEMBER => "MESSENGER_NOT_A_MEMBER\0",
            MESSENGER_ALREADY_MEMBER => "MESSENGER_ALREADY_MEMBER\0",
            MESSENGER_USERNAME_TAKEN => "MESSENGER_USERNAME_TAKEN\0",
            MESSENGER_INVALID_NAME => "MESSENGER_INVALID_NAME\0",
            MESSENGER_ACCESS_DENIED => "MESSENGER_ACCESS_DENIED\0",
            MESSENGER_ORDER_MISMATCH => "MESSENGER_ORDER_MISMATCH\0",
            MESSENGER_GROUP_FULL => "MESSENGER_GROUP_FULL\0",
            MESSENGER_BAD_REQUEST => "MESSENGER_BAD_REQUEST\0",
            MESSENGER_VERSION_MISMATCH => "MESSENGER_VERSION_MISMATCH\0",
            MESSENGER_LIMIT_REACHED => "MESSENGER_LIMIT_REACHED\0",
            MESSENGER_ADDRESS_UNVERIFIED => "MESSENGER_ADDRESS_UNVERIFIED\0",
        }
    }
}

/// A failed call: its code and the message `messenger_last_error` will give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) code: messenger_result,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(code: messenger_result, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn null(what: &str) -> Self {
        Failure::new(MESSENGER_NULL_ARGUMENT, format!("{what} is NULL"))
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Failure::new(MESSENGER_INVALID_ARGUMENT, message)
    }

    pub(crate) fn closed(message: impl Into<String>) -> Self {
        Failure::new(MESSENGER_CLOSED, message)
    }
}

/// The one mapping of the core's tracker error codes.
pub(crate) fn result_for_code(code: ErrorCode) -> messenger_result {
    match code {
        ErrorCode::UnknownGroup => MESSENGER_UNKNOWN_GROUP,
        ErrorCode::NotAMember => MESSENGER_NOT_A_MEMBER,
        ErrorCode::AlreadyMember => MESSENGER_ALREADY_MEMBER,
        ErrorCode::UsernameTaken => MESSENGER_USERNAME_TAKEN,
        ErrorCode::InvalidName => MESSENGER_INVALID_NAME,
        ErrorCode::AccessDenied => MESSENGER_ACCESS_DENIED,
        ErrorCode::OrderMismatch => MESSENGER_ORDER_MISMATCH,
        ErrorCode::GroupFull => MESSENGER_GROUP_FULL,
        ErrorCode::BadRequest => MESSENGER_BAD_REQUEST,
        ErrorCode::VersionMismatch => MESSENGER_VERSION_MISMATCH,
        ErrorCode::LimitReached => MESSENGER_LIMIT_REACHED,
        ErrorCode::AddressUnverified => MESSENGER_ADDRESS_UNVERIFIED,
        // A refusal newer than this library: a protocol matter (the message says which).
        _ => MESSENGER_PROTOCOL,
    }
}

/// The one mapping of the core's client errors.
impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        let code = match &e {
            ClientError::Rejected { code, .. } => result_for_code(*code),
            ClientError::TrackerUnavailable(_) => MESSENGER_TRACKER_UNAVAILABLE,
            ClientError::TrackerNotTrusted(_) => MESSENGER_TRACKER_NOT_TRUSTED,
            ClientError::Closed => MESSENGER_CLOSED,
            ClientError::NotJoined(_) => MESSENGER_NOT_JOINED,
            ClientError::TooLarge { .. } => MESSENGER_TOO_LARGE,
            ClientError::Config(_) => MESSENGER_CONFIG,
            ClientError::Io(_) => MESSENGER_IO,
            ClientError::Protocol(_) => MESSENGER_PROTOCOL,
            // A reason newer than this mapping; the message says what it is.
            _ => MESSENGER_PROTOCOL,
        };
        let message = match &e {
            ClientError::Closed => "the client is closed (it quit)".to_string(),
            other => other.to_string(),
        };
        Failure { code, message }
    }
}

thread_local! {
    /// The message of the last failed call on this thread (empty before any).
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

pub(crate) fn set_last_error(message: &str) {
    LAST_ERROR.with(|last| {
        let mut last = last.borrow_mut();
        last.clear();
        last.push_str(message);
    });
}

pub(crate) fn last_error() -> String {
    LAST_ERROR.with(|last| last.borrow().clone())
}

/// Copies the message of the last failed call on this thread into `buf`, NUL-terminated.
///
/// Calls that succeed leave the message alone (like `errno`): read it right after a call that
/// did not return `MESSENGER_OK`. Before any failure it is the empty string. The message is
/// UTF-8, one line, in English.
///
/// On success `*out_len` (when `out_len` is not NULL) is the message's length without the
/// NUL. If `len` is too small for the message and its NUL, nothing is written to `buf`, the
/// call returns `MESSENGER_BUFFER_TOO_SMALL` and `*out_len` is the length needed (without the
/// NUL); this call never changes the last error itself. `buf` may be NULL when `len` is 0.
#[no_mangle]
pub extern "C" fn messenger_last_error(
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> messenger_result {
    ffi_panic_boundary! {
        crate::boundary::Quiet(
            // SAFETY: the caller passes a buffer of `len` bytes (or NULL) and a valid or NULL
            // `out_len`, as documented.
            unsafe { crate::args::write_str(&last_error(), buf, len, out_len) },
        )
    }
}

/// The name of a result code (`"MESSENGER_UNKNOWN_GROUP"`), as a static NUL-terminated
/// string; `"MESSENGER_UNKNOWN_RESULT"` for a value this library does not define. Never NULL;
/// do not free it.
#[no_mangle]
pub extern "C" fn messenger_result_name(result: u32) -> *const c_char {
    ffi_panic_boundary! {
        let name = messenger_result::ALL
            .iter()
            .find(|r| **r as u32 == result)
            .map_or("MESSENGER_UNKNOWN_RESULT\0", |r| r.name());
        crate::boundary::Static(name.as_ptr().cast())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_tracker_code_has_its_own_result() {
        let codes = [
            ErrorCode::UnknownGroup,
            ErrorCode::NotAMember,
            ErrorCode::AlreadyMember,
            ErrorCode::UsernameTaken,
            ErrorCode::InvalidName,
            ErrorCode::AccessDenied,
            ErrorCode::OrderMismatch,
            ErrorCode::GroupFull,
            ErrorCode::BadRequest,
            ErrorCode::VersionMismatch,
            ErrorCode::LimitReached,
            ErrorCode::AddressUnverified,
        ];
        let results: HashSet<u32> = codes.iter().map(|c| result_for_code(*c) as u32).collect();
        assert_eq!(results.len(), codes.len());
        assert!(results.iter().all(|r| *r >= 100));
    }

    #[test]
    fn result_values_are_distinct_and_named() {
        let values: HashSet<u32> = messenger_result::ALL.iter().map(|r| *r as u32).collect();
        assert_eq!(values.len(), messenger_result::ALL.len());
        for r in messenger_result::ALL {
            let name = r.name();
            assert!(name.ends_with('\0') && name.starts_with("MESSENGER_"));
            assert_eq!(format!("{r:?}\0"), name);
        }
    }

    #[test]
    fn client_errors_keep_their_message() {
        let f = Failure::from(ClientError::Rejected {
            code: ErrorCode::GroupFull,
            message: "group g is full".into(),
        });
        assert_eq!(f, Failure::new(MESSENGER_GROUP_FULL, "group g is full"));
        let f = Failure::from(ClientError::NotJoined("g".into()));
        assert_eq!(f.code, MESSENGER_NOT_JOINED);
        assert!(f.message.contains('g'));
        assert_eq!(Failure::from(ClientError::Closed).code, MESSENGER_CLOSED);
    }
}
