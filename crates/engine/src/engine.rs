//! The engine: one local proxy, one session manager, one stream table.
//!
//! The session manager runs the seed 004 lifecycle: `Authenticating` →
//! `Active` → on loss `Reconnecting` (backoff with jitter) → `Active` again,
//! or `Disconnected` when the credentials are refused or the attempts run
//! out. The proxy keeps listening throughout; while there is no session, new
//! connections wait a bounded time and then fail with a clear error.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use local_proxy::{LocalProxy, ProxyConfig, ProxyHandle};
use net::ErrorCode;
use rand::Rng;
use serde::Serialize;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::backoff::ReconnectPolicy;
use crate::connector::EngineConnector;
use crate::events::{EVENT_BUFFER, EngineEvent};
use crate::state::{SessionState, unix_now};
use crate::table::{StreamInfo, StreamTable, Totals};
use crate::transport::{Transport, TunnelSession};

/// How often stream counters are published while streams are open.
const STATS_INTERVAL: Duration = Duration::from_millis(250);

/// What [`Engine::start`] needs.
pub struct StartOptions {
    /// How to reach the far side.
    pub transport: Arc<dyn Transport>,
    /// The local proxy's settings.
    pub proxy: ProxyConfig,
    /// When and how often to reconnect.
    pub reconnect: ReconnectPolicy,
    /// Whether a failed *first* connect is retried like a lost session
    /// (otherwise the engine goes straight to `Disconnected`).
    pub retry_initial: bool,
    /// How long a new proxy connection waits for a free stream slot.
    pub slot_wait: Duration,
    /// How long a new proxy connection waits while reconnecting.
    pub reconnect_wait: Duration,
}

/// The engine could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// `start` was called while running.
    #[error("the tunnel is already running; disconnect first")]
    AlreadyRunning,
    /// The local proxy could not listen.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Everything a front-end shows, at one instant.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Snapshot {
    /// The session state.
    pub state: SessionState,
    /// Where the local proxy listens, while running.
    #[cfg_attr(feature = "ts", ts(type = "string | null"))]
    pub proxy_addr: Option<SocketAddr>,
    /// Open streams.
    pub open: Vec<StreamInfo>,
    /// Recently closed streams, oldest first.
    pub closed: Vec<StreamInfo>,
    /// Totals.
    pub totals: Totals,
}

struct Running {
    cancel: CancellationToken,
    proxy: ProxyHandle,
    proxy_addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

struct Inner {
    table: StreamTable,
    state: watch::Sender<SessionState>,
    current: watch::Sender<Option<Arc<dyn TunnelSession>>>,
    events: broadcast::Sender<EngineEvent>,
    running: Mutex<Option<Running>>,
}

impl Inner {
    fn set_state(&self, state: SessionState) {
        info!(state = state.name(), "session state");
        self.state.send_replace(state.clone());
        let _ = self.events.send(EngineEvent::State(state));
    }

    fn error(&self, code: ErrorCode, message: &str) {
        warn!(code = code.as_str(), message, "tunnel error");
        let _ = self.events.send(EngineEvent::Error {
            code,
            message: message.to_owned(),
        });
    }
}

/// The client engine. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

impl Engine {
    /// A stopped engine.
    pub fn new() -> Engine {
        let (state, _) = watch::channel(SessionState::Disconnected { reason: None });
        let (current, _) = watch::channel(None);
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Engine {
            inner: Arc::new(Inner {
                table: StreamTable::default(),
                state,
                current,
                events,
                running: Mutex::new(None),
            }),
        }
    }

    /// Subscribes to events (state changes, streams, errors).
    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.inner.events.subscribe()
    }

    /// Watches the session state.
    pub fn watch_state(&self) -> watch::Receiver<SessionState> {
        self.inner.state.subscribe()
    }

    /// The session state now.
    pub fn state(&self) -> SessionState {
        self.inner.state.borrow().clone()
    }

    /// Where the local proxy listens, while running.
    pub fn proxy_addr(&self) -> Option<SocketAddr> {
        self.running().as_ref().map(|r| r.proxy_addr)
    }

    fn running(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.inner.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// State, streams and totals now.
    pub fn snapshot(&self) -> Snapshot {
        let (open, closed, totals) = self.inner.table.snapshot();
        Snapshot {
            state: self.state(),
            proxy_addr: self.proxy_addr(),
            open,
            closed,
            totals,
        }
    }

    /// Binds the local proxy and starts the session manager. Returns the
    /// proxy's address at once; follow [`Engine::watch_state`] for the session.
    pub async fn start(&self, options: StartOptions) -> Result<SocketAddr, EngineError> {
        if self.running().is_some() {
            return Err(EngineError::AlreadyRunning);
        }
        let connector = EngineConnector {
            current: self.inner.current.subscribe(),
            table: self.inner.table.clone(),
            events: self.inner.events.clone(),
            reconnect_wait: options.reconnect_wait,
            slot_wait: options.slot_wait,
        };
        let listen = options.proxy.listen;
        let proxy = LocalProxy::bind(options.proxy, Arc::new(connector))
            .await
            .map_err(|source| EngineError::Listen {
                addr: listen,
                source,
            })?;
        let proxy_addr = proxy.local_addr();
        let cancel = CancellationToken::new();
        let manager = tokio::spawn(drive_sessions(
            self.inner.clone(),
            options.transport,
            options.reconnect,
            options.retry_initial,
            cancel.clone(),
        ));
        let ticker = tokio::spawn(drive_stats(self.inner.clone(), cancel.clone()));
        let mut running = self.running();
        if running.is_some() {
            cancel.cancel();
            return Err(EngineError::AlreadyRunning);
        }
        *running = Some(Running {
            cancel,
            proxy: proxy.spawn(),
            proxy_addr,
            tasks: vec![manager, ticker],
        });
        info!(%proxy_addr, "local proxy listening");
        Ok(proxy_addr)
    }

    /// Stops everything: the session, the proxy and its connections.
    pub async fn stop(&self) {
        let Some(running) = self.running().take() else {
            return;
        };
        running.cancel.cancel();
        running.proxy.shutdown().await;
        for task in running.tasks {
            let _ = task.await;
        }
    }

    /// Waits until the session is `Active` or `Disconnected` (the outcome of
    /// a connect), and returns that state.
    pub async fn settled(&self) -> SessionState {
        let mut state = self.watch_state();
        let result = state
            .wait_for(|s| {
                matches!(
                    s,
                    SessionState::Active { .. } | SessionState::Disconnected { .. }
                )
            })
            .await
            .map(|s| s.clone());
        result.unwrap_or(SessionState::Disconnected { reason: None })
    }
}

async fn drive_sessions(
    inner: Arc<Inner>,
    transport: Arc<dyn Transport>,
    policy: ReconnectPolicy,
    retry_initial: bool,
    cancel: CancellationToken,
) {
    let server = transport.server();
    let mut attempt: u32 = 0;
    let mut ever_active = false;
    let final_reason = loop {
        inner.set_state(SessionState::Authenticating {
            server: server.clone(),
        });
        let connected = tokio::select! {
            _ = cancel.cancelled() => break None,
            result = transport.connect() => result,
        };
        let last_error = match connected {
            Ok(session) => {
                attempt = 0;
                ever_active = true;
                inner.current.send_replace(Some(session.clone()));
                inner.set_state(SessionState::Active {
                    session_id: session.session_id(),
                    gateway: server.clone(),
                    max_streams: session.max_streams(),
                    since_unix: unix_now(),
                });
                let reason = tokio::select! {
                    _ = cancel.cancelled() => {
                        session.close();
                        inner.current.send_replace(None);
                        break None;
                    }
                    reason = session.closed() => reason,
                };
                inner.current.send_replace(None);
                inner.error(ErrorCode::SessionLost, &reason);
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
            max_attempts: policy.max_attempts,
            retry_in_secs: delay.as_secs_f64(),
            last_error,
        });
        tokio::select! {
            _ = cancel.cancelled() => break None,
            _ = tokio::time::sleep(delay) => {}
        }
    };
    inner.current.send_replace(None);
    inner.set_state(SessionState::Disconnected {
        reason: final_reason,
    });
}

/// Publishes stream counters a few times a second while streams are open.
async fn drive_stats(inner: Arc<Inner>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(STATS_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last: Option<(u64, u64, u64)> = None;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        if inner.events.receiver_count() == 0 {
            continue;
        }
        let (open, _, totals) = inner.table.snapshot();
        let fingerprint = (totals.bytes_up, totals.bytes_down, open.len() as u64);
        // Publish while anything moves, plus once after it stops (rates drop to zero).
        if last == Some(fingerprint) && open.iter().all(|s| s.rate_up == 0.0 && s.rate_down == 0.0)
        {
            continue;
        }
        last = Some(fingerprint);
        let _ = inner.events.send(EngineEvent::Streams { open, totals });
    }
}
