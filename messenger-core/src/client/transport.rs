//! The connection to the tracker: TCP, then (unless insecure) TLS with the check of the
//! tracker's key that the configured [`TrackerTrust`] asks for.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use super::error::ClientError;
use crate::tls::{
    ca_connector, default_known_trackers, pinning_connector, ControlStream, Fingerprint,
    KnownTrackers, PinVerifier, TrackerTrust,
};

const CLIENT_TARGET: &str = "messenger::client";

/// A failed handshake that no pin explains.
fn handshake_error(tracker: SocketAddr, e: io::Error) -> ClientError {
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::InvalidMessage(_)) => ClientError::TrackerNotTrusted(format!(
            "the tracker at {tracker} does not speak TLS (started with --insecure?); only an \
             insecure client connects to it, giving up encryption and the check of its key"
        )),
        Some(e) => ClientError::TrackerNotTrusted(format!(
            "TLS handshake with the tracker at {tracker} failed: {e}"
        )),
        None => ClientError::TrackerUnavailable(format!("{tracker}: TLS handshake failed: {e}")),
    }
}

/// Connects to the tracker at `tracker` and, unless `trust` is insecure, makes it prove the
/// identity `trust` asks for. On first use the tracker's fingerprint is recorded.
pub(crate) async fn connect(
    tracker: SocketAddr,
    trust: &TrackerTrust,
) -> Result<ControlStream, ClientError> {
    let tcp = TcpStream::connect(tracker)
        .await
        .map_err(|e| ClientError::TrackerUnavailable(format!("{tracker}: {e}")))?;
    tcp.set_nodelay(true)?;
    let name = ServerName::IpAddress(tracker.ip().into());
    match trust {
        TrackerTrust::Insecure => Ok(Box::new(tcp)),
        TrackerTrust::CaFile(path) => {
            let connector = ca_connector(path).map_err(ClientError::Config)?;
            match connector.connect(name, tcp).await {
                Ok(stream) => Ok(Box::new(stream)),
                Err(e) => Err(handshake_error(tracker, e)),
            }
        }
        TrackerTrust::Fingerprint(pinned) => {
            let verifier = PinVerifier::new(Some(*pinned));
            let connector =
                pinning_connector(Arc::clone(&verifier)).map_err(ClientError::Config)?;
            match connector.connect(name, tcp).await {
                Ok(stream) => Ok(Box::new(stream)),
                Err(e) => Err(match verifier.presented() {
                    Some(presented) if presented != *pinned => {
                        ClientError::TrackerNotTrusted(format!(
                            "the tracker at {tracker} presents the key with fingerprint \
                             {presented}, not the pinned {pinned}"
                        ))
                    }
                    _ => handshake_error(tracker, e),
                }),
            }
        }
        TrackerTrust::FirstUse { known_trackers } => {
            let path = match known_trackers {
                Some(path) => path.clone(),
                None => default_known_trackers().ok_or_else(|| {
                    ClientError::Config(
                        "no configuration directory for the known-trackers file: set \
                         MESSENGER_CONFIG_DIR (or XDG_CONFIG_HOME or HOME), or pin the \
                         tracker's fingerprint"
                            .into(),
                    )
                })?,
            };
            let known = KnownTrackers::new(path);
            let address = tracker.to_string();
            let recorded = known.lookup(&address).map_err(|e| {
                ClientError::Config(format!(
                    "cannot read the known-trackers file {}: {e}",
                    known.path().display()
                ))
            })?;
            let verifier = PinVerifier::new(recorded.map(|(_, fp)| fp));
            let connector =
                pinning_connector(Arc::clone(&verifier)).map_err(ClientError::Config)?;
            let stream = match connector.connect(name, tcp).await {
                Ok(stream) => stream,
                Err(e) => {
                    return Err(match (recorded, verifier.presented()) {
                        (Some((line, was)), Some(now)) if now != was => {
                            ClientError::TrackerNotTrusted(key_changed(
                                tracker,
                                now,
                                was,
                                known.path(),
                                line,
                            ))
                        }
                        _ => handshake_error(tracker, e),
                    })
                }
            };
            if recorded.is_none() {
                let fingerprint = verifier.presented().ok_or_else(|| {
                    ClientError::Protocol("the tracker presented no certificate".into())
                })?;
                known.record(&address, fingerprint).map_err(|e| {
                    ClientError::Config(format!(
                        "cannot record the tracker's fingerprint in {}: {e}",
                        known.path().display()
                    ))
                })?;
                tracing::info!(
                    target: CLIENT_TARGET,
                    %tracker,
                    %fingerprint,
                    "first connection to the tracker at {tracker}: its fingerprint \
                     {fingerprint} is recorded in {}",
                    known.path().display()
                );
            }
            Ok(Box::new(stream))
        }
    }
}

fn key_changed(
    tracker: SocketAddr,
    now: Fingerprint,
    was: Fingerprint,
    path: &Path,
    line: usize,
) -> String {
    format!(
        "the tracker at {tracker} presents a different key (fingerprint {now}) from the one \
         recorded in {} line {line} ({was}). Someone may be impersonating the tracker. If its \
         key was changed on purpose, delete line {line} of {} and connect again",
        path.display(),
        path.display()
    )
}
