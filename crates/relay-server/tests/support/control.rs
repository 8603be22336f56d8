//! A raw control-channel client for the relay binary's tests: TLS 1.3 to
//! the relay, trusting only the test certificate, and one JSON object per
//! line both ways (CONTRACTS.md §5). It checks nothing on its own beyond
//! the framing, so each test states what it expects of every line.

// Each test binary uses a part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use testkit::TestCert;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// How long any one answer, or the close, may take: the relay answers in
/// milliseconds, so this only bounds a hang.
pub const WAIT: Duration = Duration::from_secs(5);

/// The name in the test certificate, checked by the client.
const SERVER_NAME: &str = "localhost";

/// A rustls client trusting `cert` alone, with the default versions
/// (TLS 1.2 and 1.3) unless `versions` narrows them.
pub fn client_config(
    cert: &TestCert,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ClientConfig {
    testkit::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(cert.cert_der.clone())
        .expect("the test certificate is a valid root");
    let builder = if versions.is_empty() {
        rustls::ClientConfig::builder()
    } else {
        rustls::ClientConfig::builder_with_protocol_versions(versions)
    };
    builder.with_root_certificates(roots).with_no_client_auth()
}

/// A TLS handshake with the relay at `addr` using `config`.
pub async fn handshake(
    addr: SocketAddr,
    config: rustls::ClientConfig,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from(SERVER_NAME).expect("a valid server name");
    tokio::time::timeout(
        WAIT,
        TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake"))?
}

/// One control connection.
pub struct Control {
    tls: TlsStream<TcpStream>,
    /// Bytes read past the last complete line.
    buf: Vec<u8>,
}

impl Control {
    /// Connects and completes TLS; reads nothing.
    pub async fn connect(addr: SocketAddr, cert: &TestCert) -> Control {
        let tls = handshake(addr, client_config(cert, &[]))
            .await
            .unwrap_or_else(|e| panic!("TLS to the relay at {addr}: {e}"));
        Control {
            tls,
            buf: Vec::new(),
        }
    }

    /// Connects and reads the relay's `hello`, which must come first and
    /// name protocol version 1.0.
    pub async fn open(addr: SocketAddr, cert: &TestCert) -> Control {
        let mut control = Control::connect(addr, cert).await;
        let hello = control.recv().await;
        assert_eq!(hello["type"], "hello", "the relay speaks first: {hello}");
        assert_eq!(hello["version"], "1.0", "{hello}");
        control
    }

    /// The TLS version negotiated.
    pub fn protocol_version(&self) -> Option<rustls::ProtocolVersion> {
        self.tls.get_ref().1.protocol_version()
    }

    /// Writes `message` as one line.
    pub async fn send(&mut self, message: &Value) {
        let mut line = serde_json::to_vec(message).expect("JSON");
        line.push(b'\n');
        self.send_raw(&line).await;
    }

    /// Writes `bytes` as they are.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.tls.write_all(bytes).await.expect("write to the relay");
        self.tls.flush().await.expect("flush to the relay");
    }

    /// The next line, parsed; panics if the relay closes first or says
    /// nothing within [`WAIT`].
    pub async fn recv(&mut self) -> Value {
        let line = self
            .next_line()
            .await
            .expect("a line from the relay, not the end of the connection");
        serde_json::from_slice(&line).unwrap_or_else(|e| {
            panic!(
                "the relay sent a line that is not JSON ({e}): {}",
                String::from_utf8_lossy(&line)
            )
        })
    }

    /// The relay closes the connection next: a TLS close_notify then the
    /// end of the stream, with no further line, within [`WAIT`].
    pub async fn expect_closed(&mut self) {
        if let Some(line) = self.next_line().await {
            panic!(
                "expected the relay to close, got another line: {}",
                String::from_utf8_lossy(&line)
            );
        }
    }

    /// `None` at a clean end of the stream.
    async fn next_line(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                return Some(line);
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = tokio::time::timeout(WAIT, self.tls.read(&mut chunk))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "nothing from the relay within {WAIT:?} (pending: {:?})",
                        String::from_utf8_lossy(&self.buf)
                    )
                })
                .unwrap_or_else(|e| panic!("reading from the relay (no clean TLS close?): {e}"));
            if n == 0 {
                assert!(
                    self.buf.is_empty(),
                    "the relay closed in the middle of a line: {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Closes from our side: TLS close_notify, then the TCP connection.
    pub async fn close(mut self) {
        self.tls.shutdown().await.expect("close the TLS session");
    }

    /// Sends `auth` with `token` and returns the answer.
    pub async fn auth(&mut self, token: &str) -> Value {
        self.send(&json!({
            "type": "auth",
            "token": token,
            "version": "1.0",
            "client_info": {"os": "linux", "version": "0.1.0"},
        }))
        .await;
        self.recv().await
    }

    /// Signs in with `token`, which must succeed.
    pub async fn sign_in(&mut self, token: &str) {
        let answer = self.auth(token).await;
        assert_eq!(answer["type"], "auth_response", "{answer}");
        assert_eq!(answer["status"], "success", "{answer}");
    }

    /// Sends `register` for a new tcp tunnel (with a fresh WireGuard key)
    /// and returns the answer.
    pub async fn register(&mut self, name: &str, ports: &[u16]) -> Value {
        self.send(&json!({
            "type": "register",
            "tunnel_info": {
                "name": name,
                "protocol": "tcp",
                "ports": ports,
                "public_key": wireguard_key(),
            },
        }))
        .await;
        self.recv().await
    }

    /// Registers, which must succeed; returns the `register_response`.
    pub async fn registered(&mut self, name: &str, ports: &[u16]) -> Value {
        let answer = self.register(name, ports).await;
        assert_eq!(answer["type"], "register_response", "{answer}");
        assert_eq!(answer["status"], "success", "{answer}");
        answer
    }

    /// Sends a `heartbeat` for `tunnel_id` and returns the answer.
    pub async fn heartbeat(&mut self, tunnel_id: &str) -> Value {
        self.send(&json!({
            "type": "heartbeat",
            "tunnel_id": tunnel_id,
            "stats": {"bytes_in": 1024, "bytes_out": 2048, "connected_since": "2026-01-01T00:00:00Z"},
        }))
        .await;
        self.recv().await
    }
}

/// A fresh random 32-byte WireGuard public key, standard base64.
pub fn wireguard_key() -> String {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).expect("OS randomness");
    STANDARD.encode(key)
}

/// `message` is an `error` line with `code` and `details.reason`.
#[track_caller]
pub fn assert_error(message: &Value, code: u64, reason: &str) {
    assert_eq!(message["type"], "error", "{message}");
    assert_eq!(message["code"], code, "{message}");
    assert_eq!(message["details"]["reason"], reason, "{message}");
    assert!(
        message["message"].as_str().is_some_and(|m| !m.is_empty()),
        "an error says what happened: {message}"
    );
}
