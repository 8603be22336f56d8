//! One stream's task: dial the upstream, then move bytes both ways.
//!
//! Client bytes arrive through the stream's bounded queue (filled by the
//! session reader); upstream bytes leave as `stream_data` frames through the
//! session's one bounded out queue. The task reports how it ended once, so
//! the session can send the `error`/`stream_close` frames after every data
//! frame the task queued.

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use proto_httvps::binary::{binary_header_len, encode_binary_header};
use proto_httvps::{Frame, encode_stream_data, encode_to_string};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tracing::debug;

use crate::Shared;
use crate::metrics as m;
use crate::session::{CloseReason, StreamEnd, StreamId};
use crate::upstream::{self, Upstream, UpstreamMode};

/// One piece of client data on its way to an upstream, holding its share of
/// the stream's byte budget until written.
pub(crate) struct Chunk {
    pub(crate) data: Vec<u8>,
    pub(crate) _budget: Option<OwnedSemaphorePermit>,
}

/// A stream task's report that it ended on its own.
pub(crate) struct StreamEvent {
    pub(crate) id: StreamId,
    pub(crate) serial: u64,
    pub(crate) end: StreamEnd,
}

/// What a stream task needs.
pub(crate) struct StreamCtx {
    pub(crate) id: StreamId,
    pub(crate) serial: u64,
    pub(crate) target: proto_httvps::TargetAddr,
    pub(crate) mode: UpstreamMode,
    /// Send `stream_ready` once the upstream is connected (negotiated).
    pub(crate) announce_ready: bool,
    pub(crate) shared: Arc<Shared>,
    pub(crate) out: mpsc::Sender<Message>,
    pub(crate) events: mpsc::Sender<StreamEvent>,
    pub(crate) read_len: usize,
    /// Send the upstream's bytes as binary `stream_data` (`binary_data`).
    pub(crate) binary: bool,
}

/// Runs one stream to its end and reports how it ended (unless the client
/// closed it, or the session is gone).
pub(crate) async fn stream_task(
    ctx: StreamCtx,
    rx: mpsc::Receiver<Chunk>,
    half_close: oneshot::Receiver<()>,
) {
    let timeout = ctx.shared.config.timeouts.dial;
    let dialed = upstream::dial(&ctx.mode, &ctx.shared.ss_context, &ctx.target, timeout).await;
    let end = match dialed {
        Err(end) => {
            debug!(stream = %ctx.id, target = %ctx.target, reason = end.reason.as_str(), "dial failed");
            // Closing the queue first lets a reader waiting for room in it
            // give up at once instead of at the stall bound.
            drop(rx);
            Some(end)
        }
        Ok((up, took)) => {
            debug!(stream = %ctx.id, target = %ctx.target, ?took, "upstream connected");
            metrics::histogram!(m::DIAL_SECONDS, "mode" => ctx.mode.label())
                .record(took.as_secs_f64());
            // Sent before any data frame of this stream, through the same queue.
            let ready = Frame::StreamReady {
                stream_id: (*ctx.id).into(),
            };
            if ctx.announce_ready
                && ctx
                    .out
                    .send(Message::text(encode_to_string(&ready)))
                    .await
                    .is_err()
            {
                return;
            }
            pump(up, rx, half_close, &ctx).await
        }
    };
    if let Some(end) = end {
        let _ = ctx
            .events
            .send(StreamEvent {
                id: ctx.id.clone(),
                serial: ctx.serial,
                end,
            })
            .await;
    }
}

/// Moves bytes both ways until one side ends. `None`: nothing to report
/// (the client closed the stream, or the session is gone).
async fn pump(
    up: Upstream,
    mut rx: mpsc::Receiver<Chunk>,
    half_close: oneshot::Receiver<()>,
    ctx: &StreamCtx,
) -> Option<StreamEnd> {
    let (mut rd, mut wr) = tokio::io::split(up);
    let bytes_up = metrics::counter!(m::BYTES_TOTAL, "dir" => "up");
    let bytes_down = metrics::counter!(m::BYTES_TOTAL, "dir" => "down");
    // Only `write_all`, never `tokio::io::copy`: copy may retry a pending
    // write with a longer buffer, and the Shadowsocks AEAD writer then reports
    // the longer length while it sent the shorter one (bytes vanish).
    // Resolves only when the client sent `stream_shutdown` (a dropped sender
    // means the stream is going away for another reason).
    let half_closed = async {
        if half_close.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let upload = async {
        tokio::pin!(half_closed);
        let mut half = false;
        loop {
            let chunk = tokio::select! {
                biased;
                chunk = rx.recv() => chunk,
                _ = &mut half_closed, if !half => {
                    half = true;
                    // Data queued before the shutdown still goes out first.
                    match rx.try_recv() {
                        Ok(chunk) => Some(chunk),
                        Err(_) => {
                            wr.shutdown().await?;
                            return Ok(true);
                        }
                    }
                }
            };
            let Some(chunk) = chunk else {
                // The client closed the stream: everything it sent is written.
                wr.shutdown().await?;
                return Ok(false);
            };
            wr.write_all(&chunk.data).await?;
            bytes_up.increment(chunk.data.len() as u64);
            drop(chunk);
            if half && rx.is_empty() {
                // Half-close: the target sees EOF; replies keep coming.
                wr.shutdown().await?;
                return Ok(true);
            }
            if rx.is_empty() {
                wr.flush().await?;
            }
        }
    };
    let download = async {
        if ctx.binary {
            // The upstream's bytes are read straight behind the message
            // header, so the frame costs no copy here. Once the writer has
            // sent the earlier frames, `reserve` takes their memory back.
            let header_len = binary_header_len(&ctx.id);
            let mut buf = BytesMut::new();
            loop {
                buf.reserve(header_len + ctx.read_len);
                encode_binary_header(&ctx.id, &mut buf);
                let n = rd.read_buf(&mut (&mut buf).limit(ctx.read_len)).await?;
                if n == 0 {
                    return Ok::<bool, std::io::Error>(true);
                }
                let message = Message::Binary(buf.split().freeze());
                if ctx.out.send(message).await.is_err() {
                    return Ok(false);
                }
                bytes_down.increment(n as u64);
            }
        }
        // One reused read buffer; the only allocation per frame is its text.
        let mut buf = vec![0u8; ctx.read_len];
        loop {
            let n = rd.read(&mut buf).await?;
            if n == 0 {
                return Ok::<bool, std::io::Error>(true);
            }
            let mut text = String::new();
            encode_stream_data(&ctx.id, &buf[..n], &mut text);
            if ctx.out.send(Message::text(text)).await.is_err() {
                return Ok(false);
            }
            bytes_down.increment(n as u64);
        }
    };
    let upstream_error = |e: std::io::Error| StreamEnd {
        reason: CloseReason::UpstreamError,
        error: Some(format!("upstream connection to {} failed: {e}", ctx.target)),
    };
    let downloaded = |r: std::io::Result<bool>| match r {
        Ok(true) => Some(StreamEnd {
            reason: CloseReason::Eof,
            error: None,
        }),
        Ok(false) => None,
        Err(e) => Some(upstream_error(e)),
    };
    tokio::pin!(download);
    tokio::select! {
        r = upload => match r {
            Err(e) => Some(upstream_error(e)),
            // Closed by the client: nothing to report.
            Ok(false) => None,
            // Half-closed by the client: relay the reply to its end.
            Ok(true) => downloaded(download.await),
        },
        r = &mut download => downloaded(r),
    }
}
