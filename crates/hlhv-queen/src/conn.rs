//! A TLS connection from a cell, framed: frames are read with the cap
//! (`proto_hlhv::FrameReader`) from a buffer that survives cancelled reads,
//! so a read can sit in a `select!` (a leash waiting for frames and timers,
//! an idle band waiting for a request or its close).

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use proto_hlhv::{Frame, FrameError, FrameReader};
use server_kit::admission::Ticket;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// The TLS stream of a cell connection.
pub(crate) type Tls = tokio_rustls::server::TlsStream<TcpStream>;

/// Why no frame could be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// The socket failed.
    #[error("read: {0}")]
    Io(#[from] std::io::Error),
    /// The bytes are not a frame, or announce one over the cap.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// Read buffer growth: enough for a typical body piece in one read.
const READ_CHUNK: usize = 32 * 1024;

/// A framed cell connection (leash or band).
pub(crate) struct FrameConn {
    stream: Tls,
    rbuf: BytesMut,
    wbuf: BytesMut,
    reader: FrameReader,
    /// The connection's admission place, held as long as it lives.
    _ticket: Option<Ticket>,
    /// Runs when a band is dropped (the open-bands gauge).
    on_drop: Option<Box<dyn FnOnce() + Send + Sync>>,
    /// The bound on waiting for the peer, one timer for the connection's
    /// life.
    pub(crate) deadline: Deadline,
}

/// A deadline that costs no timer registration when it is set, only when
/// it is waited on: its one timer stays armed at an earlier deadline and,
/// when that fires, moves on to the current one. Deadlines only grow (each
/// is "now + a fixed bound"), so the timer is never late.
pub(crate) struct Deadline {
    due: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Deadline {
    fn new() -> Deadline {
        Deadline {
            due: Instant::now(),
            sleep: None,
        }
    }

    /// Waiting ends at `due`.
    pub(crate) fn set(&mut self, due: Instant) {
        self.due = due;
        if let Some(sleep) = self.sleep.as_mut()
            && sleep.deadline() > due
        {
            sleep.as_mut().reset(due);
        }
    }

    /// Whether `due` has passed; otherwise `cx` is woken when it may have.
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let due = self.due;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        loop {
            if sleep.as_mut().poll(cx).is_pending() {
                return false;
            }
            if sleep.deadline() >= due {
                return true;
            }
            sleep.as_mut().reset(due);
        }
    }
}

impl Drop for FrameConn {
    fn drop(&mut self) {
        if let Some(f) = self.on_drop.take() {
            f();
        }
    }
}

impl FrameConn {
    pub(crate) fn new(stream: Tls, max_frame: usize, ticket: Ticket) -> FrameConn {
        FrameConn {
            stream,
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: BytesMut::new(),
            reader: FrameReader::new(max_frame),
            _ticket: Some(ticket),
            on_drop: None,
            deadline: Deadline::new(),
        }
    }

    /// The admission ticket, to promote it after login.
    pub(crate) fn ticket_mut(&mut self) -> Option<&mut Ticket> {
        self._ticket.as_mut()
    }

    /// Runs `f` when this connection is dropped.
    pub(crate) fn on_drop(&mut self, f: impl FnOnce() + Send + Sync + 'static) {
        self.on_drop = Some(Box::new(f));
    }

    /// The next frame; `None` at the end of the stream. Cancel-safe.
    pub(crate) fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Frame>, ReadError>> {
        let body = ready!(self.poll_raw_frame(cx))?;
        Poll::Ready(Ok(body.map(Frame::parse).transpose()?))
    }

    /// The next frame's body (kind byte and payload), not parsed: the
    /// exchange reads a response head from it without an owned copy
    /// (`proto_hlhv::ResHeadRef`). `None` at the end of the stream.
    /// Cancel-safe.
    pub(crate) fn poll_raw_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, ReadError>> {
        loop {
            if let Some(body) = self.reader.split(&mut self.rbuf)? {
                return Poll::Ready(Ok(Some(body)));
            }
            if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 4 {
                self.rbuf.reserve(READ_CHUNK);
            }
            let n = ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut self.stream),
                cx,
                &mut self.rbuf
            ))?;
            if n == 0 {
                return Poll::Ready(Ok(None));
            }
        }
    }

    /// Whether a free connection is still open and silent: reads without
    /// waiting; the end of the stream, an error or any byte means it is not.
    pub(crate) fn is_open_and_silent(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        self.poll_frame(&mut cx).is_pending() && self.rbuf.is_empty()
    }

    /// The next frame if it is already read in whole, without reading the
    /// socket.
    pub(crate) fn buffered_frame(&mut self) -> Result<Option<Frame>, ReadError> {
        Ok(self.reader.decode(&mut self.rbuf)?)
    }

    /// [`poll_frame`](Self::poll_frame) as a future. Cancel-safe.
    pub(crate) async fn read_frame(&mut self) -> Result<Option<Frame>, ReadError> {
        poll_fn(|cx| self.poll_frame(cx)).await
    }

    /// Writes frames in one go and flushes them.
    pub(crate) async fn write_frames(&mut self, frames: &[Frame]) -> std::io::Result<()> {
        self.wbuf.clear();
        for frame in frames {
            frame.write(&mut self.wbuf);
        }
        self.stream.write_all(&self.wbuf).await?;
        self.stream.flush().await
    }

    /// Writes what `write` appends (whole frames) and flushes it.
    pub(crate) async fn write_with(
        &mut self,
        write: impl FnOnce(&mut BytesMut),
    ) -> std::io::Result<()> {
        self.wbuf.clear();
        write(&mut self.wbuf);
        self.stream.write_all(&self.wbuf).await?;
        self.stream.flush().await
    }

    /// Writes one frame and flushes it.
    pub(crate) async fn write_frame(&mut self, frame: &Frame) -> std::io::Result<()> {
        self.write_frames(std::slice::from_ref(frame)).await
    }

    /// Sends TLS close_notify and shuts the socket down (best effort).
    pub(crate) async fn close(mut self) {
        let _ = self.stream.shutdown().await;
    }
}
