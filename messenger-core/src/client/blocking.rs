//! A blocking facade over [`Client`], owning its own tokio runtime: what the C and Python
//! bindings (and any synchronous program) use.
//!
//! Every method blocks the calling thread until the operation completes. Methods may be called
//! from the client's callbacks (they run on a plain OS thread, not a runtime thread). Do not
//! call them from inside another tokio runtime's async code.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{Client, ClientConfig, ClientError, FaultCounts, GroupView, Handler, MetricsSnapshot};
use crate::protocol::wire::{GroupInfo, Order, TrackerStats};

/// A connected client whose calls block.
#[derive(Debug, Clone)]
pub struct BlockingClient {
    runtime: Arc<tokio::runtime::Runtime>,
    client: Client,
}

impl BlockingClient {
    /// Starts a runtime (two worker threads) and connects.
    pub fn connect(config: ClientConfig, handler: impl Handler) -> Result<Self, ClientError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("messenger-runtime")
            .enable_all()
            .build()?;
        let client = runtime.block_on(Client::connect(config, handler))?;
        Ok(BlockingClient {
            runtime: Arc::new(runtime),
            client,
        })
    }

    /// The async client behind this facade.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn join(
        &self,
        group: &str,
        order: Order,
        password: Option<&str>,
    ) -> Result<GroupView, ClientError> {
        self.runtime
            .block_on(self.client.join(group, order, password))
    }

    pub fn leave(&self, group: &str) -> Result<(), ClientError> {
        self.runtime.block_on(self.client.leave(group))
    }

    pub fn send(&self, group: &str, payload: impl Into<Bytes>) -> Result<u64, ClientError> {
        self.runtime.block_on(self.client.send(group, payload))
    }

    pub fn flush(&self, timeout: Duration) -> Result<bool, ClientError> {
        self.runtime.block_on(self.client.flush(timeout))
    }

    pub fn groups(&self) -> Result<Vec<GroupInfo>, ClientError> {
        self.runtime.block_on(self.client.groups())
    }

    pub fn members(&self, group: &str) -> Result<GroupView, ClientError> {
        self.runtime.block_on(self.client.members(group))
    }

    pub fn tracker_stats(&self) -> Result<TrackerStats, ClientError> {
        self.runtime.block_on(self.client.tracker_stats())
    }

    pub fn metrics(&self) -> MetricsSnapshot {
        self.client.metrics()
    }

    pub fn fault_counts(&self) -> FaultCounts {
        self.client.fault_counts()
    }

    pub fn quit(&self) -> Result<MetricsSnapshot, ClientError> {
        self.runtime.block_on(self.client.quit())
    }

    /// Stops the client without telling the tracker (see [`Client::shutdown`]).
    pub fn shutdown(&self) {
        self.runtime.block_on(self.client.shutdown())
    }
}
