//! The transport of an accepted connection: TLS 1.3 (the default), or plain TCP for an
//! insecure tracker. The framing above reads and writes either as a [`ControlStream`].

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::warn;

use crate::protocol::wire::{encode_control, ErrorCode, ServerFrame};
use crate::tls::{ControlStream, TLS_HANDSHAKE_BYTE};

use super::log::TRACKER_TARGET;
use super::server::Shared;

/// What a client that speaks plain frames to a TLS tracker is told (in a plain frame, the
/// only thing it can read).
pub(crate) const TLS_REQUIRED: &str =
    "this tracker requires TLS, and the client connected without it (insecure); connect \
     without --insecure";

/// How long a refused connection may take to finish its handshake and read the refusal.
const REFUSAL_GRACE: Duration = Duration::from_secs(1);

/// Wraps an accepted connection in TLS (unless the tracker is insecure). `None` when the
/// handshake failed, timed out, the client spoke plain frames (it is told so), or the tracker
/// is stopping; the failure is logged and counted as a bad connection.
pub(crate) async fn accept(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    stop: &mut watch::Receiver<bool>,
) -> Option<ControlStream> {
    let Some(acceptor) = shared.identity.acceptor() else {
        return Some(Box::new(stream));
    };
    let limit = shared.config.hello_timeout();
    let handshake = async {
        let mut first = [0u8; 1];
        match stream.peek(&mut first).await {
            Ok(0) | Err(_) => return Err("closed before the TLS handshake".to_owned()),
            Ok(_) => {}
        }
        if first[0] != TLS_HANDSHAKE_BYTE {
            tell_plain(&stream, ErrorCode::BadRequest, TLS_REQUIRED).await;
            return Err("a client without TLS (insecure): told that TLS is required".to_owned());
        }
        acceptor
            .accept(stream)
            .await
            .map_err(|e| format!("TLS handshake failed: {e}"))
    };
    let outcome = tokio::select! {
        _ = stop.changed() => return None,
        outcome = tokio::time::timeout(limit, handshake) => outcome,
    };
    let failure = match outcome {
        Ok(Ok(tls)) => return Some(Box::new(tls)),
        Ok(Err(why)) => why,
        Err(_) => format!("no TLS handshake within {} ms", limit.as_millis()),
    };
    warn!(target: TRACKER_TARGET, peer = %peer, "connection closed: {failure}");
    shared.hub.note_bad_connection();
    None
}

/// Writes one plain error frame and reads what already arrived, so that closing does not
/// reset the connection before the client reads the frame.
async fn tell_plain(stream: &TcpStream, code: ErrorCode, message: &str) {
    if let Ok(bytes) = encode_control(&ServerFrame::Error {
        code,
        message: message.to_owned(),
    }) {
        let _ = stream.try_write(&bytes);
    }
    let mut sink = [0u8; 4096];
    for _ in 0..16 {
        if !matches!(stream.try_read(&mut sink), Ok(n) if n > 0) {
            break;
        }
    }
}

/// Tells a connection over a limit why it is turned away: in a plain frame for an insecure
/// tracker (at once, no task needed), after the TLS handshake otherwise (the returned task,
/// bounded by [`REFUSAL_GRACE`]).
pub(crate) fn refuse(
    stream: TcpStream,
    shared: &Shared,
    message: String,
) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
    let Some(acceptor) = shared.identity.acceptor().cloned() else {
        // A fresh socket's send buffer is empty: the frame is taken at once.
        if let Ok(bytes) = encode_control(&ServerFrame::Error {
            code: ErrorCode::LimitReached,
            message,
        }) {
            let _ = stream.try_write(&bytes);
        }
        let mut sink = [0u8; 4096];
        for _ in 0..16 {
            if !matches!(stream.try_read(&mut sink), Ok(n) if n > 0) {
                break;
            }
        }
        return None;
    };
    Some(async move {
        let _ = tokio::time::timeout(REFUSAL_GRACE, async move {
            let mut tls = acceptor.accept(stream).await.ok()?;
            let bytes = encode_control(&ServerFrame::Error {
                code: ErrorCode::LimitReached,
                message,
            })
            .ok()?;
            tls.write_all(&bytes).await.ok()?;
            tls.shutdown().await.ok()?;
            // Read what the client still sends (its hello) until it closes: closing with
            // unread input would reset the connection and destroy the frame.
            let mut sink = [0u8; 4096];
            while matches!(
                tokio::io::AsyncReadExt::read(&mut tls, &mut sink).await,
                Ok(n) if n > 0
            ) {}
            Some(())
        })
        .await;
    })
}
