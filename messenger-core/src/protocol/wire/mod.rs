//! The wire format: datagrams on the data plane (UDP) and frames on the control plane (TCP).
//!
//! # Datagrams
//!
//! ```text
//! +-------+-------+---------+----------------------+---------+---------+-----
//! | 'G'   | 'M'   | version | header (postcard)    | frame 1 | frame 2 | ...
//! +-------+-------+---------+----------------------+---------+---------+-----
//! ```
//!
//! The first three bytes are raw so that a datagram of another protocol or version is rejected
//! before any decoding. The header names the group, the sending member and the sender's view.
//! Then come one or more [`Frame`]s, each postcard-encoded back to back (no count, no length:
//! postcard is self-delimiting), which is what lets [`DatagramBuilder`] bundle frames until a
//! size budget is reached.
//!
//! # Control frames
//!
//! On the tracker's TCP connection each frame is a 4-byte big-endian length followed by the
//! postcard encoding of a [`ClientFrame`] (client to tracker) or a [`ServerFrame`] (tracker to
//! client). [`FrameDecoder`] splits a byte stream into frames without I/O.
//!
//! Decoding never panics and never allocates more than the input can describe: every decoder
//! returns a [`WireError`].
//!
//! # Layout
//!
//! - `mod.rs`: what both planes share: the versions and size limits, and [`WireError`].
//! - `datagram.rs`: the data plane: [`Header`], [`Frame`] and its payloads, [`Datagram`]
//!   (encoding, copying and sharing decoders) and [`DatagramBuilder`].
//! - `control.rs`: the control plane: [`ClientFrame`], [`ServerFrame`], what they carry,
//!   the address probe, [`encode_control`] and [`FrameDecoder`].
//!
//! Everything is re-exported here: the format is used as `wire::Frame`, `wire::View`, ...

mod control;
mod datagram;

pub use control::*;
pub use datagram::*;

/// First two bytes of every datagram.
pub const MAGIC: [u8; 2] = *b"GM";
/// Version of the datagram format; a datagram with another version is rejected.
pub const VERSION: u8 = 2;
/// Version of the control protocol, carried in [`Hello`].
pub const CONTROL_VERSION: u32 = 2;
/// Largest datagram that is ever produced or accepted (the UDP payload limit over IPv4).
pub const MAX_DATAGRAM: usize = 65_507;
/// Default size budget for bundling frames into one datagram (fits an Ethernet MTU).
pub const DEFAULT_BUNDLE_SIZE: usize = 1400;
/// Largest control frame body accepted on the TCP connection.
pub const MAX_CONTROL_FRAME: usize = 1 << 20;

/// Why a datagram or frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("truncated input: {0} bytes is shorter than a header")]
    Truncated(usize),
    #[error("bad magic: not a messenger datagram")]
    BadMagic,
    #[error("unsupported datagram version {0} (this build speaks {VERSION})")]
    UnsupportedVersion(u8),
    #[error("input of {len} bytes exceeds the limit of {limit}")]
    Oversized { len: usize, limit: usize },
    #[error("malformed input: {0}")]
    Malformed(String),
    #[error("datagram carries no frame")]
    Empty,
}

impl From<postcard::Error> for WireError {
    fn from(e: postcard::Error) -> Self {
        WireError::Malformed(e.to_string())
    }
}
