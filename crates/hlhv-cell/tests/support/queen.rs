//! A test queen that behaves like the Go queen (`hlhv-queen` v0.1.1,
//! `cells/cells.go` and `wrangler/wrangler.go`), written with proto-hlhv's
//! frames over tokio-rustls:
//!
//! - logins: `IAm` within 1 s; the leash gets `Accept{uuid, sessionKey}`,
//!   a band `Accept{uuid, ""}`. The Go queen checks no leash key; this one
//!   can (`with_key_check`), to test a refusal.
//! - the leash: `Mount` and `Unmount` only, anything else kicks the cell.
//! - a request takes a free band, or sends `NeedBand{1}` and waits for the
//!   next band to log in (Go's `Provide`), then writes a Go-style `ReqHead`
//!   (empty scheme and host, port 0, lower-case merged headers without
//!   `Host` and `Transfer-Encoding`, the mount prefix replaced by `/`).
//! - the body goes only after `ResWant`, in pieces of at most 1024 bytes,
//!   cut at `maxSize`, then `ReqEnd` (without Go's bug of losing the last
//!   piece, which CONTRACTS.md tells our queen not to copy).
//! - the answer: `ResHead` (below 200 → 502), `ResBody`* until `ResEnd`;
//!   any other frame or a closed band → 502. The band is then free again.
//!
//! The public side is a function call ([`TestQueen::open`]) rather than an
//! HTTPS server: the tests are about what crosses the bands.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use proto_hlhv::frame::Multimap;
use proto_hlhv::{Accept, Frame, FrameReader, Mount, NeedBand, ReqHead};
use testkit::TestCert;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

type Tls = TlsStream<TcpStream>;

/// Go's fsock has no cap; ours must read any frame the cell sends.
const MAX_FRAME: usize = 16 * 1024 * 1024;
/// Go's `writeBodyToCell` buffer.
const BODY_PIECE: usize = 1024;

/// A frame connection, as `fsock.Reader`/`Writer` on one `net.Conn`.
pub struct Conn {
    io: Tls,
    buf: BytesMut,
}

impl Conn {
    async fn read(&mut self) -> Option<Frame> {
        let reader = FrameReader::new(MAX_FRAME);
        loop {
            if let Some(frame) = reader.decode(&mut self.buf).ok()? {
                return Some(frame);
            }
            self.buf.reserve(64 * 1024);
            if self.io.read_buf(&mut self.buf).await.ok()? == 0 {
                return None;
            }
        }
    }

    async fn write(&mut self, frame: &Frame) -> bool {
        let bytes = frame.to_bytes();
        // Go writes the length and the body separately.
        self.io.write_all(&bytes[..4]).await.is_ok()
            && self.io.write_all(&bytes[4..]).await.is_ok()
            && self.io.flush().await.is_ok()
    }
}

/// A public request, as a client sends it.
#[derive(Debug, Clone)]
pub struct PublicRequest {
    pub method: String,
    /// The decoded public path, mount prefix included.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub http2: bool,
}

impl PublicRequest {
    pub fn new(method: &str, path: &str) -> PublicRequest {
        PublicRequest {
            method: method.into(),
            path: path.into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: Bytes::new(),
            http2: false,
        }
    }

    pub fn get(path: &str) -> PublicRequest {
        PublicRequest::new("GET", path)
    }

    /// A POST with `Content-Length`.
    pub fn post(path: &str, body: impl Into<Bytes>) -> PublicRequest {
        let body = body.into();
        PublicRequest::new("POST", path)
            .header("Content-Length", &body.len().to_string())
            .body(body)
    }

    pub fn header(mut self, name: &str, value: &str) -> PublicRequest {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn query(mut self, name: &str, value: &str) -> PublicRequest {
        self.query.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> PublicRequest {
        self.body = body.into();
        self
    }

    pub fn http2(mut self) -> PublicRequest {
        self.http2 = true;
        self
    }
}

/// A response on its way to the public client.
pub struct Exchange {
    pub status: u16,
    pub headers: Multimap,
    /// Whether the cell asked for the body.
    pub asked_body: Option<i64>,
    band: Option<Conn>,
    cell: Arc<CellEntry>,
    done: bool,
}

impl Exchange {
    /// The next body piece; `None` at the end, or when the band broke
    /// (then the response is not `complete`).
    pub async fn next_piece(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        let band = self.band.as_mut()?;
        match band.read().await {
            Some(Frame::ResBody(data)) => Some(data),
            Some(Frame::ResEnd) => {
                self.done = true;
                // Go's band.Unlock: free for the next request.
                let band = self.band.take().expect("present");
                self.cell.give_back(band);
                None
            }
            _ => {
                self.band = None;
                None
            }
        }
    }

    /// The whole body, and the largest piece it came in.
    pub async fn body(mut self) -> PublicResponse {
        let mut body = Vec::new();
        let mut largest = 0;
        while let Some(piece) = self.next_piece().await {
            largest = largest.max(piece.len());
            body.extend_from_slice(&piece);
        }
        PublicResponse {
            status: self.status,
            headers: self.headers.clone(),
            asked_body: self.asked_body,
            body,
            largest_piece: largest,
            complete: self.done,
        }
    }
}

/// A whole response.
#[derive(Debug)]
pub struct PublicResponse {
    pub status: u16,
    pub headers: Multimap,
    pub asked_body: Option<i64>,
    pub body: Vec<u8>,
    pub largest_piece: usize,
    /// `ResEnd` arrived.
    pub complete: bool,
}

impl PublicResponse {
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .get(name)
            .map(|v| v.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One logged-in cell.
pub struct CellEntry {
    session_key: String,
    leash: mpsc::Sender<Frame>,
    mount: watch::Sender<Option<Mount>>,
    free: Mutex<Vec<Conn>>,
    waiting: Mutex<VecDeque<oneshot::Sender<Conn>>>,
    bound: AtomicUsize,
}

impl CellEntry {
    fn give_back(&self, band: Conn) {
        self.bind(band);
    }

    /// Go's `Bind`: a waiting request gets the band, else it is free.
    fn bind(&self, band: Conn) {
        let mut band = Some(band);
        let mut waiting = self.waiting.lock().unwrap();
        while let Some(waiter) = waiting.pop_front() {
            match waiter.send(band.take().unwrap()) {
                Ok(()) => return,
                Err(back) => band = Some(back),
            }
        }
        self.free.lock().unwrap().push(band.unwrap());
    }

    /// Go's `Provide`.
    async fn provide(&self) -> Option<Conn> {
        if let Some(band) = self.free.lock().unwrap().pop() {
            return Some(band);
        }
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().unwrap().push_back(tx);
        self.leash
            .send(Frame::NeedBand(NeedBand { count: 1 }))
            .await
            .ok()?;
        rx.await.ok()
    }
}

#[derive(Default)]
struct Inner {
    cells: HashMap<String, Arc<CellEntry>>,
    /// Frames the cells sent on their leashes, in order.
    leash_log: Vec<(String, Frame)>,
}

/// The queen. Dropping it closes every connection, as a stopped queen.
pub struct TestQueen {
    pub addr: SocketAddr,
    key_check: Option<String>,
    inner: Arc<Mutex<Inner>>,
    cancel: CancellationToken,
    leashes: Arc<watch::Sender<usize>>,
    next_uuid: Arc<AtomicUsize>,
}

impl TestQueen {
    /// A queen on 127.0.0.1, port chosen by the system.
    pub async fn start(cert: &TestCert) -> TestQueen {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        TestQueen::serve(listener, cert, None)
    }

    /// A queen on `addr` (a restart on the same address).
    pub async fn start_at(addr: SocketAddr, cert: &TestCert) -> TestQueen {
        let listener = TcpListener::bind(addr).await.unwrap();
        TestQueen::serve(listener, cert, None)
    }

    /// A queen that checks the leash key, as ours does (the Go queen does not).
    pub async fn with_key_check(cert: &TestCert, key: &str) -> TestQueen {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        TestQueen::serve(listener, cert, Some(key.to_owned()))
    }

    fn serve(listener: TcpListener, cert: &TestCert, key_check: Option<String>) -> TestQueen {
        testkit::install_crypto_provider();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert_der.clone()], cert.key_der.clone_key())
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let queen = TestQueen {
            addr: listener.local_addr().unwrap(),
            key_check,
            inner: Arc::default(),
            cancel: CancellationToken::new(),
            leashes: Arc::new(watch::channel(0).0),
            next_uuid: Arc::default(),
        };
        let handler = queen.handler();
        let cancel = queen.cancel.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    _ = cancel.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(_) => return,
                    },
                };
                let (acceptor, handler, cancel) =
                    (acceptor.clone(), handler.clone(), cancel.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        _ = cancel.cancelled() => {}
                        _ = async {
                            if let Ok(io) = acceptor.accept(tcp).await {
                                handler.handle(Conn { io, buf: BytesMut::new() }).await;
                            }
                        } => {}
                    }
                });
            }
        });
        queen
    }

    fn handler(&self) -> Handler {
        Handler {
            key_check: self.key_check.clone(),
            inner: self.inner.clone(),
            cancel: self.cancel.clone(),
            leashes: self.leashes.clone(),
            next_uuid: self.next_uuid.clone(),
        }
    }

    /// Waits until a cell has mounted; its uuid and mount.
    pub async fn mounted(&self) -> (String, Mount) {
        // Subscribed before looking, so no change is missed in between.
        let mut changes = self.leashes.subscribe();
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let cells: Vec<(String, Arc<CellEntry>)> = {
                    let inner = self.inner.lock().unwrap();
                    inner
                        .cells
                        .iter()
                        .map(|(u, c)| (u.clone(), c.clone()))
                        .collect()
                };
                for (uuid, cell) in cells {
                    if let Some(mount) = cell.mount.borrow().clone() {
                        return (uuid, mount);
                    }
                }
                changes.changed().await.unwrap();
            }
        })
        .await
        .expect("a cell mounts")
    }

    fn cell(&self) -> Arc<CellEntry> {
        let inner = self.inner.lock().unwrap();
        inner.cells.values().next().expect("a cell").clone()
    }

    /// Bands that have logged in so far.
    pub fn bands_bound(&self) -> usize {
        self.cell().bound.load(Ordering::SeqCst)
    }

    /// Frames the cells sent on their leashes after logging in.
    pub fn leash_log(&self) -> Vec<Frame> {
        let inner = self.inner.lock().unwrap();
        inner.leash_log.iter().map(|(_, f)| f.clone()).collect()
    }

    /// Waits until no cell is logged in (its leash closed).
    pub async fn wait_no_cells(&self) {
        let mut changes = self.leashes.subscribe();
        tokio::time::timeout(Duration::from_secs(10), async {
            while !self.inner.lock().unwrap().cells.is_empty() {
                changes.changed().await.unwrap();
            }
        })
        .await
        .expect("the cell leaves")
    }

    /// Routes a public request to the mounted cell and returns once the
    /// response head is known (502 and 503 as the Go queen writes them).
    pub async fn open(&self, request: PublicRequest) -> Exchange {
        let (_, mount) = self.mounted().await;
        let cell = self.cell();
        let head = go_head(&request, &mount.path);
        let fail = |status: u16, cell: &Arc<CellEntry>| Exchange {
            status,
            headers: Multimap::new(),
            asked_body: None,
            band: None,
            cell: cell.clone(),
            done: true,
        };
        // initiateHTTPRequest: a band whose write fails is dropped.
        let mut band = loop {
            let Some(mut band) = cell.provide().await else {
                return fail(503, &cell);
            };
            if band.write(&Frame::ReqHead(Box::new(head.clone()))).await {
                break band;
            }
        };
        let mut asked_body = None;
        let mut frame = band.read().await;
        if let Some(Frame::ResWant(want)) = &frame {
            asked_body = Some(want.max_size);
            let max = usize::try_from(want.max_size).unwrap_or(0);
            let body = &request.body[..request.body.len().min(max)];
            for piece in body.chunks(BODY_PIECE) {
                if !band
                    .write(&Frame::ReqBody(Bytes::copy_from_slice(piece)))
                    .await
                {
                    return fail(502, &cell);
                }
            }
            if !band.write(&Frame::ReqEnd).await {
                return fail(502, &cell);
            }
            frame = band.read().await;
        }
        let Some(Frame::ResHead(res)) = frame else {
            return fail(502, &cell);
        };
        if res.status_code < 200 {
            return fail(502, &cell);
        }
        Exchange {
            status: u16::try_from(res.status_code).unwrap(),
            headers: res.headers,
            asked_body,
            band: Some(band),
            cell,
            done: false,
        }
    }

    /// [`open`](Self::open) and read the whole body.
    pub async fn request(&self, request: PublicRequest) -> PublicResponse {
        tokio::time::timeout(Duration::from_secs(30), async {
            self.open(request).await.body().await
        })
        .await
        .expect("the request completes")
    }
}

impl Drop for TestQueen {
    fn drop(&mut self) {
        self.cancel.cancel();
        // Free bands live in the cells: dropping them closes them.
        self.inner.lock().unwrap().cells.clear();
    }
}

/// A request head as the Go queen builds it (`HandleHTTP`).
fn go_head(request: &PublicRequest, mount_path: &str) -> ReqHead {
    let mut headers = Multimap::new();
    let mut cookies = Multimap::new();
    for (name, value) in &request.headers {
        let name = name.to_ascii_lowercase();
        // Go keeps Host apart and removes Transfer-Encoding from the map.
        if name == "host" || name == "transfer-encoding" {
            continue;
        }
        if name == "cookie" {
            for pair in value.split(';') {
                if let Some((n, v)) = pair.trim().split_once('=') {
                    cookies.entry(n.into()).or_default().push(v.into());
                }
            }
        }
        headers.entry(name).or_default().push(value.clone());
    }
    let mut query: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &request.query {
        query.entry(name.clone()).or_default().push(value.clone());
    }
    // The mux replaces the mounted prefix by `/`.
    let path = match request.path.strip_prefix(mount_path.trim_end_matches('/')) {
        Some(rest) if rest.starts_with('/') => rest.to_owned(),
        Some(rest) => format!("/{rest}"),
        None => request.path.clone(),
    };
    let (proto, major, minor) = if request.http2 {
        ("HTTP/2.0", 2, 0)
    } else {
        ("HTTP/1.1", 1, 1)
    };
    ReqHead {
        remote_addr: "203.0.113.7:51000".into(),
        method: request.method.clone(),
        path,
        query,
        proto: proto.into(),
        proto_major: major,
        proto_minor: minor,
        headers,
        cookies,
        ..ReqHead::default()
    }
}

#[derive(Clone)]
struct Handler {
    key_check: Option<String>,
    inner: Arc<Mutex<Inner>>,
    cancel: CancellationToken,
    leashes: Arc<watch::Sender<usize>>,
    next_uuid: Arc<AtomicUsize>,
}

impl Handler {
    async fn handle(&self, mut conn: Conn) {
        // wrangler.handleConn: the login frame within the timeout (1 s).
        let Ok(Some(Frame::IAm(iam))) =
            tokio::time::timeout(Duration::from_secs(1), conn.read()).await
        else {
            return;
        };
        match iam.conn_kind {
            0 => {
                if self.key_check.as_ref().is_some_and(|k| *k != iam.key) {
                    return;
                }
                self.leash(conn).await;
            }
            1 => {
                let cell = self.inner.lock().unwrap().cells.get(&iam.uuid).cloned();
                let Some(cell) = cell.filter(|c| c.session_key == iam.key) else {
                    return;
                };
                let accept = Accept {
                    uuid: iam.uuid.clone(),
                    key: String::new(),
                };
                if conn.write(&Frame::Accept(accept)).await {
                    cell.bound.fetch_add(1, Ordering::SeqCst);
                    cell.bind(conn);
                }
            }
            _ => {}
        }
    }

    async fn leash(&self, mut conn: Conn) {
        let n = self.next_uuid.fetch_add(1, Ordering::SeqCst) + 1;
        let uuid = format!("00000000-0000-4000-8000-{n:012}");
        let session_key = format!("session-key-{n}");
        let accept = Accept {
            uuid: uuid.clone(),
            key: session_key.clone(),
        };
        if !conn.write(&Frame::Accept(accept)).await {
            return;
        }
        let (tx, mut rx) = mpsc::channel(16);
        let cell = Arc::new(CellEntry {
            session_key,
            leash: tx,
            mount: watch::channel(None).0,
            free: Mutex::default(),
            waiting: Mutex::default(),
            bound: AtomicUsize::new(0),
        });
        self.inner
            .lock()
            .unwrap()
            .cells
            .insert(uuid.clone(), cell.clone());
        self.leashes.send_modify(|n| *n += 1);
        let (mut reader, mut writer): (ReadHalf<Tls>, WriteHalf<Tls>) = tokio::io::split(conn.io);
        let mut buf = conn.buf;
        let frames = FrameReader::new(MAX_FRAME);
        // cell.Listen and cell.ListenSig, until the leash closes.
        loop {
            let frame = loop {
                match frames.decode(&mut buf) {
                    Ok(Some(frame)) => break Some(frame),
                    Ok(None) => {}
                    Err(_) => break None,
                }
                buf.reserve(4096);
                tokio::select! {
                    read = reader.read_buf(&mut buf) => if !matches!(read, Ok(n) if n > 0) { break None },
                    Some(out) = rx.recv() => {
                        let bytes = out.to_bytes();
                        if writer.write_all(&bytes).await.is_err() { break None }
                        let _ = writer.flush().await;
                    }
                    _ = self.cancel.cancelled() => break None,
                }
            };
            let Some(frame) = frame else { break };
            self.inner
                .lock()
                .unwrap()
                .leash_log
                .push((uuid.clone(), frame.clone()));
            match frame {
                Frame::Mount(mount) => {
                    cell.mount.send_replace(Some(mount));
                    self.leashes.send_modify(|n| *n += 1);
                }
                Frame::Unmount => {
                    cell.mount.send_replace(None);
                    self.leashes.send_modify(|n| *n += 1);
                }
                // "cell sent strange kind code on leash": kicked.
                _ => break,
            }
        }
        // cleanUp: forget the cell, close its bands.
        self.inner.lock().unwrap().cells.remove(&uuid);
        cell.free.lock().unwrap().clear();
        cell.waiting.lock().unwrap().clear();
        self.leashes.send_modify(|n| *n += 1);
    }
}
