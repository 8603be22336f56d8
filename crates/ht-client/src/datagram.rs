//! SOCKS5 `UDP ASSOCIATE` over HT: one association maps each target to its
//! own HT UDP stream (`c… udp …`), opened on the first datagram to it.
//! Replies carry their stream's target as source. Both the targets and the
//! reply queue are bounded: past `datagram_targets` the oldest target's
//! stream is closed, and replies beyond `datagram_queue` are dropped (UDP
//! may lose packets; memory may not grow).

use std::collections::VecDeque;
use std::sync::Arc;

use local_proxy::{BoxFuture, ConnectError, ConnectErrorKind, DatagramChannel};
use net::{Datagram, TargetAddr};
use proto_ht::Proto;
use proto_ht::client::StreamKey;
use tokio::sync::{Mutex, mpsc};

use crate::shared::Shared;

/// One UDP association.
pub(crate) struct Association {
    shared: Arc<Shared>,
    /// Targets and their streams, oldest first.
    targets: Mutex<VecDeque<(TargetAddr, StreamKey)>>,
    tx: mpsc::Sender<Datagram>,
    rx: Mutex<mpsc::Receiver<Datagram>>,
}

impl Association {
    pub(crate) fn new(shared: Arc<Shared>) -> Association {
        let (tx, rx) = mpsc::channel(shared.config.datagram_queue);
        Association {
            shared,
            targets: Mutex::new(VecDeque::new()),
            tx,
            rx: Mutex::new(rx),
        }
    }

    /// The stream for `target`, opened if needed.
    async fn stream_for(&self, target: &TargetAddr) -> Result<StreamKey, ConnectError> {
        let mut targets = self.targets.lock().await;
        if let Some((_, key)) = targets.iter().find(|(t, _)| t == target) {
            return Ok(*key);
        }
        if targets.len() >= self.shared.config.datagram_targets
            && let Some((_, oldest)) = targets.pop_front()
        {
            self.shared.release(oldest);
        }
        let (host, port) = host_port(target);
        let (key, _) = self
            .shared
            .open_stream(
                &host,
                Proto::Udp,
                port,
                Some((target.clone(), self.tx.clone())),
                self.shared.config.open_timeout,
            )
            .await?;
        targets.push_back((target.clone(), key));
        Ok(key)
    }
}

/// The host and port of a target as the `c` query spells them.
pub(crate) fn host_port(target: &TargetAddr) -> (String, u16) {
    match target {
        TargetAddr::Ip(addr) => (addr.ip().to_string(), addr.port()),
        TargetAddr::Domain(name, port) => (name.clone(), *port),
    }
}

impl DatagramChannel for Association {
    fn send(&self, datagram: Datagram) -> BoxFuture<'_, Result<(), ConnectError>> {
        Box::pin(async move {
            let key = self.stream_for(&datagram.target).await?;
            std::future::poll_fn(|cx| self.shared.poll_send(cx, key, &datagram.payload, false))
                .await
                .map(|_| ())
                .map_err(|e| ConnectError::new(ConnectErrorKind::Unavailable, e.to_string()))
        })
    }

    fn recv(&self) -> BoxFuture<'_, Option<Datagram>> {
        Box::pin(async move {
            let mut state = self.shared.state.subscribe();
            let mut rx = self.rx.lock().await;
            tokio::select! {
                datagram = rx.recv() => datagram,
                // The association is over with its session.
                _ = state.wait_for(|s| s.ended.is_some()) => None,
            }
        })
    }
}

impl Drop for Association {
    fn drop(&mut self) {
        for (_, key) in self.targets.get_mut().drain(..) {
            self.shared.release(key);
        }
    }
}
