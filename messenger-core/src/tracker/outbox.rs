//! A client's outbox: the channel of encoded frames to it, and the task that writes them.
//!
//! Frames are queued without waiting, so that the hub can hand out replies and views while it
//! holds its lock, and so that a client that does not read never blocks the tracker. What a
//! client leaves unread is bounded: past [`BACKLOG_LIMIT`] bytes queued, further frames are
//! dropped and the connection is told ([`Outbox::overflowed`]) to close.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, Notify};

use crate::protocol::wire::{encode_control, ErrorCode, ServerFrame};

use super::log::TRACKER_TARGET;

/// Most bytes queued for one client and not yet written to its socket.
pub(crate) const BACKLOG_LIMIT: usize = 16 << 20;

/// Largest batch of queued frames written with one call.
const BATCH_BYTES: usize = 64 * 1024;

#[derive(Debug, Default)]
struct Backlog {
    bytes: AtomicUsize,
    overflowed: Notify,
}

/// Queues encoded frames for one client's writer task. Clones share the queue.
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    frames: mpsc::UnboundedSender<Bytes>,
    backlog: Arc<Backlog>,
}

/// The writer task's end of an [`Outbox`].
#[derive(Debug)]
pub(crate) struct OutboxReceiver {
    frames: mpsc::UnboundedReceiver<Bytes>,
    backlog: Arc<Backlog>,
}

/// A new outbox and its receiving end.
pub(crate) fn outbox() -> (Outbox, OutboxReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let backlog = Arc::new(Backlog::default());
    (
        Outbox {
            frames: tx,
            backlog: Arc::clone(&backlog),
        },
        OutboxReceiver {
            frames: rx,
            backlog,
        },
    )
}

/// Encodes a frame for the wire; `None` (and an error in the log) if it exceeds the frame
/// size limit, which only a reply listing an enormous number of groups or members can.
pub(crate) fn encode(frame: &ServerFrame) -> Option<Bytes> {
    match encode_control(frame) {
        Ok(bytes) => Some(Bytes::from(bytes)),
        Err(e) => {
            tracing::error!(target: TRACKER_TARGET, error = %e, "cannot encode a frame to a client");
            None
        }
    }
}

impl Outbox {
    /// Queues an encoded frame. A closed outbox (the client is going away) is not an error;
    /// a full one drops the frame and signals [`Outbox::overflowed`].
    pub(crate) fn push(&self, bytes: Bytes) {
        let len = bytes.len();
        let queued = self.backlog.bytes.fetch_add(len, Ordering::Relaxed) + len;
        if queued > BACKLOG_LIMIT {
            self.backlog.bytes.fetch_sub(len, Ordering::Relaxed);
            self.backlog.overflowed.notify_one();
            return;
        }
        if self.frames.send(bytes).is_err() {
            self.backlog.bytes.fetch_sub(len, Ordering::Relaxed);
        }
    }

    /// Encodes and queues a frame.
    pub(crate) fn send(&self, frame: &ServerFrame) {
        if let Some(bytes) = encode(frame) {
            self.push(bytes);
        }
    }

    /// Queues a connection-level error frame.
    pub(crate) fn send_error(&self, code: ErrorCode, message: impl Into<String>) {
        self.send(&ServerFrame::Error {
            code,
            message: message.into(),
        });
    }

    /// Resolves once a frame had to be dropped because the client does not read.
    pub(crate) async fn overflowed(&self) {
        self.backlog.overflowed.notified().await;
    }

    /// Bytes queued and not written yet.
    pub(crate) fn backlog(&self) -> usize {
        self.backlog.bytes.load(Ordering::Relaxed)
    }
}

/// Writes queued frames until every sender is gone, then shuts the write side down (the
/// client reads the last frames, then end of stream). Stops at the first write error.
pub(crate) async fn write_frames(mut writer: impl AsyncWrite + Unpin, mut queue: OutboxReceiver) {
    let mut batch = Vec::with_capacity(4096);
    while let Some(first) = queue.frames.recv().await {
        batch.clear();
        batch.extend_from_slice(&first);
        while batch.len() < BATCH_BYTES {
            match queue.frames.try_recv() {
                Ok(more) => batch.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        // TLS may hold the last record back until flushed.
        if writer.write_all(&batch).await.is_err() || writer.flush().await.is_err() {
            return;
        }
        queue
            .backlog
            .bytes
            .fetch_sub(batch.len(), Ordering::Relaxed);
    }
    let _ = writer.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_outbox_drops_and_signals() {
        let (out, mut rx) = outbox();
        out.push(Bytes::from(vec![0u8; BACKLOG_LIMIT - 10]));
        out.push(Bytes::from(vec![0u8; 10]));
        assert_eq!(out.backlog(), BACKLOG_LIMIT);
        out.push(Bytes::from(vec![0u8; 1]));
        assert_eq!(
            out.backlog(),
            BACKLOG_LIMIT,
            "the frame over the limit is dropped"
        );
        assert_eq!(
            rx.frames.try_recv().map(|b| b.len()),
            Ok(BACKLOG_LIMIT - 10)
        );
        assert_eq!(rx.frames.try_recv().map(|b| b.len()), Ok(10));
        assert!(rx.frames.try_recv().is_err());
        // The overflow left a permit: the connection notices even if it was not waiting.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(1), out.overflowed())
                .await
                .expect("overflow signalled");
        });
    }
}
