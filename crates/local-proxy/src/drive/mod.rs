//! Async drivers: own the sockets, buffers and timers, and call the sans-IO
//! codecs in [`crate::socks5`] and [`crate::http1`].

mod http;
mod io;
mod socks;
mod udp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;
use tracing::debug;

use crate::{Connector, ProxyConfig};
use io::Reader;

/// What every connection task shares.
pub(crate) struct Shared {
    pub(crate) config: ProxyConfig,
    pub(crate) connector: Arc<dyn Connector>,
}

/// The client side of one accepted connection.
pub(crate) struct ClientConn {
    pub(crate) reader: Reader<OwnedReadHalf>,
    pub(crate) writer: OwnedWriteHalf,
    pub(crate) addr: SocketAddr,
    pub(crate) shared: Arc<Shared>,
    /// When the handshake (first byte to SOCKS request or first HTTP head)
    /// must be over.
    pub(crate) handshake_deadline: Instant,
}

/// The reply SOCKS4 clients get: version 0, 0x5B "request rejected or
/// failed", and six ignored bytes.
const SOCKS4_REJECTED: [u8; 8] = [0x00, 0x5B, 0, 0, 0, 0, 0, 0];

/// After an error reply: how long, and how many bytes, to keep reading what
/// the client still sends before closing.
const LINGER_TIME: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 256 * 1024;

/// Serves one client connection to the end: detects the protocol from the
/// first byte and hands over to the SOCKS5 or HTTP driver.
pub(crate) async fn serve_connection(shared: Arc<Shared>, stream: TcpStream, addr: SocketAddr) {
    // Proxied traffic is often interactive (TLS handshakes, small requests);
    // Nagle would only add latency on loopback.
    let _ = stream.set_nodelay(true);
    let config = &shared.config;
    let (read, writer) = stream.into_split();
    let reader = Reader::new(
        read,
        config.copy_buffer,
        config.copy_buffer.max(config.max_header_bytes),
    );
    let mut conn = ClientConn {
        reader,
        writer,
        addr,
        shared: Arc::clone(&shared),
        handshake_deadline: Instant::now() + config.handshake_timeout,
    };
    let first = match tokio::time::timeout_at(conn.handshake_deadline, conn.reader.fill()).await {
        Err(_) => {
            debug!("client sent nothing before the handshake timeout");
            return;
        }
        Ok(Err(err)) => {
            debug!(error = %err, "read error before the first byte");
            return;
        }
        Ok(Ok(0)) => {
            debug!("client closed without sending anything");
            return;
        }
        Ok(Ok(_)) => conn.reader.buf[0],
    };
    match first {
        socks::VERSION_BYTE => socks::serve(conn).await,
        b if b.is_ascii_alphabetic() => http::serve(conn).await,
        0x04 => {
            debug!("SOCKS4 is not supported; rejected");
            let _ = conn.writer.write_all(&SOCKS4_REJECTED).await;
            conn.close_gracefully().await;
        }
        other => {
            // TLS (0x16), garbage: close without a word, so nothing about the
            // proxy leaks to a client that does not speak a proxy protocol.
            debug!(first_byte = other, "unknown protocol; closing");
        }
    }
}

impl ClientConn {
    /// Sends `bytes` (an error reply), then closes without losing it.
    pub(crate) async fn reply_and_close(mut self, bytes: &[u8]) {
        if self.writer.write_all(bytes).await.is_ok() {
            self.close_gracefully().await;
        }
    }

    /// Closes our side after a reply. Unread client bytes would make the
    /// kernel answer with a reset, which can destroy the reply before the
    /// client reads it; so shut down writing first, then read and discard
    /// for a short, bounded while.
    pub(crate) async fn close_gracefully(&mut self) {
        if self.writer.shutdown().await.is_err() {
            return;
        }
        let reader = &mut self.reader;
        let _ = tokio::time::timeout(LINGER_TIME, async {
            let mut drained = reader.buf.len();
            reader.buf.clear();
            while drained < LINGER_BYTES {
                match reader.fill().await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => drained += n,
                }
                reader.buf.clear();
            }
        })
        .await;
    }
}
