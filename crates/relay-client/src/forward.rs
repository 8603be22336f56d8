//! The shared ports: listeners on this machine's tunnel address (inside the
//! userspace stack, so nothing else on the machine can reach them), each
//! connection carried to `127.0.0.1:PORT` and recorded in the engine's live
//! table when an engine runs the share.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use wg_userspace::{Node, WgListener, WgStream};

/// Copy buffer per direction: 64 KiB, as on the relay's side.
const COPY_BUFFER: usize = 64 * 1024;

/// The accept loops of one share.
pub(crate) struct Forwards {
    cancel: CancellationToken,
    open: Arc<AtomicUsize>,
}

impl Forwards {
    /// Listens on `ports` of `node`'s address.
    pub fn start(
        node: &Node,
        ports: &[u16],
        inbound: Option<engine::Inbound>,
        tunnel_id: &str,
    ) -> Result<Forwards, wg_userspace::Error> {
        let cancel = CancellationToken::new();
        let open = Arc::new(AtomicUsize::new(0));
        let counter = Arc::new(AtomicU64::new(0));
        let mut listeners = Vec::new();
        for &port in ports {
            listeners.push((port, node.listen(port)?));
        }
        for (port, listener) in listeners {
            tokio::spawn(accept_loop(
                listener,
                port,
                inbound.clone(),
                tunnel_id.to_owned(),
                open.clone(),
                counter.clone(),
                cancel.clone(),
            ));
        }
        Ok(Forwards { cancel, open })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Stops accepting (open connections end with the node).
    pub fn stop(&self) {
        self.cancel.cancel();
    }
}

impl Drop for Forwards {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn accept_loop(
    listener: WgListener,
    port: u16,
    inbound: Option<engine::Inbound>,
    tunnel_id: String,
    open: Arc<AtomicUsize>,
    counter: Arc<AtomicU64>,
    cancel: CancellationToken,
) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    warn!(port, error = %e, "shared port stopped accepting");
                    return;
                }
            },
        };
        let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
        let id = format!("{tunnel_id}#{n}");
        let inbound = inbound.clone();
        let open = open.clone();
        open.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            carry(stream, peer, port, inbound, &id).await;
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// One connection from the relay, carried to the local service.
async fn carry(
    stream: WgStream,
    peer: SocketAddrV4,
    port: u16,
    inbound: Option<engine::Inbound>,
    id: &str,
) {
    let local = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut service = match TcpStream::connect(local).await {
        Ok(tcp) => tcp,
        Err(e) => {
            // Dropping the stream resets it: the person on the public side
            // sees the connection refused, as they would locally.
            debug!(port, error = %e, "the shared service refused");
            return;
        }
    };
    let _ = service.set_nodelay(true);
    let mut remote: local_proxy::BoxStream = Box::new(stream);
    if let Some(inbound) = &inbound {
        remote = inbound.accept(&peer.to_string(), &local.to_string(), id, remote);
    }
    match tokio::io::copy_bidirectional_with_sizes(
        &mut remote,
        &mut service,
        COPY_BUFFER,
        COPY_BUFFER,
    )
    .await
    {
        Ok((up, down)) => debug!(port, up, down, "shared connection closed"),
        Err(e) => debug!(port, error = %e, "shared connection failed"),
    }
}
