//! One tunnelled connection as `AsyncRead + AsyncWrite`.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use proto_httvps::binary::{MAX_BINARY_STREAM_ID_LEN, encode_binary_stream_data};
use proto_httvps::{Frame, TargetAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, OwnedSemaphorePermit, mpsc};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_util::sync::PollSender;

use crate::error::StreamEnd;
use crate::tunnel::{Guard, LocalClose};

/// What the driver tells a stream besides its bytes: that the gateway reached
/// the target (`stream_ready`), and how the stream ended. Each is written once.
#[derive(Default)]
pub(crate) struct EndCell {
    end: Mutex<Option<StreamEnd>>,
    ready: AtomicBool,
    changed: Notify,
}

impl EndCell {
    /// Records the end; the first one wins.
    pub(crate) fn set(&self, end: StreamEnd) {
        let mut cell = self.end.lock().unwrap_or_else(|e| e.into_inner());
        if cell.is_none() {
            *cell = Some(end);
        }
        drop(cell);
        self.changed.notify_waiters();
    }

    pub(crate) fn get(&self) -> Option<StreamEnd> {
        self.end.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records that the gateway reached the target.
    pub(crate) fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
        self.changed.notify_waiters();
    }

    /// Waits for `stream_ready` or the end, whichever comes first.
    async fn wait_ready(&self) -> Result<(), StreamEnd> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(end) = self.get() {
                return Err(end);
            }
            if self.ready.load(Ordering::Acquire) {
                return Ok(());
            }
            changed.await;
        }
    }
}

/// A tunnelled TCP connection.
///
/// Reads end with EOF when the gateway closes the stream normally, and with an
/// `io::Error` whose kind says why otherwise (`ConnectionRefused`,
/// `HostUnreachable`, `PermissionDenied` for a target the gateway refuses,
/// `TimedOut`, `ConnectionAborted` when the session is lost).
///
/// `shutdown()` is a TCP-style half-close: with a gateway that speaks the
/// `half_close` extension it sends `stream_shutdown`, the target sees EOF and
/// the reply keeps coming until the target closes. With other gateways (the
/// contract has no half-close) the stream keeps reading until no reply byte
/// came for `half_close_linger`, then ends. The `stream_close` is sent when
/// the stream is dropped (or [`Stream::close`] is called).
pub struct Stream {
    id: String,
    target: TargetAddr,
    guard: Arc<Guard>,
    rx: mpsc::Receiver<Bytes>,
    end: Arc<EndCell>,
    pending: Bytes,
    out: PollSender<Message>,
    chunk: usize,
    /// Send data as binary messages (`binary_data` negotiated, id short enough).
    binary: bool,
    write_shut: bool,
    /// Set after a shutdown the gateway cannot forward: ends reading when no
    /// reply byte came for `half_close_linger`.
    linger: Option<Pin<Box<tokio::time::Sleep>>>,
    permit: Option<OwnedSemaphorePermit>,
    close_reason: Option<String>,
}

impl Stream {
    pub(crate) fn new(
        id: String,
        target: TargetAddr,
        guard: Arc<Guard>,
        rx: mpsc::Receiver<Bytes>,
        end: Arc<EndCell>,
        permit: OwnedSemaphorePermit,
    ) -> Stream {
        let shared = &guard.0;
        let chunk = shared.config.chunk_for(id.len());
        let binary = shared.binary_data && id.len() <= MAX_BINARY_STREAM_ID_LEN;
        let out = PollSender::new(shared.out_tx.clone());
        Stream {
            id,
            target,
            guard,
            rx,
            end,
            pending: Bytes::new(),
            out,
            chunk,
            binary,
            write_shut: false,
            linger: None,
            permit: Some(permit),
            close_reason: None,
        }
    }

    /// The stream's id within its session (`s1`, `s2`, …).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where the stream goes.
    pub fn target(&self) -> &TargetAddr {
        &self.target
    }

    /// How the stream ended, once it has.
    pub fn end(&self) -> Option<StreamEnd> {
        self.end.get()
    }

    /// Waits until the gateway has reached the target, so a proxy can report
    /// success or the precise failure (refused, unreachable, not allowed) to
    /// its client before any byte flows. With a gateway that does not offer
    /// `stream_ready`, or with [`crate::ClientConfig::optimistic_open`],
    /// returns at once and failures surface on first read.
    pub async fn ready(&self) -> Result<(), StreamEnd> {
        let shared = &self.guard.0;
        if !shared.stream_ready || shared.config.optimistic_open {
            return match self.end.get() {
                Some(end) if !end.is_clean() => Err(end),
                _ => Ok(()),
            };
        }
        self.end.wait_ready().await
    }

    /// Ends the stream now, telling the gateway `reason`.
    pub fn close(mut self, reason: impl Into<String>) {
        self.close_reason = Some(reason.into());
    }

    fn write_error(&self) -> io::Error {
        match self.end.get() {
            Some(end) if end.is_clean() => io::Error::new(
                io::ErrorKind::BrokenPipe,
                "stream was closed by the gateway",
            ),
            Some(end) => end.to_io_error(),
            None => io::Error::new(io::ErrorKind::ConnectionAborted, "session closed"),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            let received = match this.rx.poll_recv(cx) {
                Poll::Ready(received) => received,
                Poll::Pending => {
                    if let Some(linger) = &mut this.linger
                        && linger.as_mut().poll(cx).is_ready()
                    {
                        this.linger = None;
                        let after = this.guard.0.config.half_close_linger;
                        this.end.set(StreamEnd::Local(format!(
                            "no reply for {after:?} after this side finished writing"
                        )));
                        return Poll::Ready(Ok(()));
                    }
                    return Poll::Pending;
                }
            };
            match received {
                Some(bytes) => {
                    if let Some(linger) = &mut this.linger {
                        let after = this.guard.0.config.half_close_linger;
                        linger.as_mut().reset(tokio::time::Instant::now() + after);
                    }
                    this.pending = bytes;
                }
                None => {
                    return Poll::Ready(match this.end.get() {
                        Some(end) if !end.is_clean() => Err(end.to_io_error()),
                        _ => Ok(()),
                    });
                }
            }
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.write_shut {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "stream was shut down for writing",
            )));
        }
        if this.end.get().is_some() {
            return Poll::Ready(Err(this.write_error()));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if ready!(this.out.poll_reserve(cx)).is_err() {
            return Poll::Ready(Err(this.write_error()));
        }
        let n = buf.len().min(this.chunk);
        let message = if this.binary {
            let mut message = Vec::new();
            encode_binary_stream_data(&this.id, &buf[..n], &mut message);
            Message::Binary(message.into())
        } else {
            let mut text = String::new();
            proto_httvps::encode_stream_data(&this.id, &buf[..n], &mut text);
            Message::Text(Utf8Bytes::from(text))
        };
        if this.out.send_item(message).is_err() {
            return Poll::Ready(Err(this.write_error()));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The driver's writer flushes after every batch; nothing is held here.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.write_shut || this.end.get().is_some() {
            this.write_shut = true;
            return Poll::Ready(Ok(()));
        }
        let shared = &this.guard.0;
        if shared.half_close {
            if ready!(this.out.poll_reserve(cx)).is_err() {
                return Poll::Ready(Err(this.write_error()));
            }
            let frame = Frame::StreamShutdown {
                stream_id: this.id.as_str().into(),
            };
            let text = proto_httvps::encode_to_string(&frame);
            if this
                .out
                .send_item(Message::Text(Utf8Bytes::from(text)))
                .is_err()
            {
                return Poll::Ready(Err(this.write_error()));
            }
        } else {
            let after = shared.config.half_close_linger;
            this.linger = Some(Box::pin(tokio::time::sleep(after)));
        }
        this.write_shut = true;
        Poll::Ready(Ok(()))
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.guard.0.close_tx.send(LocalClose {
            id: std::mem::take(&mut self.id),
            reason: self.close_reason.take(),
            permit: self.permit.take(),
        });
    }
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("id", &self.id)
            .field("target", &self.target)
            .finish()
    }
}
