//! Async drivers: own the sockets, buffers and timers. SOCKS5 calls the
//! sans-IO codec in [`crate::socks5`]; HTTP runs on hyper with the rules in
//! [`crate::http1`].

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
    /// hyper's HTTP/1 settings, made from `config`.
    pub(crate) http: http::Builders,
}

impl Shared {
    pub(crate) fn new(config: ProxyConfig, connector: Arc<dyn Connector>) -> Self {
        let http = http::Builders::new(&config);
        Shared {
            config,
            connector,
            http,
        }
    }
}

/// The client side of one accepted connection, for the hand-written SOCKS5
/// codec and for raw relaying.
pub(crate) struct ClientConn {
    pub(crate) reader: Reader<OwnedReadHalf>,
    pub(crate) writer: OwnedWriteHalf,
    pub(crate) addr: SocketAddr,
    pub(crate) shared: Arc<Shared>,
    /// When the SOCKS5 handshake (first byte to request) must be over.
    pub(crate) handshake_deadline: Instant,
}

/// The reply SOCKS4 clients get: version 0, 0x5B "request rejected or
/// failed", and six ignored bytes.
const SOCKS4_REJECTED: [u8; 8] = [0x00, 0x5B, 0, 0, 0, 0, 0, 0];

/// Room a client's read buffer always has, whatever `copy_buffer` says: the
/// longest SOCKS5 message (RFC 1929 username/password, 513 bytes) fits.
const MIN_READ_BUFFER: usize = 1024;

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
    let handshake_deadline = Instant::now() + shared.config.handshake_timeout;
    // Peek, not read: the chosen driver reads the first byte again.
    let mut first = [0u8; 1];
    let first = match tokio::time::timeout_at(handshake_deadline, stream.peek(&mut first)).await {
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
        Ok(Ok(_)) => first[0],
    };
    match first {
        socks::VERSION_BYTE => {
            socks::serve(ClientConn::new(shared, stream, addr, handshake_deadline)).await;
        }
        b if b.is_ascii_alphabetic() => http::serve(shared, stream, addr, handshake_deadline).await,
        0x04 => {
            debug!("SOCKS4 is not supported; rejected");
            ClientConn::new(shared, stream, addr, handshake_deadline)
                .reply_and_close(&SOCKS4_REJECTED)
                .await;
        }
        other => {
            // TLS (0x16), garbage: close without a word, so nothing about the
            // proxy leaks to a client that does not speak a proxy protocol.
            debug!(first_byte = other, "unknown protocol; closing");
        }
    }
}

impl ClientConn {
    pub(crate) fn new(
        shared: Arc<Shared>,
        stream: TcpStream,
        addr: SocketAddr,
        handshake_deadline: Instant,
    ) -> Self {
        let chunk = shared.config.copy_buffer;
        let (read, writer) = stream.into_split();
        ClientConn {
            reader: Reader::new(read, chunk, chunk.max(MIN_READ_BUFFER)),
            writer,
            addr,
            shared,
            handshake_deadline,
        }
    }

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
