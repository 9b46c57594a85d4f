//! The tokio shell around the sans-IO protocol: sockets, timers and tasks.
//!
//! - [`driver`]: the data-plane task of a client (UDP socket, group state machines, timer).
//! - [`faults`]: fault injection on outgoing datagrams (`MESSENGER_FAULTS`).

pub(crate) mod driver;
pub mod faults;

pub use faults::{FaultConfig, FaultCounts, FaultSpecError, FAULTS_ENV};
