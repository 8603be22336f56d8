//! A relay: binds its listeners, then serves control connections and the
//! WireGuard endpoint until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use server_kit::accept::Acceptor;
use server_kit::admission::{Admission, AdmissionLimits};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;
use wg_userspace::{Node, NodeConfig, PrivateKey};

use crate::config::{Config, RegistryBackend};
use crate::control::{self, ControlCtx};
use crate::limits::RateLimits;
use crate::metrics;
use crate::registry::{MemoryRegistry, RedisRegistry, TunnelRegistry};
use crate::tunnels::Tunnels;

/// How often the rate limiters and the in-memory registry drop what expired.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Why a relay could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The certificate or key file could not be read.
    #[error("cannot read {path}")]
    ReadFile {
        /// The file.
        path: std::path::PathBuf,
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
    /// The registry settings or backend are unusable.
    #[error("tunnel registry: {0}")]
    Registry(#[from] crate::registry::RegistryError),
    /// The rate limits are unusable.
    #[error("rate limits: {0}")]
    Limits(#[from] crate::limits::LimitsError),
    /// The WireGuard endpoint could not start.
    #[error("WireGuard endpoint: {0}")]
    WireGuard(#[from] wg_userspace::Error),
}

/// A bound relay, not yet serving.
pub struct Relay {
    ctx: Arc<ControlCtx>,
    listener: TcpListener,
    addr: SocketAddr,
    wg_addr: SocketAddr,
    metrics: Option<(TcpListener, SocketAddr)>,
    admission: AdmissionLimits,
}

impl Relay {
    /// Loads TLS, connects the registry, binds the control listener, the
    /// WireGuard socket and metrics; logs `listening`, `wireguard
    /// listening` and `metrics listening` with the bound addresses.
    pub async fn bind(config: Config) -> Result<Relay, RelayError> {
        let (cert, key) = config.tls.read().map_err(|e| RelayError::ReadFile {
            path: e.path,
            source: e.source,
        })?;
        let tls = TlsAcceptor::from(server_kit::tls::server_config_with_versions(
            &cert,
            &key,
            &[],
            &[&rustls::version::TLS13],
        )?);
        config
            .registry
            .validate()
            .map_err(crate::registry::RegistryError::from)?;
        let registry: Arc<dyn TunnelRegistry> = match &config.backend {
            RegistryBackend::Memory => Arc::new(
                MemoryRegistry::new(config.registry.clone())
                    .map_err(crate::registry::RegistryError::from)?,
            ),
            RegistryBackend::Redis(url) => {
                Arc::new(RedisRegistry::connect(url, config.registry.clone()).await?)
            }
            RegistryBackend::Shared(registry) => registry.clone(),
        };
        let listener =
            server_kit::accept::bind_tcp(config.listen).map_err(|source| RelayError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = local(&listener, config.listen)?;
        let udp = UdpSocket::bind(config.wg_listen)
            .await
            .map_err(|source| RelayError::Bind {
                addr: config.wg_listen,
                source,
            })?;
        let wg_addr = udp.local_addr().map_err(|source| RelayError::Bind {
            addr: config.wg_listen,
            source,
        })?;
        let private_key = config.wg_key.unwrap_or_else(PrivateKey::generate);
        let node = Node::start(
            udp,
            NodeConfig::new(private_key, config.registry.network.relay_address()),
        )?;
        let wg_endpoint = config.wg_endpoint.clone().unwrap_or_else(|| {
            let host = &config.registry.public_host;
            if host.contains(':') && !host.starts_with('[') {
                format!("[{host}]:{}", wg_addr.port())
            } else {
                format!("{host}:{}", wg_addr.port())
            }
        });
        info!(addr = %addr, "listening");
        info!(addr = %wg_addr, public_key = %node.public_key(), endpoint = %wg_endpoint, "wireguard listening");
        let metrics = match config.metrics_listen {
            Some(want) => {
                let l = server_kit::metrics::bind(want)
                    .await
                    .map_err(|source| RelayError::Bind { addr: want, source })?;
                let bound = local(&l, want)?;
                info!(addr = %bound, "metrics listening");
                Some((l, bound))
            }
            None => None,
        };
        let limits = config.limits;
        let ctx = Arc::new(ControlCtx {
            tls,
            session: config.session,
            verifier: config.verifier,
            limits: RateLimits::new(config.rate_limits)?,
            registry,
            tunnels: Tunnels::new(node, config.forward_bind, limits),
            wg_endpoint,
            handshake_timeout: limits.handshake_timeout,
            stop: CancellationToken::new(),
        });
        Ok(Relay {
            ctx,
            listener,
            addr,
            wg_addr,
            metrics,
            admission: AdmissionLimits {
                max_pending: limits.max_pending,
                max_admitted: limits.max_control_connections,
                max_per_source: limits.max_per_source,
            },
        })
    }

    /// The control listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The WireGuard socket's address.
    pub fn wg_addr(&self) -> SocketAddr {
        self.wg_addr
    }

    /// The metrics listener's address, when metrics are served.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(_, a)| *a)
    }

    /// Serves until `shutdown` completes; then tells every client
    /// (SERVER_ERROR `shutting_down`, so they reconnect), closes the
    /// forwards and the WireGuard endpoint, and returns when every task is
    /// done.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), RelayError> {
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
        let sweeper = tokio::spawn(sweep(self.ctx.clone(), background.clone()));
        let admission = Admission::new(self.admission, &format!("{}_control", metrics::PREFIX));
        let tasks = TaskTracker::new();
        let accepting = CancellationToken::new();
        let accept_loop = {
            let accepting = accepting.clone();
            let tasks = tasks.clone();
            let ctx = self.ctx.clone();
            let listener = self.listener;
            tokio::spawn(async move {
                let stop = accepting.cancelled();
                tokio::pin!(stop);
                let mut acceptor = Acceptor::new(&listener, admission, stop);
                while let Some((tcp, peer, ticket)) = acceptor.next().await {
                    tasks.spawn(control::serve(ctx.clone(), tcp, peer, ticket));
                }
            })
        };
        shutdown.await;
        info!(tunnels = self.ctx.tunnels.len(), "shutting down");
        accepting.cancel();
        let _ = accept_loop.await;
        self.ctx.stop.cancel();
        tasks.close();
        tasks.wait().await;
        self.ctx.tunnels.shutdown().await;
        background.cancel();
        let _ = sweeper.await;
        info!("stopped");
        Ok(())
    }

    /// Runs the relay on a task and returns a handle to stop it.
    pub fn spawn(self) -> RunningRelay {
        let addr = self.addr;
        let wg_addr = self.wg_addr;
        let public_key = self.ctx.tunnels.node().public_key().to_base64();
        let stop = CancellationToken::new();
        let join = tokio::spawn(self.run(stop.clone().cancelled_owned()));
        RunningRelay {
            addr,
            wg_addr,
            public_key,
            stop,
            join,
        }
    }
}

fn local(listener: &TcpListener, want: SocketAddr) -> Result<SocketAddr, RelayError> {
    listener
        .local_addr()
        .map_err(|source| RelayError::Bind { addr: want, source })
}

/// Drops expired rate-limit keys and registry entries now and then.
async fn sweep(ctx: Arc<ControlCtx>, stop: CancellationToken) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        ctx.limits.retain_recent();
        if let Err(e) = ctx.registry.sweep().await {
            tracing::warn!(error = %e, "registry sweep failed");
        }
    }
}

/// A relay serving on a task.
pub struct RunningRelay {
    addr: SocketAddr,
    wg_addr: SocketAddr,
    public_key: String,
    stop: CancellationToken,
    join: JoinHandle<Result<(), RelayError>>,
}

impl RunningRelay {
    /// The control listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The WireGuard socket's address.
    pub fn wg_addr(&self) -> SocketAddr {
        self.wg_addr
    }

    /// The relay's WireGuard public key, base64.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// Shuts down gracefully and waits until every task is done.
    pub async fn stop(self) -> Result<(), RelayError> {
        self.stop.cancel();
        self.join.await.unwrap_or(Ok(()))
    }
}
