//! The local web app the cell publishes: a small hyper HTTP/1.1 server.
//!
//! - `GET /bytes/N`: N pseudo-random bytes (`testkit::pseudo_random_bytes`),
//!   produced in 64 KiB chunks as the connection takes them.
//! - `GET /gated`: `first`, then the rest only once the test opens the gate
//!   (proves the cell streams instead of buffering the whole response).
//! - `GET /wait`: answers once `expected_waiters` requests wait together
//!   (proves requests run concurrently).
//! - `POST /echo` (any method): the body back.
//! - `/inspect…`: the request as JSON (method, target, headers), with
//!   hop-by-hop and repeated headers in the response.
//! - `GET /broken`: announces 100 bytes, sends 10 and closes.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};

const CHUNK: usize = 64 * 1024;

/// A body fed through a channel; `Err` ends it with an error.
struct ChannelBody {
    rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
    len: Option<u64>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|item| item.map(|r| r.map(Frame::data)))
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self.len {
            Some(n) => hyper::body::SizeHint::with_exact(n),
            None => hyper::body::SizeHint::default(),
        }
    }
}

fn channel(len: Option<u64>) -> (mpsc::Sender<Result<Bytes, std::io::Error>>, ChannelBody) {
    let (tx, rx) = mpsc::channel(4);
    (tx, ChannelBody { rx, len })
}

struct State {
    gate: Notify,
    waiters: watch::Sender<usize>,
    expected_waiters: AtomicUsize,
    connections: AtomicUsize,
    /// Connections ended so far.
    closed: watch::Sender<usize>,
}

/// The app; stops when dropped.
pub struct LocalApp {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl LocalApp {
    pub async fn start() -> LocalApp {
        Self::start_with(None).await
    }

    /// An app that closes a keep-alive connection on which no request
    /// comes within `idle` (as nginx's `keepalive_timeout`).
    pub async fn start_closing_idle(idle: std::time::Duration) -> LocalApp {
        Self::start_with(Some(idle)).await
    }

    async fn start_with(idle: Option<std::time::Duration>) -> LocalApp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            gate: Notify::new(),
            waiters: watch::channel(0).0,
            expected_waiters: AtomicUsize::new(usize::MAX),
            connections: AtomicUsize::new(0),
            closed: watch::channel(0).0,
        });
        let serving = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                serving.connections.fetch_add(1, Ordering::SeqCst);
                let state = serving.clone();
                let ended = serving.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(state.clone(), req));
                    let mut builder = http1::Builder::new();
                    if let Some(idle) = idle {
                        builder
                            .timer(hyper_util::rt::TokioTimer::new())
                            .header_read_timeout(idle);
                    }
                    let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                    ended.closed.send_modify(|n| *n += 1);
                });
            }
        });
        LocalApp { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Lets every `/gated` response finish.
    pub fn open_gate(&self) {
        self.state.gate.notify_waiters();
    }

    /// `/wait` answers once `n` requests wait at the same time.
    pub fn expect_waiters(&self, n: usize) {
        self.state.expected_waiters.store(n, Ordering::SeqCst);
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Waits until `n` connections have ended (closed by the app, as an
    /// idle one, or by the peer).
    pub async fn connections_closed(&self, n: usize) {
        let mut closed = self.state.closed.subscribe();
        closed.wait_for(|c| *c >= n).await.unwrap();
    }
}

impl Drop for LocalApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Reply = Response<http_body_util::combinators::BoxBody<Bytes, std::io::Error>>;

fn full(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    let body = http_body_util::Full::new(body.into()).map_err(|e: Infallible| match e {});
    Response::builder()
        .status(status)
        .body(body.boxed())
        .unwrap()
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Reply, Infallible> {
    let path = req.uri().path().to_owned();
    Ok(match path.as_str() {
        p if p.starts_with("/bytes/") => {
            let n: usize = p["/bytes/".len()..].parse().unwrap();
            let (tx, body) = channel(Some(n as u64));
            tokio::spawn(async move {
                let data = Bytes::from(testkit::pseudo_random_bytes(testkit::BYTES_SEED, n));
                for start in (0..n).step_by(CHUNK) {
                    let piece = data.slice(start..(start + CHUNK).min(n));
                    if tx.send(Ok(piece)).await.is_err() {
                        return;
                    }
                }
            });
            Response::new(body.boxed())
        }
        "/gated" => {
            let (tx, body) = channel(None);
            let state = state.clone();
            tokio::spawn(async move {
                // Registered before `first` leaves, so the test's
                // open_gate (sent after it saw `first`) is not missed.
                let opened = state.gate.notified();
                tokio::pin!(opened);
                opened.as_mut().enable();
                let _ = tx.send(Ok(Bytes::from_static(b"first"))).await;
                opened.await;
                let _ = tx.send(Ok(Bytes::from_static(b" and the rest"))).await;
            });
            Response::new(body.boxed())
        }
        "/wait" => {
            let expected = state.expected_waiters.load(Ordering::SeqCst);
            state.waiters.send_modify(|n| *n += 1);
            let mut waiters = state.waiters.subscribe();
            let _ = waiters.wait_for(|n| *n >= expected).await;
            full(StatusCode::OK, "waited together")
        }
        "/echo" => {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            full(StatusCode::OK, body)
        }
        p if p.starts_with("/inspect") => {
            let headers: Vec<[String; 2]> = req
                .headers()
                .iter()
                .map(|(n, v)| [n.to_string(), v.to_str().unwrap().to_owned()])
                .collect();
            let json = serde_json::json!({
                "method": req.method().as_str(),
                "target": req.uri().to_string(),
                "headers": headers,
            });
            let mut reply = full(StatusCode::CREATED, json.to_string());
            let h = reply.headers_mut();
            h.insert("content-type", "application/json".parse().unwrap());
            h.append("set-cookie", "a=1".parse().unwrap());
            h.append("set-cookie", "b=2".parse().unwrap());
            h.insert("connection", "x-private".parse().unwrap());
            h.insert("x-private", "hop".parse().unwrap());
            h.insert("keep-alive", "timeout=5".parse().unwrap());
            reply
        }
        "/broken" => {
            let (tx, body) = channel(Some(100));
            tokio::spawn(async move {
                let _ = tx.send(Ok(Bytes::from_static(b"0123456789"))).await;
                let _ = tx.send(Err(std::io::Error::other("app crashed"))).await;
            });
            Response::new(body.boxed())
        }
        _ => full(StatusCode::NOT_FOUND, "not found"),
    })
}
