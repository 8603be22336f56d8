//! The accept loop every server runs: a bounded number of connections at
//! once, accept errors (out of descriptors and the like) survived, and
//! shutdown observed both while waiting for a slot and for a peer.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::warn;

/// How long to wait after a failed `accept` before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A listener that hands out at most `max` connections at once: each comes
/// with a permit that frees its slot when dropped.
pub struct BoundedAcceptor<'a, S> {
    listener: &'a TcpListener,
    slots: Arc<Semaphore>,
    shutdown: Pin<&'a mut S>,
}

impl<'a, S: Future<Output = ()>> BoundedAcceptor<'a, S> {
    /// Accepts from `listener`, `max` connections at once, until `shutdown`
    /// completes.
    pub fn new(
        listener: &'a TcpListener,
        max: usize,
        shutdown: Pin<&'a mut S>,
    ) -> BoundedAcceptor<'a, S> {
        BoundedAcceptor {
            listener,
            slots: Arc::new(Semaphore::new(max.max(1))),
            shutdown,
        }
    }

    /// The next connection and its slot, or `None` once shutdown began.
    pub async fn next(&mut self) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
        let permit = tokio::select! {
            _ = self.shutdown.as_mut() => return None,
            p = self.slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        loop {
            tokio::select! {
                _ = self.shutdown.as_mut() => return None,
                r = self.listener.accept() => match r {
                    Ok((tcp, peer)) => return Some((tcp, peer, permit)),
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

    #[tokio::test]
    async fn hands_out_at_most_max_connections_and_stops_on_shutdown() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = std::pin::pin!(async move {
            let _ = stopped.await;
        });
        let mut acceptor = BoundedAcceptor::new(&listener, 1, shutdown);
        let _a = TcpStream::connect(addr).await.unwrap();
        let _b = TcpStream::connect(addr).await.unwrap();
        let first = acceptor.next().await.expect("the first connection");
        // The only slot is taken: the second waits until the first is done.
        let waiting = tokio::time::timeout(Duration::from_millis(100), acceptor.next()).await;
        assert!(
            waiting.is_err(),
            "a second connection while the slot is taken"
        );
        drop(first);
        assert!(acceptor.next().await.is_some(), "the slot came back");
        stop.send(()).unwrap();
        assert!(acceptor.next().await.is_none(), "shutdown ends the loop");
    }
}
