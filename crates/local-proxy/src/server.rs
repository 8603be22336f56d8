//! The listener: accepts connections under the connection cap and runs one
//! task per connection until shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{Semaphore, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{Instrument, debug, error, info, warn};

use crate::drive::{Shared, serve_connection};
use crate::{Connector, ProxyConfig};

/// After an accept error such as "too many open files": how long to wait
/// before trying again, instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A bound, not yet running, local proxy.
pub struct LocalProxy {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    limiter: Arc<Semaphore>,
}

impl std::fmt::Debug for LocalProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalProxy")
            .field("local_addr", &self.local_addr)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

/// Connections the kernel may hold for us before we accept them (it caps the
/// value at `net.core.somaxconn`). `TcpListener::bind` asks for 128 on Linux:
/// a browser or a test opening many connections at once overflowed that, and
/// every dropped SYN costs its client a one-second retransmit (issue 5: 1000
/// concurrent streams had a p99 of 1.25 s, with 500+ listen overflows).
const LISTEN_BACKLOG: u32 = 4096;

fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restarted proxy can take its port back
    // while old connections linger in TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

impl LocalProxy {
    /// Checks `config` and binds its listen address.
    pub async fn bind(config: ProxyConfig, connector: Arc<dyn Connector>) -> io::Result<Self> {
        config.validate()?;
        let listener = listen(config.listen)?;
        let local_addr = listener.local_addr()?;
        let limiter = Arc::new(Semaphore::new(config.max_connections));
        info!(%local_addr, auth = config.auth.is_some(), "local proxy listening");
        Ok(LocalProxy {
            listener,
            local_addr,
            shared: Arc::new(Shared::new(config, connector)),
            limiter,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Client connections being served right now.
    pub fn active_connections(&self) -> usize {
        active(&self.limiter, self.shared.config.max_connections)
    }

    /// Serves until `shutdown` completes; then stops accepting and closes
    /// every client connection (their tasks are aborted).
    pub async fn run<F: Future>(self, shutdown: F) {
        let LocalProxy {
            listener,
            local_addr,
            shared,
            limiter,
        } = self;
        tokio::pin!(shutdown);
        let mut tasks = JoinSet::new();
        // Log the cap once when it is hit, not once per refused connection.
        let mut saturated = false;
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Err(err) = done
                        && err.is_panic()
                    {
                        error!("connection task panicked: {err}");
                    }
                }
                accepted = listener.accept() => match accepted {
                    Ok((stream, client)) => {
                        let Ok(permit) = Arc::clone(&limiter).try_acquire_owned() else {
                            if !saturated {
                                warn!(max = shared.config.max_connections, "connection limit reached; refusing new connections");
                                saturated = true;
                            }
                            debug!(%client, "refused: connection limit reached");
                            drop(stream);
                            continue;
                        };
                        saturated = false;
                        let span = tracing::debug_span!("conn", %client);
                        let shared = Arc::clone(&shared);
                        tasks.spawn(
                            async move {
                                debug!("accepted");
                                serve_connection(shared, stream, client).await;
                                debug!("done");
                                drop(permit);
                            }
                            .instrument(span),
                        );
                    }
                    Err(err) if is_per_connection(&err) => {
                        debug!(error = %err, "accept failed for one connection");
                    }
                    Err(err) => {
                        warn!(error = %err, "accept failed; retrying shortly");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
            }
        }
        drop(listener);
        let open = tasks.len();
        tasks.shutdown().await;
        info!(%local_addr, closed_connections = open, "local proxy stopped");
    }

    /// Runs the proxy on a new task. Dropping the handle stops it too.
    pub fn spawn(self) -> ProxyHandle {
        let local_addr = self.local_addr;
        let limiter = Arc::clone(&self.limiter);
        let max = self.shared.config.max_connections;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(self.run(async move {
            // A dropped sender means the handle is gone: stop as well.
            let _ = stopped.await;
        }));
        ProxyHandle {
            local_addr,
            limiter,
            max,
            stop: Some(stop),
            task: Some(task),
        }
    }
}

/// Controls a proxy started with [`LocalProxy::spawn`].
///
/// Dropping it stops the proxy (without waiting); [`ProxyHandle::shutdown`]
/// stops it and waits until every connection is closed.
#[derive(Debug)]
pub struct ProxyHandle {
    local_addr: SocketAddr,
    limiter: Arc<Semaphore>,
    max: usize,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ProxyHandle {
    /// The address the proxy listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Client connections being served right now.
    pub fn active_connections(&self) -> usize {
        active(&self.limiter, self.max)
    }

    /// Stops accepting, closes all client connections and waits for that.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take()
            && let Err(err) = task.await
            && err.is_panic()
        {
            error!("local proxy task panicked: {err}");
        }
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn active(limiter: &Semaphore, max: usize) -> usize {
    max.saturating_sub(limiter.available_permits())
}

/// Accept errors that concern only the connection being accepted.
fn is_per_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}
