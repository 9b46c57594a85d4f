//! Why a client call failed, and where those reasons come from.

use super::faults::FaultSpecError;
use crate::protocol::wire::{ErrorCode, Reply};

/// Why a client call failed.
///
/// More reasons may be added (`#[non_exhaustive]`): a `match` needs a catch-all arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The tracker refused the request.
    #[error("{message}")]
    Rejected { code: ErrorCode, message: String },
    #[error("tracker unavailable: {0}")]
    TrackerUnavailable(String),
    /// The tracker did not prove the identity this client trusts: it presents another key
    /// than the one recorded in the known-trackers file (the message names the file and the
    /// line to delete if the change is expected) or pinned, a certificate the CA did not
    /// issue, or no TLS at all. Reconnection attempts go on, and log this error each time.
    #[error("tracker not trusted: {0}")]
    TrackerNotTrusted(String),
    #[error("the client is closed")]
    Closed,
    #[error("not a member of group {0}")]
    NotJoined(String),
    #[error("payload of {len} bytes exceeds the limit of {limit}")]
    TooLarge { len: usize, limit: usize },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The tracker's error code, for rejections.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Rejected { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl From<FaultSpecError> for ClientError {
    fn from(e: FaultSpecError) -> Self {
        ClientError::Config(e.to_string())
    }
}

/// A reply the request did not ask for.
pub(crate) fn unexpected(reply: Reply) -> ClientError {
    ClientError::Protocol(format!("unexpected reply {reply:?}"))
}
