//! The WebSocket-over-HTTP/3 proxy (seed 002, CONTRACTS.md §3).
//!
//! Clients open WebSockets by extended CONNECT on HTTP/3 (RFC 9220); each is
//! checked in the public Go proxy's order (503 over `max_conns`, 405, 404,
//! 400), answered `200`, and only then carried to the HTTP/1.1 WebSocket
//! backend (`ws://` or `wss://`, the request's path and query appended to
//! the base URL); a failed dial closes the client's WebSocket with 1011.
//! Messages pass both ways whole (fragments reassembled), pings are
//! answered here and forwarded, close codes pass through, a frame over
//! `max_frame` aborts the session and a message over `max_message` closes
//! it with 1009. Flags, defaults and metric names match the Go proxy, so
//! one can replace the other.
//!
//! - [`config`]: the settings and their defaults;
//! - [`relay`]: one session's two WebSockets;
//! - [`metrics`]: the contract's metric names;
//! - this module: the QUIC endpoint, its connections and shutdown.

pub mod backend;
pub mod config;
pub mod metrics;
pub mod relay;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use h3ws::server::{IncomingRequest, ServerConnection};
use proto_h3ws::connect::{self, Verdict};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

pub use config::Config;

use crate::metrics as m;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("reading {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error(transparent)]
    Quic(#[from] h3ws::quic::QuicError),
    #[error("metrics listener on {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// State every session shares.
struct Shared {
    config: Config,
    backend: backend::Backend,
    sessions: AtomicUsize,
    tracker: TaskTracker,
    stop: CancellationToken,
}

/// A bound proxy, ready to run.
pub struct Proxy {
    endpoint: quinn::Endpoint,
    configs: h3ws::quic::ServerConfigs,
    shared: Arc<Shared>,
    metrics: Option<(tokio::net::TcpListener, SocketAddr)>,
}

impl Proxy {
    /// Loads the certificate and binds the UDP socket (and the metrics
    /// listener).
    pub async fn bind(config: Config) -> Result<Proxy, ProxyError> {
        let read = |what, path: &std::path::Path| {
            std::fs::read(path).map_err(|source| ProxyError::Read {
                what,
                path: path.to_owned(),
                source,
            })
        };
        let (cert, key) = (
            read("certificate", &config.cert)?,
            read("key", &config.key)?,
        );
        let tls = server_kit::tls::server_config(&cert, &key, &[h3ws::quic::ALPN])
            .map_err(|e| ProxyError::Tls(e.0))?;
        let backend = backend::Backend::new(&config)?;
        let (endpoint, configs) = h3ws::quic::server_endpoint(
            config.listen,
            (*tls).clone(),
            h3ws::quic::Timing::default(),
            config.max_streams_per_connection,
        )?;
        let metrics = match config.metrics {
            Some(addr) => {
                let l = server_kit::metrics::bind(addr)
                    .await
                    .map_err(|source| ProxyError::Metrics { addr, source })?;
                let bound = l
                    .local_addr()
                    .map_err(|source| ProxyError::Metrics { addr, source })?;
                Some((l, bound))
            }
            None => None,
        };
        Ok(Proxy {
            endpoint,
            configs,
            shared: Arc::new(Shared {
                config,
                backend,
                sessions: AtomicUsize::new(0),
                tracker: TaskTracker::new(),
                stop: CancellationToken::new(),
            }),
            metrics,
        })
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.endpoint
            .local_addr()
            .expect("a bound endpoint has an address")
    }

    /// The bound metrics address, if any.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(_, a)| *a)
    }

    /// Serves until `shutdown` completes, then closes every WebSocket with
    /// 1001 (going away) and waits up to the write timeout for them.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let Proxy {
            endpoint,
            configs,
            shared,
            metrics,
        } = self;
        let handle = server_kit::metrics::handle(&m::BUCKETS);
        m::describe();
        if let Some((listener, addr)) = metrics {
            info!(%addr, "metrics listening");
            shared.tracker.spawn(server_kit::metrics::serve(
                listener,
                handle,
                shared.stop.clone(),
            ));
        }
        info!(addr = %endpoint.local_addr().map(|a| a.to_string()).unwrap_or_default(), backend = %shared.config.backend, "listening");
        tokio::pin!(shutdown);
        loop {
            let incoming = tokio::select! {
                () = &mut shutdown => break,
                i = endpoint.accept() => i,
            };
            let Some(incoming) = incoming else { break };
            let shared2 = shared.clone();
            let configs = configs.clone();
            shared.tracker.spawn(async move {
                match h3ws::server::accept_early(incoming, &configs) {
                    Ok(conn) => serve_connection(conn, shared2).await,
                    Err(e) => {
                        m::error("handshake");
                        debug!(error = %e, "QUIC handshake failed");
                    }
                }
            });
        }
        info!("shutting down");
        shared.stop.cancel();
        shared.tracker.close();
        let grace = shared.config.write_timeout;
        if tokio::time::timeout(grace, shared.tracker.wait())
            .await
            .is_err()
        {
            warn!("sessions still open after the grace period; closing");
        }
        endpoint.close(h3ws::quic_code(proto_h3ws::Code::NoError), b"shutting down");
        endpoint.wait_idle().await;
    }
}

async fn serve_connection(conn: quinn::Connection, shared: Arc<Shared>) {
    let peer = conn.remote_address();
    let mut h3 = match ServerConnection::new(conn, h3ws::Limits::default()).await {
        Ok(h3) => h3,
        Err(e) => {
            debug!(%peer, error = %e, "connection ended during setup");
            return;
        }
    };
    // This connection's sessions: on shutdown they end (close 1001) before
    // the connection's control stream goes, which would end them abruptly.
    let sessions = TaskTracker::new();
    loop {
        let req = tokio::select! {
            r = h3.accept() => r,
            _ = shared.stop.cancelled() => {
                h3.goaway().await;
                break;
            }
        };
        let Some(req) = req else { break };
        sessions.spawn(serve_request(req, peer, shared.clone()));
    }
    sessions.close();
    sessions.wait().await;
}

/// A session's place among `max_conns`; freed on drop.
struct Place<'a>(&'a AtomicUsize);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
        m::active_sessions(-1.0);
    }
}

async fn serve_request(req: IncomingRequest, peer: SocketAddr, shared: Arc<Shared>) {
    // The capacity check first, as the Go proxy makes it.
    let taken = shared.sessions.fetch_add(1, Ordering::Relaxed);
    m::active_sessions(1.0);
    let place = Place(&shared.sessions);
    if taken >= shared.config.max_conns {
        m::rejected("max_conns");
        req.reject(503, "too many sessions\n").await;
        return;
    }
    let verdict = connect::check(&req.request, |p| shared.config.path.is_match(p));
    let path_and_query = match verdict {
        Verdict::Accept { path_and_query } => path_and_query,
        Verdict::Reject { status, reason } => {
            m::rejected(reason);
            debug!(%peer, status, reason, "request refused");
            req.reject(status, "").await;
            return;
        }
    };
    m::accepted();
    let forwarded = backend::forwarded_headers(&req.request, peer);
    let stream = match req.accept(&[]).await {
        Ok(s) => s,
        Err(e) => {
            m::error("h3_write");
            debug!(%peer, error = %e, "could not answer 200");
            return;
        }
    };
    relay::run(
        stream,
        &path_and_query,
        forwarded,
        &shared.backend,
        &shared.config,
        &shared.stop,
    )
    .await;
    drop(place);
}
