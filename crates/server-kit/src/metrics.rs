//! Prometheus: the process-wide recorder and the tiny HTTP server that
//! renders it at `GET /metrics`.
//!
//! The server is ours rather than `metrics-exporter-prometheus`'s own
//! listener (`PrometheusBuilder::with_http_listener`, feature
//! `http-listener`, read at 0.18.3), which cannot keep this module's
//! behaviour:
//! - It binds inside `build()` and returns only an opaque future, never the
//!   bound address, so `--metrics 127.0.0.1:0` (which the tests use) could
//!   not log or report its port.
//! - It serves the recorder that the same `build()` creates, so it cannot
//!   serve the one process-wide recorder that [`handle`] shares between
//!   servers; the function that would take a handle is private to the crate.
//! - It answers every path with the metrics (and `/health`), where we answer
//!   `/metrics` only and 404 the rest.
//! - It has no shutdown: its accept loop runs until dropped, and the
//!   connections it spawned outlive that; ours all end with the server. Its
//!   connections also have no header read timeout.
//!
//! Global state: the `metrics` facade has one recorder per process, set once.
//! [`handle`] installs ours on first use and hands every later caller (a
//! second server in the same process, tests) the same handle, so servers in
//! one process share counters; the first caller's histogram buckets are the
//! ones in force. If the host application installed another recorder first,
//! we keep a private, empty one and say so in the log. Histogram samples
//! wait in the recorder until drained, so one background thread per process
//! runs its upkeep every few seconds, scraped or not.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::OnceLock;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// How often histogram samples are drained into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Histogram buckets of one metric, by its full name.
pub type Buckets<'a> = (&'a str, &'a [f64]);

/// The process's Prometheus handle, installing the recorder on first call
/// with `buckets` (later calls' buckets are ignored: see the module doc).
pub fn handle(buckets: &[Buckets<'_>]) -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = || {
                let mut b = PrometheusBuilder::new();
                for (name, bounds) in buckets.iter().filter(|(_, b)| !b.is_empty()) {
                    b = b
                        .set_buckets_for_metric(Matcher::Full((*name).to_owned()), bounds)
                        .expect("only an empty bucket list is refused");
                }
                b
            };
            match builder().install_recorder() {
                Ok(handle) => {
                    let upkeep = handle.clone();
                    let spawned = std::thread::Builder::new()
                        .name("metrics-upkeep".into())
                        .spawn(move || {
                            loop {
                                std::thread::sleep(UPKEEP_EVERY);
                                upkeep.run_upkeep();
                            }
                        });
                    if let Err(e) = spawned {
                        warn!(error = %e, "cannot start the metrics upkeep thread");
                    }
                    handle
                }
                Err(e) => {
                    warn!(error = %e, "another metrics recorder is installed; /metrics will be empty");
                    builder().build_recorder().handle()
                }
            }
        })
        .clone()
}

/// Serves `GET /metrics` on `listener` until `stop` fires.
pub async fn serve(listener: TcpListener, handle: PrometheusHandle, stop: CancellationToken) {
    loop {
        let (tcp, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    debug!(error = %e, "metrics accept failed");
                    continue;
                }
            },
        };
        let handle = handle.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let handle = handle.clone();
                async move { Ok::<_, Infallible>(metrics_response(&req, &handle)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(tcp), svc);
            tokio::select! {
                r = conn => if let Err(e) = r { debug!(%peer, error = %e, "metrics connection failed") },
                _ = stop.cancelled() => {}
            }
        });
    }
}

fn metrics_response(req: &Request<Incoming>, handle: &PrometheusHandle) -> Response<Full<Bytes>> {
    let (status, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => (StatusCode::OK, handle.render()),
        _ => (StatusCode::NOT_FOUND, "not found\n".to_owned()),
    };
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}

/// Binds the metrics listener (so its address can be logged before serving).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
