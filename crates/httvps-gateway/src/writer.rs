//! The writer task of a session and the session's last words: the Close
//! frame, waiting for the peer's, and shutting the connection down.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::driver::{Conn, Ending, Sink, WRITE_BATCH};
use crate::outbox::Outbox;

/// Feeds queued messages to the socket in batches, flushing once per batch.
/// Returns the sink after the Close (or when the outbox finished), `None`
/// when a write failed or made no progress for `write_timeout`.
pub(crate) async fn write_loop<S>(
    mut sink: Sink<S>,
    out: Arc<Outbox>,
    write_timeout: Duration,
) -> Option<Sink<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    while out.next_batch(&mut batch, WRITE_BATCH).await {
        let closing = batch.iter().any(|m| matches!(m, Message::Close(_)));
        for message in batch.drain(..) {
            match tokio::time::timeout(write_timeout, sink.feed(message)).await {
                Ok(Ok(())) => {}
                _ => {
                    out.fail();
                    return None;
                }
            }
        }
        match tokio::time::timeout(write_timeout, sink.flush()).await {
            Ok(Ok(())) => {}
            _ => {
                out.fail();
                return None;
            }
        }
        // No stale waker left for the reader's messages to wake (12.5 → 6.9
        // context switches per new stream here).
        net::sink::disarm_flush_waker(&mut sink);
        if closing {
            return Some(sink);
        }
    }
    (!out.gone().is_cancelled()).then_some(sink)
}

/// What the gateway reads after its Close while waiting for the peer's:
/// a client in good faith has at most its last writes in flight; a flooder
/// that never reads would otherwise keep the gateway parsing its flood for
/// the whole close timeout (found by the hostile-client tests: 1.7 million
/// pings, 2 s of a core, per flooder). Past it the connection is simply
/// shut down, as RFC 6455 §7.1.7 allows.
const CLOSE_READ_MESSAGES: usize = 64;
/// The raw bytes read after a Close that follows broken framing.
const CLOSE_READ_BYTES: usize = 1024 * 1024;

/// Sends the Close frame (if any), waits (boundedly) for the peer's, and
/// shuts the connection down.
pub(crate) async fn close<S>(conn: Conn<S>, ending: Ending)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Conn {
        shared,
        out,
        mut reader,
        writer,
        ..
    } = conn;
    let wait = shared.config.timeouts.close;
    let raw = match ending {
        Ending::Close {
            code,
            reason,
            raw_drain,
        } => {
            let frame = CloseFrame {
                code: CloseCode::from(code),
                reason: reason.into(),
            };
            out.finish_with(Message::Close(Some(frame)));
            Some(raw_drain)
        }
        Ending::Gone => {
            out.finish();
            None
        }
    };
    let sink = match tokio::time::timeout(wait, writer).await {
        Ok(Ok(sink)) => sink,
        _ => None,
    };
    let Some(sink) = sink else { return };
    match raw {
        Some(false) => {
            // Wait for the peer's Close so that it, not we, sees the end first.
            let _ = tokio::time::timeout(wait, async {
                let mut left = CLOSE_READ_MESSAGES;
                while let Some(Ok(msg)) = reader.next().await {
                    left -= 1;
                    if matches!(msg, Message::Close(_)) || left == 0 {
                        break;
                    }
                }
            })
            .await;
        }
        Some(true) => {
            // After an oversized message the frame parser is out of step.
            // Read and discard raw bytes until the peer goes quiet, so that
            // closing does not reset the connection before the client has
            // read our error and Close frames.
            if let Ok(mut ws) = reader.reunite(sink) {
                let io = ws.get_mut();
                let mut scratch = vec![0u8; 16 * 1024];
                let deadline = Instant::now() + wait;
                let mut budget = CLOSE_READ_BYTES;
                while let Ok(Ok(n)) = tokio::time::timeout_at(
                    deadline.min(Instant::now() + Duration::from_millis(250)),
                    io.read(&mut scratch),
                )
                .await
                {
                    if n == 0 || n >= budget {
                        break;
                    }
                    budget -= n;
                }
                let _ = tokio::time::timeout(wait, io.shutdown()).await;
            }
            return;
        }
        None => {}
    }
    if let Ok(mut ws) = reader.reunite(sink) {
        let _ = tokio::time::timeout(wait, ws.get_mut().shutdown()).await;
    }
}
