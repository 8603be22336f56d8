//! The HT server: long-lived chunked `POST /ht/create.php` requests in,
//! TCP streams, UDP flows and DNS lookups out (CONTRACTS.md §2,
//! docs/ht.md).
//!
//! The protocol's rules live in `proto_ht::server::Server`, a sans-IO
//! machine holding every session; this crate is its driver:
//! - [`conn`]-level tasks read a request head, judge the first chunk (the
//!   response head goes out only after it: `200` and chunks, or the one
//!   identical `404` page, `403` for a reclaimed session, `503` when full),
//!   then feed chunks in and write answers out;
//! - target tasks dial through `server-kit` (resolver, the target policy
//!   shared with the HTTVPS gateway, Happy Eyeballs), read only when the
//!   machine grants a read (its backpressure), and write what it hands over;
//! - DNS questions go to the same hickory resolver;
//! - one timer task reclaims idle sessions.
//!
//! HTTP is spoken by hand (with `httparse` for the head) rather than through
//! hyper: HT frames one query per HTTP chunk, and hyper's body stream does
//! not keep chunk boundaries. The subset needed is small: one request per
//! connection, a chunked body read with `proto_ht::chunked`, and a
//! handful of fixed responses.
//!
//! Without TLS the server warns: HT's Salsa20 layer has no integrity and
//! reuses its keystream across a session's connections (docs/ht.md); TLS
//! outside is what protects users.
#![warn(missing_docs)]

mod conn;
mod core;
mod dns;
pub mod http;
pub mod metrics;
mod target;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use proto_ht::Key;
use proto_ht::server::{Limits, Server};
use server_kit::accept::Acceptor;
use server_kit::admission::{Admission, AdmissionLimits, Progress};
use server_kit::decoy;
use server_kit::dial::{DialOptions, Dialer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::core::{Core, DialSettings};

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A certificate or key file could not be read.
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
    Tls(#[from] server_kit::tls::TlsError),
    /// The decoy site's directory is unusable, or the built-in page could
    /// not be written.
    #[error("decoy site {}", .0.path.display())]
    Site(#[source] decoy::SiteError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A limit is unusable.
    #[error(transparent)]
    Limits(#[from] proto_ht::server::LimitsError),
}

pub use server_kit::tls::TlsSource;

/// Everything a server needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address of the HTTP(S) listener (port 0: any free port).
    pub listen: SocketAddr,
    /// TLS, or plain HTTP (with a warning) when `None`.
    pub tls: Option<TlsSource>,
    /// The pre-shared key (its `Debug` is redacted).
    pub key: Key,
    /// Let targets be loopback, private, link-local or metadata addresses.
    pub allow_private_targets: bool,
    /// The machine's bounds.
    pub limits: Limits,
    /// Serve Prometheus metrics here.
    pub metrics_listen: Option<SocketAddr>,
    /// A dial's budget (resolution included), and a DNS question's.
    pub dial_timeout: Duration,
    /// Time from accepting a connection to its first complete chunk.
    pub first_chunk_timeout: Duration,
    /// Tunnel connections at once: connections whose first chunk proved
    /// the key (`server_kit::admission`'s admitted stage).
    pub max_connections: usize,
    /// Connections not yet proven (TLS handshakes, strangers, connections
    /// waiting for their first chunk); when full, the one that progressed
    /// least recently is closed to make room for the newest.
    pub max_pending: usize,
    /// Connections from one client address (IPv6: one /64), both stages.
    pub max_per_source: usize,
    /// What strangers see: the decoy website (`server_kit::decoy`) served
    /// from this directory, or a built-in page when `None`.
    pub site_dir: Option<PathBuf>,
}

impl Config {
    /// Default of [`Config::max_connections`].
    pub const DEFAULT_MAX_CONNECTIONS: usize = 8192;
    /// Default of [`Config::max_pending`].
    pub const DEFAULT_MAX_PENDING: usize = 4096;
    /// Default of [`Config::max_per_source`]: room for several sessions of
    /// many connections each behind one NAT.
    pub const DEFAULT_MAX_PER_SOURCE: usize = 256;

    /// A configuration with the default limits.
    pub fn new(listen: SocketAddr, key: Key) -> Config {
        Config {
            listen,
            tls: None,
            key,
            allow_private_targets: false,
            limits: Limits::default(),
            metrics_listen: None,
            dial_timeout: Duration::from_secs(10),
            first_chunk_timeout: Duration::from_secs(10),
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            max_pending: Self::DEFAULT_MAX_PENDING,
            max_per_source: Self::DEFAULT_MAX_PER_SOURCE,
            site_dir: None,
        }
    }
}

/// A bound server, not yet serving.
pub struct HtServer {
    core: Arc<Core>,
    listener: TcpListener,
    local_addr: SocketAddr,
    tls: Option<TlsAcceptor>,
    metrics: Option<(TcpListener, SocketAddr)>,
    first_chunk_timeout: Duration,
    admission: Arc<Admission>,
    site: Arc<decoy::Site>,
}

fn tls_acceptor(source: &TlsSource) -> Result<TlsAcceptor, ServerError> {
    let (cert, key) = source.read().map_err(|e| ServerError::ReadFile {
        path: e.path,
        source: e.source,
    })?;
    let config = server_kit::tls::server_config(&cert, &key, &[b"http/1.1"])?;
    Ok(TlsAcceptor::from(config))
}

impl HtServer {
    /// Loads TLS, binds the listeners, and logs `listening` (and `metrics
    /// listening`) with the bound addresses.
    pub async fn bind(config: Config) -> Result<HtServer, ServerError> {
        let machine = Server::new(config.key.clone(), config.limits.clone())?;
        let site = match &config.site_dir {
            Some(dir) => decoy::Site::dir(dir),
            None => decoy::Site::built_in(decoy::BUILT_IN_PAGE),
        }
        .map_err(ServerError::Site)?;
        let tls = config.tls.as_ref().map(tls_acceptor).transpose()?;
        let bind_error = |addr| move |source| ServerError::Bind { addr, source };
        let listener =
            server_kit::accept::bind_tcp(config.listen).map_err(bind_error(config.listen))?;
        let local_addr = listener.local_addr().map_err(bind_error(config.listen))?;
        // The warning comes before `listening`, the line that tells a
        // watcher the start-up is over.
        if tls.is_none() {
            warn!(
                "serving HT over plain HTTP: HT's own encryption has no integrity and reuses \
                 its keystream across a session's connections; only TLS outside protects users"
            );
        }
        info!(addr = %local_addr, tls = tls.is_some(), "listening");
        let metrics = match config.metrics_listen {
            Some(addr) => {
                let l = server_kit::metrics::bind(addr)
                    .await
                    .map_err(bind_error(addr))?;
                let bound = l.local_addr().map_err(bind_error(addr))?;
                info!(addr = %bound, "metrics listening");
                Some((l, bound))
            }
            None => None,
        };
        let read_size = config.limits.read_size;
        let core = Core::new(
            machine,
            DialSettings {
                dialer: Dialer::new(DialOptions::default()),
                allow_private: config.allow_private_targets,
                timeout: config.dial_timeout,
                read_size,
            },
        );
        Ok(HtServer {
            core,
            listener,
            local_addr,
            tls,
            metrics,
            first_chunk_timeout: config.first_chunk_timeout,
            site: Arc::new(site),
            admission: Admission::new(
                AdmissionLimits {
                    max_pending: config.max_pending,
                    max_admitted: config.max_connections,
                    max_per_source: config.max_per_source,
                },
                metrics::PREFIX,
            ),
        })
    }

    /// The bound listener's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The bound metrics address, when metrics are served.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(_, a)| *a)
    }

    /// Serves until `shutdown` completes; then stops accepting, ends every
    /// tunnel connection (the last chunk), closes every target, and returns
    /// when every connection task is done.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let HtServer {
            core,
            listener,
            tls,
            metrics: metrics_listener,
            first_chunk_timeout,
            admission,
            site,
            local_addr,
            ..
        } = self;
        let background = CancellationToken::new();
        if let Some((l, _)) = metrics_listener {
            tokio::spawn(server_kit::metrics::serve(
                l,
                metrics::handle(),
                background.clone(),
            ));
        }
        tokio::spawn(core::drive_timer(core.clone(), background.clone()));
        let tracker = TaskTracker::new();
        let stop = CancellationToken::new();
        tokio::pin!(shutdown);
        let mut acceptor = Acceptor::new(&listener, admission, shutdown.as_mut());
        while let Some((tcp, peer, ticket)) = acceptor.next().await {
            let _ = tcp.set_nodelay(true);
            let core = core.clone();
            let edge = conn::Edge {
                site: site.clone(),
                local_addr,
                tls: tls.is_some(),
                first_chunk_timeout,
                stop: stop.clone(),
            };
            let tls = tls.clone();
            tracker.spawn(async move {
                let mut ticket = ticket;
                let evicted = ticket.eviction();
                // Each step of the handshake moves the connection behind
                // idle ones in the eviction order (`server_kit::admission`);
                // together they have `first_chunk_timeout`.
                let deadline = tokio::time::Instant::now() + first_chunk_timeout;
                let spoke = tokio::select! {
                    r = tokio::time::timeout_at(deadline, tcp.readable()) => matches!(r, Ok(Ok(()))),
                    _ = evicted.cancelled() => return,
                };
                if !spoke {
                    return;
                }
                ticket.progressed(Progress::Spoke);
                let Some(acceptor) = tls else {
                    return conn::serve(core, tcp, ticket, edge).await;
                };
                let accepted = tokio::select! {
                    r = tokio::time::timeout_at(deadline, acceptor.accept(tcp)) => r,
                    _ = evicted.cancelled() => return,
                };
                match accepted {
                    Ok(Ok(stream)) => {
                        ticket.progressed(Progress::Secured);
                        conn::serve(core, stream, ticket, edge).await
                    }
                    _ => tracing::debug!(%peer, "TLS handshake failed or timed out"),
                }
            });
        }
        drop(acceptor);
        drop(listener);
        info!(
            connections = core.with(|m| m.connection_count()),
            "shutting down"
        );
        stop.cancel();
        core.shutdown();
        tracker.close();
        tracker.wait().await;
        background.cancel();
        info!("stopped");
        Ok(())
    }

    /// Runs the server on a task and returns a handle to stop it.
    pub fn spawn(self) -> RunningServer {
        let local_addr = self.local_addr;
        let metrics_addr = self.metrics_addr();
        let stop = CancellationToken::new();
        let join = tokio::spawn(self.run(stop.clone().cancelled_owned()));
        RunningServer {
            local_addr,
            metrics_addr,
            stop,
            join,
        }
    }
}

/// A server serving on a task.
pub struct RunningServer {
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    stop: CancellationToken,
    join: JoinHandle<Result<(), ServerError>>,
}

impl RunningServer {
    /// The bound listener's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The bound metrics address, when metrics are served.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Shuts down gracefully and waits until every connection is closed.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        self.stop.cancel();
        match self.join.await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Ok(()),
        }
    }
}
