//! The state every task of a session shares: the client machine behind one
//! lock, the connection writers, and what the application waits on.
//!
//! Nothing awaits while holding the lock. Every change to the machine is
//! followed by [`Shared::pump`], which hands its chunks to the connection
//! writers and turns its events into wake-ups: a stream's reader or writer,
//! an open or a lookup waiting for its answer, the session's state.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use net::{Datagram, ErrorCode, TargetAddr};
use proto_ht::client::{
    Client, ConnId, EndReason, Event, LookupKey, OpenError, SendError, StreamKey,
};
use proto_ht::{Proto, SessionId};
use tokio::sync::{Notify, mpsc, oneshot, watch};

use local_proxy::{ConnectError, ConnectErrorKind};

use crate::config::{HtClientConfig, ServerUrl};
use crate::error::HtError;

/// What the session's waiters watch.
#[derive(Debug, Clone, Default)]
pub(crate) struct SessionState {
    /// Transport connections whose probe was answered.
    pub(crate) live: usize,
    /// Whether any connection ever became live.
    pub(crate) was_live: bool,
    /// Connection slots still trying.
    pub(crate) slots: usize,
    /// Slots that failed before the session was live, waiting to learn
    /// whether another slot succeeds.
    pub(crate) failed_early: usize,
    /// Why the session ended, with the engine's code.
    pub(crate) ended: Option<(ErrorCode, String)>,
}

/// The application's side of one stream.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    /// Download payloads not yet read (TCP).
    pub(crate) queue: VecDeque<Bytes>,
    /// For a UDP stream: its target and its association's queue.
    pub(crate) datagrams: Option<(TargetAddr, mpsc::Sender<Datagram>)>,
    pub(crate) read_waker: Option<Waker>,
    pub(crate) write_waker: Option<Waker>,
}

/// Everything behind the lock.
pub(crate) struct Inner {
    pub(crate) machine: Client,
    pub(crate) writers: HashMap<ConnId, mpsc::UnboundedSender<Vec<u8>>>,
    /// Ends a connection at once, whatever it is doing: one that did not
    /// answer a check may sit on a dead path with a write or a read that
    /// would never return.
    pub(crate) kills: HashMap<ConnId, oneshot::Sender<()>>,
    pub(crate) streams: HashMap<StreamKey, Slot>,
    opening: HashMap<StreamKey, oneshot::Sender<Option<String>>>,
    lookups: HashMap<LookupKey, oneshot::Sender<Option<Vec<String>>>>,
}

/// One session's shared state.
pub(crate) struct Shared {
    inner: Mutex<Inner>,
    pub(crate) state: watch::Sender<SessionState>,
    /// Notified when a stream is gone, for opens waiting for a slot.
    pub(crate) slot_freed: Notify,
    pub(crate) config: HtClientConfig,
    pub(crate) url: ServerUrl,
    pub(crate) session: SessionId,
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
}

impl Shared {
    pub(crate) fn new(
        config: HtClientConfig,
        url: ServerUrl,
        session: SessionId,
        tls: Option<Arc<rustls::ClientConfig>>,
        machine: Client,
    ) -> Shared {
        let slots = config.connections;
        Shared {
            inner: Mutex::new(Inner {
                machine,
                writers: HashMap::new(),
                kills: HashMap::new(),
                streams: HashMap::new(),
                opening: HashMap::new(),
                lookups: HashMap::new(),
            }),
            state: watch::Sender::new(SessionState {
                slots,
                ..SessionState::default()
            }),
            slot_freed: Notify::new(),
            config,
            url,
            session,
            tls,
        }
    }

    /// The lock. A panic while it was held leaves the machine as it was
    /// between two calls, which is consistent, so poisoning is ignored.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Why the session ended, once it has.
    pub(crate) fn ended(&self) -> Option<String> {
        self.state.borrow().ended.as_ref().map(|(_, m)| m.clone())
    }

    /// Ends the session (idempotent).
    pub(crate) fn end(&self, reason: EndReason) {
        let mut inner = self.lock();
        inner.machine.end(reason);
        self.pump(&mut inner);
    }

    /// Checks every connection now (after a network change): each must
    /// answer within `deadline`. One that does not is closed and replaced;
    /// when none does, the session ends. Returns false when no check can
    /// run (the session ended, or there is no runtime to time it).
    pub(crate) fn check(self: &Arc<Self>, deadline: std::time::Duration) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let round = {
            let mut inner = self.lock();
            if inner.machine.ended().is_some() {
                return false;
            }
            let round = inner.machine.check();
            self.pump(&mut inner);
            round
        };
        // `None`: a round is running already and keeps its own deadline.
        if let Some(round) = round {
            // Weak: a pending deadline must not keep a dropped session.
            let shared = Arc::downgrade(self);
            runtime.spawn(async move {
                tokio::time::sleep(deadline).await;
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                let mut inner = shared.lock();
                inner.machine.check_expired(round, deadline);
                shared.pump(&mut inner);
            });
        }
        true
    }

    /// Carries out what the machine asks after a change.
    pub(crate) fn pump(&self, inner: &mut Inner) {
        while let Some((conn, chunk)) = inner.machine.poll_transmit() {
            if let Some(writer) = inner.writers.get(&conn) {
                // Unbounded on purpose: what the machine queues is bounded
                // by its windows, and the writer must never block the lock.
                let _ = writer.send(chunk);
            }
        }
        while let Some(event) = inner.machine.poll_event() {
            match event {
                Event::ConnectionReady(_) => {}
                Event::ConnectionDropped(conn) => {
                    tracing::info!(
                        session = self.session.as_str(),
                        "an HT connection did not answer the check: replacing it"
                    );
                    inner.writers.remove(&conn);
                    if let Some(kill) = inner.kills.remove(&conn) {
                        let _ = kill.send(());
                    }
                }
                Event::Opened { stream, id } => {
                    if let Some(tx) = inner.opening.remove(&stream) {
                        let _ = tx.send(Some(id));
                    }
                }
                Event::OpenFailed(stream) => {
                    inner.streams.remove(&stream);
                    if let Some(tx) = inner.opening.remove(&stream) {
                        let _ = tx.send(None);
                    }
                    self.slot_freed.notify_waiters();
                }
                Event::Writable(stream) => {
                    if let Some(w) = inner
                        .streams
                        .get_mut(&stream)
                        .and_then(|s| s.write_waker.take())
                    {
                        w.wake();
                    }
                }
                Event::Eof(stream) => {
                    if let Some(w) = inner
                        .streams
                        .get_mut(&stream)
                        .and_then(|s| s.read_waker.take())
                    {
                        w.wake();
                    }
                }
                Event::Closed(stream) => {
                    inner.streams.remove(&stream);
                    self.slot_freed.notify_waiters();
                }
                Event::Resolved { lookup, records } => {
                    if let Some(tx) = inner.lookups.remove(&lookup) {
                        let _ = tx.send(records);
                    }
                }
                Event::SessionEnded(reason) => {
                    tracing::info!(session = self.session.as_str(), %reason, "HT session ended");
                    // Dropping the writers ends every connection; dropping
                    // the answer senders fails every open and lookup.
                    inner.writers.clear();
                    inner.opening.clear();
                    inner.lookups.clear();
                    for slot in inner.streams.values_mut() {
                        for w in [slot.read_waker.take(), slot.write_waker.take()]
                            .into_iter()
                            .flatten()
                        {
                            w.wake();
                        }
                    }
                    let code = HtError::from(&reason).code();
                    self.state.send_modify(|s| {
                        s.ended.get_or_insert((code, reason.to_string()));
                    });
                    self.slot_freed.notify_waiters();
                }
            }
        }
        let live = inner.machine.live_connections();
        // Pumps run for every chunk: take the watch's write lock only when
        // the live count moved.
        let seen = {
            let s = self.state.borrow();
            s.live == live && (live == 0 || s.was_live)
        };
        if seen {
            return;
        }
        self.state.send_if_modified(|s| {
            let changed = s.live != live || (live > 0 && !s.was_live);
            s.live = live;
            s.was_live |= live > 0;
            changed
        });
    }

    /// Opens a stream and waits for the server's answer: the machine's key
    /// and the server's stream id.
    pub(crate) async fn open_stream(
        &self,
        host: &str,
        proto: Proto,
        port: u16,
        datagrams: Option<(TargetAddr, mpsc::Sender<Datagram>)>,
        slot_wait: std::time::Duration,
    ) -> Result<(StreamKey, String), ConnectError> {
        let deadline = tokio::time::Instant::now() + slot_wait;
        let (key, answer) = loop {
            let freed = self.slot_freed.notified();
            let opened = {
                let mut inner = self.lock();
                match inner.machine.open(host, proto, port) {
                    Ok(key) => {
                        let (tx, rx) = oneshot::channel();
                        inner.opening.insert(key, tx);
                        inner.streams.insert(
                            key,
                            Slot {
                                datagrams: datagrams.clone(),
                                ..Slot::default()
                            },
                        );
                        self.pump(&mut inner);
                        Ok((key, rx))
                    }
                    Err(e) => Err(e),
                }
            };
            match opened {
                Ok(opened) => break opened,
                Err(OpenError::TooManyStreams(n)) => {
                    if tokio::time::timeout_at(deadline, freed).await.is_err() {
                        return Err(ConnectError::new(
                            ConnectErrorKind::Busy,
                            format!("all {n} HT streams are in use"),
                        ));
                    }
                }
                Err(OpenError::SessionEnded(reason)) => {
                    return Err(ConnectError::new(
                        ConnectErrorKind::Unavailable,
                        reason.to_string(),
                    ));
                }
                Err(OpenError::BadHost) => {
                    return Err(ConnectError::new(
                        ConnectErrorKind::Other,
                        format!("{host:?} cannot be sent over HT"),
                    ));
                }
            }
        };
        match tokio::time::timeout(self.config.open_timeout, answer).await {
            Ok(Ok(Some(id))) => Ok((key, id)),
            Ok(Ok(None)) => Err(ConnectError::new(
                ConnectErrorKind::Refused,
                "the HT server could not open the target (refused, unresolvable or not allowed)",
            )),
            Ok(Err(_)) => Err(ConnectError::new(
                ConnectErrorKind::Unavailable,
                self.ended()
                    .unwrap_or_else(|| "the HT session ended".into()),
            )),
            Err(_) => {
                let mut inner = self.lock();
                inner.streams.remove(&key);
                inner.opening.remove(&key);
                inner.machine.abort(key);
                self.pump(&mut inner);
                Err(ConnectError::new(
                    ConnectErrorKind::TimedOut,
                    format!(
                        "no answer from the HT server within {:?}",
                        self.config.open_timeout
                    ),
                ))
            }
        }
    }

    /// Sends a lookup and returns where its answer will come.
    pub(crate) fn lookup(
        &self,
        host: &str,
        kind: proto_ht::DnsType,
    ) -> Result<oneshot::Receiver<Option<Vec<String>>>, ConnectError> {
        let mut inner = self.lock();
        let key = inner.machine.resolve(host, kind).map_err(|e| {
            let kind = match e {
                OpenError::SessionEnded(_) => ConnectErrorKind::Unavailable,
                _ => ConnectErrorKind::Other,
            };
            ConnectError::new(kind, e.to_string())
        })?;
        let (tx, rx) = oneshot::channel();
        inner.lookups.insert(key, tx);
        self.pump(&mut inner);
        Ok(rx)
    }

    /// Queues `data` (or, with `fin`, the end of the upload) on `key`,
    /// waiting while the upload window is full.
    pub(crate) fn poll_send(
        &self,
        cx: &mut Context<'_>,
        key: StreamKey,
        data: &[u8],
        fin: bool,
    ) -> Poll<io::Result<usize>> {
        let mut inner = self.lock();
        if let Some(reason) = inner.machine.ended() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                reason.to_string(),
            )));
        }
        let n = data.len().min(proto_ht::query::MAX_PAYLOAD);
        let sent = if fin {
            inner.machine.shutdown(key)
        } else {
            inner.machine.send(key, &data[..n])
        };
        match sent {
            Ok(()) => {
                self.pump(&mut inner);
                Poll::Ready(Ok(n))
            }
            Err(SendError::Blocked) => {
                if let Some(slot) = inner.streams.get_mut(&key) {
                    slot.write_waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            Err(SendError::Closed | SendError::TooLarge(_)) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the HT stream is closed for writing",
            ))),
        }
    }

    /// A download payload for `stream`, handed to its reader (or its
    /// association, for UDP, dropped when that queue is full).
    pub(crate) fn deliver(&self, inner: &mut Inner, stream: StreamKey, payload: Bytes) {
        let Some(slot) = inner.streams.get_mut(&stream) else {
            inner.machine.consumed(stream, 1);
            return;
        };
        if let Some((target, tx)) = &slot.datagrams {
            let _ = tx.try_send(Datagram::new(target.clone(), payload));
            inner.machine.consumed(stream, 1);
            return;
        }
        slot.queue.push_back(payload);
        if let Some(w) = slot.read_waker.take() {
            w.wake();
        }
    }

    /// Gives up `key` from the application's side: the machine closes it
    /// once its upload was acknowledged, or after `close_linger` anyway.
    pub(crate) fn release(self: &Arc<Self>, key: StreamKey) {
        let mut inner = self.lock();
        inner.streams.remove(&key);
        inner.machine.close(key);
        self.pump(&mut inner);
        if inner.machine.is_draining(key)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let shared = Arc::downgrade(self);
            let linger = self.config.close_linger;
            runtime.spawn(async move {
                tokio::time::sleep(linger).await;
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                let mut inner = shared.lock();
                if inner.machine.is_draining(key) {
                    inner.machine.abort(key);
                    shared.pump(&mut inner);
                }
            });
        }
    }
}
