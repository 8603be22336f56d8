//! The session manager of one run: connects, keeps the session, follows
//! network changes (a probe, a reconnect without backoff), reconnects with
//! the policy's backoff, and gives up; then releases the run.

use std::sync::Arc;
use std::time::Duration;

use net::ErrorCode;
use rand::Rng;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::{Inner, NetworkSource, Slot};
use crate::backoff::ReconnectPolicy;
use crate::netwatch::NetworkChanges;
use crate::publish::{Inbound, Publication, Publisher};
use crate::state::{SessionState, unix_now};
use crate::table::Totals;
use crate::transport::{BoxFuture, Transport, TransportError, TunnelSession};

/// What the session manager keeps alive.
pub(super) enum Link {
    /// Tunnel sessions the local proxy serves through.
    Outbound(Arc<dyn Transport>),
    /// Publications, recording inbound connections.
    Publish(Arc<dyn Publisher>, Inbound),
}

/// One live session of a [`Link`].
pub(super) enum Live {
    Outbound(Arc<dyn TunnelSession>),
    Publish(Arc<dyn Publication>),
}

impl Link {
    fn server(&self) -> String {
        match self {
            Link::Outbound(t) => t.server(),
            Link::Publish(p, _) => p.server(),
        }
    }

    fn connect(&self) -> BoxFuture<'_, Result<Live, TransportError>> {
        Box::pin(async move {
            Ok(match self {
                Link::Outbound(t) => Live::Outbound(t.connect().await?),
                Link::Publish(p, inbound) => Live::Publish(p.connect(inbound.clone()).await?),
            })
        })
    }
}

impl Live {
    fn session_id(&self) -> String {
        match self {
            Live::Outbound(s) => s.session_id(),
            Live::Publish(p) => p.session_id(),
        }
    }

    fn closed(&self) -> BoxFuture<'_, String> {
        match self {
            Live::Outbound(s) => s.closed(),
            Live::Publish(p) => p.closed(),
        }
    }

    fn close(&self) {
        match self {
            Live::Outbound(s) => s.close(),
            Live::Publish(p) => p.close(),
        }
    }
}

/// The reconnect rules of one run.
pub(super) struct Supervisor {
    pub(super) policy: ReconnectPolicy,
    pub(super) retry_initial: bool,
}

impl Inner {
    /// The network changes a new run follows; the system's watcher is made
    /// once, on the first run.
    pub(super) fn network_changes(&self) -> Option<NetworkChanges> {
        let mut source = self.network.lock().unwrap_or_else(|e| e.into_inner());
        if let NetworkSource::System = *source {
            *source = match NetworkChanges::system() {
                Some(changes) => NetworkSource::Given(changes),
                None => NetworkSource::Off,
            };
        }
        match &*source {
            NetworkSource::Given(changes) => Some(changes.clone()),
            _ => None,
        }
    }

    /// Fills the current session's slot figures into `totals`.
    pub(super) fn add_slot_stats(&self, totals: &mut Totals) {
        if let Some(session) = &*self.current.borrow() {
            let stats = session.slot_stats();
            totals.connections = stats.connections;
            totals.slot_waits = stats.slot_waits;
            totals.evictions = stats.evictions;
        }
    }

    /// Makes `live` the current session: the proxy's (outbound) or the
    /// published endpoints (inbound).
    pub(super) fn set_live(&self, live: Option<&Live>) {
        let (session, endpoints) = match live {
            Some(Live::Outbound(s)) => (Some(s.clone()), Vec::new()),
            Some(Live::Publish(p)) => (None, p.endpoints()),
            None => (None, Vec::new()),
        };
        self.current.send_replace(session);
        *self.endpoints.lock().unwrap_or_else(|e| e.into_inner()) = endpoints;
    }
}

/// How long a session has to answer the probe after a network change.
const PROBE_DEADLINE: Duration = Duration::from_secs(3);

/// Resolves at the next network change; never without a watcher.
async fn network_changed(network: &mut Option<NetworkChanges>) {
    match network {
        Some(changes) => changes.changed().await,
        None => std::future::pending().await,
    }
}

pub(super) async fn drive_sessions(
    inner: Arc<Inner>,
    id: u64,
    link: Link,
    supervisor: Supervisor,
    mut network: Option<NetworkChanges>,
    cancel: CancellationToken,
) {
    let Supervisor {
        policy,
        retry_initial,
    } = supervisor;
    let server = link.server();
    let mut attempt: u32 = 0;
    let mut ever_active = false;
    let final_reason = 'sessions: loop {
        inner.set_state(SessionState::Authenticating {
            server: server.clone(),
        });
        let connected = tokio::select! {
            _ = cancel.cancelled() => break None,
            result = link.connect() => result,
        };
        let last_error = match connected {
            Ok(live) => {
                attempt = 0;
                ever_active = true;
                inner.set_live(Some(&live));
                let max_streams = match &live {
                    Live::Outbound(s) => s.max_streams(),
                    Live::Publish(_) => 0,
                };
                inner.set_state(SessionState::Active {
                    session_id: live.session_id(),
                    gateway: server.clone(),
                    max_streams,
                    since_unix: unix_now(),
                });
                // Until when a lost session counts as lost to the probe.
                let mut probing_until: Option<tokio::time::Instant> = None;
                let reason = loop {
                    tokio::select! {
                        _ = cancel.cancelled() => {
                            live.close();
                            inner.set_live(None);
                            break 'sessions None;
                        }
                        reason = live.closed() => break reason,
                        _ = network_changed(&mut network) => {
                            // The path may be gone: ask now rather than
                            // wait out the keepalive.
                            if let Live::Outbound(session) = &live
                                && session.probe(PROBE_DEADLINE)
                            {
                                info!("the network changed: checking the session");
                                probing_until =
                                    Some(tokio::time::Instant::now() + PROBE_DEADLINE * 2);
                            }
                        }
                    }
                };
                inner.set_live(None);
                inner.error(ErrorCode::SessionLost, &reason);
                if probing_until.is_some_and(|until| tokio::time::Instant::now() <= until) {
                    // Lost to a probe after a network change: the old path
                    // is gone, a new one may be up already; no backoff.
                    info!("the session did not survive the network change: reconnecting now");
                    attempt = 0;
                    continue;
                }
                reason
            }
            Err(e) => {
                inner.error(e.code, &e.message);
                if e.is_fatal() || (!ever_active && !retry_initial) {
                    break Some(format!("{}: {}", e.code, e.message));
                }
                e.message
            }
        };
        attempt += 1;
        let unit: f64 = rand::rng().random();
        let Some(delay) = policy.delay(attempt, unit) else {
            let message = format!("gave up after {} attempts: {last_error}", attempt - 1);
            inner.error(ErrorCode::ReconnectFailed, &message);
            break Some(message);
        };
        inner.set_state(SessionState::Reconnecting {
            attempt,
            max_attempts: if policy.keep_trying {
                0
            } else {
                policy.max_attempts
            },
            retry_in_secs: delay.as_secs_f64(),
            last_error,
        });
        tokio::select! {
            _ = cancel.cancelled() => break None,
            _ = tokio::time::sleep(delay) => {}
            _ = network_changed(&mut network) => {
                // A new network is a new chance: retry now, with the
                // attempts counted afresh.
                info!("the network changed: reconnecting now");
                attempt = 0;
            }
        }
    };
    inner.set_live(None);
    let state = SessionState::Disconnected {
        reason: final_reason,
    };
    if cancel.is_cancelled() {
        // `stop` holds the slot and waits for this task.
        inner.set_state(state);
        return;
    }
    // Ended on its own: release this run (ticker, proxy port) before saying
    // `Disconnected`, so that whoever sees that state can start again.
    cancel.cancel();
    let proxy = match &mut *inner.slot() {
        Slot::Running(r) if r.id == id => {
            r.warnings.clear();
            r.proxy.take()
        }
        _ => None,
    };
    if let Some((proxy, _)) = proxy {
        proxy.shutdown().await;
    }
    let mut slot = inner.slot();
    if matches!(&*slot, Slot::Running(r) if r.id == id) {
        // The handles are dropped, not awaited: this task is one of them and
        // the ticker ends on the cancellation.
        *slot = Slot::Idle;
    }
    // Under the slot's lock: a new run's states cannot come before this one.
    inner.set_state(state);
    drop(slot);
}
