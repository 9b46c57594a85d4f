//! The control plane's transport security: TLS 1.3 between clients and the tracker.
//!
//! The tracker proves its identity with a certificate; clients decide whether to believe it
//! by its fingerprint, the SHA-256 digest of the certificate's DER encoding, written as 32
//! upper-case hex bytes separated by colons (as `openssl x509 -noout -fingerprint -sha256`
//! prints it). By default a tracker creates a key pair and a self-signed certificate on first
//! start and keeps them in its state directory; a client records a tracker's fingerprint the
//! first time it connects (trust on first use, as SSH does) in its known-trackers file and
//! refuses a different one afterwards. A fingerprint or a CA certificate can be given in
//! advance instead, and plain TCP is possible only when asked for explicitly (`Insecure`).
//!
//! # Layout
//!
//! - `fingerprint`: [`Fingerprint`], its text form and parsing.
//! - `dirs`: where keys and known trackers live by default ([`default_state_dir`],
//!   [`default_config_dir`]).
//! - `identity`: the tracker's side: [`TrackerTls`] (where its certificate comes from), the
//!   self-signed identity in a state directory, the acceptor.
//! - `trust`: the client's side: [`TrackerTrust`], the known-trackers file ([`KnownTrackers`]),
//!   the certificate verifier that checks a pin, the connectors. The client's
//!   `client/transport.rs` connects with them.
//!
//! This module names neither the client nor the tracker (`tests/layers.rs`).
//!
//! The provider is rustls' `ring` backend (pure Rust and C compiled by `cc`; no cmake), and
//! only TLS 1.3 is offered or accepted.

mod dirs;
mod fingerprint;
mod identity;
mod trust;

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

pub use dirs::{default_config_dir, default_known_trackers, default_state_dir};
pub use fingerprint::{Fingerprint, FingerprintError};
pub use identity::{IdentityError, TrackerTls, IDENTITY_FILE};
pub use trust::{KnownTrackers, TrackerTrust, KNOWN_TRACKERS_FILE};

pub(crate) use identity::TrackerIdentity;
pub(crate) use trust::{ca_connector, pinning_connector, PinVerifier};

/// A byte stream to or from the tracker: plain TCP or TLS over TCP. The framing code reads
/// and writes it without knowing which.
pub(crate) trait ControlIo: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> ControlIo for T {}

/// A boxed control-plane stream.
pub(crate) type ControlStream = Box<dyn ControlIo>;

/// The first byte of every TLS handshake record (content type 22): a plain control frame
/// starts with its length, which is never that large, so the tracker can tell the two apart.
pub(crate) const TLS_HANDSHAKE_BYTE: u8 = 0x16;

/// The crypto provider for every TLS configuration here.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The only protocol version offered or accepted.
static VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
