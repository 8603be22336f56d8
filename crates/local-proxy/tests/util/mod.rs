//! Helpers shared by the integration tests: the proxy under test, test
//! connectors, small servers on 127.0.0.1 and a `curl` runner.

#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use local_proxy::{
    BoxStream, ConnectError, ConnectErrorKind, ConnectRequest, Connector, LocalProxy, ProxyConfig,
    ProxyHandle, TargetAddr,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Routes tracing output through the test harness (`RUST_LOG=debug`).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A config on an ephemeral loopback port with a short handshake timeout.
pub fn config() -> ProxyConfig {
    ProxyConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        handshake_timeout: Duration::from_secs(5),
        ..ProxyConfig::default()
    }
}

pub async fn start(config: ProxyConfig, connector: Arc<dyn Connector>) -> ProxyHandle {
    init_tracing();
    LocalProxy::bind(config, connector).await.unwrap().spawn()
}

/// Dials targets directly over TCP (resolving names locally: tests only)
/// and records every request.
#[derive(Default)]
pub struct DirectConnector {
    requests: Mutex<Vec<ConnectRequest>>,
    /// Refuse (NotAllowed) anything but loopback targets, so that a browser's
    /// background traffic never leaves the machine.
    loopback_only: bool,
}

impl DirectConnector {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn loopback_only() -> Arc<Self> {
        Arc::new(DirectConnector {
            loopback_only: true,
            ..Self::default()
        })
    }

    pub fn requests(&self) -> Vec<ConnectRequest> {
        self.requests.lock().unwrap().clone()
    }

    pub fn targets(&self) -> Vec<TargetAddr> {
        self.requests().into_iter().map(|r| r.target).collect()
    }
}

impl Connector for DirectConnector {
    fn connect(
        &self,
        request: ConnectRequest,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<BoxStream, ConnectError>> + Send + 'static>>
    {
        self.requests.lock().unwrap().push(request.clone());
        let allowed = !self.loopback_only
            || match &request.target {
                TargetAddr::Ip(sa) => sa.ip().is_loopback(),
                TargetAddr::Domain(name, _) => name == "localhost",
            };
        Box::pin(async move {
            if !allowed {
                return Err(ConnectError::new(
                    ConnectErrorKind::NotAllowed,
                    "test connector: loopback only",
                ));
            }
            let addrs: Vec<SocketAddr> = match &request.target {
                TargetAddr::Ip(sa) => vec![*sa],
                TargetAddr::Domain(name, port) => tokio::net::lookup_host((name.as_str(), *port))
                    .await
                    .map_err(|e| ConnectError::new(ConnectErrorKind::Unreachable, e.to_string()))?
                    .collect(),
            };
            let mut last = ConnectError::new(ConnectErrorKind::Unreachable, "no address");
            for addr in addrs {
                match TcpStream::connect(addr).await {
                    Ok(s) => return Ok(Box::new(s) as BoxStream),
                    Err(e) => last = e.into(),
                }
            }
            Err(last)
        })
    }
}

/// A connector that always fails with `kind`, recording the requests.
pub struct FailConnector {
    pub kind: ConnectErrorKind,
    requests: Mutex<Vec<ConnectRequest>>,
}

impl FailConnector {
    pub fn new(kind: ConnectErrorKind) -> Arc<Self> {
        Arc::new(FailConnector {
            kind,
            requests: Mutex::new(Vec::new()),
        })
    }

    pub fn targets(&self) -> Vec<TargetAddr> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.target.clone())
            .collect()
    }
}

impl Connector for FailConnector {
    fn connect(
        &self,
        request: ConnectRequest,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<BoxStream, ConnectError>> + Send + 'static>>
    {
        self.requests.lock().unwrap().push(request);
        let kind = self.kind;
        Box::pin(async move { Err(ConnectError::new(kind, "")) })
    }
}

pub const ALL_KINDS: [ConnectErrorKind; 7] = [
    ConnectErrorKind::Refused,
    ConnectErrorKind::Unreachable,
    ConnectErrorKind::NotAllowed,
    ConnectErrorKind::TimedOut,
    ConnectErrorKind::Busy,
    ConnectErrorKind::Unavailable,
    ConnectErrorKind::Other,
];

/// Aborts the server task when dropped.
pub struct Server {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

/// An echo server: copies every connection back to itself, half-close aware.
pub async fn echo_server() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    Server { addr, task }
}

/// A UDP echo server on 127.0.0.1: sends every datagram back to its sender.
pub async fn udp_echo_server() -> Server {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(&buf[..n], from).await;
        }
    });
    Server { addr, task }
}

/// A raw TCP server: runs `handler` for each connection.
pub async fn raw_server<F, Fut>(handler: F) -> Server
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = Arc::new(handler);
    let task = tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(handler(s));
        }
    });
    Server { addr, task }
}

type Body = BoxBody<Bytes, hyper::Error>;

fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

/// The bytes `/big` serves: `len` bytes of a fixed pattern.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

async fn route(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let response = match path.as_str() {
        // The request body, streamed back.
        "/echo" => Response::new(req.into_body().boxed()),
        // Request line and headers as text, one per line.
        "/headers" => {
            let mut text = format!("{} {}\n", req.method(), req.uri());
            for (name, value) in req.headers() {
                text.push_str(&format!("{}: {}\n", name, value.to_str().unwrap_or("?")));
            }
            Response::new(full(text))
        }
        // 1 MiB in 64 KiB chunks, without Content-Length (chunked).
        "/big" => {
            let data = pattern(1 << 20);
            let chunks: Vec<Result<Frame<Bytes>, hyper::Error>> = data
                .chunks(64 * 1024)
                .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
                .collect();
            Response::new(StreamBody::new(futures_util::stream::iter(chunks)).boxed())
        }
        p if p.starts_with("/js/") => {
            let n = p.trim_start_matches("/js/").trim_end_matches(".js");
            let mut r = Response::new(full(format!(
                "document.body.insertAdjacentHTML('beforeend', '<p>script-{n}-ok</p>');"
            )));
            r.headers_mut()
                .insert("content-type", "text/javascript".parse().unwrap());
            r
        }
        "/page" => {
            let mut html = String::from("<!doctype html><html><head><title>t</title></head><body>");
            for n in 0..12 {
                html.push_str(&format!("<script src=\"/js/{n}.js\"></script>"));
            }
            html.push_str("</body></html>");
            let mut r = Response::new(full(html));
            r.headers_mut()
                .insert("content-type", "text/html".parse().unwrap());
            r
        }
        _ => Response::new(full(format!("hello from {path}"))),
    };
    Ok(response)
}

/// A hyper HTTP/1.1 server (keep-alive, chunked, 100-continue) with the
/// routes in `route`.
pub async fn http_server() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), hyper::service::service_fn(route))
                    .await;
            });
        }
    });
    Server { addr, task }
}

pub struct CurlOutput {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl CurlOutput {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Runs the real curl with no config file and no proxy from the environment.
pub async fn curl(args: &[&str]) -> CurlOutput {
    let mut cmd = tokio::process::Command::new("/usr/bin/curl");
    cmd.arg("-q").args(["-sS", "--max-time", "15"]).args(args);
    for var in [
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd.output().await.expect("run /usr/bin/curl");
    CurlOutput {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Reads until EOF (or `limit`), panicking if it takes longer than `within`.
pub async fn read_all(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(within, async {
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("connection not closed in time");
    out
}

/// Reads exactly `n` bytes within 5 s.
pub async fn read_n(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut buf))
        .await
        .expect("read timed out")
        .expect("read failed");
    buf
}

/// Reads one HTTP response head (up to CRLFCRLF) within 5 s.
pub async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), async {
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = stream.read(&mut byte).await.expect("read");
            assert!(
                n == 1,
                "EOF inside head: {:?}",
                String::from_utf8_lossy(&head)
            );
            head.push(byte[0]);
        }
    })
    .await
    .expect("head timed out");
    String::from_utf8(head).unwrap()
}

/// Reads one request head from a raw server's socket; `None` at EOF.
pub async fn server_read_head(s: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        if s.read(&mut b).await.ok()? == 0 {
            return None;
        }
        head.push(b[0]);
    }
    Some(String::from_utf8(head).unwrap())
}

/// Reads one response with a Content-Length body; returns (head, body).
pub async fn read_response(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let head = read_head(stream).await;
    let len = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().unwrap())
        })
        .expect("content-length");
    let body = read_n(stream, len).await;
    (head, body)
}

/// Opens a SOCKS5 (no auth) connection through `proxy` to `target`,
/// asserting success.
pub async fn socks_connect(proxy: SocketAddr, target: &TargetAddr) -> TcpStream {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(&[5, 1, 0]).await.unwrap();
    assert_eq!(read_n(&mut s, 2).await, [5, 0]);
    let mut req = vec![5, 1, 0];
    target.encode(&mut req);
    s.write_all(&req).await.unwrap();
    assert_eq!(read_n(&mut s, 10).await, [5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    s
}
