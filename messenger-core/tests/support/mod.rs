//! Helpers for tests over real sockets: a delivery log that tests wait on (with a timeout,
//! never a sleep) and checks of the ordering guarantees.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use messenger_core::client::{Callbacks, ClientEvent, GroupView, Message};
use tokio::sync::Notify;

/// Everything one client's handler saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Deliveries per group: (sender, seq, text).
    pub messages: BTreeMap<String, Vec<(String, u64, String)>>,
    pub views: Vec<GroupView>,
    pub events: Vec<ClientEvent>,
}

impl Seen {
    pub fn count(&self, group: &str) -> usize {
        self.messages.get(group).map_or(0, Vec::len)
    }

    /// The latest view of `group` this client saw has `n` members.
    pub fn has_members(&self, group: &str, n: usize) -> bool {
        self.views
            .iter()
            .rev()
            .find(|v| v.group == group)
            .is_some_and(|v| v.members.len() == n)
    }

    /// Deliveries in `group` from `sender`.
    pub fn from(&self, group: &str, sender: &str) -> usize {
        self.messages
            .get(group)
            .map_or(0, |m| m.iter().filter(|(w, ..)| w == sender).count())
    }
}

/// A shared, waitable record of a client's callbacks.
#[derive(Debug, Clone, Default)]
pub struct Log {
    seen: Arc<Mutex<Seen>>,
    changed: Arc<Notify>,
}

impl Log {
    pub fn new() -> Self {
        Self::default()
    }

    /// A handler that records into this log.
    pub fn handler(&self) -> Callbacks {
        let (a, b, c) = (self.clone(), self.clone(), self.clone());
        Callbacks::new()
            .on_message(move |m: Message| {
                a.update(|s| {
                    s.messages.entry(m.group.to_string()).or_default().push((
                        m.sender.to_string(),
                        m.seq,
                        m.text().into_owned(),
                    ))
                })
            })
            .on_view(move |v| b.update(|s| s.views.push(v)))
            .on_event(move |e| c.update(|s| s.events.push(e)))
    }

    fn update(&self, f: impl FnOnce(&mut Seen)) {
        f(&mut self.seen.lock().unwrap());
        self.changed.notify_waiters();
    }

    pub fn with<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.seen.lock().unwrap())
    }

    /// Waits until `pred` holds, or panics with `what` after `timeout`. `pred` gets the record
    /// (it must not call back into the log: the record is locked while it runs).
    pub async fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&Seen) -> bool) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.with(&pred) {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let summary = self.with(|s| {
                    format!(
                        "deliveries per group {:?}, {} views, events {:?}",
                        s.messages
                            .iter()
                            .map(|(g, m)| (g.clone(), m.len()))
                            .collect::<Vec<_>>(),
                        s.views.len(),
                        s.events
                    )
                });
                panic!("timed out after {timeout:?} waiting for {what}: {summary}");
            }
        }
    }

    pub fn count(&self, group: &str) -> usize {
        self.with(|s| s.count(group))
    }

    pub fn deliveries(&self, group: &str) -> Vec<(String, u64, String)> {
        self.with(|s| s.messages.get(group).cloned().unwrap_or_default())
    }
}

/// Exactly once and FIFO per sender; returns the number of messages per sender.
pub fn check_fifo(who: &str, log: &[(String, u64, String)]) -> HashMap<String, u64> {
    let mut seen = HashSet::new();
    let mut last: HashMap<String, u64> = HashMap::new();
    for (sender, seq, text) in log {
        assert!(
            seen.insert((sender.clone(), *seq)),
            "{who}: duplicate {sender}/{seq}"
        );
        let prev = last.entry(sender.clone()).or_insert(0);
        assert_eq!(*seq, *prev + 1, "{who}: {sender}/{seq} after {prev}");
        assert_eq!(*text, format!("{sender}-{seq}"), "{who}: payload mismatch");
        *prev = *seq;
    }
    last
}

/// A fresh directory under the system's temporary directory, named after `tag`, this process
/// and a counter (tests never touch the real home directory).
pub fn temp_dir(tag: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "messenger-test-{}-{tag}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

/// This test process's state and configuration directories: every tracker a test starts here
/// presents the same key (as the trackers one user starts on a machine do), so the pins that
/// clients record on first use hold across tests, whichever port a tracker gets.
fn process_dirs() -> &'static (std::path::PathBuf, std::path::PathBuf) {
    static DIRS: std::sync::OnceLock<(std::path::PathBuf, std::path::PathBuf)> =
        std::sync::OnceLock::new();
    DIRS.get_or_init(|| (temp_dir("state"), temp_dir("config")))
}

/// This process's temporary state directory (tracker keys), for child processes
/// (`MESSENGER_STATE_DIR`).
pub fn state_dir() -> &'static std::path::Path {
    &process_dirs().0
}

/// This process's temporary configuration directory (the known-trackers file), for child
/// processes (`MESSENGER_CONFIG_DIR`).
pub fn config_dir() -> &'static std::path::Path {
    &process_dirs().1
}

/// A tracker configuration (TLS, the default) keeping its key in this process's temporary
/// state directory.
pub fn tracker_config() -> messenger_core::TrackerConfig {
    messenger_core::TrackerConfig::default().with_state_dir(&process_dirs().0)
}

/// A client configuration (trust on first use, the default) recording trackers in this
/// process's temporary known-trackers file.
pub fn client_config(tracker: std::net::SocketAddr, name: &str) -> messenger_core::ClientConfig {
    messenger_core::ClientConfig::new(tracker, name).with_trust(
        messenger_core::TrackerTrust::FirstUse {
            known_trackers: Some(process_dirs().1.join("known_trackers")),
        },
    )
}

/// Connects `name` to the tracker at `tracker` with [`client_config`], changed by `configure`;
/// the client's callbacks go to the returned log. No faults unless `configure` sets some: an
/// explicit "none", so that MESSENGER_FAULTS in the environment cannot change a test.
pub async fn connect(
    tracker: std::net::SocketAddr,
    name: &str,
    configure: impl FnOnce(&mut messenger_core::ClientConfig),
) -> (messenger_core::client::Client, Log) {
    let log = Log::new();
    let mut config = client_config(tracker, name);
    config.faults = Some(messenger_core::FaultConfig::default());
    configure(&mut config);
    let client = messenger_core::client::Client::connect(config, log.handler())
        .await
        .unwrap_or_else(|e| panic!("{name} connects: {e}"));
    (client, log)
}
