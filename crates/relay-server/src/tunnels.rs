//! The relay's live tunnels: each one's WireGuard peer and public forwards.
//!
//! The registry says which tunnels *exist*; this says which run *here*. A
//! tunnel runs from its `register` (the WireGuard peer is added, so the
//! client can handshake) and its forwards open at its `register_ack` (the
//! contract: nothing is dialled toward the client's address before). When
//! its control connection ends, the tunnel is *detached*: peer, forwards
//! and the connections through them live on for [`Limits::detach_grace`],
//! so a client that resumes in time loses nothing; after that they go.
//!
//! A resume on a newer control connection *attaches* again: the pending
//! teardown is cancelled, and a changed WireGuard key replaces the peer.
//! Each attach bumps a generation, so the end of an older connection never
//! detaches a tunnel a newer one holds.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};
use wg_userspace::{AllowedIp, Node, PeerConfig, PublicKey};

use crate::config::Limits;
use crate::metrics;
use crate::registry::{Forward, TunnelRecord};

/// Copy buffer per direction of a forwarded connection: 64 KiB moves bulk
/// data in few reads and writes (tokio's default of 8 KiB cost a third of
/// the throughput through the userspace stack).
const COPY_BUFFER: usize = 64 * 1024;

/// Why a tunnel's forwards could not open.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The tunnel is not running here.
    #[error("tunnel {0} is not running on this relay")]
    NotRunning(String),
    /// A public port could not be bound.
    #[error("cannot listen on public port {port}: {source}")]
    Bind {
        /// The public port.
        port: u16,
        /// Why.
        source: std::io::Error,
    },
}

/// Every tunnel running on this relay.
#[derive(Clone)]
pub struct Tunnels {
    inner: Arc<Inner>,
}

struct Inner {
    node: Node,
    forward_bind: IpAddr,
    limits: Limits,
    running: Mutex<HashMap<String, Arc<Running>>>,
    /// Ends every forward and teardown timer at shutdown.
    stop: CancellationToken,
    /// Every task holding the node (forwards, their connections, timers):
    /// shutdown waits for them, so the WireGuard socket is closed when it
    /// returns (a restarted relay binds the same port).
    tasks: TaskTracker,
}

/// One tunnel running here.
struct Running {
    record: Mutex<TunnelRecord>,
    peer: Mutex<PublicKey>,
    generation: AtomicUsize,
    /// Whether a control connection holds it (the active-tunnels gauge).
    attached: AtomicBool,
    /// Cancels the forwards' accept loops (connections already through
    /// them keep going until either side closes).
    forwards: Mutex<Option<CancellationToken>>,
    /// The scheduled teardown while detached.
    teardown: Mutex<Option<JoinHandle<()>>>,
    /// Connections open through this tunnel's forwards.
    open: Arc<AtomicUsize>,
}

/// A control connection's hold on a running tunnel.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// The tunnel.
    pub tunnel_id: String,
    generation: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Tunnels {
    /// Tunnels carried by `node`, forwards bound on `forward_bind`.
    pub fn new(node: Node, forward_bind: IpAddr, limits: Limits) -> Tunnels {
        Tunnels {
            inner: Arc::new(Inner {
                node,
                forward_bind,
                limits,
                running: Mutex::new(HashMap::new()),
                stop: CancellationToken::new(),
                tasks: TaskTracker::new(),
            }),
        }
    }

    /// The WireGuard node.
    pub fn node(&self) -> &Node {
        &self.inner.node
    }

    /// Tunnels running here (attached or within their grace).
    pub fn len(&self) -> usize {
        lock(&self.inner.running).len()
    }

    /// Whether no tunnel runs here.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs `record` here for a control connection: adds (or updates) its
    /// WireGuard peer and cancels a pending teardown.
    pub fn attach(&self, record: &TunnelRecord) -> Result<Attachment, wg_userspace::Error> {
        let key = PublicKey::from_base64(&record.client_public_key)?;
        let mut running = lock(&self.inner.running);
        if let Some(old) = running.get(&record.tunnel_id) {
            if let Some(task) = lock(&old.teardown).take() {
                task.abort();
            }
            let mut peer = lock(&old.peer);
            if *peer != key {
                self.inner.node.remove_peer(&peer);
                self.add_peer(&key, record)?;
                // The old key's watcher ends with its peer.
                self.watch_handshakes(&key);
                *peer = key;
            }
            *lock(&old.record) = record.clone();
            if !old.attached.swap(true, Ordering::SeqCst) {
                ::metrics::gauge!(metrics::ACTIVE_TUNNELS).increment(1.0);
            }
            let generation = old.generation.fetch_add(1, Ordering::SeqCst) + 1;
            return Ok(Attachment {
                tunnel_id: record.tunnel_id.clone(),
                generation,
            });
        }
        // The registry hands an address or a public port out again only
        // once its tunnel is gone there (replaced, forgotten); a runtime
        // here still holding one is stale and would keep the port bound
        // for the rest of its grace.
        let stale: Vec<String> = running
            .iter()
            .filter(|(_, r)| shares_resources(&lock(&r.record), record))
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            if let Some(old) = running.remove(&id) {
                info!(tunnel_id = %id, replaced_by = %record.tunnel_id, "tunnel replaced: torn down");
                self.stop_running(&id, &old);
            }
        }
        self.add_peer(&key, record)?;
        self.watch_handshakes(&key);
        running.insert(
            record.tunnel_id.clone(),
            Arc::new(Running {
                record: Mutex::new(record.clone()),
                peer: Mutex::new(key),
                generation: AtomicUsize::new(0),
                attached: AtomicBool::new(true),
                forwards: Mutex::new(None),
                teardown: Mutex::new(None),
                open: Arc::new(AtomicUsize::new(0)),
            }),
        );
        ::metrics::gauge!(metrics::ACTIVE_TUNNELS).increment(1.0);
        Ok(Attachment {
            tunnel_id: record.tunnel_id.clone(),
            generation: 0,
        })
    }

    fn add_peer(&self, key: &PublicKey, record: &TunnelRecord) -> Result<(), wg_userspace::Error> {
        let mut peer = PeerConfig::new(*key, vec![AllowedIp::host(record.address)]);
        // The client is behind NAT: it keeps the mapping alive, we only
        // answer. No endpoint: the relay learns it from the handshake.
        peer.endpoint = None;
        self.inner.node.add_peer(peer)
    }

    /// Counts the peer's completed handshakes into the metric until it goes.
    fn watch_handshakes(&self, key: &PublicKey) {
        let Some(mut watch) = self.inner.node.handshakes(key) else {
            return;
        };
        let stop = self.inner.stop.clone();
        self.inner.tasks.spawn(async move {
            let mut seen = *watch.borrow_and_update();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    changed = watch.changed() => if changed.is_err() { return },
                }
                let now = *watch.borrow_and_update();
                ::metrics::counter!(metrics::HANDSHAKES).increment(now.saturating_sub(seen));
                seen = now;
            }
        });
    }

    /// Opens the tunnel's public forwards (once; later calls do nothing).
    pub async fn open_forwards(
        &self,
        attachment: &Attachment,
    ) -> Result<Vec<SocketAddr>, ForwardError> {
        let running = self.running(&attachment.tunnel_id)?;
        if lock(&running.forwards).is_some() {
            return Ok(Vec::new());
        }
        let record = lock(&running.record).clone();
        let mut listeners = Vec::new();
        for forward in &record.forwards {
            let addr = SocketAddr::new(self.inner.forward_bind, forward.public_port);
            listeners.push((bind_forward(addr).await?, *forward));
        }
        let mut slot = lock(&running.forwards);
        if slot.is_some() {
            return Ok(Vec::new());
        }
        let cancel = self.inner.stop.child_token();
        let mut bound = Vec::new();
        for (listener, forward) in listeners {
            if let Ok(addr) = listener.local_addr() {
                bound.push(addr);
            }
            let target = SocketAddrV4::new(record.address, forward.port);
            self.inner.tasks.spawn(serve_forward(
                self.inner.clone(),
                listener,
                forward,
                target,
                running.open.clone(),
                cancel.clone(),
                record.tunnel_id.clone(),
            ));
        }
        *slot = Some(cancel);
        info!(tunnel_id = %record.tunnel_id, forwards = ?bound, "forwards open");
        Ok(bound)
    }

    /// The control connection holding `attachment` ended: the tunnel is
    /// torn down after the grace unless a newer connection attaches first.
    pub fn detach(&self, attachment: &Attachment) {
        let Ok(running) = self.running(&attachment.tunnel_id) else {
            return;
        };
        if running.generation.load(Ordering::SeqCst) != attachment.generation {
            return;
        }
        if running.attached.swap(false, Ordering::SeqCst) {
            ::metrics::gauge!(metrics::ACTIVE_TUNNELS).decrement(1.0);
        }
        let tunnels = self.clone();
        let id = attachment.tunnel_id.clone();
        let generation = attachment.generation;
        let grace = self.inner.limits.detach_grace;
        let stop = self.inner.stop.clone();
        let task = self.inner.tasks.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(grace) => {}
                _ = stop.cancelled() => {}
            }
            tunnels.remove_if(&id, generation);
        });
        if let Some(old) = lock(&running.teardown).replace(task) {
            old.abort();
        }
    }

    fn remove_if(&self, tunnel_id: &str, generation: usize) {
        let removed = {
            let mut map = lock(&self.inner.running);
            match map.get(tunnel_id) {
                Some(r) if r.generation.load(Ordering::SeqCst) == generation => {
                    map.remove(tunnel_id)
                }
                _ => None,
            }
        };
        if let Some(running) = removed {
            info!(tunnel_id = %tunnel_id, "tunnel detached for too long: torn down");
            self.stop_running(tunnel_id, &running);
        }
    }

    fn stop_running(&self, tunnel_id: &str, running: &Running) {
        if let Some(cancel) = lock(&running.forwards).take() {
            cancel.cancel();
        }
        self.inner.node.remove_peer(&lock(&running.peer));
        if running.attached.swap(false, Ordering::SeqCst) {
            ::metrics::gauge!(metrics::ACTIVE_TUNNELS).decrement(1.0);
        }
        debug!(tunnel_id = %tunnel_id, "tunnel stopped");
    }

    fn running(&self, tunnel_id: &str) -> Result<Arc<Running>, ForwardError> {
        lock(&self.inner.running)
            .get(tunnel_id)
            .cloned()
            .ok_or_else(|| ForwardError::NotRunning(tunnel_id.to_owned()))
    }

    /// Stops every forward and timer (the relay is shutting down) and waits
    /// for their tasks, then for the node.
    pub async fn shutdown(&self) {
        self.inner.stop.cancel();
        let all: Vec<_> = lock(&self.inner.running).drain().collect();
        for (id, running) in all {
            self.stop_running(&id, &running);
        }
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        self.inner.node.shutdown().await;
    }
}

/// Whether two tunnels hold the same address or a same public port.
fn shares_resources(a: &TunnelRecord, b: &TunnelRecord) -> bool {
    a.tunnel_id != b.tunnel_id
        && (a.address == b.address
            || a.forwards
                .iter()
                .any(|f| b.forwards.iter().any(|g| g.public_port == f.public_port)))
}

/// How long a forward's port may stay taken by a tunnel just torn down
/// (its accept loop ends at its next poll, and drops the listener then).
const REBIND_PATIENCE: Duration = Duration::from_secs(2);

/// Binds a public forward, waiting a moment while the port is still held
/// by a replaced tunnel's accept loop that is ending.
async fn bind_forward(addr: SocketAddr) -> Result<TcpListener, ForwardError> {
    let deadline = tokio::time::Instant::now() + REBIND_PATIENCE;
    loop {
        match server_kit::accept::bind_tcp(addr) {
            Ok(listener) => return Ok(listener),
            Err(source)
                if source.kind() == std::io::ErrorKind::AddrInUse
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(source) => {
                return Err(ForwardError::Bind {
                    port: addr.port(),
                    source,
                });
            }
        }
    }
}

/// Accepts public connections on one forward and carries each to the
/// client's `target` over WireGuard.
async fn serve_forward(
    inner: Arc<Inner>,
    listener: TcpListener,
    forward: Forward,
    target: SocketAddrV4,
    open: Arc<AtomicUsize>,
    cancel: CancellationToken,
    tunnel_id: String,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    warn!(tunnel_id = %tunnel_id, error = %e, "forward accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if open.load(Ordering::Relaxed) >= inner.limits.max_forward_connections {
            ::metrics::counter!(metrics::FORWARDS, "result" => "full").increment(1);
            debug!(tunnel_id = %tunnel_id, %peer, "forward full: connection refused");
            continue;
        }
        open.fetch_add(1, Ordering::Relaxed);
        let guard = OpenGuard(open.clone());
        let node = inner.node.clone();
        let tunnel_id = tunnel_id.clone();
        let stop = inner.stop.clone();
        inner.tasks.spawn(async move {
            let _guard = guard;
            carry(node, tcp, peer, target, forward, &tunnel_id, stop).await;
        });
    }
}

/// Decrements a forward's open count when its connection ends.
struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One public connection, carried to the client until either side closes.
async fn carry(
    node: Node,
    mut tcp: TcpStream,
    peer: SocketAddr,
    target: SocketAddrV4,
    forward: Forward,
    tunnel_id: &str,
    stop: CancellationToken,
) {
    let _ = tcp.set_nodelay(true);
    let mut remote = match node.connect(target).await {
        Ok(stream) => stream,
        Err(e) => {
            ::metrics::counter!(metrics::FORWARDS, "result" => "refused").increment(1);
            debug!(tunnel_id = %tunnel_id, %peer, port = forward.port, error = %e, "client side refused");
            return;
        }
    };
    ::metrics::counter!(metrics::FORWARDS, "result" => "ok").increment(1);
    ::metrics::gauge!(metrics::FORWARDS_OPEN).increment(1.0);
    let mut public = Metered::new(
        &mut tcp,
        ::metrics::counter!(metrics::BYTES, "direction" => "in"),
    );
    let mut client = Metered::new(
        &mut remote,
        ::metrics::counter!(metrics::BYTES, "direction" => "out"),
    );
    let copied = tokio::select! {
        r = tokio::io::copy_bidirectional_with_sizes(&mut public, &mut client, COPY_BUFFER, COPY_BUFFER) => r,
        _ = stop.cancelled() => Ok((0, 0)),
    };
    ::metrics::gauge!(metrics::FORWARDS_OPEN).decrement(1.0);
    let (inbound, outbound) = (public.read, client.read);
    match copied {
        Ok(_) => {
            debug!(tunnel_id = %tunnel_id, %peer, port = forward.port, inbound, outbound, "forwarded connection closed");
        }
        Err(e) => {
            debug!(tunnel_id = %tunnel_id, %peer, port = forward.port, inbound, outbound, error = %e, "forwarded connection failed")
        }
    }
}

/// Counts the bytes read from a stream into a metric as they are read, so
/// `relay_bytes_transferred_total` grows during a long connection (an SSH
/// session of hours) and keeps what a broken or cancelled one carried.
struct Metered<S> {
    inner: S,
    counter: ::metrics::Counter,
    /// Bytes read so far, for the closing log line.
    read: u64,
}

impl<S> Metered<S> {
    fn new(inner: S, counter: ::metrics::Counter) -> Metered<S> {
        Metered {
            inner,
            counter,
            read: 0,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        if n > 0 {
            self.read += n;
            self.counter.increment(n);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
