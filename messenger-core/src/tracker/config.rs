//! The tracker's configuration.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::protocol::tracker::{AccessPolicy, PolicyError, RegistryLimits};
use crate::tls::TrackerTls;

/// Configuration of a [`Tracker`](super::Tracker).
///
/// Built with [`TrackerConfig::default`], then changed with the `with_*` methods; more fields
/// may be added (`#[non_exhaustive]`), each with a default.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TrackerConfig {
    /// Time between two heartbeat probes of a client (default 1 s; at least 1 ms is used).
    pub heartbeat_interval: Duration,
    /// A client that leaves this many probes in a row unanswered is removed when the next
    /// probe is due, so about `(heartbeat_misses + 1) * heartbeat_interval` after its last
    /// answer (default 3; at least 1 is used).
    pub heartbeat_misses: u32,
    /// Who may join which group (default: open).
    pub policy: AccessPolicy,
    /// When set, every metrics JSON line is also appended to this file.
    pub log_json: Option<PathBuf>,
    /// How connections are secured (default: TLS 1.3 with a self-signed key kept in the
    /// default state directory, created on first start; see [`TrackerTls`]).
    pub tls: TrackerTls,

    // Limits (docs/SECURITY.md, "Tracker limits", lists them with the errors clients see).
    /// Most connections at a time (default 1024); one more is refused with
    /// [`ErrorCode::LimitReached`](crate::protocol::wire::ErrorCode::LimitReached).
    pub max_connections: usize,
    /// Most connections at a time from one IP address (default 32).
    pub max_connections_per_ip: usize,
    /// Most bytes held in incomplete frames, summed over every connection (default 64 MiB);
    /// a connection whose partial frame would pass it is closed.
    pub max_partial_frame_bytes: usize,
    /// Most groups at a time (default 10,000).
    pub max_groups: usize,
    /// Most existing groups created by one client (default 64).
    pub max_groups_per_client: usize,
    /// Member limit of a group whose policy rule sets none (default 256; a rule's
    /// `max_members` replaces it; either is capped at
    /// [`MAX_MEMBERS`](crate::protocol::tracker::MAX_MEMBERS)).
    pub default_max_members: u32,
    /// Delay before the reply to the first wrong password of a connection (default 100 ms);
    /// it doubles with each further wrong password, up to `password_delay_max`.
    pub password_delay: Duration,
    /// Longest delay before the reply to a wrong password (default 5 s).
    pub password_delay_max: Duration,
    /// Wrong passwords after which the connection is closed (default 10; at least 1 is used).
    pub max_password_failures: u32,
    /// Self-reported throughput above this (messages per second) is logged as rejected
    /// instead of as given (default 10,000,000).
    pub max_plausible_rate: f64,
    /// Self-reported latencies above this are logged as rejected (default 1 hour).
    pub max_plausible_latency: Duration,
    /// How long a member's report that another member is silent on the data plane counts
    /// (default 10 s). A member reported by at least half of the others (rounded up) within
    /// this window is removed from the group.
    pub suspect_window: Duration,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        let registry = RegistryLimits::default();
        TrackerConfig {
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_misses: 3,
            policy: AccessPolicy::open(),
            log_json: None,
            tls: TrackerTls::default(),
            max_connections: 1024,
            max_connections_per_ip: 32,
            max_partial_frame_bytes: 64 << 20,
            max_groups: registry.max_groups,
            max_groups_per_client: registry.max_groups_per_client,
            default_max_members: registry.default_max_members,
            password_delay: Duration::from_millis(100),
            password_delay_max: Duration::from_secs(5),
            max_password_failures: 10,
            max_plausible_rate: 1e7,
            max_plausible_latency: Duration::from_secs(3600),
            suspect_window: registry.suspect_window,
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the policy file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid policy file {}: {source}", path.display())]
    Policy { path: PathBuf, source: PolicyError },
}

/// Reads and validates an access policy from a TOML file (format in
/// [`protocol::tracker`](crate::protocol::tracker)).
pub fn load_policy(path: impl AsRef<Path>) -> Result<AccessPolicy, ConfigError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    AccessPolicy::from_toml_str(&text).map_err(|source| ConfigError::Policy {
        path: path.to_owned(),
        source,
    })
}

impl TrackerConfig {
    /// This configuration with the access policy read from a TOML file.
    pub fn with_policy_file(self, path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        Ok(TrackerConfig {
            policy: load_policy(path)?,
            ..self
        })
    }

    /// This configuration with `policy`.
    #[must_use]
    pub fn with_policy(self, policy: AccessPolicy) -> Self {
        TrackerConfig { policy, ..self }
    }

    /// This configuration with other heartbeat settings.
    #[must_use]
    pub fn with_heartbeat(self, interval: Duration, misses: u32) -> Self {
        TrackerConfig {
            heartbeat_interval: interval,
            heartbeat_misses: misses,
            ..self
        }
    }

    /// Appends every metrics JSON line to the file at `path` too (default: no file).
    #[must_use]
    pub fn with_log_json(mut self, path: impl Into<PathBuf>) -> Self {
        self.log_json = Some(path.into());
        self
    }

    /// TLS with the self-signed key kept in `dir` (created there on first start) instead of
    /// the default state directory.
    #[must_use]
    pub fn with_state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.tls = TrackerTls::SelfSigned {
            state_dir: Some(dir.into()),
        };
        self
    }

    /// TLS with a certificate chain (leaf first) and its private key, both PEM files.
    #[must_use]
    pub fn with_certificate(mut self, chain: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls = TrackerTls::Certificate {
            chain: chain.into(),
            key: key.into(),
        };
        self
    }

    /// Plain TCP, without TLS: passwords and usernames travel in clear and clients cannot
    /// check whom they talk to. For benchmarks and old peers only.
    #[must_use]
    pub fn insecure(mut self) -> Self {
        self.tls = TrackerTls::Insecure;
        self
    }

    /// Sets `max_connections`, the most connections at a time (default 1024).
    #[must_use]
    pub fn with_max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// Sets `max_connections_per_ip`, the most connections from one IP address (default 32).
    #[must_use]
    pub fn with_max_connections_per_ip(mut self, max: usize) -> Self {
        self.max_connections_per_ip = max;
        self
    }

    /// Sets `max_partial_frame_bytes`, the most bytes in incomplete frames (default 64 MiB).
    #[must_use]
    pub fn with_max_partial_frame_bytes(mut self, max: usize) -> Self {
        self.max_partial_frame_bytes = max;
        self
    }

    /// Sets `max_groups`, the most groups at a time (default 10,000).
    #[must_use]
    pub fn with_max_groups(mut self, max: usize) -> Self {
        self.max_groups = max;
        self
    }

    /// Sets `max_groups_per_client`, the most existing groups one client created (default 64).
    #[must_use]
    pub fn with_max_groups_per_client(mut self, max: usize) -> Self {
        self.max_groups_per_client = max;
        self
    }

    /// Sets `default_max_members`, the member limit where the policy sets none (default 256).
    #[must_use]
    pub fn with_default_max_members(mut self, max: u32) -> Self {
        self.default_max_members = max;
        self
    }

    /// Sets `password_delay`, the delay after a first wrong password (default 100 ms).
    #[must_use]
    pub fn with_password_delay(mut self, delay: Duration) -> Self {
        self.password_delay = delay;
        self
    }

    /// Sets `password_delay_max`, the longest delay after a wrong password (default 5 s).
    #[must_use]
    pub fn with_password_delay_max(mut self, delay: Duration) -> Self {
        self.password_delay_max = delay;
        self
    }

    /// Sets `max_password_failures`, the wrong passwords that close a connection (default 10).
    #[must_use]
    pub fn with_max_password_failures(mut self, max: u32) -> Self {
        self.max_password_failures = max;
        self
    }

    /// Sets `max_plausible_rate`, the highest believed throughput report (default 10,000,000/s).
    #[must_use]
    pub fn with_max_plausible_rate(mut self, rate: f64) -> Self {
        self.max_plausible_rate = rate;
        self
    }

    /// Sets `max_plausible_latency`, the highest believed latency report (default 1 hour).
    #[must_use]
    pub fn with_max_plausible_latency(mut self, latency: Duration) -> Self {
        self.max_plausible_latency = latency;
        self
    }

    /// Sets `suspect_window`, how long a report of a silent member counts (default 10 s).
    #[must_use]
    pub fn with_suspect_window(mut self, window: Duration) -> Self {
        self.suspect_window = window;
        self
    }

    /// The probe period actually used (a zero period would make no sense, and tokio's
    /// intervals refuse it).
    pub(crate) fn heartbeat_period(&self) -> Duration {
        self.heartbeat_interval.max(Duration::from_millis(1))
    }

    pub(crate) fn misses(&self) -> u32 {
        self.heartbeat_misses.max(1)
    }

    /// How long a new connection may take to say hello.
    pub(crate) fn hello_timeout(&self) -> Duration {
        self.heartbeat_period()
            .saturating_mul(self.misses().saturating_add(1))
            .max(Duration::from_secs(1))
    }

    /// The limits the registry enforces.
    pub fn registry_limits(&self) -> RegistryLimits {
        RegistryLimits {
            max_groups: self.max_groups,
            max_groups_per_client: self.max_groups_per_client,
            default_max_members: self.default_max_members,
            suspect_window: self.suspect_window,
        }
    }

    /// Delay before answering the `failures`th wrong password of a connection (from 1):
    /// `password_delay` doubled for each earlier failure, at most `password_delay_max`.
    pub(crate) fn password_delay_for(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.password_delay
            .saturating_mul(1u32 << doublings)
            .min(self.password_delay_max)
    }

    pub(crate) fn password_failures(&self) -> u32 {
        self.max_password_failures.max(1)
    }

    pub(crate) fn heartbeat_interval_ms(&self) -> u64 {
        u64::try_from(self.heartbeat_period().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_settings_are_clamped() {
        let c = TrackerConfig::default().with_heartbeat(Duration::ZERO, 0);
        assert_eq!(c.heartbeat_period(), Duration::from_millis(1));
        assert_eq!(c.misses(), 1);
        assert_eq!(c.hello_timeout(), Duration::from_secs(1));
        assert_eq!(c.heartbeat_interval_ms(), 1);
        let d = TrackerConfig::default();
        assert_eq!(d.hello_timeout(), Duration::from_secs(4));
        assert_eq!(d.heartbeat_interval_ms(), 1000);
    }

    #[test]
    fn password_delays_double_up_to_the_cap() {
        let c = TrackerConfig::default();
        let ms = |n| c.password_delay_for(n).as_millis();
        assert_eq!([ms(1), ms(2), ms(3), ms(4)], [100, 200, 400, 800]);
        assert_eq!(ms(7), 5_000, "capped");
        assert_eq!(ms(u32::MAX), 5_000, "no overflow");
        let c = TrackerConfig::default().with_max_password_failures(0);
        assert_eq!(c.password_failures(), 1);
    }

    #[test]
    fn policy_file_errors_are_typed() {
        let dir = std::env::temp_dir().join(format!("messenger-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let missing = dir.join("missing.toml");
        assert!(matches!(
            TrackerConfig::default().with_policy_file(&missing),
            Err(ConfigError::Read { .. })
        ));
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "[[group]]\nmax_members = 2\n").expect("write");
        let err = TrackerConfig::default()
            .with_policy_file(&bad)
            .expect_err("invalid");
        assert!(matches!(
            err,
            ConfigError::Policy {
                source: PolicyError::MissingSelector { index: 1 },
                ..
            }
        ));
        assert!(err.to_string().contains("bad.toml"));
        let good = dir.join("good.toml");
        std::fs::write(&good, "[[group]]\nname = \"ops\"\npassword = \"x\"\n").expect("write");
        let c = TrackerConfig::default()
            .with_policy_file(&good)
            .expect("valid");
        assert_eq!(c.policy.rule_for("ops").password.as_deref(), Some("x"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
