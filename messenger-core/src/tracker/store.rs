//! The store seam: where the tracker keeps its registry.
//!
//! The server never touches the registry directly; it calls a [`Store`]. Today the only store
//! is [`MemoryStore`], the sans-IO [`Registry`] in this process's memory. The seam is there so
//! that a replicated store can back several tracker instances later without touching the
//! protocol or the connection handling: for example etcd, with one lease per client kept alive
//! by the heartbeats (an expired lease removes the client's memberships), views as keys updated
//! in transactions, and each tracker watching the groups of its own clients to push their
//! views. Such a store would keep the same contract: one reply per request, and the pushes of
//! one change in one deterministic list.

use crate::protocol::tracker::{
    AccessPolicy, ClientId, Departure, Push, Refusal, Registry, RegistryLimits,
};
use std::time::Instant;

use crate::protocol::wire::{Hello, Reply, Request, TrackerStats};

/// The registry operations the tracker server needs. The server calls them with its lock
/// held, one at a time, so an implementation sees a sequential history.
pub trait Store: Send {
    /// Accepts a client's hello, or refuses it (version, invalid or taken username).
    fn register(&mut self, hello: &Hello) -> Result<ClientId, Refusal>;

    /// Answers one request, made at `now`, with exactly one reply, and the views to push
    /// because of it.
    fn handle(&mut self, now: Instant, client: ClientId, request: Request) -> (Reply, Vec<Push>);

    /// Removes a client from every group; returns the views to push to the others.
    fn remove(&mut self, client: ClientId, why: Departure) -> Vec<Push>;

    /// How many joins of `client` were refused for a wrong password in its session.
    fn wrong_passwords(&self, client: ClientId) -> u32;

    /// Counts a connection closed for a protocol violation.
    fn note_bad_connection(&mut self);

    /// Counts a connection refused or closed for reaching a limit (connections, partial
    /// frames, password attempts).
    fn note_refused_connection(&mut self);

    /// The tracker-wide counters.
    fn stats(&self) -> TrackerStats;
}

/// The embedded store: a [`Registry`] in memory.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    registry: Registry,
}

impl MemoryStore {
    /// An empty store enforcing `policy`. Its group ids start from a base taken from the
    /// clock, so that a restarted tracker never reuses the group ids of its previous life
    /// (see [`Registry::with_group_id_base`]).
    pub fn new(policy: AccessPolicy) -> Self {
        MemoryStore::with_limits(policy, RegistryLimits::default())
    }

    /// An empty store enforcing `policy` and `limits`.
    pub fn with_limits(policy: AccessPolicy, limits: RegistryLimits) -> Self {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        MemoryStore {
            registry: Registry::with_group_id_base(policy, (millis & 0xffff_ffff) << 20)
                .with_limits(limits),
        }
    }

    /// The registry inside.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

impl Store for MemoryStore {
    fn register(&mut self, hello: &Hello) -> Result<ClientId, Refusal> {
        self.registry.register(hello)
    }

    fn handle(&mut self, now: Instant, client: ClientId, request: Request) -> (Reply, Vec<Push>) {
        self.registry.handle_at(now, client, request)
    }

    fn remove(&mut self, client: ClientId, why: Departure) -> Vec<Push> {
        self.registry.remove(client, why)
    }

    fn wrong_passwords(&self, client: ClientId) -> u32 {
        self.registry.wrong_passwords(client)
    }

    fn note_bad_connection(&mut self) {
        self.registry.note_bad_connection();
    }

    fn note_refused_connection(&mut self) {
        self.registry.note_refused_connection();
    }

    fn stats(&self) -> TrackerStats {
        self.registry.stats()
    }
}
