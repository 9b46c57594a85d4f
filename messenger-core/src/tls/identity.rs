//! The tracker's side: where its certificate comes from, and the acceptor built from it.

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use super::dirs::{create_private_dir, default_state_dir, private_file_options};
use super::Fingerprint;

/// The file in a state directory that holds a tracker's private key and its self-signed
/// certificate (PEM, both in one file so that they are created together; mode 0600).
pub const IDENTITY_FILE: &str = "tracker-identity.pem";

/// How a tracker secures its connections.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrackerTls {
    /// TLS 1.3 with a key pair and self-signed certificate kept in a state directory
    /// ([`IDENTITY_FILE`]), created on first start. `None` is the default state directory
    /// ([`default_state_dir`]), so that the trackers one user starts present the same key.
    SelfSigned { state_dir: Option<PathBuf> },
    /// TLS 1.3 with a certificate chain (leaf first) and its private key, both PEM files.
    Certificate { chain: PathBuf, key: PathBuf },
    /// Plain TCP: everything on the control plane, group passwords included, travels in
    /// clear, and clients cannot tell this tracker from an impostor.
    Insecure,
}

impl Default for TrackerTls {
    fn default() -> Self {
        TrackerTls::SelfSigned { state_dir: None }
    }
}

/// Why a tracker's TLS identity could not be loaded or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    #[error(
        "no state directory for the tracker's key: set MESSENGER_STATE_DIR (or XDG_STATE_HOME \
         or HOME), or configure a state directory or a certificate"
    )]
    NoStateDir,
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("cannot create a key pair and certificate: {0}")]
    Generate(String),
    #[error("the certificate and key cannot be used for TLS: {0}")]
    Tls(#[from] rustls::Error),
}

impl From<IdentityError> for io::Error {
    fn from(e: IdentityError) -> io::Error {
        match e {
            IdentityError::Io { ref source, .. } => io::Error::new(source.kind(), e.to_string()),
            e => io::Error::new(io::ErrorKind::InvalidInput, e.to_string()),
        }
    }
}

/// What a running tracker needs of its TLS settings: the acceptor (none when insecure) and
/// the fingerprint of the certificate it presents.
#[derive(Clone)]
pub(crate) struct TrackerIdentity {
    acceptor: Option<TlsAcceptor>,
    fingerprint: Option<Fingerprint>,
}

impl fmt::Debug for TrackerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackerIdentity")
            .field("tls", &self.acceptor.is_some())
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

impl TrackerIdentity {
    /// Loads (or, for a self-signed identity seen for the first time, creates) the key and
    /// certificate `tls` names.
    pub(crate) fn load(tls: &TrackerTls) -> Result<TrackerIdentity, IdentityError> {
        let (chain, key) = match tls {
            TrackerTls::Insecure => {
                return Ok(TrackerIdentity {
                    acceptor: None,
                    fingerprint: None,
                })
            }
            TrackerTls::SelfSigned { state_dir } => {
                let dir = match state_dir {
                    Some(dir) => dir.clone(),
                    None => default_state_dir().ok_or(IdentityError::NoStateDir)?,
                };
                let path = load_or_create(&dir)?;
                (read_chain(&path)?, read_key(&path)?)
            }
            TrackerTls::Certificate { chain, key } => (read_chain(chain)?, read_key(key)?),
        };
        let fingerprint = Fingerprint::of_certificate(&chain[0]);
        let config = rustls::ServerConfig::builder_with_provider(super::provider())
            .with_protocol_versions(super::VERSIONS)?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        Ok(TrackerIdentity {
            acceptor: Some(TlsAcceptor::from(Arc::new(config))),
            fingerprint: Some(fingerprint),
        })
    }

    pub(crate) fn acceptor(&self) -> Option<&TlsAcceptor> {
        self.acceptor.as_ref()
    }

    pub(crate) fn fingerprint(&self) -> Option<Fingerprint> {
        self.fingerprint
    }
}

/// The identity file in `dir`, created (with `dir`) if missing. Trackers starting at the same
/// time in one directory agree on one key: each writes a file of its own and links it into
/// place only if no identity is there yet.
fn load_or_create(dir: &Path) -> Result<PathBuf, IdentityError> {
    let io_err = |action, path: &Path| {
        let path = path.to_owned();
        move |source| IdentityError::Io {
            action,
            path,
            source,
        }
    };
    let path = dir.join(IDENTITY_FILE);
    if path.exists() {
        return Ok(path);
    }
    create_private_dir(dir).map_err(io_err("create the state directory", dir))?;
    let certified = rcgen::generate_simple_self_signed(vec![
        "messenger-tracker".to_owned(),
        "localhost".to_owned(),
    ])
    .map_err(|e| IdentityError::Generate(e.to_string()))?;
    let text = format!(
        "{}{}",
        certified.signing_key.serialize_pem(),
        certified.cert.pem()
    );
    let unique = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let temp = dir.join(format!(".{IDENTITY_FILE}.{}.{unique}", std::process::id()));
    let written = private_file_options()
        .write(true)
        .create_new(true)
        .open(&temp)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(io_err("write", &temp)(e));
    }
    let linked = match std::fs::hard_link(&temp, &path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()), // Another was first.
        Err(_) if !path.exists() => std::fs::rename(&temp, &path),    // No hard links here.
        Err(_) => Ok(()),
    };
    let _ = std::fs::remove_file(&temp);
    linked.map_err(io_err("create", &path))?;
    tracing::info!(
        target: "messenger::tracker",
        "created a new key pair and self-signed certificate in {}",
        path.display()
    );
    Ok(path)
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, IdentityError> {
    let invalid = |message: String| IdentityError::Invalid {
        path: path.to_owned(),
        message,
    };
    let text = std::fs::read(path).map_err(|source| IdentityError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })?;
    let chain = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("not a PEM certificate: {e}")))?;
    if chain.is_empty() {
        return Err(invalid("no certificate (a PEM CERTIFICATE block)".into()));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, IdentityError> {
    let text = std::fs::read(path).map_err(|source| IdentityError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })?;
    PrivateKeyDer::from_pem_slice(&text).map_err(|e| IdentityError::Invalid {
        path: path.to_owned(),
        message: format!("no private key (a PEM PRIVATE KEY block): {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let unique = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        std::env::temp_dir().join(format!(
            "messenger-identity-{tag}-{}-{unique}",
            std::process::id()
        ))
    }

    #[test]
    fn a_self_signed_identity_is_created_once_and_kept() {
        let dir = temp("keep").join("nested");
        let tls = TrackerTls::SelfSigned {
            state_dir: Some(dir.clone()),
        };
        let first = TrackerIdentity::load(&tls).expect("created");
        let second = TrackerIdentity::load(&tls).expect("loaded");
        assert!(first.acceptor().is_some());
        assert_eq!(first.fingerprint(), second.fingerprint());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir), 0o700);
            assert_eq!(mode(&dir.join(IDENTITY_FILE)), 0o600);
        }
        // The same files given as a configured certificate: the same fingerprint.
        let file = dir.join(IDENTITY_FILE);
        let configured = TrackerIdentity::load(&TrackerTls::Certificate {
            chain: file.clone(),
            key: file,
        })
        .expect("configured");
        assert_eq!(configured.fingerprint(), first.fingerprint());
        let other = TrackerIdentity::load(&TrackerTls::SelfSigned {
            state_dir: Some(temp("other")),
        })
        .expect("created");
        assert_ne!(other.fingerprint(), first.fingerprint());
        let insecure = TrackerIdentity::load(&TrackerTls::Insecure).expect("insecure");
        assert!(insecure.acceptor().is_none() && insecure.fingerprint().is_none());
        let _ = std::fs::remove_dir_all(dir.parent().unwrap());
    }

    #[test]
    fn missing_or_bad_files_are_named() {
        let dir = temp("bad");
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let err = TrackerIdentity::load(&TrackerTls::Certificate {
            chain: missing.clone(),
            key: missing,
        })
        .expect_err("missing");
        assert!(err.to_string().contains("missing.pem"), "{err}");
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "hello").unwrap();
        let err = TrackerIdentity::load(&TrackerTls::Certificate {
            chain: junk.clone(),
            key: junk,
        })
        .expect_err("junk");
        assert!(matches!(err, IdentityError::Invalid { .. }), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
