//! The HLHV queen: cells (on users' machines) log in over TLS and mount a
//! host and path; the queen serves those over public HTTPS, carrying each
//! request to its cell over a *band* (CONTRACTS.md §4, docs/hlhv.md).
//!
//! The protocol's rules are `proto_hlhv`'s sans-IO machines (login, band
//! pool, exchange, mount table); this crate drives them:
//! - cells-side tasks (`cells`): TLS, login within the deadline (each connection
//!   on its own task), then a leash loop (Mount/Unmount in, NeedBand out,
//!   the pool's timer) or a band handed to the pool;
//! - public-side tasks (`https`): hyper over rustls (HTTP/2 and HTTP/1.1 by ALPN),
//!   routing, then the exchange on a band with the response streamed back
//!   frame by frame.
//!
//! Differences from the Go queen, all deliberate, are listed in
//! docs/hlhv.md: the cell key is checked (constant time), the last piece of
//! a request body is never lost, a failed band login fails a waiting
//! request at once (502), unknown connection kinds are closed, logins run
//! concurrently, and every wait and queue is bounded.
#![warn(missing_docs)]

mod cells;
pub mod conf;
mod conn;
mod https;
mod hub;
pub mod key;
pub mod metrics;
mod relay;
mod reqhead;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use proto_hlhv::queen::PoolLimits;
use proto_hlhv::route::Aliases;
use server_kit::accept::Acceptor;
use server_kit::admission::{Admission, AdmissionLimits};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

pub use key::CellKey;

/// Why a queen could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueenError {
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
    /// A listener could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

pub use server_kit::tls::TlsSource;

/// The queen's bounds; every one has a flag (`hlhv-queen --help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame accepted from a cell (length prefix excluded).
    pub max_frame: usize,
    /// Cells connected at once.
    pub max_cells: usize,
    /// Bands per cell (open plus asked for).
    pub max_bands_per_cell: usize,
    /// Requests waiting for a band, per cell; more get 503 at once.
    pub max_waiting_per_cell: usize,
    /// How long a request waits for a band before 503.
    pub band_wait: Duration,
    /// A band free this long is closed.
    pub band_idle: Duration,
    /// From accepting a cell connection to its IAm (TLS included).
    pub login_timeout: Duration,
    /// Longest silence of a cell within an exchange (504 before the head,
    /// a cut response after), and of a client sending its body.
    pub response_timeout: Duration,
    /// Largest ReqBody piece sent to a cell.
    pub max_body_piece: usize,
    /// Cell connections not yet logged in; when full the one that
    /// progressed least recently is closed.
    pub max_pending_logins: usize,
    /// Cell connections (leashes and bands, logged in or not) from one
    /// address.
    pub max_cell_conns_per_source: usize,
    /// Public connections at once.
    pub max_connections: usize,
    /// Public connections still in their TLS handshake.
    pub max_pending: usize,
    /// Public connections from one address (IPv6: one /64).
    pub max_per_source: usize,
    /// Public TLS handshake bound.
    pub handshake_timeout: Duration,
    /// HTTP/1.1 request head bound.
    pub header_read_timeout: Duration,
    /// At shutdown, how long open public requests may take to finish.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame: proto_hlhv::DEFAULT_MAX_FRAME,
            max_cells: 1024,
            max_bands_per_cell: 64,
            max_waiting_per_cell: 256,
            band_wait: Duration::from_secs(10),
            band_idle: Duration::from_secs(60),
            login_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(60),
            max_body_piece: 64 * 1024,
            max_pending_logins: 256,
            max_cell_conns_per_source: 4096,
            max_connections: 8192,
            max_pending: 4096,
            max_per_source: 256,
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// Everything a queen needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The cells' TLS listener (port 0: any free port).
    pub cells_listen: SocketAddr,
    /// The public HTTPS listener (port 0: any free port).
    pub https_listen: SocketAddr,
    /// Certificate and key for both listeners.
    pub tls: TlsSource,
    /// The key leashes must offer.
    pub cell_key: CellKey,
    /// Host aliases (default: the loopback names are one host, `@`).
    pub aliases: Aliases,
    /// Serve Prometheus metrics here.
    pub metrics_listen: Option<SocketAddr>,
    /// The bounds.
    pub limits: Limits,
}

impl Config {
    /// A configuration with the default aliases and limits.
    pub fn new(
        cells_listen: SocketAddr,
        https_listen: SocketAddr,
        tls: TlsSource,
        cell_key: CellKey,
    ) -> Config {
        Config {
            cells_listen,
            https_listen,
            tls,
            cell_key,
            aliases: Aliases::default(),
            metrics_listen: None,
            limits: Limits::default(),
        }
    }
}

/// A bound queen, not yet serving.
pub struct Queen {
    config: Config,
    cells: TcpListener,
    https: TcpListener,
    cells_addr: SocketAddr,
    https_addr: SocketAddr,
    metrics: Option<(TcpListener, SocketAddr)>,
    tls_cells: TlsAcceptor,
    tls_https: TlsAcceptor,
}

fn read_pem(source: &TlsSource) -> Result<(Vec<u8>, Vec<u8>), QueenError> {
    source.read().map_err(|e| QueenError::ReadFile {
        path: e.path,
        source: e.source,
    })
}

impl Queen {
    /// Loads TLS and binds the listeners; logs `cells listening`,
    /// `listening` (the public one) and `metrics listening` with the bound
    /// addresses.
    pub async fn bind(config: Config) -> Result<Queen, QueenError> {
        let (cert, key) = read_pem(&config.tls)?;
        // Go cells offer no ALPN; the public side offers both versions.
        let tls_cells = TlsAcceptor::from(server_kit::tls::server_config(&cert, &key, &[])?);
        let tls_https = TlsAcceptor::from(server_kit::tls::server_config(
            &cert,
            &key,
            &[b"h2", b"http/1.1"],
        )?);
        let bind = |addr: SocketAddr| {
            let l = server_kit::accept::bind_tcp(addr)
                .map_err(|source| QueenError::Bind { addr, source })?;
            let bound = l
                .local_addr()
                .map_err(|source| QueenError::Bind { addr, source })?;
            Ok::<_, QueenError>((l, bound))
        };
        let (cells, cells_addr) = bind(config.cells_listen)?;
        let (https, https_addr) = bind(config.https_listen)?;
        info!(addr = %cells_addr, "cells listening");
        info!(addr = %https_addr, "listening");
        let metrics = match config.metrics_listen {
            Some(addr) => {
                let l = server_kit::metrics::bind(addr)
                    .await
                    .map_err(|source| QueenError::Bind { addr, source })?;
                let bound = l
                    .local_addr()
                    .map_err(|source| QueenError::Bind { addr, source })?;
                info!(addr = %bound, "metrics listening");
                Some((l, bound))
            }
            None => None,
        };
        Ok(Queen {
            config,
            cells,
            https,
            cells_addr,
            https_addr,
            metrics,
            tls_cells,
            tls_https,
        })
    }

    /// The cells' listener address.
    pub fn cells_addr(&self) -> SocketAddr {
        self.cells_addr
    }

    /// The public HTTPS listener address.
    pub fn https_addr(&self) -> SocketAddr {
        self.https_addr
    }

    /// The metrics listener address, when metrics are served.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(_, a)| *a)
    }

    /// Serves until `shutdown` completes; then stops accepting, lets open
    /// public requests finish (up to the drain timeout), closes every
    /// leash and band, and returns when every task is done.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), QueenError> {
        let l = self.config.limits;
        let background = CancellationToken::new();
        if let Some((listener, _)) = self.metrics {
            tokio::spawn(server_kit::metrics::serve(
                listener,
                metrics::handle(),
                background.clone(),
            ));
        } else {
            metrics::handle();
        }
        let hub = hub::Hub::new(
            self.config.aliases.clone(),
            PoolLimits {
                max_bands: l.max_bands_per_cell,
                max_waiters: l.max_waiting_per_cell,
                band_wait: l.band_wait,
                band_idle: l.band_idle,
            },
        );
        let stop_public = CancellationToken::new();
        let stop_cells = CancellationToken::new();
        let cells_ctx = Arc::new(cells::CellsCtx {
            hub: hub.clone(),
            tls: self.tls_cells,
            key: Arc::new(self.config.cell_key.clone()),
            login_timeout: l.login_timeout,
            max_frame: l.max_frame,
            max_cells: l.max_cells,
            stop: stop_cells.clone(),
        });
        let https_ctx = Arc::new(https::HttpsCtx {
            hub: hub.clone(),
            tls: self.tls_https,
            https_port: self.https_addr.port(),
            relay: relay::RelayLimits {
                max_piece: l.max_body_piece,
                idle: l.response_timeout,
            },
            handshake_timeout: l.handshake_timeout,
            header_read_timeout: l.header_read_timeout,
            drain: l.drain_timeout,
            stop: stop_public.clone(),
        });
        let cells_admission = Admission::new(
            AdmissionLimits {
                max_pending: l.max_pending_logins,
                max_admitted: l.max_cells.saturating_mul(l.max_bands_per_cell + 1),
                max_per_source: l.max_cell_conns_per_source,
            },
            &format!("{}_cells", metrics::PREFIX),
        );
        let https_admission = Admission::new(
            AdmissionLimits {
                max_pending: l.max_pending,
                max_admitted: l.max_connections,
                max_per_source: l.max_per_source,
            },
            &format!("{}_https", metrics::PREFIX),
        );
        let cell_tasks = TaskTracker::new();
        let public_tasks = TaskTracker::new();
        let accepting = CancellationToken::new();
        let cells_loop = {
            let accepting = accepting.clone();
            let tasks = cell_tasks.clone();
            let listener = self.cells;
            tokio::spawn(async move {
                let stop = accepting.cancelled();
                tokio::pin!(stop);
                let mut acceptor = Acceptor::new(&listener, cells_admission, stop);
                while let Some((tcp, peer, ticket)) = acceptor.next().await {
                    tasks.spawn(cells::serve(cells_ctx.clone(), tcp, peer, ticket));
                }
            })
        };
        let https_loop = {
            let accepting = accepting.clone();
            let tasks = public_tasks.clone();
            let listener = self.https;
            tokio::spawn(async move {
                let stop = accepting.cancelled();
                tokio::pin!(stop);
                let mut acceptor = Acceptor::new(&listener, https_admission, stop);
                while let Some((tcp, peer, ticket)) = acceptor.next().await {
                    tasks.spawn(https::serve(https_ctx.clone(), tcp, peer, ticket));
                }
            })
        };
        shutdown.await;
        info!(cells = hub.cells().len(), "shutting down");
        accepting.cancel();
        let _ = cells_loop.await;
        let _ = https_loop.await;
        // Public requests first, while their cells are still there to answer.
        stop_public.cancel();
        public_tasks.close();
        public_tasks.wait().await;
        stop_cells.cancel();
        cell_tasks.close();
        cell_tasks.wait().await;
        background.cancel();
        info!("stopped");
        Ok(())
    }

    /// Runs the queen on a task and returns a handle to stop it.
    pub fn spawn(self) -> RunningQueen {
        let cells_addr = self.cells_addr;
        let https_addr = self.https_addr;
        let metrics_addr = self.metrics_addr();
        let stop = CancellationToken::new();
        let join = tokio::spawn(self.run(stop.clone().cancelled_owned()));
        RunningQueen {
            cells_addr,
            https_addr,
            metrics_addr,
            stop,
            join,
        }
    }
}

/// A queen serving on a task.
pub struct RunningQueen {
    cells_addr: SocketAddr,
    https_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    stop: CancellationToken,
    join: JoinHandle<Result<(), QueenError>>,
}

impl RunningQueen {
    /// The cells' listener address.
    pub fn cells_addr(&self) -> SocketAddr {
        self.cells_addr
    }

    /// The public HTTPS listener address.
    pub fn https_addr(&self) -> SocketAddr {
        self.https_addr
    }

    /// The metrics listener address, when metrics are served.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Shuts down gracefully and waits until every task is done.
    pub async fn shutdown(self) -> Result<(), QueenError> {
        self.stop.cancel();
        match self.join.await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Ok(()),
        }
    }
}
