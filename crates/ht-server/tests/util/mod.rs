//! A small HT wire client for the tests: the proto-ht codec and cipher over
//! a plain TCP connection, writing a chunked POST and reading the chunked
//! response, one query or answer per chunk. Deliberately not the real
//! client: it lets tests send what a real client never would.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use ht_server::{Config, HtServer, RunningServer};
use proto_ht::chunked::{Decoded, decode_chunk, encode_chunk};
use proto_ht::{ChunkCipher, Direction, Key, SessionId};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// The tests' key, as in a key file.
pub const KEY_HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// How long any single expected event may take before a test fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub fn key() -> Key {
    Key::from_hex(KEY_HEX).unwrap()
}

/// A fresh random-looking session id (distinct per call in one process).
pub fn session_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed) + u64::from(std::process::id()) * 1000;
    let mut bytes = [0u8; 26];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = (n.rotate_left(i as u32 * 5) as u8).wrapping_add((i as u8).wrapping_mul(31));
    }
    SessionId::from_random(bytes).as_str().to_owned()
}

/// Starts a server in-process on 127.0.0.1:0 with `tweak` applied.
pub async fn server(tweak: impl FnOnce(&mut Config)) -> RunningServer {
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), key());
    tweak(&mut config);
    HtServer::bind(config).await.unwrap().spawn()
}

impl std::fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tunnel")
    }
}

/// What the server answered to a connection's first chunk.
#[derive(Debug)]
pub enum Opened {
    /// `200`: the tunnel.
    Tunnel(Box<Tunnel>),
    /// Anything else: the whole response as read until the server closed.
    Refused { status: u16, response: Vec<u8> },
}

impl Opened {
    pub fn tunnel(self) -> Tunnel {
        match self {
            Opened::Tunnel(t) => *t,
            Opened::Refused { status, response } => panic!(
                "refused with {status}: {}",
                String::from_utf8_lossy(&response)
            ),
        }
    }

    pub fn refused(self) -> (u16, Vec<u8>) {
        match self {
            Opened::Refused { status, response } => (status, response),
            Opened::Tunnel(_) => panic!("a tunnel was opened"),
        }
    }
}

/// A byte stream: plain TCP or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One transport connection of a session.
pub struct Tunnel {
    tcp: Box<dyn Io>,
    up: ChunkCipher,
    down: ChunkCipher,
    buf: Vec<u8>,
}

fn head(sid: &str) -> String {
    format!(
        "POST /ht/create.php HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: application/octet-stream\r\nCookie: PHPSESSID={sid}\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    )
}

/// Opens a connection of session `sid` whose first chunk is `first`,
/// encrypted with `key`.
pub async fn open_with(addr: SocketAddr, key: &Key, sid: &str, first: &[u8]) -> Opened {
    let id = SessionId::parse(sid).expect("a valid session id");
    let mut up = ChunkCipher::new(key, &id, Direction::ClientToServer);
    let mut chunk = first.to_vec();
    up.apply(&mut chunk);
    let mut wire = head(sid).into_bytes();
    encode_chunk(&chunk, &mut wire);
    let down = ChunkCipher::new(key, &id, Direction::ServerToClient);
    let tcp = TcpStream::connect(addr).await.unwrap();
    exchange(Box::new(tcp), &wire, Some((up, down))).await
}

/// Like [`open_with`], over TLS trusting the certificate at `ca`.
pub async fn open_tls(
    addr: SocketAddr,
    ca: &std::path::Path,
    key: &Key,
    sid: &str,
    first: &[u8],
) -> Opened {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let id = SessionId::parse(sid).expect("a valid session id");
    let mut up = ChunkCipher::new(key, &id, Direction::ClientToServer);
    let mut chunk = first.to_vec();
    up.apply(&mut chunk);
    let mut wire = head(sid).into_bytes();
    encode_chunk(&chunk, &mut wire);
    let down = ChunkCipher::new(key, &id, Direction::ServerToClient);
    exchange(Box::new(tls), &wire, Some((up, down))).await
}

/// Opens a connection with the tests' key.
pub async fn open(addr: SocketAddr, sid: &str, first: &[u8]) -> Opened {
    open_with(addr, &key(), sid, first).await
}

/// Sends `wire` as is, then reads the response head.
pub async fn open_raw(addr: SocketAddr, wire: &[u8]) -> Opened {
    let tcp = TcpStream::connect(addr).await.unwrap();
    exchange(Box::new(tcp), wire, None).await
}

async fn exchange(
    mut tcp: Box<dyn Io>,
    wire: &[u8],
    ciphers: Option<(ChunkCipher, ChunkCipher)>,
) -> Opened {
    tcp.write_all(wire).await.unwrap();
    let mut buf = Vec::new();
    let (status, used) = loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(n) = resp.parse(&buf).unwrap() {
            break (resp.code.unwrap(), n);
        }
        let mut more = [0u8; 4096];
        let n = tokio::time::timeout(PATIENCE, tcp.read(&mut more))
            .await
            .expect("a response in time")
            .unwrap();
        assert!(n > 0, "closed before a response head");
        buf.extend_from_slice(&more[..n]);
    };
    match (status, ciphers) {
        (200, Some((up, down))) => Opened::Tunnel(Box::new(Tunnel {
            tcp,
            up,
            down,
            buf: buf[used..].to_vec(),
        })),
        _ => {
            tokio::time::timeout(PATIENCE, tcp.read_to_end(&mut buf))
                .await
                .expect("the server closes after refusing")
                .unwrap();
            Opened::Refused {
                status,
                response: buf,
            }
        }
    }
}

impl Tunnel {
    /// Sends one query.
    pub async fn send(&mut self, plain: &[u8]) {
        let mut chunk = plain.to_vec();
        self.up.apply(&mut chunk);
        let mut wire = Vec::new();
        encode_chunk(&chunk, &mut wire);
        self.send_raw(&wire).await;
    }

    /// Sends bytes as they are (they may break the framing).
    pub async fn send_raw(&mut self, wire: &[u8]) {
        // A connection the server ended may refuse the write: what the
        // test then checks is what comes back.
        let _ = self.tcp.write_all(wire).await;
    }

    /// The next answer, decrypted; `None` once the server ended the body
    /// or closed the connection.
    pub async fn recv(&mut self) -> Option<Vec<u8>> {
        tokio::time::timeout(PATIENCE, self.recv_inner())
            .await
            .expect("an answer or the end in time")
    }

    async fn recv_inner(&mut self) -> Option<Vec<u8>> {
        loop {
            match decode_chunk(&self.buf, usize::MAX >> 1).expect("well-formed chunks") {
                Some(Decoded::Chunk { data, used }) => {
                    let mut plain = data.to_vec();
                    self.buf.drain(..used);
                    self.down.apply(&mut plain);
                    return Some(plain);
                }
                Some(Decoded::End) => return None,
                None => {}
            }
            let mut more = [0u8; 64 * 1024];
            match self.tcp.read(&mut more).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&more[..n]),
            }
        }
    }

    /// The next answer as text.
    pub async fn recv_text(&mut self) -> String {
        String::from_utf8(self.recv().await.expect("an answer")).unwrap()
    }

    /// Sends a query and returns its answer as text.
    pub async fn ask(&mut self, plain: &str) -> String {
        self.send(plain.as_bytes()).await;
        self.recv_text().await
    }

    /// Opens a stream and returns its id.
    pub async fn connect(&mut self, target: SocketAddr, proto: &str) -> String {
        let answer = self
            .ask(&format!("cC {} {proto} {}", target.ip(), target.port()))
            .await;
        answer
            .strip_prefix(".C ")
            .unwrap_or_else(|| panic!("connect failed: {answer}"))
            .to_owned()
    }
}
