//! A client's outbox: the channel of encoded frames to it, and the task that writes them.
//!
//! Frames are queued without waiting (the channel is unbounded), so that the hub can hand
//! out replies and views while it holds its lock, and so that a client that does not read
//! never blocks the tracker. Such a client does not answer its heartbeats either and is
//! removed after `heartbeat_misses` probes, which bounds what piles up for it.

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;

use crate::protocol::wire::{encode_control, ErrorCode, ServerFrame};

use super::log::TRACKER_TARGET;

/// Sends encoded frames to one client's writer task.
pub(crate) type Outbox = mpsc::UnboundedSender<Bytes>;

/// The receiving end, owned by the writer task.
pub(crate) type OutboxReceiver = mpsc::UnboundedReceiver<Bytes>;

/// Largest batch of queued frames written with one call.
const BATCH_BYTES: usize = 64 * 1024;

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

/// Queues a frame. A closed outbox (the client is going away) is not an error.
pub(crate) fn send(outbox: &Outbox, frame: &ServerFrame) {
    if let Some(bytes) = encode(frame) {
        let _ = outbox.send(bytes);
    }
}

/// Queues a connection-level error frame.
pub(crate) fn send_error(outbox: &Outbox, code: ErrorCode, message: impl Into<String>) {
    send(
        outbox,
        &ServerFrame::Error {
            code,
            message: message.into(),
        },
    );
}

/// Writes queued frames until every sender is gone, then shuts the write side down (the
/// client reads the last frames, then end of stream). Stops at the first write error.
pub(crate) async fn write_frames(mut writer: OwnedWriteHalf, mut frames: OutboxReceiver) {
    let mut batch = Vec::with_capacity(4096);
    while let Some(first) = frames.recv().await {
        batch.clear();
        batch.extend_from_slice(&first);
        while batch.len() < BATCH_BYTES {
            match frames.try_recv() {
                Ok(more) => batch.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if writer.write_all(&batch).await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}
