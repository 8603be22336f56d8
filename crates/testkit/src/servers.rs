//! Target servers that sit behind the tunnel: TCP echo, server-speaks-first,
//! an HTTP/1.1 server with verifiable bodies, a blackhole and a closed port.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Seed of the bodies `GET /bytes/N` serves: `pseudo_random_bytes(BYTES_SEED, N)`.
pub const BYTES_SEED: u64 = 0x4854_5456_5053;
/// Size of the chunks a streamed body is produced in (a multiple of 8).
const CHUNK: usize = 64 * 1024;
/// Most request paths [`HttpServer::requests`] keeps.
const MAX_RECORDED_REQUESTS: usize = 10_000;
/// Most idle connections the blackhole holds open.
const MAX_HELD_CONNECTIONS: usize = 1024;

/// Accepts on 127.0.0.1:0 and runs `handle` per connection until dropped.
struct Acceptor {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Acceptor {
    async fn start<F, Fut>(what: &str, handle: F) -> Acceptor
    where
        F: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap_or_else(|e| panic!("{what}: binding 127.0.0.1:0: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("{what}: local_addr: {e}"));
        let task = tokio::spawn(async move {
            // Connection tasks live in the set, so aborting this task ends them too.
            let mut conns = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((tcp, _)) => {
                            let _ = tcp.set_nodelay(true);
                            conns.spawn(handle(tcp));
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    },
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        Acceptor { addr, task }
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn echo(mut tcp: TcpStream) {
    let (mut r, mut w) = tcp.split();
    let _ = tokio::io::copy(&mut r, &mut w).await;
    let _ = w.shutdown().await;
}

/// A UDP echo server: every datagram goes back to its sender.
pub struct UdpEchoServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl UdpEchoServer {
    /// Starts echoing on 127.0.0.1:0.
    pub async fn start() -> UdpEchoServer {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind the UDP echo server");
        let addr = socket.local_addr().expect("UDP echo address");
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                let _ = socket.send_to(&buf[..n], from).await;
            }
        });
        UdpEchoServer { addr, task }
    }

    /// Listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for UdpEchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TCP echo server: the simplest target to prove bytes cross the tunnel intact.
pub struct EchoServer {
    acceptor: Acceptor,
}

impl EchoServer {
    /// Starts echoing on 127.0.0.1:0.
    pub async fn start() -> EchoServer {
        EchoServer {
            acceptor: Acceptor::start("echo server", echo).await,
        }
    }

    /// Listening address.
    pub fn addr(&self) -> SocketAddr {
        self.acceptor.addr
    }
}

/// A server that speaks first (like SSH or SMTP) and then echoes, to prove the
/// tunnel opens upstream before the client sends any application byte.
pub struct ServerFirst {
    acceptor: Acceptor,
}

impl ServerFirst {
    /// Starts on 127.0.0.1:0; every connection first receives `banner`.
    pub async fn start(banner: &[u8]) -> ServerFirst {
        let banner = Bytes::copy_from_slice(banner);
        let acceptor = Acceptor::start("server-first", move |mut tcp: TcpStream| {
            let banner = banner.clone();
            async move {
                if tcp.write_all(&banner).await.is_ok() {
                    echo(tcp).await;
                }
            }
        })
        .await;
        ServerFirst { acceptor }
    }

    /// Listening address.
    pub fn addr(&self) -> SocketAddr {
        self.acceptor.addr
    }
}

/// Accepts connections and never answers, for timeout tests.
pub struct TcpBlackhole {
    acceptor: Acceptor,
}

impl TcpBlackhole {
    /// Starts on 127.0.0.1:0 and holds accepted connections open (up to a cap).
    pub async fn start() -> TcpBlackhole {
        let held = Arc::new(Mutex::new(VecDeque::new()));
        let acceptor = Acceptor::start("blackhole", move |tcp: TcpStream| {
            let held = held.clone();
            async move {
                let mut held = held.lock().expect("blackhole lock");
                if held.len() >= MAX_HELD_CONNECTIONS {
                    held.pop_front();
                }
                held.push_back(tcp);
            }
        })
        .await;
        TcpBlackhole { acceptor }
    }

    /// Listening address.
    pub fn addr(&self) -> SocketAddr {
        self.acceptor.addr
    }
}

/// A loopback address where connects hang, for dial-timeout tests: a
/// listener whose accept queue is full and never drained, so the kernel drops
/// further SYNs. The address hangs for as long as this value lives.
pub struct HangingTarget {
    listener: tokio::net::TcpListener,
    _fillers: Vec<TcpStream>,
}

impl HangingTarget {
    /// Listens on 127.0.0.1:0 with a backlog of zero and fills the queue.
    pub async fn start() -> HangingTarget {
        let socket = tokio::net::TcpSocket::new_v4().expect("hanging target: socket");
        socket
            .bind((Ipv4Addr::LOCALHOST, 0).into())
            .expect("hanging target: bind");
        let listener = socket.listen(0).expect("hanging target: listen");
        let addr = listener.local_addr().expect("hanging target: local_addr");
        let mut fillers = Vec::new();
        for _ in 0..4 {
            let s = tokio::net::TcpSocket::new_v4().expect("hanging target: filler socket");
            if let Ok(Ok(c)) =
                tokio::time::timeout(std::time::Duration::from_millis(200), s.connect(addr)).await
            {
                fillers.push(c);
            }
        }
        HangingTarget {
            listener,
            _fillers: fillers,
        }
    }

    /// The address whose connects hang.
    pub fn addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("hanging target: local_addr")
    }
}

/// A loopback address where nothing listens, for "connection refused" tests.
pub fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .expect("closed_port: binding 127.0.0.1:0");
    listener.local_addr().expect("closed_port: local_addr")
}

/// A loopback port free right now, for a server that must be told its port
/// before it starts (a backend advertising the gateway's URL, a restart on
/// the same address). Another program may take it first; tests accept that.
pub fn free_port() -> u16 {
    closed_port().port()
}

/// The first of `len` loopback ports for a server that binds a fixed range
/// (the relay's public forwards): below the kernel's ephemeral range, where
/// every outgoing connection's local port comes from (a port there can be
/// held by another test's connection at the moment the range is bound: the
/// relay then refuses the forwards and the share never gets active), and
/// spread by pid across nextest's one-process-per-test runs.
pub fn port_range_below_ephemeral(len: u16) -> u16 {
    const BASE: u16 = 10_000;
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let slots = (ephemeral_low.saturating_sub(BASE) / len.max(1)).max(1);
    BASE + (std::process::id() % u32::from(slots)) as u16 * len
}

/// The `x-sha256` of `GET /bytes/N`: hex SHA-256 of `pseudo_random_bytes(BYTES_SEED, len)`.
pub fn bytes_sha256(len: usize) -> String {
    pseudo_random_sha256(BYTES_SEED, len)
}

/// A fast seeded generator (splitmix64-seeded xorshift64) producing 8 bytes a step.
struct Prng(u64);

impl Prng {
    fn new(seed: u64) -> Prng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Prng(if z == 0 { 1 } else { z })
    }

    /// Fills `buf`; only the last call of a stream may have a length not divisible by 8.
    fn fill(&mut self, buf: &mut [u8]) {
        let mut words = buf.chunks_exact_mut(8);
        for word in &mut words {
            word.copy_from_slice(&self.next().to_le_bytes());
        }
        let rest = words.into_remainder();
        if !rest.is_empty() {
            let last = self.next().to_le_bytes();
            rest.copy_from_slice(&last[..rest.len()]);
        }
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// Deterministic pseudo-random bytes, so a test can check any body it received.
pub fn pseudo_random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    Prng::new(seed).fill(&mut out);
    out
}

/// Lowercase hex SHA-256, the form the HTTP server's `x-sha256` header uses.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hashes `pseudo_random_bytes(seed, len)` without holding it in memory.
fn pseudo_random_sha256(seed: u64, len: usize) -> String {
    let mut rng = Prng::new(seed);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut remaining = len;
    while remaining > 0 {
        let n = remaining.min(CHUNK);
        rng.fill(&mut buf[..n]);
        hasher.update(&buf[..n]);
        remaining -= n;
    }
    hex(&hasher.finalize())
}

/// A body generated chunk by chunk, so 100 MiB never sits in memory.
struct PseudoRandomBody {
    rng: Prng,
    remaining: usize,
}

impl hyper::body::Body for PseudoRandomBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(CHUNK);
        let mut buf = vec![0u8; n];
        self.rng.fill(&mut buf);
        self.remaining -= n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining as u64)
    }
}

const INDEX_HTML: &str = "<!doctype html><html><head><title>testkit</title></head>\
<body><h1>testkit HTTP server</h1></body></html>\n";
const PAGE_HTML: &str = "<!doctype html><html><head><title>testkit page</title>\
<link rel=\"stylesheet\" href=\"/static/a.css\"><script src=\"/static/b.js\"></script></head>\
<body><h1 id=\"title\">testkit page</h1><img id=\"pixel\" src=\"/static/c.png\" alt=\"pixel\">\
</body></html>\n";
const A_CSS: &str = "body { font-family: sans-serif; }\nh1 { color: #204a87; }\n";
const B_JS: &str = "window.testkitLoaded = true;\n";
/// A 1×1 grayscale PNG.
const C_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x04, 0x00, 0x00, 0x00, 0xb5, 0x1c, 0x0c,
    0x02, 0x00, 0x00, 0x00, 0x0b, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0x64, 0x60, 0x00, 0x00,
    0x00, 0x06, 0x00, 0x02, 0x30, 0x81, 0xd0, 0x2f, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44,
    0xae, 0x42, 0x60, 0x82,
];
/// Most distinct `/bytes/N` hashes kept.
const MAX_CACHED_HASHES: usize = 64;

#[derive(Default)]
struct HttpState {
    requests: Mutex<VecDeque<String>>,
    hashes: Mutex<HashMap<usize, String>>,
}

type Body = BoxBody<Bytes, Infallible>;

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()).boxed())
        .expect("static response parts are valid")
}

/// An HTTP/1.1 server with verifiable bodies (`/bytes/N` + `x-sha256`, `/upload`),
/// unhashed bodies that start at once whatever their size (`/stream/N`)
/// and a page with sub-resources for browser tests. Records request paths.
pub struct HttpServer {
    acceptor: Acceptor,
    state: Arc<HttpState>,
}

impl HttpServer {
    /// Starts on 127.0.0.1:0.
    pub async fn start() -> HttpServer {
        let state = Arc::new(HttpState::default());
        let shared = state.clone();
        let acceptor = Acceptor::start("http server", move |tcp: TcpStream| {
            let state = shared.clone();
            async move {
                let service = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(serve(&state, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            }
        })
        .await;
        HttpServer { acceptor, state }
    }

    /// Listening address.
    pub fn addr(&self) -> SocketAddr {
        self.acceptor.addr
    }

    /// Base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.acceptor.addr)
    }

    /// Paths requested so far, oldest first (the last 10 000).
    pub fn requests(&self) -> Vec<String> {
        let requests = self.state.requests.lock().expect("http server lock");
        requests.iter().cloned().collect()
    }
}

async fn serve(state: &HttpState, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    {
        let mut requests = state.requests.lock().expect("http server lock");
        if requests.len() >= MAX_RECORDED_REQUESTS {
            requests.pop_front();
        }
        requests.push_back(path.clone());
    }
    // A trailing slash names the same resource: a reverse proxy with the Go
    // HLHV queen's routing redirects `/upload` to `/upload/`.
    let route = match path.as_str() {
        "/" => "/",
        p => p.strip_suffix('/').unwrap_or(p),
    };
    match (req.method(), route) {
        (&Method::GET, "/") => full(StatusCode::OK, "text/html; charset=utf-8", INDEX_HTML),
        (&Method::GET, "/page") => full(StatusCode::OK, "text/html; charset=utf-8", PAGE_HTML),
        (&Method::GET, "/static/a.css") => full(StatusCode::OK, "text/css", A_CSS),
        (&Method::GET, "/static/b.js") => full(StatusCode::OK, "text/javascript", B_JS),
        (&Method::GET, "/static/c.png") => full(StatusCode::OK, "image/png", C_PNG),
        (&Method::POST, "/upload") => upload(req.into_body()).await,
        (&Method::GET, p) if p.starts_with("/stream/") => match p["/stream/".len()..].parse() {
            // The same body as /bytes/N without the hash, so it starts at once
            // whatever its size: for long or cut-off transfers.
            Ok(len) => pseudo_random_response(len, None),
            Err(_) => full(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "length must be a number\n",
            ),
        },
        (&Method::GET, p) if p.starts_with("/bytes/") => match p["/bytes/".len()..].parse() {
            Ok(len) => bytes(state, len).await,
            Err(_) => full(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "length must be a number\n",
            ),
        },
        _ => full(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

async fn bytes(state: &HttpState, len: usize) -> Response<Body> {
    let cached = state
        .hashes
        .lock()
        .expect("http server lock")
        .get(&len)
        .cloned();
    let hash = match cached {
        Some(hash) => hash,
        None => {
            // Hashing 100 MiB takes a while in debug builds: keep it off the runtime.
            let Ok(hash) =
                tokio::task::spawn_blocking(move || pseudo_random_sha256(BYTES_SEED, len)).await
            else {
                return full(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    "hashing failed\n",
                );
            };
            let mut hashes = state.hashes.lock().expect("http server lock");
            if hashes.len() >= MAX_CACHED_HASHES {
                hashes.clear();
            }
            hashes.insert(len, hash.clone());
            hash
        }
    };
    pseudo_random_response(len, Some(hash))
}

/// `len` bytes of `pseudo_random_bytes(BYTES_SEED, len)`, streamed.
fn pseudo_random_response(len: usize, hash: Option<String>) -> Response<Body> {
    let mut builder = Response::builder().header("content-type", "application/octet-stream");
    if let Some(hash) = hash {
        builder = builder.header("x-sha256", hash);
    }
    builder
        .body(
            PseudoRandomBody {
                rng: Prng::new(BYTES_SEED),
                remaining: len,
            }
            .boxed(),
        )
        .expect("static response parts are valid")
}

async fn upload(mut body: Incoming) -> Response<Body> {
    let mut hasher = Sha256::new();
    let mut len: u64 = 0;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return full(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "upload body failed\n",
            );
        };
        if let Some(data) = frame.data_ref() {
            hasher.update(data);
            len += data.len() as u64;
        }
    }
    let json = serde_json::json!({ "sha256": hex(&hasher.finalize()), "len": len });
    full(StatusCode::OK, "application/json", json.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_http::request;
    use tokio::io::AsyncReadExt;

    const TIMEOUT: Duration = Duration::from_secs(10);

    #[test]
    fn pseudo_random_bytes_are_deterministic_and_streamable() {
        let a = pseudo_random_bytes(1, 100_003);
        assert_eq!(a, pseudo_random_bytes(1, 100_003));
        assert_ne!(a, pseudo_random_bytes(2, 100_003));
        assert_eq!(&a[..77], &pseudo_random_bytes(1, 77)[..]);
        assert_eq!(sha256_hex(&a), pseudo_random_sha256(1, 100_003));
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[tokio::test]
    async fn echo_and_server_first() {
        let echo = EchoServer::start().await;
        let mut tcp = TcpStream::connect(echo.addr()).await.expect("connect echo");
        tcp.write_all(b"ping").await.expect("write");
        let mut buf = [0u8; 4];
        tokio::time::timeout(TIMEOUT, tcp.read_exact(&mut buf))
            .await
            .expect("timeout")
            .expect("read");
        assert_eq!(&buf, b"ping");

        let sf = ServerFirst::start(b"220 hello\r\n").await;
        let mut tcp = TcpStream::connect(sf.addr())
            .await
            .expect("connect server-first");
        let mut banner = [0u8; 11];
        tokio::time::timeout(TIMEOUT, tcp.read_exact(&mut banner))
            .await
            .expect("timeout")
            .expect("read");
        assert_eq!(&banner, b"220 hello\r\n");
        tcp.write_all(b"EHLO").await.expect("write");
        tokio::time::timeout(TIMEOUT, tcp.read_exact(&mut buf))
            .await
            .expect("timeout")
            .expect("read");
        assert_eq!(&buf, b"EHLO");
    }

    #[tokio::test]
    async fn blackhole_never_answers_and_closed_port_refuses() {
        let hole = TcpBlackhole::start().await;
        let mut tcp = TcpStream::connect(hole.addr())
            .await
            .expect("connect blackhole");
        tcp.write_all(b"hello?").await.expect("write");
        let mut buf = [0u8; 1];
        assert!(
            tokio::time::timeout(Duration::from_millis(300), tcp.read(&mut buf))
                .await
                .is_err()
        );
        assert!(TcpStream::connect(closed_port()).await.is_err());
    }

    #[tokio::test]
    async fn dropping_a_server_stops_it() {
        let echo = EchoServer::start().await;
        let addr = echo.addr();
        drop(echo);
        // The aborted task drops its listener when the runtime next polls it.
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        while TcpStream::connect(addr).await.is_ok() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "listener still open"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn http_bytes_hash_header_matches_body() {
        let http = HttpServer::start().await;
        for len in [0usize, 1, 1000, 3 * CHUNK + 5] {
            let resp = request(
                http.addr(),
                "GET",
                &format!("/bytes/{len}"),
                &[],
                Bytes::new(),
            )
            .await;
            assert_eq!(resp.status, 200);
            assert_eq!(resp.body.len(), len);
            assert_eq!(resp.body, pseudo_random_bytes(BYTES_SEED, len));
            let header = resp
                .headers
                .get("x-sha256")
                .expect("x-sha256")
                .to_str()
                .expect("ascii");
            assert_eq!(header, sha256_hex(&resp.body));
            assert_eq!(
                resp.headers.get("content-length").expect("length"),
                &len.to_string()
            );
        }
        assert_eq!(
            request(http.addr(), "GET", "/bytes/x", &[], Bytes::new())
                .await
                .status,
            400
        );
    }

    #[tokio::test]
    async fn http_upload_page_and_requests() {
        let http = HttpServer::start().await;
        let data = pseudo_random_bytes(3, 200_000);
        let resp = request(
            http.addr(),
            "POST",
            "/upload",
            &[],
            Bytes::from(data.clone()),
        )
        .await;
        assert_eq!(resp.status, 200);
        assert_eq!(
            resp.json(),
            serde_json::json!({ "sha256": sha256_hex(&data), "len": 200_000 })
        );

        let index = request(http.addr(), "GET", "/", &[], Bytes::new()).await;
        assert!(String::from_utf8_lossy(&index.body).contains("<html>"));
        let page = request(http.addr(), "GET", "/page", &[], Bytes::new()).await;
        let html = String::from_utf8_lossy(&page.body).into_owned();
        for res in ["/static/a.css", "/static/b.js", "/static/c.png"] {
            assert!(html.contains(res), "{res} missing from page");
            let r = request(http.addr(), "GET", res, &[], Bytes::new()).await;
            assert_eq!(r.status, 200, "{res}");
            assert!(!r.body.is_empty());
        }
        assert_eq!(
            request(http.addr(), "GET", "/missing", &[], Bytes::new())
                .await
                .status,
            404
        );
        assert_eq!(
            http.requests(),
            [
                "/upload",
                "/",
                "/page",
                "/static/a.css",
                "/static/b.js",
                "/static/c.png",
                "/missing"
            ]
        );
    }
}
