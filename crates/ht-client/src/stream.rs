//! One tunnelled TCP connection as `AsyncRead + AsyncWrite`.
//!
//! Reads take the download payloads the connection readers queued; each
//! payload read whole is reported to the machine, which acknowledges it to
//! the server, so a reader that pauses holds the server at one window (the
//! only buffer on this side). Writes become upload packets of at most
//! 64 KiB and wait while the upload window is full. Shutdown sends the
//! empty `U` (half-close); dropping the stream closes it at the server once
//! everything written was acknowledged.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Buf;
use proto_ht::client::StreamKey;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::shared::Shared;

/// A stream of an HT session.
pub struct HtStream {
    shared: Arc<Shared>,
    key: StreamKey,
    shut: bool,
}

impl HtStream {
    pub(crate) fn new(shared: Arc<Shared>, key: StreamKey) -> HtStream {
        HtStream {
            shared,
            key,
            shut: false,
        }
    }
}

impl AsyncRead for HtStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let key = self.key;
        let mut inner = self.shared.lock();
        let eof = inner.machine.is_eof(key);
        let ended = inner.machine.ended().map(ToString::to_string);
        let Some(slot) = inner.streams.get_mut(&key) else {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the HT stream is gone",
            )));
        };
        if let Some(front) = slot.queue.front_mut() {
            let n = front.len().min(buf.remaining());
            buf.put_slice(&front[..n]);
            front.advance(n);
            if front.is_empty() {
                slot.queue.pop_front();
                inner.machine.consumed(key, 1);
                self.shared.pump(&mut inner);
            }
            return Poll::Ready(Ok(()));
        }
        if eof {
            return Poll::Ready(Ok(()));
        }
        if let Some(reason) = ended {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                reason,
            )));
        }
        slot.read_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl AsyncWrite for HtStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            // An empty packet would mean "end of upload".
            return Poll::Ready(Ok(0));
        }
        self.shared.poll_send(cx, self.key, buf, false)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Packets are handed to the connection writers at once.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.shut {
            return Poll::Ready(Ok(()));
        }
        match self.shared.poll_send(cx, self.key, &[], true) {
            Poll::Ready(Ok(_)) => {
                self.shut = true;
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for HtStream {
    fn drop(&mut self) {
        self.shared.release(self.key);
    }
}
