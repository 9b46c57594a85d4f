//! The one place where the core's errors become Python exceptions.
//!
//! Every exception the module raises for a messenger failure derives from `MessengerError`;
//! the tracker's refusals map one code to one subclass, so Python code catches exactly the case
//! it handles (`except messenger.UsernameTaken:`). Wrong argument types and values raise the
//! usual `TypeError` and `ValueError`.

use std::io;

use messenger_core::{ClientError, ErrorCode};
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::{create_exception, PyErr};

create_exception!(
    messenger,
    MessengerError,
    PyException,
    "Base class of every error raised by messenger."
);
create_exception!(
    messenger,
    UsernameTaken,
    MessengerError,
    "Another connected client uses this username."
);
create_exception!(
    messenger,
    InvalidName,
    MessengerError,
    "A username or group name that is empty, too long, or has spaces or control characters."
);
create_exception!(
    messenger,
    AccessDenied,
    MessengerError,
    "Wrong or missing password, not on the group's allow-list, or the group may not be created."
);
create_exception!(
    messenger,
    UnknownGroup,
    MessengerError,
    "No group of that name exists on the tracker."
);
create_exception!(
    messenger,
    NotAMember,
    MessengerError,
    "This client is not a member of the group."
);
create_exception!(
    messenger,
    AlreadyMember,
    MessengerError,
    "This client is already a member of the group."
);
create_exception!(
    messenger,
    OrderMismatch,
    MessengerError,
    "The group exists with the other delivery order."
);
create_exception!(
    messenger,
    GroupFull,
    MessengerError,
    "The group has as many members as its policy allows."
);
create_exception!(
    messenger,
    LimitReached,
    MessengerError,
    "A limit of the tracker was reached (connections, groups, password attempts); the message names it."
);
create_exception!(
    messenger,
    TrackerUnavailable,
    MessengerError,
    "The tracker cannot be reached or did not answer in time."
);
create_exception!(
    messenger,
    TrackerNotTrusted,
    MessengerError,
    "The tracker did not prove the identity this client trusts (TLS): another key than the one recorded in the known-trackers file (the message names the file and the line to delete) or pinned, or no TLS."
);
create_exception!(
    messenger,
    ClosedError,
    MessengerError,
    "The client or tracker is closed."
);
create_exception!(
    messenger,
    MessageTooLarge,
    MessengerError,
    "The payload is larger than one message may be."
);
create_exception!(
    messenger,
    ConfigError,
    MessengerError,
    "Invalid configuration: an address, a policy file, MESSENGER_FAULTS."
);
create_exception!(
    messenger,
    NetworkError,
    MessengerError,
    "A socket could not be bound or used (the OSError is the __cause__)."
);
create_exception!(
    messenger,
    ProtocolError,
    MessengerError,
    "The peer spoke a protocol version or sent a frame this client does not understand."
);

/// The exception for a failed client call.
pub(crate) fn client_error(py: Python<'_>, err: ClientError) -> PyErr {
    match err {
        ClientError::Rejected { code, message } => rejected(code, message),
        ClientError::TrackerUnavailable(why) => {
            TrackerUnavailable::new_err(format!("tracker unavailable: {why}"))
        }
        e @ ClientError::TrackerNotTrusted(_) => TrackerNotTrusted::new_err(e.to_string()),
        ClientError::Closed => ClosedError::new_err("the client is closed"),
        ClientError::NotJoined(group) => {
            NotAMember::new_err(format!("not a member of group {group:?}"))
        }
        e @ ClientError::TooLarge { .. } => MessageTooLarge::new_err(e.to_string()),
        ClientError::Config(why) => ConfigError::new_err(why),
        ClientError::Io(e) => network_error(py, "network error", e),
        ClientError::Protocol(why) => ProtocolError::new_err(why),
        // A reason newer than this mapping: the base class, with the core's message.
        other => MessengerError::new_err(other.to_string()),
    }
}

/// The exception for a request the tracker refused.
fn rejected(code: ErrorCode, message: String) -> PyErr {
    match code {
        ErrorCode::UnknownGroup => UnknownGroup::new_err(message),
        ErrorCode::NotAMember => NotAMember::new_err(message),
        ErrorCode::AlreadyMember => AlreadyMember::new_err(message),
        ErrorCode::UsernameTaken => UsernameTaken::new_err(message),
        ErrorCode::InvalidName => InvalidName::new_err(message),
        ErrorCode::AccessDenied => AccessDenied::new_err(message),
        ErrorCode::OrderMismatch => OrderMismatch::new_err(message),
        ErrorCode::GroupFull => GroupFull::new_err(message),
        ErrorCode::LimitReached => LimitReached::new_err(message),
        ErrorCode::BadRequest | ErrorCode::VersionMismatch | ErrorCode::AddressUnverified => {
            ProtocolError::new_err(message)
        }
        // A refusal newer than this module is a protocol matter too.
        _ => ProtocolError::new_err(message),
    }
}

/// The exception for a tracker configuration that cannot be loaded (the policy file).
pub(crate) fn tracker_config_error(err: messenger_core::ConfigError) -> PyErr {
    ConfigError::new_err(err.to_string())
}

/// A `NetworkError` whose `__cause__` is the `OSError` (with its errno) for `err`.
pub(crate) fn network_error(py: Python<'_>, context: &str, err: io::Error) -> PyErr {
    let exc = NetworkError::new_err(format!("{context}: {err}"));
    exc.set_cause(py, Some(PyErr::from(err)));
    exc
}
