//! A bounded pool of sessions to one gateway, as one engine session.
//!
//! A gateway grants each session a few stream slots (8 by default), and a
//! browser keeps far more connections open: 6 per origin, idle between
//! requests. When every slot of every session is busy, the pool opens
//! another session to the same gateway (with device login each fetches its
//! own token), up to [`ClientConfig::max_connections`]; past that the new
//! stream waits, and the tunnel it waits on closes its longest-idle stream
//! for it ([`ClientConfig::evict_idle_after`]). A burst of waiting streams
//! opens as many sessions at once as it needs (one per `max_streams`
//! waiting streams): a page opening 48 connections used to set up its
//! extra sessions one after the other, each a TCP, TLS and `hello` round
//! trip, while the whole page waited. The first session is the
//! pool's identity: its id is the engine's session id and its loss ends the
//! pool (the engine then reconnects); an extra session that ends is dropped,
//! and one left without streams for [`ClientConfig::retire_extra_after`] is
//! closed.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use engine::transport::{BoxFuture, OpenedStream, SlotStats, TunnelSession};
use local_proxy::{ConnectError, ConnectErrorKind};
use net::TargetAddr;
use tracing::{debug, info, warn};

use crate::transport::{HttvpsAuth, connect_error, connect_tunnel};
use crate::{ClientConfig, ClientError, Tunnel};

/// A session opened because every slot was busy.
struct Extra {
    tunnel: Tunnel,
    /// Since when it has had no open stream.
    empty_since: Option<Instant>,
}

/// How far the pool is growing.
#[derive(Debug, Default)]
struct Growth {
    /// Streams that found every slot busy and wait for a session.
    waiting: usize,
    /// Sessions being opened.
    opening: usize,
    /// The gateway refused an extra session (a single-use token): the pool
    /// stops growing.
    refused: bool,
}

/// Counts its stream as waiting while it lives.
struct Waiting<'a>(&'a Pool);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.growth().waiting -= 1;
    }
}

/// One session being opened: counted while it lives, and its end (ready,
/// failed, or abandoned with the stream that opened it) wakes the waiting
/// streams.
struct Opening<'a>(&'a Pool);

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        self.0.growth().opening -= 1;
        self.0.grown.notify_waiters();
    }
}

/// Sessions to one gateway, opened as stream slots run out.
pub(crate) struct Pool {
    primary: Tunnel,
    /// Sessions opened because every slot was busy.
    extra: Mutex<Vec<Extra>>,
    /// Streams waiting for a slot and sessions being opened for them.
    growth: Mutex<Growth>,
    /// Signalled when a session being opened is ready or has failed.
    grown: tokio::sync::Notify,
    config: ClientConfig,
    auth: HttvpsAuth,
    /// Rotates which full session a waiting stream queues on.
    next: AtomicUsize,
    slot_waits: AtomicU64,
}

impl Pool {
    pub(crate) fn new(primary: Tunnel, config: ClientConfig, auth: HttvpsAuth) -> Pool {
        Pool {
            primary,
            extra: Mutex::new(Vec::new()),
            growth: Mutex::new(Growth::default()),
            grown: tokio::sync::Notify::new(),
            config,
            auth,
            next: AtomicUsize::new(0),
            slot_waits: AtomicU64::new(0),
        }
    }

    /// The live sessions, the primary first; ended extras are dropped, and
    /// extras empty for `retire_extra_after` closed (they hold a connection
    /// and a gateway session for nothing).
    fn tunnels(&self) -> Vec<Tunnel> {
        let now = Instant::now();
        let mut extra = self.extra.lock().unwrap_or_else(|e| e.into_inner());
        extra.retain_mut(|e| {
            if !e.tunnel.is_active() {
                return false;
            }
            if e.tunnel.open_streams() > 0 {
                e.empty_since = None;
                return true;
            }
            let since = *e.empty_since.get_or_insert(now);
            if now.duration_since(since) >= self.config.retire_extra_after {
                debug!(session = %e.tunnel.session_id(), "extra session unused; closing it");
                e.tunnel.close();
                return false;
            }
            true
        });
        std::iter::once(self.primary.clone())
            .chain(extra.iter().map(|e| e.tunnel.clone()))
            .collect()
    }

    fn with_free_slot(&self) -> Option<Tunnel> {
        self.tunnels().into_iter().find(Tunnel::has_free_slot)
    }

    fn growth(&self) -> std::sync::MutexGuard<'_, Growth> {
        self.growth.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A session with a free slot, opening another one when the sessions
    /// already being opened cannot serve every waiting stream; `None` when
    /// the pool may not grow (full, or the gateway refused one before) and
    /// nothing is on its way.
    async fn grow(&self) -> Option<Tunnel> {
        self.growth().waiting += 1;
        let _waiting = Waiting(self);
        let slots = usize::try_from(self.primary.max_streams())
            .unwrap_or(usize::MAX)
            .max(1);
        loop {
            // Armed before looking, so that a session ready meanwhile wakes us.
            let grown = self.grown.notified();
            tokio::pin!(grown);
            grown.as_mut().enable();
            // Another stream may have grown the pool (or a slot freed) meanwhile.
            if let Some(tunnel) = self.with_free_slot() {
                return Some(tunnel);
            }
            let live = self.tunnels().len();
            let opening = {
                let mut growth = self.growth();
                let may_grow =
                    !growth.refused && live + growth.opening < self.config.max_connections.max(1);
                if may_grow && growth.opening.saturating_mul(slots) < growth.waiting {
                    growth.opening += 1;
                    Some(Opening(self))
                } else if growth.opening == 0 {
                    return None;
                } else {
                    None
                }
            };
            match opening {
                Some(opening) => return self.open_extra(opening).await,
                None => grown.await,
            }
        }
    }

    /// Opens one more session (counted by `opening`) and adds it to the pool.
    async fn open_extra(&self, opening: Opening<'_>) -> Option<Tunnel> {
        let opened = connect_tunnel(&self.config, &self.auth).await;
        let tunnel = match opened {
            Ok(tunnel) => {
                info!(session = %tunnel.session_id(), pool = %self.primary.session_id(), "every stream slot busy: opened another session");
                self.extra
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(Extra {
                        tunnel: tunnel.clone(),
                        empty_since: None,
                    });
                Some(tunnel)
            }
            Err(e) => {
                // A single-use token cannot open a second session; the
                // waiting streams fall back to the busy ones.
                warn!(error = %e, "could not open another session; streams wait for a slot instead");
                self.growth().refused = true;
                None
            }
        };
        drop(opening);
        tunnel
    }

    async fn open_stream(
        &self,
        target: TargetAddr,
        slot_wait: Duration,
    ) -> Result<crate::Stream, ClientError> {
        if let Some(tunnel) = self.with_free_slot() {
            return tunnel.open_wait(target, slot_wait).await;
        }
        self.slot_waits.fetch_add(1, Ordering::Relaxed);
        if let Some(tunnel) = self.grow().await {
            return tunnel.open_wait(target, slot_wait).await;
        }
        let tunnels = self.tunnels();
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % tunnels.len();
        debug!(session = %tunnels[turn].session_id(), "every stream slot busy; waiting");
        tunnels[turn].open_wait(target, slot_wait).await
    }
}

impl TunnelSession for Pool {
    fn session_id(&self) -> String {
        self.primary.session_id().to_owned()
    }

    fn max_streams(&self) -> u32 {
        self.primary.max_streams()
    }

    fn open(
        &self,
        target: TargetAddr,
        slot_wait: Duration,
    ) -> BoxFuture<'_, Result<OpenedStream, ConnectError>> {
        Box::pin(async move {
            let stream = self
                .open_stream(target, slot_wait)
                .await
                .map_err(|e| match e {
                    ClientError::StreamLimitTimeout(_) => {
                        ConnectError::new(ConnectErrorKind::Busy, e.to_string())
                    }
                    ClientError::SessionClosed(_) => {
                        ConnectError::new(ConnectErrorKind::Unavailable, e.to_string())
                    }
                    other => ConnectError::new(ConnectErrorKind::Other, other.to_string()),
                })?;
            stream.ready().await.map_err(connect_error)?;
            Ok(OpenedStream {
                stream_id: stream.id().to_owned(),
                stream: Box::new(stream),
            })
        })
    }

    fn closed(&self) -> BoxFuture<'_, String> {
        Box::pin(async move { self.primary.closed().await.to_string() })
    }

    fn close(&self) {
        for tunnel in self.tunnels() {
            tunnel.close();
        }
    }

    fn probe(&self, deadline: Duration) -> bool {
        // Every connection took the same path; the primary's end is the
        // session's, and a dead extra is dropped from the pool.
        for tunnel in self.tunnels() {
            tunnel.probe(deadline);
        }
        true
    }

    fn slot_stats(&self) -> SlotStats {
        let tunnels = self.tunnels();
        SlotStats {
            connections: u32::try_from(tunnels.len()).unwrap_or(u32::MAX),
            slot_waits: self.slot_waits.load(Ordering::Relaxed),
            evictions: tunnels.iter().map(Tunnel::evictions).sum(),
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Extra sessions end with the pool (the primary ends with its last handle).
        for extra in self
            .extra
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            extra.tunnel.close();
        }
    }
}
