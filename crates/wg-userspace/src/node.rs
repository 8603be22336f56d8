//! The public handle: starts the driver, manages peers, opens streams.

use std::net::{SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::config::{NodeConfig, PeerConfig};
use crate::driver;
use crate::error::Error;
use crate::keys::PublicKey;
use crate::peers::{PeerStats, PeerTable};
use crate::stack::Stack;
use crate::tcp::{Connecting, WgListener, WgStream};

/// Node-wide datagram counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Datagrams received on the UDP socket.
    pub rx_datagrams: u64,
    /// Datagrams sent on the UDP socket.
    pub tx_datagrams: u64,
    /// Handshakes from unknown keys, and messages for indexes never given out.
    pub dropped_unknown_peer: u64,
    /// Malformed, unauthenticated, replayed or source-spoofing datagrams.
    pub dropped_invalid: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) rx_datagrams: AtomicU64,
    pub(crate) tx_datagrams: AtomicU64,
    pub(crate) dropped_unknown_peer: AtomicU64,
    pub(crate) dropped_invalid: AtomicU64,
}

/// State shared by the handle, the driver task and every stream.
pub(crate) struct Shared {
    stack: Mutex<Stack>,
    peers: Mutex<PeerTable>,
    pub(crate) udp: UdpSocket,
    /// Streams poke the driver after changing a socket (data to send, a
    /// window to reopen); one stored permit coalesces any number of pokes.
    wake: Notify,
    pub(crate) counters: Counters,
    /// Total dropped datagrams, so tests and monitors can await a drop
    /// instead of polling (drops are rare; the hot path never touches it).
    pub(crate) drops: watch::Sender<u64>,
}

impl Shared {
    /// The stack's lock. A panic while it was held leaves smoltcp's state
    /// consistent enough to tear down, so poisoning is ignored.
    pub(crate) fn lock_stack(&self) -> MutexGuard<'_, Stack> {
        self.stack.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn lock_peers(&self) -> MutexGuard<'_, PeerTable> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn wake_driver(&self) {
        self.wake.notify_one();
    }

    pub(crate) async fn driver_woken(&self) {
        self.wake.notified().await
    }
}

/// Stops the driver when the last [`Node`] clone goes away.
struct Handle {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    driver: Mutex<Option<JoinHandle<()>>>,
    connect_timeout: Duration,
    address: std::net::Ipv4Addr,
    public_key: PublicKey,
}

/// A userspace WireGuard node: one UDP socket, one tunnel address, any
/// number of peers, and TCP over the tunnel. Clones share the node; the
/// driver stops at [`Node::shutdown`] or when the last clone is dropped.
#[derive(Clone)]
pub struct Node {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("address", &self.handle.address)
            .field("public_key", &self.handle.public_key)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Starts a node on `udp` (already bound) and spawns its driver on the
    /// current tokio runtime.
    pub fn start(udp: UdpSocket, config: NodeConfig) -> Result<Node, Error> {
        config.validate()?;
        if let Some(size) = config.udp_buffer {
            // Best effort: the kernel clamps to its maximum, and a small
            // buffer only costs speed.
            let socket = socket2::SockRef::from(&udp);
            let _ = socket.set_recv_buffer_size(size);
            let _ = socket.set_send_buffer_size(size);
        }
        let shared = Arc::new(Shared {
            stack: Mutex::new(Stack::new(&config)),
            peers: Mutex::new(PeerTable::new(
                &config.private_key,
                config.max_peers,
                config.handshake_rate_limit,
            )),
            udp,
            wake: Notify::new(),
            counters: Counters::default(),
            drops: watch::Sender::new(0),
        });
        let (stop, stopped) = watch::channel(false);
        let driver = tokio::spawn(driver::run(
            shared.clone(),
            stopped,
            driver::Settings::from(&config),
        ));
        Ok(Node {
            handle: Arc::new(Handle {
                shared,
                stop,
                driver: Mutex::new(Some(driver)),
                connect_timeout: config.connect_timeout,
                address: config.address,
                public_key: config.private_key.public_key(),
            }),
        })
    }

    /// This node's tunnel address.
    pub fn address(&self) -> std::net::Ipv4Addr {
        self.handle.address
    }

    /// This node's public key.
    pub fn public_key(&self) -> PublicKey {
        self.handle.public_key
    }

    /// The UDP socket's local address.
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        Ok(self.handle.shared.udp.local_addr()?)
    }

    /// Adds a peer. With an endpoint, a handshake initiation is sent at once.
    pub fn add_peer(&self, peer: PeerConfig) -> Result<(), Error> {
        let shared = &self.handle.shared;
        shared.lock_peers().add(peer)?;
        // The driver sends the initiation, if any.
        shared.wake_driver();
        Ok(())
    }

    /// Removes a peer; its sessions end and its routes go. False if unknown.
    pub fn remove_peer(&self, key: &PublicKey) -> bool {
        self.handle.shared.lock_peers().remove(key)
    }

    /// Counters of one peer.
    pub fn peer_stats(&self, key: &PublicKey) -> Option<PeerStats> {
        self.handle.shared.lock_peers().stats(key)
    }

    /// A watch of the number of handshakes completed with `key`, to await
    /// the next one (`changed()`); `None` for an unknown peer.
    pub fn handshakes(&self, key: &PublicKey) -> Option<watch::Receiver<u64>> {
        self.handle.shared.lock_peers().handshakes(key)
    }

    /// Resolves once a handshake with `key` has completed (at once if one
    /// already has). Fails if the peer is unknown or removed meanwhile.
    pub async fn handshake_completed(&self, key: &PublicKey) -> Result<(), Error> {
        let mut watch = self.handshakes(key).ok_or(Error::UnknownPeer)?;
        watch
            .wait_for(|n| *n > 0)
            .await
            .map(|_| ())
            .map_err(|_| Error::UnknownPeer)
    }

    /// Node-wide counters.
    pub fn stats(&self) -> NodeStats {
        let c = &self.handle.shared.counters;
        NodeStats {
            rx_datagrams: c.rx_datagrams.load(Ordering::Relaxed),
            tx_datagrams: c.tx_datagrams.load(Ordering::Relaxed),
            dropped_unknown_peer: c.dropped_unknown_peer.load(Ordering::Relaxed),
            dropped_invalid: c.dropped_invalid.load(Ordering::Relaxed),
        }
    }

    /// A watch of the total number of dropped datagrams.
    pub fn drops(&self) -> watch::Receiver<u64> {
        self.handle.shared.drops.subscribe()
    }

    /// Accepts TCP connections to `port` of this node's tunnel address.
    pub fn listen(&self, port: u16) -> Result<WgListener, Error> {
        let shared = &self.handle.shared;
        shared.lock_stack().listen(port)?;
        Ok(WgListener::new(shared.clone(), port))
    }

    /// Opens a TCP connection through the tunnel, waiting at most the
    /// configured connect timeout (which includes a WireGuard handshake if
    /// none has happened yet).
    pub async fn connect(&self, remote: SocketAddrV4) -> Result<WgStream, Error> {
        let shared = &self.handle.shared;
        if !shared.lock_peers().routes(*remote.ip()) {
            return Err(Error::NoRoute(*remote.ip()));
        }
        let handle = shared.lock_stack().connect(remote)?;
        shared.wake_driver();
        let connecting = Connecting {
            shared: shared.clone(),
            handle: Some(handle),
            remote,
        };
        match tokio::time::timeout(self.handle.connect_timeout, connecting.wait()).await {
            Ok(result) => result,
            Err(_) => Err(Error::ConnectTimeout(remote)),
        }
    }

    /// Stops the driver and waits for it: every stream and listener fails
    /// from then on, and remote ends get resets.
    pub async fn shutdown(&self) {
        let _ = self.handle.stop.send(true);
        let driver = self
            .handle
            .driver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(driver) = driver {
            let _ = driver.await;
        }
    }

    /// Open TCP sockets, listening spares and closing ones included.
    pub fn socket_count(&self) -> usize {
        self.handle.shared.lock_stack().socket_count()
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
