//! Helpers shared by the gateway's integration tests: an in-process gateway
//! on port 0 with a fresh certificate, and a raw WebSocket client that speaks
//! the protocol by hand (so tests can also break it).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use httvps_gateway::{AuthSource, Gateway, GatewayConfig, RunningGateway, TlsSource};
use proto_httvps::TargetAddr;
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use testkit::TestCert;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Upper bound for any single wait in a test; failures show up as timeouts.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestGateway {
    pub running: RunningGateway,
    pub cert: TestCert,
}

impl TestGateway {
    pub fn addr(&self) -> SocketAddr {
        self.running.local_addr()
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.addr(), &self.cert).await
    }

    /// A client that sent `hello` with `token` and got `ready`.
    pub async fn ready_client(&self, token: &str) -> Client {
        let mut c = self.client().await;
        let reply = c.hello(token).await;
        assert_eq!(reply["type"], "ready", "{reply}");
        c
    }
}

/// Gateway logs go to the test's captured output (shown when a test fails).
pub fn init_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("httvps_gateway=debug"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

pub fn tokens(list: &[&str]) -> AuthSource {
    AuthSource::Tokens(list.iter().map(|s| s.to_string()).collect())
}

/// Starts a gateway on 127.0.0.1:0 with `auth`, after `tweak` adjusts the config.
pub async fn start_gateway(
    auth: AuthSource,
    tweak: impl FnOnce(&mut GatewayConfig),
) -> TestGateway {
    init_logs();
    let cert = TestCert::generate(&["localhost"]);
    let tls = TlsSource::Pem {
        cert_pem: cert.cert_pem.clone(),
        key_pem: cert.key_pem.clone(),
    };
    let mut config = GatewayConfig::new("127.0.0.1:0".parse().unwrap(), tls, auth);
    tweak(&mut config);
    let running = Gateway::bind(config).await.expect("gateway binds").spawn();
    TestGateway { running, cert }
}

pub fn client_tls(cert: &TestCert) -> TlsConnector {
    testkit::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert_der.clone()).unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

pub async fn tls_connect(addr: SocketAddr, cert: &TestCert) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    client_tls(cert)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake")
}

/// A loopback port that refuses connections for as long as the socket lives:
/// bound but not listening, so no other test can take it meanwhile.
pub fn refusing_port() -> (tokio::net::TcpSocket, SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

/// What the client saw next.
#[derive(Debug)]
pub enum Event {
    Frame(Value),
    Close(Option<u16>),
    /// The connection ended without a Close frame (or failed).
    Ended(String),
}

pub struct Client {
    pub ws: WebSocketStream<TlsStream<TcpStream>>,
}

impl Client {
    pub async fn connect(addr: SocketAddr, cert: &TestCert) -> Client {
        Self::try_connect(addr, cert)
            .await
            .expect("websocket upgrade")
    }

    pub async fn try_connect(
        addr: SocketAddr,
        cert: &TestCert,
    ) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
        let tls = tls_connect(addr, cert).await;
        let url = format!("wss://localhost:{}/ws", addr.port());
        let config = WebSocketConfig::default().max_message_size(Some(64 << 20));
        let (ws, _) = tokio_tungstenite::client_async_with_config(url, tls, Some(config)).await?;
        Ok(Client { ws })
    }

    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.ws.send(Message::text(text.into())).await.unwrap();
    }

    pub async fn send(&mut self, v: Value) {
        self.send_text(v.to_string()).await;
    }

    /// Sends `hello` and returns the first frame in reply.
    pub async fn hello(&mut self, token: &str) -> Value {
        self.send(json!({"type":"hello","session_token":token,"version":"1","client":"test"}))
            .await;
        self.frame().await
    }

    /// The next event, within [`WAIT`].
    pub async fn event(&mut self) -> Event {
        self.event_within(WAIT).await
    }

    pub async fn event_within(&mut self, wait: Duration) -> Event {
        loop {
            let next = tokio::time::timeout(wait, self.ws.next())
                .await
                .expect("timed out waiting for the gateway");
            return match next {
                Some(Ok(Message::Text(t))) => Event::Frame(serde_json::from_str(&t).unwrap()),
                Some(Ok(Message::Close(f))) => Event::Close(f.map(|f| u16::from(f.code))),
                Some(Ok(_)) => continue,
                Some(Err(e)) => Event::Ended(e.to_string()),
                None => Event::Ended("end of stream".into()),
            };
        }
    }

    /// The next frame; panics on close.
    pub async fn frame(&mut self) -> Value {
        match self.event().await {
            Event::Frame(v) => v,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// The next non-data frame, skipping `stream_data`.
    pub async fn control_frame(&mut self) -> Value {
        loop {
            let f = self.frame().await;
            if f["type"] != "stream_data" {
                return f;
            }
        }
    }

    /// Expects the Close frame next (after skipping nothing) and returns its code.
    pub async fn close_code(&mut self) -> Option<u16> {
        match self.event().await {
            Event::Close(code) => code,
            other => panic!("expected Close, got {other:?}"),
        }
    }

    /// Expects an `error` frame with `code`, then a Close with `close`.
    pub async fn expect_error_then_close(&mut self, code: &str, close: u16) -> Value {
        let err = self.frame().await;
        assert_eq!(err["type"], "error", "{err}");
        assert_eq!(err["code"], code, "{err}");
        assert_eq!(self.close_code().await, Some(close));
        err
    }

    pub async fn ping_pong(&mut self) {
        self.send(json!({"type":"ping"})).await;
        let f = self.frame().await;
        assert_eq!(f["type"], "pong", "{f}");
    }

    /// `stream_open` + the address header as the first `stream_data`.
    pub async fn open(&mut self, id: &str, target: SocketAddr) {
        self.open_target(id, &TargetAddr::Ip(target)).await;
    }

    pub async fn open_target(&mut self, id: &str, target: &TargetAddr) {
        self.send(json!({"type":"stream_open","stream_id":id,"target":target.to_string()}))
            .await;
        let mut header = Vec::new();
        target.encode(&mut header);
        self.data(id, &header).await;
    }

    pub async fn data(&mut self, id: &str, bytes: &[u8]) {
        let mut text = String::new();
        proto_httvps::encode_stream_data(id, bytes, &mut text);
        self.send_text(text).await;
    }

    /// Sends `bytes` in chunks of at most `chunk`.
    pub async fn data_chunked(&mut self, id: &str, bytes: &[u8], chunk: usize) {
        for part in bytes.chunks(chunk) {
            let mut text = String::new();
            proto_httvps::encode_stream_data(id, part, &mut text);
            self.ws.feed(Message::text(text)).await.unwrap();
        }
        self.ws.flush().await.unwrap();
    }

    /// Reads `stream_data` for `id` until `n` bytes arrived; panics on other frames.
    pub async fn read_exact(&mut self, id: &str, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let f = self.frame().await;
            assert_eq!(f["type"], "stream_data", "after {} bytes: {f}", out.len());
            assert_eq!(f["stream_id"], id, "{f}");
            out.extend(decode_data(&f));
        }
        assert_eq!(out.len(), n);
        out
    }

    pub async fn close_stream(&mut self, id: &str) {
        self.send(json!({"type":"stream_close","stream_id":id}))
            .await;
    }
}

pub fn decode_data(f: &Value) -> Vec<u8> {
    let text = f.to_string();
    match proto_httvps::decode(&text).unwrap() {
        proto_httvps::Frame::StreamData { data, .. } => data,
        other => panic!("not stream_data: {other:?}"),
    }
}

/// Sends `data` on a fresh echo stream and checks it comes back byte for byte
/// (compared by hash; sending and reading run concurrently).
pub async fn echo_round_trip(client: &mut Client, id: &str, echo: SocketAddr, data: &[u8]) {
    client.open(id, echo).await;
    let want = testkit::sha256_hex(data);
    let (mut sink, mut stream) = (&mut client.ws).split();
    let sent = std::sync::atomic::AtomicUsize::new(0);
    let received = std::sync::atomic::AtomicUsize::new(0);
    let send = async {
        for part in data.chunks(60 * 1024) {
            let mut text = String::new();
            proto_httvps::encode_stream_data(id, part, &mut text);
            sink.feed(Message::text(text)).await.unwrap();
            sent.fetch_add(part.len(), std::sync::atomic::Ordering::Relaxed);
        }
        sink.flush().await.unwrap();
    };
    let recv = async {
        let mut got = Vec::with_capacity(data.len());
        while got.len() < data.len() {
            let Ok(msg) = tokio::time::timeout(WAIT, stream.next()).await else {
                panic!(
                    "echo timed out: sent {} received {} of {}\n{}",
                    sent.load(std::sync::atomic::Ordering::Relaxed),
                    got.len(),
                    data.len(),
                    httvps_gateway::metrics::handle().render()
                );
            };
            let msg = msg.expect("connection ended").unwrap();
            let Message::Text(t) = msg else { continue };
            let f: Value = serde_json::from_str(&t).unwrap();
            assert_eq!(f["type"], "stream_data", "{f}");
            got.extend(decode_data(&f));
            received.store(got.len(), std::sync::atomic::Ordering::Relaxed);
        }
        got
    };
    let ((), got) = tokio::join!(send, recv);
    assert_eq!(got.len(), data.len());
    assert_eq!(testkit::sha256_hex(&got), want, "echoed bytes differ");
}
