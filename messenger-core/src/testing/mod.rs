//! Deterministic testing tools (feature `test-util`).
//!
//! - [`rng`]: a small seeded generator, so that a seed replays a run exactly on every platform.
//! - [`net`]: a seeded network emulator: per-link loss, duplication, random delay (which
//!   reorders), partitions for a time.
//! - [`sim`]: a simulation driver that runs N group state machines over the emulator in
//!   virtual time, plays a tracker (views, crashes, joins, leaves), always steps to the earliest
//!   pending deadline, and checks every member's delivery log.

pub mod net;
pub mod rng;
pub mod sim;

use std::sync::OnceLock;
use std::time::Instant;

/// A fixed instant that virtual time counts from. Only the offset from it matters.
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}
