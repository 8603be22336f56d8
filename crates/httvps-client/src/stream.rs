//! One tunnelled connection as `AsyncRead + AsyncWrite`.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes};
use proto_httvps::TargetAddr;
use proto_httvps::client::CommandError;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, mpsc};

use crate::config::ClientConfig;
use crate::connect::now;
use crate::error::StreamEnd;
use crate::tunnel::Guard;

/// Where the driver puts a stream's bytes.
#[derive(Clone)]
pub(crate) enum BytesTx {
    /// `flow_control`: never full; the stream's window bounds what it holds.
    Credited(mpsc::UnboundedSender<Bytes>),
    /// The contract: `stream_buffer_frames`, then the driver waits.
    Bounded(mpsc::Sender<Bytes>),
}

/// A stream's end of its byte channel.
pub(crate) enum BytesRx {
    Credited(mpsc::UnboundedReceiver<Bytes>),
    Bounded(mpsc::Receiver<Bytes>),
}

impl BytesTx {
    /// Whether bytes wait in the channel (known for the bounded one; with
    /// `flow_control` the machine's window says).
    pub(crate) fn has_unread(&self) -> bool {
        match self {
            BytesTx::Bounded(tx) => tx.capacity() < tx.max_capacity(),
            BytesTx::Credited(_) => false,
        }
    }
}

impl BytesRx {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        match self {
            BytesRx::Credited(rx) => rx.poll_recv(cx),
            BytesRx::Bounded(rx) => rx.poll_recv(cx),
        }
    }
}

/// A new stream's byte channel, per the session's flow control.
pub(crate) fn bytes_channel(flow_control: bool, config: &ClientConfig) -> (BytesTx, BytesRx) {
    if flow_control {
        let (tx, rx) = mpsc::unbounded_channel();
        (BytesTx::Credited(tx), BytesRx::Credited(rx))
    } else {
        let (tx, rx) = mpsc::channel(config.stream_buffer_frames.max(1));
        (BytesTx::Bounded(tx), BytesRx::Bounded(rx))
    }
}

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
/// Writes go straight into the session's protocol machine, which frames them
/// (at most one chunk per write) and holds at most `write_queue_frames` data
/// frames; a write past that waits until the driver's writer takes a batch.
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
    rx: BytesRx,
    end: Arc<EndCell>,
    pending: Bytes,
    write_shut: bool,
    /// Set after a shutdown the gateway cannot forward: ends reading when no
    /// reply byte came for `half_close_linger`.
    linger: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The task parked in `poll_read`: only `poll_read` polls the linger
    /// timer, so arming it must wake that task, or a reader parked on the
    /// channel never sees it (it waited for ever behind a gateway without
    /// `half_close` whose target keeps the connection open).
    read_waker: Option<Waker>,
    close_reason: Option<String>,
}

impl Stream {
    pub(crate) fn new(
        id: String,
        target: TargetAddr,
        guard: Arc<Guard>,
        rx: BytesRx,
        end: Arc<EndCell>,
    ) -> Stream {
        Stream {
            id,
            target,
            guard,
            rx,
            end,
            pending: Bytes::new(),
            write_shut: false,
            linger: None,
            read_waker: None,
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
                    this.read_waker = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            };
            match received {
                Some(bytes) => {
                    let shared = &this.guard.0;
                    if shared.flow_control {
                        // Taken from the channel: its credit may go back.
                        let mut conn = shared.conn();
                        conn.machine.consumed(&this.id, bytes.len(), now());
                        let grant = conn.machine.queued_transmits() > 0;
                        drop(conn);
                        if grant {
                            shared.writer.notify_one();
                        }
                    }
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
        let shared = &this.guard.0;
        // The machine checks the stream and takes a place in its send queue;
        // the frame is encoded (base64 or binary, the costly part) outside
        // the lock, then queued.
        let slot = {
            let mut conn = shared.conn();
            match conn.machine.reserve_data(&this.id, buf.len()) {
                Ok(slot) => slot,
                Err(CommandError::Blocked) => {
                    // Woken by the writer once it has taken a batch.
                    conn.park_writer(cx.waker());
                    return Poll::Pending;
                }
                Err(_) => {
                    drop(conn);
                    return Poll::Ready(Err(this.write_error()));
                }
            }
        };
        let n = slot.len();
        let transmit = slot.encode(&this.id, buf);
        let mut conn = shared.conn();
        conn.machine.queue_data(&this.id, slot, transmit);
        conn.touch(&this.id);
        drop(conn);
        shared.writer.notify_one();
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The driver's writer flushes after every batch; nothing is held here.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.write_shut || this.end.get().is_some() {
            this.write_shut = true;
            return Poll::Ready(Ok(()));
        }
        let shared = &this.guard.0;
        let sent = shared.conn().machine.shutdown_stream(&this.id);
        match sent {
            // `half_close` agreed: stream_shutdown is queued.
            Ok(true) => shared.writer.notify_one(),
            Ok(false) => {
                let after = shared.config.half_close_linger;
                this.linger = Some(Box::pin(tokio::time::sleep(after)));
                if let Some(reader) = this.read_waker.take() {
                    reader.wake();
                }
            }
            Err(_) => return Poll::Ready(Err(this.write_error())),
        }
        this.write_shut = true;
        Poll::Ready(Ok(()))
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.guard
            .0
            .close_local(&self.id, self.close_reason.as_deref());
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
