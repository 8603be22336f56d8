//! WebSocket messages per second: a client that sends numbered binary
//! messages to a WebSocket echo server with a bounded number in flight and
//! checks every echo, and [`EchoServer`], that echo server (HTTP/1.1
//! WebSocket on TCP).
//!
//! The client speaks WebSocket over HTTP/3 (`https://` URLs: QUIC, then an
//! extended CONNECT for `websocket`, RFC 9220), as a browser does to
//! `h3ws-proxy`, or plain WebSocket over TCP (`ws://`), the same exchange
//! without the proxy.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::streams::Percentiles;

/// Bytes of the sequence number at the start of every message.
const SEQ_LEN: usize = 8;
/// Largest message accepted by `--size`.
pub const MAX_SIZE: usize = 16 << 20;

/// tungstenite zero-fills its read buffer size before every read attempt.
/// Over HTTP/3 a read yields one DATA piece, about one QUIC packet, so a
/// small buffer keeps that work in proportion (its default, 128 KiB, would
/// zero about a hundred bytes per byte received); over TCP a read yields
/// what the socket holds.
const H3_READ_BUFFER: usize = 4 * 1024;
const TCP_READ_BUFFER: usize = 16 * 1024;

fn ws_config(read_buffer: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(read_buffer)
        .max_message_size(Some(MAX_SIZE + 1024))
        .max_frame_size(Some(MAX_SIZE + 1024))
}

/// What to run.
#[derive(Debug, Clone)]
pub struct WsOptions {
    /// `https://host:port/path` (WebSocket over HTTP/3) or
    /// `ws://host:port/path` (over TCP).
    pub url: String,
    /// Extra CA certificates (PEM) trusted for `https://`.
    pub ca: Option<PathBuf>,
    /// Messages to send.
    pub messages: u64,
    /// Bytes per message, at least 8 (the sequence number).
    pub size: usize,
    /// Most messages sent and not yet echoed.
    pub in_flight: usize,
    /// Longest the whole exchange may take, and the longest wait for an echo.
    pub timeout: Duration,
}

/// The JSON the `ws` command prints.
#[derive(Debug, Clone, Serialize)]
pub struct WsReport {
    /// The URL.
    pub url: String,
    /// `h3` (QUIC) or `h1` (TCP).
    pub transport: &'static str,
    /// Bytes per message.
    pub size: usize,
    /// Most messages in flight.
    pub in_flight: usize,
    /// Messages sent.
    pub sent: u64,
    /// Echoes received intact and in order.
    pub received: u64,
    /// From the start of the connection to the WebSocket being open
    /// (QUIC and TLS handshakes and the CONNECT, or TCP and the upgrade),
    /// milliseconds.
    pub connect_ms: f64,
    /// From the first message sent to the last echo, seconds.
    pub elapsed_s: f64,
    /// Echoes per second: `received / elapsed_s`.
    pub messages_per_s: f64,
    /// Payload megabytes (10^6) echoed per second, one way: `received ×
    /// size / elapsed_s` (each byte crossed the proxy twice).
    pub mb_per_s: f64,
    /// Time from sending a message to its echo, milliseconds.
    pub rtt_ms: Option<Percentiles>,
}

/// Why the exchange failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WsError {
    /// The options make no sense.
    #[error("{0}")]
    Options(String),
    /// Connecting, the handshakes or the CONNECT failed.
    #[error("connecting: {0}")]
    Connect(String),
    /// The WebSocket failed during the exchange.
    #[error("websocket: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    /// An echo did not match what was sent.
    #[error("echo {seq}: {why}")]
    Corrupt {
        /// The message expected.
        seq: u64,
        /// What was wrong.
        why: String,
    },
    /// The server closed the WebSocket before every echo came back.
    #[error("the server closed the WebSocket after {0} echoes")]
    Closed(u64),
    /// No echo within the timeout.
    #[error("no echo within {0:?} (after {1} echoes)")]
    Timeout(Duration, u64),
}

/// A parsed `https://` or `ws://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct WsUrl {
    h3: bool,
    host: String,
    port: u16,
    path: String,
}

impl WsUrl {
    fn parse(url: &str) -> Result<WsUrl, WsError> {
        let bad = || {
            WsError::Options(format!(
                "{url}: expected https://host:port/path or ws://host:port/path"
            ))
        };
        let (h3, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("ws://") {
            (false, rest)
        } else {
            return Err(bad());
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(bad)?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if h3 => 443,
            None => 80,
        };
        if host.is_empty() || host.contains('@') || path.contains('#') {
            return Err(bad());
        }
        Ok(WsUrl {
            h3,
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The content of message `seq`: its number, then `base` (shared by all).
fn message(seq: u64, base: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(base.len());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&base[SEQ_LEN..]);
    out.into()
}

/// `size` bytes that do not repeat in short periods (so that nothing can
/// compress them away), the first 8 left for the sequence number.
fn base_payload(size: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..size)
        .map(|_| {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Runs the exchange and reports.
pub async fn run(opts: WsOptions) -> Result<WsReport, WsError> {
    if opts.size < SEQ_LEN || opts.size > MAX_SIZE {
        return Err(WsError::Options(format!(
            "--size must be between {SEQ_LEN} and {MAX_SIZE}"
        )));
    }
    if opts.in_flight == 0 || opts.messages == 0 {
        return Err(WsError::Options(
            "--messages and --in-flight must be at least 1".into(),
        ));
    }
    let url = WsUrl::parse(&opts.url)?;
    let started = Instant::now();
    let deadline = opts.timeout;
    let result = if url.h3 {
        let (ws, conn, endpoint) = tokio::time::timeout(deadline, open_h3(&url, &opts))
            .await
            .map_err(|_| WsError::Connect(format!("not connected within {deadline:?}")))??;
        let connect_ms = started.elapsed().as_secs_f64() * 1000.0;
        let result = exchange(ws, &opts).await;
        conn.quic().close(0u32.into(), b"done");
        let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
        result.map(|r| (r, connect_ms))
    } else {
        let ws = tokio::time::timeout(deadline, open_h1(&url))
            .await
            .map_err(|_| WsError::Connect(format!("not connected within {deadline:?}")))??;
        let connect_ms = started.elapsed().as_secs_f64() * 1000.0;
        exchange(ws, &opts).await.map(|r| (r, connect_ms))
    };
    let (done, connect_ms) = result?;
    let elapsed_s = done.elapsed.as_secs_f64();
    let mut rtts = done.rtts_ms;
    Ok(WsReport {
        url: opts.url.clone(),
        transport: if url.h3 { "h3" } else { "h1" },
        size: opts.size,
        in_flight: opts.in_flight,
        sent: done.sent,
        received: done.received,
        connect_ms,
        elapsed_s,
        messages_per_s: done.received as f64 / elapsed_s.max(1e-9),
        mb_per_s: (done.received as f64 * opts.size as f64) / elapsed_s.max(1e-9) / 1e6,
        rtt_ms: Percentiles::of(&mut rtts),
    })
}

async fn open_h1(url: &WsUrl) -> Result<WebSocketStream<TcpStream>, WsError> {
    let connect = |e: String| WsError::Connect(e);
    let tcp = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| connect(e.to_string()))?;
    tcp.set_nodelay(true).map_err(|e| connect(e.to_string()))?;
    let request = format!("ws://{}{}", url.authority(), url.path);
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(request, tcp, Some(ws_config(TCP_READ_BUFFER)))
            .await
            .map_err(|e| connect(e.to_string()))?;
    Ok(ws)
}

/// The WebSocket, its HTTP/3 connection (which must live as long: it holds
/// the control stream) and the QUIC endpoint.
type H3Open = (
    WebSocketStream<h3ws::stream::H3Stream>,
    h3ws::client::ClientConnection,
    quinn::Endpoint,
);

async fn open_h3(url: &WsUrl, opts: &WsOptions) -> Result<H3Open, WsError> {
    let connect = |e: String| WsError::Connect(e);
    let addr: SocketAddr = tokio::net::lookup_host((url.host.as_str(), url.port))
        .await
        .map_err(|e| connect(format!("resolving {}: {e}", url.host)))?
        .next()
        .ok_or_else(|| connect(format!("{}: no address", url.host)))?;
    let tls = tls_config(opts.ca.as_deref()).map_err(connect)?;
    let path = h3ws::quic::Path::toward(addr);
    let quic = h3ws::quic::client_config(tls, h3ws::quic::Timing::default(), path)
        .map_err(|e| connect(e.to_string()))?;
    let endpoint = client_endpoint(addr).map_err(|e| connect(e.to_string()))?;
    let mut conn = h3ws::client::ClientConnection::connect(
        &endpoint,
        quic,
        addr,
        &url.host,
        h3ws::Limits::default(),
    )
    .await
    .map_err(|e| connect(e.to_string()))?;
    let request = h3ws::Request::extended_connect(
        &url.authority(),
        &url.path,
        "websocket",
        &[("sec-websocket-version", b"13")],
    );
    let (response, stream) = conn
        .open(&request, Duration::from_secs(10))
        .await
        .map_err(|e| connect(e.to_string()))?;
    let Some(stream) = stream else {
        return Err(connect(format!(
            "the server answered {} to the CONNECT",
            response.status
        )));
    };
    let ws =
        WebSocketStream::from_raw_socket(stream, Role::Client, Some(ws_config(H3_READ_BUFFER)))
            .await;
    Ok((ws, conn, endpoint))
}

/// A QUIC client endpoint on an ephemeral port, as
/// `h3ws::quic::client_endpoint` makes it but with large socket buffers: the
/// load generator's own socket must not be where datagrams are dropped.
fn client_endpoint(peer: SocketAddr) -> io::Result<quinn::Endpoint> {
    let socket = std::net::UdpSocket::bind(h3ws::quic::unspecified_for(peer))?;
    crate::delay::enlarge_udp_buffers(&socket);
    h3ws::quic::endpoint_on(socket, None)
}

/// A rustls client configuration trusting the system's roots and `ca`.
pub(crate) fn tls_config(ca: Option<&std::path::Path>) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    if let Some(path) = ca {
        let pem = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    if roots.is_empty() {
        return Err("no CA certificate to trust (--ca PEM)".into());
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

struct Done {
    sent: u64,
    received: u64,
    elapsed: Duration,
    rtts_ms: Vec<f64>,
}

/// Sends `opts.messages` messages, at most `opts.in_flight` unanswered, and
/// checks every echo: the right number, in order, the right content.
async fn exchange<S>(ws: WebSocketStream<S>, opts: &WsOptions) -> Result<Done, WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let base = base_payload(opts.size);
    let (mut sink, mut stream) = ws.split();
    let window = Semaphore::new(opts.in_flight);
    // Send times in order: the echoes come back in the order sent.
    let (sent_tx, mut sent_rx) = mpsc::unbounded_channel::<Instant>();
    let total = opts.messages;
    let started = Instant::now();
    let sender = async {
        for seq in 0..total {
            let permit = match window.try_acquire() {
                Ok(p) => p,
                Err(_) => {
                    // Nothing may wait in our buffer while we wait for room.
                    sink.flush().await?;
                    window.acquire().await.expect("never closed")
                }
            };
            permit.forget();
            let _ = sent_tx.send(Instant::now());
            sink.feed(Message::Binary(message(seq, &base))).await?;
        }
        sink.flush().await?;
        Ok::<_, WsError>(sink)
    };
    let receiver = async {
        let mut rtts = Vec::with_capacity(total.min(1 << 20) as usize);
        let mut received = 0u64;
        while received < total {
            let next = tokio::time::timeout(opts.timeout, stream.next())
                .await
                .map_err(|_| WsError::Timeout(opts.timeout, received))?;
            let data = match next {
                None => return Err(WsError::Closed(received)),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(Message::Binary(data))) => data,
                Some(Ok(Message::Close(_))) => return Err(WsError::Closed(received)),
                Some(Ok(_)) => continue,
            };
            let corrupt = |why: String| WsError::Corrupt { seq: received, why };
            if data.len() != base.len() {
                return Err(corrupt(format!("{} bytes, not {}", data.len(), base.len())));
            }
            let seq = u64::from_be_bytes(data[..SEQ_LEN].try_into().expect("8 bytes"));
            if seq != received {
                return Err(corrupt(format!("message {seq} came back instead")));
            }
            if data[SEQ_LEN..] != base[SEQ_LEN..] {
                return Err(corrupt("content differs".into()));
            }
            let sent_at = sent_rx.recv().await.expect("sent before echoed");
            rtts.push(sent_at.elapsed().as_secs_f64() * 1000.0);
            received += 1;
            window.add_permits(1);
        }
        Ok::<_, WsError>((received, rtts))
    };
    let (mut sink, (received, rtts_ms)) = tokio::try_join!(sender, receiver)?;
    let elapsed = started.elapsed();
    // A polite end; the result is already in.
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
    Ok(Done {
        sent: total,
        received,
        elapsed,
        rtts_ms,
    })
}

/// An HTTP/1.1 WebSocket echo server: every text or binary message goes
/// back unchanged; any path is accepted.
pub struct EchoServer {
    listener: TcpListener,
}

impl EchoServer {
    /// Binds `addr` (port 0 picks one).
    pub async fn bind(addr: SocketAddr) -> io::Result<EchoServer> {
        Ok(EchoServer {
            listener: TcpListener::bind(addr).await?,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until dropped; a failed connection ends only itself.
    pub async fn run_forever(self) {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            while connections.try_join_next().is_some() {}
            let Ok((tcp, _)) = self.listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            connections.spawn(async move {
                let _ = tcp.set_nodelay(true);
                let Ok(Ok(ws)) = tokio::time::timeout(
                    Duration::from_secs(10),
                    tokio_tungstenite::accept_async_with_config(
                        tcp,
                        Some(ws_config(TCP_READ_BUFFER)),
                    ),
                )
                .await
                else {
                    return;
                };
                let _ = echo(ws).await;
            });
        }
    }
}

/// Echoes messages, writing each batch that is ready at once.
async fn echo<S>(mut ws: WebSocketStream<S>) -> Result<(), tokio_tungstenite::tungstenite::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(msg) = ws.next().await {
        let mut msg = Some(msg?);
        while let Some(m) = msg.take() {
            match m {
                Message::Binary(_) | Message::Text(_) => ws.feed(m).await?,
                // tungstenite answers the Close itself; flush sends it.
                Message::Close(_) => {
                    let _ = ws.flush().await;
                    return Ok(());
                }
                _ => {}
            }
            if let Some(Some(next)) = ws.next().now_or_never() {
                msg = Some(next?);
            }
        }
        ws.flush().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = WsUrl::parse("https://127.0.0.1:4433/ws").unwrap();
        assert_eq!(
            (u.h3, u.host.as_str(), u.port, u.path.as_str()),
            (true, "127.0.0.1", 4433, "/ws")
        );
        assert_eq!(u.authority(), "127.0.0.1:4433");
        let u = WsUrl::parse("ws://[::1]:80").unwrap();
        assert_eq!(
            (u.h3, u.host.as_str(), u.path.as_str()),
            (false, "::1", "/")
        );
        assert_eq!(u.authority(), "[::1]:80");
        assert_eq!(WsUrl::parse("https://h/x").unwrap().port, 443);
        for bad in [
            "http://h/",
            "wss://h/",
            "https://:1/",
            "https://u@h/",
            "ws://h:x/",
        ] {
            assert!(WsUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn messages_carry_their_number() {
        let base = base_payload(64);
        let m = message(7, &base);
        assert_eq!(m.len(), 64);
        assert_eq!(&m[..8], &7u64.to_be_bytes());
        assert_eq!(&m[8..], &base[8..]);
        // Not a short repeating pattern.
        assert_ne!(&base[8..16], &base[16..24]);
    }
}
