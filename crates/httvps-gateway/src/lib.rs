//! The HTTVPS gateway: TLS WebSocket in, Shadowsocks (Outline) or direct TCP out.
//!
//! A client opens one TLS WebSocket, sends `hello` with a session token, and
//! multiplexes TCP streams over JSON frames (CONTRACTS.md §1). The gateway
//! validates the token (backend, token file or an in-memory set), then for
//! each stream reads the Shadowsocks address header at the start of the
//! stream's bytes and connects — through the session's Outline node, or
//! directly under an address policy.
//!
//! The protocol rules live in [`session`] as a state machine with no I/O, the
//! way `proto-httvps` keeps framing free of I/O; [`driver`] is the tokio code
//! around it, and the rest are the edges: TLS, HTTP and the decoy site,
//! auth, upstream dialing, metrics. The cost of the split is one indirection
//! (actions) between deciding and doing; in return every rule is testable
//! from plain frames.
//!
//! Embedding (the client app's demo mode runs a gateway in-process):
//!
//! ```no_run
//! # async fn demo() -> Result<(), httvps_gateway::GatewayError> {
//! use httvps_gateway::{AuthSource, Gateway, GatewayConfig, TlsSource};
//! let tls = TlsSource::Pem { cert_pem: String::new(), key_pem: String::new() };
//! let auth = AuthSource::Tokens(["demo-token".to_owned()].into());
//! let config = GatewayConfig::new("127.0.0.1:0".parse().unwrap(), tls, auth);
//! let running = Gateway::bind(config).await?.spawn();
//! println!("wss://{}/ws", running.local_addr());
//! running.shutdown().await?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod auth;
pub mod config;
/// Direct dialing's resolver and Happy Eyeballs racing, shared with the HT
/// server (`server-kit`).
pub use server_kit::dial;
mod driver;
mod h3;
mod http;
mod inbox;
pub mod metrics;
mod outbox;
pub mod session;
mod stream;
pub mod tls;
pub mod upstream;
mod writer;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use server_kit::accept::Acceptor;
use server_kit::admission::{Admission, AdmissionLimits};
use shadowsocks::config::{ServerConfig, ServerType};
use shadowsocks::context::{Context, SharedContext};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use auth::Grant;
pub use config::{AuthSource, GatewayConfig, Limits, OutlineNode, SiteSource, Timeouts, TlsSource};

/// Why a gateway could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// A certificate, key or other file could not be read.
    #[error("cannot read {path}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The certificate or key is unusable.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// The token file is missing or unreadable at start.
    #[error("cannot read the token file {path}")]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The Outline node (`--outline-file` or `HTTVPS_OUTLINE`) is unusable.
    #[error("Outline node: {0}")]
    BadOutline(String),
    /// The backend URL or HTTP client is unusable.
    #[error("backend: {0}")]
    Backend(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The decoy site's directory is unusable, or the built-in page could not be written.
    #[error("decoy site {path}")]
    Site {
        /// The directory or file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A setting is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// State shared by every connection of one gateway.
pub(crate) struct Shared {
    pub(crate) config: GatewayConfig,
    pub(crate) tls: TlsAcceptor,
    pub(crate) auth: auth::Authenticator,
    pub(crate) site: http::Site,
    /// Places: pending connections, sessions, per source.
    pub(crate) admission: Arc<Admission>,
    /// Fired when shutdown begins: sessions drain, listeners stop.
    pub(crate) shutdown: CancellationToken,
    pub(crate) tracker: TaskTracker,
    pub(crate) ss_context: SharedContext,
    /// Direct mode's resolver and Happy Eyeballs settings.
    pub(crate) dialer: dial::Dialer,
    pub(crate) fixed_outline: Option<Arc<ServerConfig>>,
}

/// A bound gateway, not yet serving.
pub struct Gateway {
    shared: Arc<Shared>,
    listener: TcpListener,
    local_addr: SocketAddr,
    /// The HTTP/3 endpoint (`h3_listen`) and its bound address.
    h3: Option<(quinn::Endpoint, h3ws::quic::ServerConfigs, SocketAddr)>,
    metrics: Option<(TcpListener, SocketAddr)>,
    prometheus: metrics_exporter_prometheus::PrometheusHandle,
}

/// Triggers a re-read of the token file (the binary calls it on SIGHUP).
#[derive(Clone)]
pub struct Reloader(Option<Arc<auth::TokenFile>>);

impl Reloader {
    /// Re-reads the token file now; a failure keeps the old tokens (and is logged).
    /// Does nothing for other auth sources.
    pub fn reload(&self) {
        if let Some(file) = &self.0 {
            file.reload("signal");
        }
    }
}

fn check_config(config: &GatewayConfig) -> Result<(), GatewayError> {
    let l = &config.limits;
    let bad = |what: &str| Err(GatewayError::Config(what.to_owned()));
    if !config.ws_path.starts_with('/') {
        return bad("the WebSocket path must start with '/'");
    }
    if l.max_sessions == 0 || l.max_connections == 0 || l.max_per_source == 0 {
        return bad("max sessions, connections and connections per source must be at least 1");
    }
    if l.pings.burst == 0 {
        return bad("the ping burst must be at least 1");
    }
    if l.max_streams == 0 {
        return bad("max streams must be at least 1");
    }
    if l.out_queue == 0 || l.max_stream_id_len == 0 {
        return bad("the out queue and the stream id limit must be at least 1");
    }
    if l.windows.max_stream_window < proto_httvps::flow::INITIAL_STREAM_WINDOW
        || l.windows.max_session_window < proto_httvps::flow::INITIAL_SESSION_WINDOW
    {
        return bad("the windows may not be smaller than their initial sizes (256 KiB, 16 MiB)");
    }
    if config.timeouts.write.is_zero() || config.timeouts.handshake.is_zero() {
        return bad("write and handshake timeouts must be positive");
    }
    if l.max_frame_len < 1024 {
        return bad("the frame limit must be at least 1024 bytes");
    }
    if l.stream_buffer_bytes == 0 || l.stream_buffer_bytes > u32::MAX as usize {
        return bad("the stream buffer must be 1 byte to 4 GiB");
    }
    if config.timeouts.idle.is_zero() || config.timeouts.hello.is_zero() {
        return bad("idle and hello timeouts must be positive");
    }
    Ok(())
}

impl Gateway {
    /// Loads TLS and auth, binds the listeners, and logs `listening` (and
    /// `metrics listening`) with the bound addresses.
    pub async fn bind(config: GatewayConfig) -> Result<Gateway, GatewayError> {
        check_config(&config)?;
        let tls = TlsAcceptor::from(tls::server_config(&config.tls)?);
        let auth = auth::Authenticator::new(&config.auth)?;
        let site = http::Site::new(&config.site)?;
        let fixed_outline = match &config.outline {
            Some(node) => Some(Arc::new(
                upstream::outline_config(node).map_err(GatewayError::BadOutline)?,
            )),
            None => None,
        };
        let prometheus = metrics::handle();
        let listener =
            server_kit::accept::bind_tcp(config.listen).map_err(|source| GatewayError::Bind {
                addr: config.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| GatewayError::Bind {
            addr: config.listen,
            source,
        })?;
        let h3 = match config.h3_listen {
            Some(addr) => {
                let tls = tls::server_config(&config.tls)?;
                let max_streams = u32::try_from(config.limits.max_per_source).unwrap_or(u32::MAX);
                let (endpoint, configs) = h3::bind(addr, &tls, max_streams)
                    .map_err(|e| GatewayError::Config(format!("HTTP/3 listener: {e}")))?;
                let bound = endpoint
                    .local_addr()
                    .map_err(|source| GatewayError::Bind { addr, source })?;
                info!(addr = %bound, path = %config.ws_path, "h3 listening");
                Some((endpoint, configs, bound))
            }
            None => None,
        };
        info!(addr = %local_addr, path = %config.ws_path, "listening");
        let metrics = match config.metrics_listen {
            Some(addr) => {
                let l = metrics::bind(addr)
                    .await
                    .map_err(|source| GatewayError::Bind { addr, source })?;
                let bound = l
                    .local_addr()
                    .map_err(|source| GatewayError::Bind { addr, source })?;
                info!(addr = %bound, "metrics listening");
                Some((l, bound))
            }
            None => None,
        };
        let shared = Arc::new(Shared {
            site,
            admission: Admission::new(
                AdmissionLimits {
                    max_pending: config.limits.max_connections,
                    max_admitted: config.limits.max_sessions,
                    max_per_source: config.limits.max_per_source,
                },
                metrics::PREFIX,
            ),
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            ss_context: Context::new_shared(ServerType::Local),
            dialer: dial::Dialer::new(dial::DialOptions {
                attempt_delay: config.timeouts.attempt_delay,
                attempt_timeout: None,
            }),
            fixed_outline,
            tls,
            auth,
            config,
        });
        Ok(Gateway {
            shared,
            listener,
            local_addr,
            h3,
            metrics,
            prometheus,
        })
    }

    /// The bound WebSocket (TLS) address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The bound HTTP/3 (UDP) address, when `h3_listen` is set.
    pub fn h3_addr(&self) -> Option<SocketAddr> {
        self.h3.as_ref().map(|(_, _, a)| *a)
    }

    /// The bound metrics address, when metrics are served.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(_, a)| *a)
    }

    /// The current metrics in Prometheus text form (shared by all gateways of the process).
    pub fn render_metrics(&self) -> String {
        self.prometheus.render()
    }

    /// A handle that re-reads the token file.
    pub fn reloader(&self) -> Reloader {
        Reloader(self.shared.auth.token_file())
    }

    /// Serves until `shutdown` completes, then drains: no new connections,
    /// no new streams, open streams get the drain timeout, the rest are closed
    /// with `stream_close{reason:"shutdown"}` and WebSocket close 1001.
    /// Returns when every session is closed.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), GatewayError> {
        let Gateway {
            shared,
            listener,
            metrics: metrics_listener,
            prometheus,
            h3,
            ..
        } = self;
        let h3_endpoint = h3.map(|(endpoint, configs, _)| {
            shared
                .tracker
                .spawn(h3::serve(endpoint.clone(), configs, shared.clone()));
            endpoint
        });
        let background = CancellationToken::new();
        if let Some((l, _)) = metrics_listener {
            tokio::spawn(metrics::serve(l, prometheus, background.clone()));
        }
        if let (Some(file), Some(every)) =
            (shared.auth.token_file(), shared.config.timeouts.tokens_poll)
        {
            let stop = background.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tick.tick() => {
                            let file = file.clone();
                            let _ = tokio::task::spawn_blocking(move || file.reload_if_changed()).await;
                        }
                    }
                }
            });
        }
        tokio::pin!(shutdown);
        let mut acceptor = Acceptor::new(&listener, shared.admission.clone(), shutdown.as_mut());
        while let Some((tcp, peer, ticket)) = acceptor.next().await {
            let shared = shared.clone();
            shared
                .tracker
                .clone()
                .spawn(http::serve_connection(tcp, peer, shared, ticket));
        }
        drop(acceptor);
        drop(listener);
        info!(
            sessions = shared.admission.occupancy().admitted,
            "shutting down"
        );
        shared.shutdown.cancel();
        shared.tracker.close();
        shared.tracker.wait().await;
        if let Some(endpoint) = h3_endpoint {
            endpoint.close(h3ws::quic_code(h3ws::Code::NoError), b"shutting down");
            endpoint.wait_idle().await;
        }
        background.cancel();
        info!("stopped");
        Ok(())
    }

    /// Runs the gateway on a task and returns a handle to stop it.
    pub fn spawn(self) -> RunningGateway {
        let local_addr = self.local_addr;
        let h3_addr = self.h3_addr();
        let metrics_addr = self.metrics_addr();
        let reloader = self.reloader();
        let stop = CancellationToken::new();
        let fut = stop.clone().cancelled_owned();
        let join = tokio::spawn(self.run(fut));
        RunningGateway {
            local_addr,
            h3_addr,
            metrics_addr,
            reloader,
            stop,
            join,
        }
    }
}

/// A gateway serving on a task.
pub struct RunningGateway {
    local_addr: SocketAddr,
    h3_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    reloader: Reloader,
    stop: CancellationToken,
    join: JoinHandle<Result<(), GatewayError>>,
}

impl RunningGateway {
    /// The bound WebSocket (TLS) address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The bound HTTP/3 (UDP) address, when `h3_listen` is set.
    pub fn h3_addr(&self) -> Option<SocketAddr> {
        self.h3_addr
    }

    /// The bound metrics address, when metrics are served.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// A handle that re-reads the token file.
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// Starts a graceful shutdown without waiting for it.
    pub fn begin_shutdown(&self) {
        self.stop.cancel();
    }

    /// Shuts down gracefully and waits until every session is closed.
    pub async fn shutdown(self) -> Result<(), GatewayError> {
        self.stop.cancel();
        self.wait().await
    }

    /// Waits for the gateway to stop (after [`RunningGateway::begin_shutdown`]).
    pub async fn wait(self) -> Result<(), GatewayError> {
        match self.join.await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Ok(()),
        }
    }
}
