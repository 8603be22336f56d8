//! One stream's task: dial the upstream, then move bytes both ways.
//!
//! Client bytes arrive through the stream's [`Inbox`] (filled by the session
//! reader); upstream bytes leave as `stream_data` frames through the stream's
//! lane of the session's [`Outbox`], read only as far as the client's credit
//! allows (`flow_control`). The task reports how it ended once, so the
//! session can send the `error`/`stream_close` frames after every data frame
//! the task queued.

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use net::read_size::ReadSize;
use proto_httvps::binary::{binary_header_len, encode_binary_header};
use proto_httvps::{Frame, encode_stream_data, encode_to_string};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tracing::debug;

use crate::Shared;
use crate::inbox::{Inbox, Next, StreamCredit, Written};
use crate::metrics::StreamMetrics;
use crate::outbox::Outbox;
use crate::session::{CloseReason, StreamEnd, StreamId};
use crate::upstream::{self, Upstream, UpstreamMode};

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
    /// The session's metric handles.
    pub(crate) metrics: Arc<StreamMetrics>,
    pub(crate) out: Arc<Outbox>,
    pub(crate) inbox: Arc<Inbox>,
    /// The client's credit (`flow_control`); `None`: read freely.
    pub(crate) credit: Option<Arc<StreamCredit>>,
    /// Where written bytes are reported (`flow_control`).
    pub(crate) written: Option<Arc<Written>>,
    pub(crate) events: mpsc::Sender<StreamEvent>,
    pub(crate) read_len: usize,
    /// Send the upstream's bytes as binary `stream_data` (`binary_data`).
    pub(crate) binary: bool,
}

/// Closes the inbox however the task ends (aborted included), so the
/// session reader never waits for a task that is gone.
struct CloseInbox(Arc<Inbox>);

impl Drop for CloseInbox {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Runs one stream to its end and reports how it ended (unless the client
/// closed it, or the session is gone).
pub(crate) async fn stream_task(ctx: StreamCtx) {
    let inbox = CloseInbox(ctx.inbox.clone());
    let timeout = ctx.shared.config.timeouts.dial;
    let shared = &ctx.shared;
    let dialed = upstream::dial(
        &ctx.mode,
        &shared.ss_context,
        &shared.dialer,
        &ctx.target,
        timeout,
    )
    .await;
    let end = match dialed {
        Err(end) => {
            debug!(stream = %ctx.id, target = %ctx.target, reason = end.reason.as_str(), "dial failed");
            // Closing the queue first lets a reader waiting for room in it
            // give up at once instead of at the stall bound.
            drop(inbox);
            Some(end)
        }
        Ok((up, took)) => {
            debug!(stream = %ctx.id, target = %ctx.target, ?took, "upstream connected");
            ctx.metrics.dial.record(took.as_secs_f64());
            // Sent before any data frame of this stream, through the same queue.
            let ready = Frame::StreamReady {
                stream_id: (*ctx.id).into(),
            };
            if ctx.announce_ready
                && ctx
                    .out
                    .stream(&ctx.id, Message::text(encode_to_string(&ready)))
                    .await
                    .is_err()
            {
                return;
            }
            pump(up, &ctx).await
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
async fn pump(up: Upstream, ctx: &StreamCtx) -> Option<StreamEnd> {
    let (mut rd, mut wr) = tokio::io::split(up);
    let bytes_up = &ctx.metrics.bytes_up;
    let bytes_down = &ctx.metrics.bytes_down;
    // Only `write_all`, never `tokio::io::copy`: copy may retry a pending
    // write with a longer buffer, and the Shadowsocks AEAD writer then reports
    // the longer length while it sent the shorter one (bytes vanish).
    // `Ok(true)`: the client half-closed; `Ok(false)`: it closed the stream.
    let upload = async {
        loop {
            match ctx.inbox.next().await {
                Next::Data(chunk) => {
                    wr.write_all(&chunk).await?;
                    bytes_up.increment(chunk.len() as u64);
                    if let Some(written) = &ctx.written {
                        written.report(&ctx.id, ctx.serial, chunk.len());
                    }
                    if ctx.inbox.is_empty() {
                        wr.flush().await?;
                    }
                }
                Next::Shutdown => {
                    // Half-close: the target sees EOF; replies keep coming.
                    wr.shutdown().await?;
                    return Ok(true);
                }
                Next::Finished => {
                    // The client closed the stream: everything it sent is written.
                    wr.shutdown().await?;
                    return Ok::<bool, std::io::Error>(false);
                }
            }
        }
    };
    // Credit is taken for the bytes read, after the read, never before it:
    // a read may wait on its upstream for a long time, and credit held
    // meanwhile is missing for every other stream (256 idle reads of 64 KiB
    // once held the whole 16 MiB session window, and the 257th stream got
    // nothing). So a stream holds at most one read of bytes the client has
    // no room for yet, then stops reading its upstream until granted.
    let credit_for = |want: usize| async move {
        match &ctx.credit {
            Some(credit) => credit.take(want).await,
            None => want,
        }
    };
    let download = async {
        if ctx.binary {
            // The upstream's bytes are read straight behind the message
            // header, so the frame costs no copy here (unless the credit
            // splits it). Once the writer has sent the earlier frames,
            // `reserve` takes their memory back.
            let header_len = binary_header_len(&ctx.id);
            let mut buf = BytesMut::new();
            // Small reads first: an idle keep-alive upstream holds no 64 KiB.
            let mut size = ReadSize::up_to(ctx.read_len);
            loop {
                let want = size.next();
                buf.reserve(header_len + want);
                encode_binary_header(&ctx.id, &mut buf);
                let n = rd.read_buf(&mut (&mut buf).limit(want)).await?;
                size.record(want, n);
                if n == 0 {
                    return Ok::<bool, std::io::Error>(true);
                }
                let mut allowed = credit_for(n).await;
                let mut rest = buf.split_off(header_len + allowed);
                let mut message = Message::Binary(buf.split().freeze());
                loop {
                    if ctx.out.stream(&ctx.id, message).await.is_err() {
                        return Ok(false);
                    }
                    bytes_down.increment(allowed as u64);
                    if rest.is_empty() {
                        break;
                    }
                    allowed = credit_for(rest.len()).await;
                    let mut frame = BytesMut::with_capacity(header_len + allowed);
                    encode_binary_header(&ctx.id, &mut frame);
                    frame.extend_from_slice(&rest.split_to(allowed));
                    message = Message::Binary(frame.freeze());
                }
            }
        }
        // One reused read buffer, grown while reads fill it; the only
        // allocation per frame is its text.
        let mut size = ReadSize::up_to(ctx.read_len);
        let mut buf = vec![0u8; size.next()];
        loop {
            let n = rd.read(&mut buf).await?;
            size.record(buf.len(), n);
            if size.next() > buf.len() {
                buf.resize(size.next(), 0);
            }
            if n == 0 {
                return Ok::<bool, std::io::Error>(true);
            }
            let mut sent = 0;
            while sent < n {
                let allowed = credit_for(n - sent).await;
                let mut text = String::new();
                encode_stream_data(&ctx.id, &buf[sent..sent + allowed], &mut text);
                if ctx.out.stream(&ctx.id, Message::text(text)).await.is_err() {
                    return Ok(false);
                }
                bytes_down.increment(allowed as u64);
                sent += allowed;
            }
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
