//! The accept loop every server runs: each connection passes
//! [`Admission`](crate::admission::Admission) before it is handed out (a
//! refused one is closed at once), accept errors (out of descriptors and the
//! like) are survived, and shutdown ends the loop.
//!
//! The loop never stops accepting while places are taken: a full pending
//! stage evicts its stalest connection instead, so a real client is never left
//! waiting in the kernel's backlog behind idle connections.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tracing::{debug, warn};

use crate::admission::{Admission, Ticket};

/// How long to wait after a failed `accept` before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Connections the kernel may hold for us before we accept them (capped at
/// `net.core.somaxconn`). `TcpListener::bind` asks for 128 on Linux: a burst
/// of 2,000 hostile connects overflowed it, and the dropped SYN of a real
/// client cost it a one-second retransmit in a third of the runs (the
/// hostile-client tests; the local proxy met the same with browsers).
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds a server's listener with [`LISTEN_BACKLOG`].
pub fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restarted server can take its port
    // back while old connections linger in TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// A listener whose connections come with their [`Ticket`].
pub struct Acceptor<'a, S> {
    listener: &'a TcpListener,
    admission: Arc<Admission>,
    shutdown: Pin<&'a mut S>,
}

impl<'a, S: Future<Output = ()>> Acceptor<'a, S> {
    /// Accepts from `listener` under `admission` until `shutdown` completes.
    pub fn new(
        listener: &'a TcpListener,
        admission: Arc<Admission>,
        shutdown: Pin<&'a mut S>,
    ) -> Acceptor<'a, S> {
        Acceptor {
            listener,
            admission,
            shutdown,
        }
    }

    /// The next admitted connection, or `None` once shutdown began.
    pub async fn next(&mut self) -> Option<(TcpStream, SocketAddr, Ticket)> {
        loop {
            tokio::select! {
                _ = self.shutdown.as_mut() => return None,
                r = self.listener.accept() => match r {
                    Ok((tcp, peer)) => match self.admission.admit_socket(peer.ip(), &tcp) {
                        Ok(ticket) => return Some((tcp, peer, ticket)),
                        Err(why) => debug!(%peer, reason = why.label(), "connection refused"),
                    },
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::AdmissionLimits;

    #[tokio::test]
    async fn refuses_past_the_source_limit_evicts_the_oldest_and_stops_on_shutdown() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = std::pin::pin!(async move {
            let _ = stopped.await;
        });
        let limits = AdmissionLimits {
            max_pending: 2,
            max_admitted: 8,
            max_per_source: 3,
        };
        let mut acceptor = Acceptor::new(&listener, Admission::new(limits, "test"), shutdown);
        let mut clients = Vec::new();
        for _ in 0..4 {
            clients.push(TcpStream::connect(addr).await.unwrap());
        }
        let (_, _, first) = acceptor.next().await.unwrap();
        let (_, _, second) = acceptor.next().await.unwrap();
        let (_, _, third) = acceptor.next().await.unwrap();
        assert!(first.eviction().is_cancelled(), "the oldest made room");
        assert!(!second.eviction().is_cancelled() && !third.eviction().is_cancelled());
        // The fourth is over the source limit: closed, and the loop goes on.
        let waited = tokio::time::timeout(Duration::from_millis(200), acceptor.next()).await;
        assert!(waited.is_err(), "nothing more is handed out");
        let mut refused = clients.pop().unwrap();
        let mut byte = [0u8; 1];
        let n = tokio::io::AsyncReadExt::read(&mut refused, &mut byte).await;
        assert!(
            matches!(n, Ok(0) | Err(_)),
            "the refused connection is closed"
        );
        drop(first);
        clients.push(TcpStream::connect(addr).await.unwrap());
        assert!(
            acceptor.next().await.is_some(),
            "a freed place is usable again"
        );
        stop.send(()).unwrap();
        assert!(acceptor.next().await.is_none(), "shutdown ends the loop");
    }
}
