//! What carries the HTTVPS WebSocket: HTTP/1.1 over TLS over TCP, or
//! HTTP/3 over QUIC (an extended CONNECT, RFC 9220), chosen by
//! [`crate::Transport`]. Above this module the session sees one byte
//! stream either way.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use h3ws::client::ClientConnection;
use h3ws::stream::H3Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::config::Transport;

/// The byte stream under the WebSocket.
pub enum CarrierIo {
    /// TLS over TCP. Both variants are boxed: each is hundreds of bytes and
    /// made once per session.
    Tls(Box<TlsStream<TcpStream>>),
    /// A request stream of an HTTP/3 connection.
    H3(Box<H3Link>),
}

/// An HTTP/3 request stream and what must live as long as it: the
/// connection (whose control stream closing would end it) and the QUIC
/// endpoint (its UDP socket).
pub struct H3Link {
    pub(crate) stream: H3Stream,
    pub(crate) _connection: ClientConnection,
    pub(crate) endpoint: quinn::Endpoint,
}

impl CarrierIo {
    /// Which transport this is (never `Auto`).
    pub fn transport(&self) -> Transport {
        match self {
            CarrierIo::Tls(_) => Transport::H1,
            CarrierIo::H3(_) => Transport::H3,
        }
    }

    /// The QUIC endpoint, for moving the connection to a new UDP socket.
    pub(crate) fn quic_endpoint(&self) -> Option<quinn::Endpoint> {
        match self {
            CarrierIo::Tls(_) => None,
            CarrierIo::H3(link) => Some(link.endpoint.clone()),
        }
    }
}

impl AsyncRead for CarrierIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            CarrierIo::Tls(t) => Pin::new(t.as_mut()).poll_read(cx, buf),
            CarrierIo::H3(l) => Pin::new(&mut l.stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for CarrierIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            CarrierIo::Tls(t) => Pin::new(t.as_mut()).poll_write(cx, buf),
            CarrierIo::H3(l) => Pin::new(&mut l.stream).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            CarrierIo::Tls(t) => Pin::new(t.as_mut()).poll_write_vectored(cx, bufs),
            CarrierIo::H3(l) => Pin::new(&mut l.stream).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            CarrierIo::Tls(t) => t.is_write_vectored(),
            CarrierIo::H3(l) => l.stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            CarrierIo::Tls(t) => Pin::new(t.as_mut()).poll_flush(cx),
            CarrierIo::H3(l) => Pin::new(&mut l.stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            CarrierIo::Tls(t) => Pin::new(t.as_mut()).poll_shutdown(cx),
            CarrierIo::H3(l) => Pin::new(&mut l.stream).poll_shutdown(cx),
        }
    }
}

/// Gateways for which `auto` found HTTP/3 failing, and until when it goes
/// straight to HTTP/1.1 for them (process-wide: every session and
/// reconnect of the engine shares what one learned).
fn h3_failures() -> &'static Mutex<HashMap<String, Instant>> {
    static FAILURES: OnceLock<Mutex<HashMap<String, Instant>>> = OnceLock::new();
    FAILURES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Whether `auto` should skip HTTP/3 for the gateway at `authority` now.
pub(crate) fn h3_recently_failed(authority: &str) -> bool {
    let mut failures = h3_failures().lock().unwrap_or_else(|p| p.into_inner());
    let now = Instant::now();
    failures.retain(|_, until| *until > now);
    failures.contains_key(authority)
}

/// Remembers that HTTP/3 failed for the gateway at `authority`.
pub(crate) fn remember_h3_failure(authority: &str) {
    let until = Instant::now() + Transport::AUTO_REMEMBER;
    h3_failures()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(authority.to_owned(), until);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_remembered_per_gateway() {
        assert!(!h3_recently_failed("a.example:1"));
        remember_h3_failure("a.example:1");
        assert!(h3_recently_failed("a.example:1"));
        assert!(!h3_recently_failed("b.example:1"));
    }
}
