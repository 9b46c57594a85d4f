//! The client's side: which tracker keys it believes, the known-trackers file, and the
//! connector.

use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_rustls::TlsConnector;

use super::dirs::{create_private_dir, private_file_options};
use super::Fingerprint;

/// The name of the known-trackers file in a configuration directory.
pub const KNOWN_TRACKERS_FILE: &str = "known_trackers";

/// Which tracker a client believes it talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrackerTrust {
    /// Trust on first use: the first connection to a tracker address records the fingerprint
    /// of the key it presents in the known-trackers file, and later connections accept that
    /// key only. `None` is the default file
    /// ([`default_known_trackers`](super::dirs::default_known_trackers)).
    FirstUse { known_trackers: Option<PathBuf> },
    /// Only a tracker presenting the certificate with this fingerprint (pinned in advance).
    Fingerprint(Fingerprint),
    /// Only a tracker whose certificate chains to a CA certificate in this PEM file and names
    /// the tracker's IP address.
    CaFile(PathBuf),
    /// Plain TCP: no encryption, no check of the tracker's identity. Group passwords and
    /// usernames travel in clear.
    Insecure,
}

impl Default for TrackerTrust {
    fn default() -> Self {
        TrackerTrust::FirstUse {
            known_trackers: None,
        }
    }
}

/// A known-trackers file: one line per tracker, its address and the fingerprint of its
/// certificate, separated by a space (`127.0.0.1:7000 AB:01:...`); blank lines and lines
/// starting with `#` are ignored. The first line for an address counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownTrackers {
    path: PathBuf,
}

impl KnownTrackers {
    pub fn new(path: impl Into<PathBuf>) -> KnownTrackers {
        KnownTrackers { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The fingerprint recorded for `tracker` and its line number (from 1); `None` if the
    /// tracker (or the file) is not there.
    pub fn lookup(&self, tracker: &str) -> io::Result<Option<(usize, Fingerprint)>> {
        let file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        for (index, line) in io::BufReader::new(file).lines().enumerate() {
            let line = line?;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            if fields.next() != Some(tracker) {
                continue;
            }
            let fingerprint = fields.next().unwrap_or("").parse().map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} line {}: {e}", self.path.display(), index + 1),
                )
            })?;
            return Ok(Some((index + 1, fingerprint)));
        }
        Ok(None)
    }

    /// Appends a line for `tracker` (creating the file, mode 0600, and its directory, 0700).
    pub fn record(&self, tracker: &str, fingerprint: Fingerprint) -> io::Result<()> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir)?;
        }
        let mut file = private_file_options()
            .append(true)
            .create(true)
            .open(&self.path)?;
        // One write per line: appends from several clients at once do not interleave.
        file.write_all(format!("{tracker} {fingerprint}\n").as_bytes())
    }
}

/// Accepts the certificate whose fingerprint is expected (any on first use), remembers what
/// was presented, and checks the handshake signature with the provider's algorithms as usual:
/// only the chain check is replaced by the pin.
#[derive(Debug)]
pub(crate) struct PinVerifier {
    expected: Option<Fingerprint>,
    presented: Mutex<Option<Fingerprint>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl PinVerifier {
    pub(crate) fn new(expected: Option<Fingerprint>) -> Arc<PinVerifier> {
        Arc::new(PinVerifier {
            expected,
            presented: Mutex::new(None),
            provider: super::provider(),
        })
    }

    /// The fingerprint of the certificate the tracker presented, once it did.
    pub(crate) fn presented(&self) -> Option<Fingerprint> {
        *self.presented.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = Fingerprint::of_certificate(end_entity);
        *self.presented.lock().unwrap_or_else(|e| e.into_inner()) = Some(presented);
        match self.expected {
            Some(expected) if expected != presented => Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            )),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Only TLS 1.3 is offered.
        Err(rustls::Error::General("TLS 1.2 is not offered".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A connector that checks the tracker's certificate with `verifier`.
pub(crate) fn pinning_connector(verifier: Arc<PinVerifier>) -> Result<TlsConnector, String> {
    let config = rustls::ClientConfig::builder_with_provider(super::provider())
        .with_protocol_versions(super::VERSIONS)
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// A connector that accepts certificates issued by a CA in the PEM file at `path`.
pub(crate) fn ca_connector(path: &Path) -> Result<TlsConnector, String> {
    let bad = |e: String| format!("CA file {}: {e}", path.display());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))? {
        roots
            .add(cert.map_err(|e| bad(e.to_string()))?)
            .map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no certificate in it".into()));
    }
    let config = rustls::ClientConfig::builder_with_provider(super::provider())
        .with_protocol_versions(super::VERSIONS)
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_trackers_are_looked_up_by_address_first_line_first() {
        let dir = std::env::temp_dir().join(format!(
            "messenger-known-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        let known = KnownTrackers::new(dir.join("sub").join(KNOWN_TRACKERS_FILE));
        assert_eq!(known.lookup("127.0.0.1:1").unwrap(), None, "no file yet");
        let a = Fingerprint::from_bytes([1; 32]);
        let b = Fingerprint::from_bytes([2; 32]);
        known.record("127.0.0.1:1", a).unwrap();
        known.record("127.0.0.1:2", b).unwrap();
        known.record("127.0.0.1:1", b).unwrap();
        assert_eq!(known.lookup("127.0.0.1:1").unwrap(), Some((1, a)));
        assert_eq!(known.lookup("127.0.0.1:2").unwrap(), Some((2, b)));
        assert_eq!(known.lookup("127.0.0.1:3").unwrap(), None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(known.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(known.path(), "# comment\n\n127.0.0.1:1 nonsense\n").unwrap();
        let err = known.lookup("127.0.0.1:1").expect_err("bad line");
        assert!(err.to_string().contains("line 3"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
