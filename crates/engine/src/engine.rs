//! The engine: one session manager, one stream table, and either a local
//! proxy (outbound: [`Engine::start`]) or a publication (inbound:
//! [`Engine::publish`]).
//!
//! The session manager runs the seed 004 lifecycle for both: `Authenticating`
//! → `Active` → on loss `Reconnecting` (backoff with jitter) → `Active`
//! again, or `Disconnected` when the credentials are refused or the attempts
//! run out. The proxy keeps listening throughout; while there is no session,
//! new connections wait a bounded time and then fail with a clear error.
//!
//! When the session manager ends on its own (`Disconnected` with a reason),
//! the engine releases everything of that run (proxy port, ticker) and is
//! ready for the next `start` by the time the state says `Disconnected`.
//!
//! One run at a time: `start` and `publish` reserve the engine's single slot
//! before anything else (before `start` binds the proxy), so concurrent
//! starts cannot both proceed; `stop` keeps the slot until the run is gone.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use local_proxy::{LocalProxy, ProxyConfig, ProxyHandle};
use net::ErrorCode;
use serde::Serialize;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Semaphore, broadcast, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::backoff::ReconnectPolicy;
use crate::connector::EngineConnector;
use crate::dns::{DnsLimits, DnsServer};
use crate::events::{EVENT_BUFFER, EngineEvent};
use crate::netwatch::NetworkChanges;
use crate::publish::{Inbound, Publisher};
use crate::state::SessionState;
use crate::table::{StreamInfo, StreamTable, Totals};
use crate::transport::{Transport, TunnelSession};
use crate::warning::Warning;

mod sessions;

use sessions::{Link, Supervisor, drive_sessions};

/// How often stream rates are sampled (and counters published while streams
/// move).
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

/// What [`Engine::publish`] needs.
pub struct PublishOptions {
    /// What to publish, through which server.
    pub publisher: Arc<dyn Publisher>,
    /// When and how often to reconnect.
    pub reconnect: ReconnectPolicy,
    /// Whether a failed *first* connect is retried like a lost publication.
    pub retry_initial: bool,
}

/// The engine could not start, or could not do what it was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// [`Engine::close_stream`] named a row that is not open (it ended,
    /// or never was).
    #[error("connection {key} is not open (it has ended already)")]
    StreamGone {
        /// The row's key.
        key: u64,
    },
    /// `start` was called while running.
    #[error("the tunnel is already running; disconnect first")]
    AlreadyRunning,
    /// Something needs a running outbound tunnel and none runs.
    #[error("the tunnel is not running")]
    NotRunning,
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
    /// Where the local proxy listens, while running outbound.
    #[cfg_attr(feature = "ts", ts(type = "string | null"))]
    pub proxy_addr: Option<SocketAddr>,
    /// Where others reach what is published, while a publication is active.
    pub endpoints: Vec<String>,
    /// What the current run exposes (a proxy or DNS server open to the
    /// network), while it runs.
    pub warnings: Vec<Warning>,
    /// Open streams.
    pub open: Vec<StreamInfo>,
    /// Recently closed streams, oldest first.
    pub closed: Vec<StreamInfo>,
    /// Totals.
    pub totals: Totals,
}

struct Running {
    /// Which run this is (to tell a run's own release from a newer run's).
    id: u64,
    cancel: CancellationToken,
    /// The local proxy and its address (outbound only).
    proxy: Option<(ProxyHandle, SocketAddr)>,
    /// What this run exposes (see [`Engine::warnings`]).
    warnings: Vec<Warning>,
    tasks: Vec<JoinHandle<()>>,
}

/// The engine's single run slot.
enum Slot {
    /// Nothing runs: `start` or `publish` may take the slot.
    Idle,
    /// A `start` reserved the slot and is binding the proxy.
    Starting,
    /// A run is live.
    Running(Running),
    /// `stop` is winding a run down.
    Stopping,
}

struct Inner {
    table: StreamTable,
    state: watch::Sender<SessionState>,
    current: watch::Sender<Option<Arc<dyn TunnelSession>>>,
    /// The active publication's endpoints.
    endpoints: Mutex<Vec<String>>,
    events: broadcast::Sender<EngineEvent>,
    running: Mutex<Slot>,
    /// The id of the last run.
    runs: AtomicU64,
    /// Where runs learn of network changes (see [`Engine::watch_network`]).
    network: Mutex<NetworkSource>,
}

/// Which network changes the engine follows.
enum NetworkSource {
    /// The system's, from the next run on (made inside the runtime).
    System,
    /// These (tests; a platform notification fed by the caller).
    Given(NetworkChanges),
    /// None, the default: sessions rely on their keepalive.
    Off,
}

impl Inner {
    fn slot(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the slot if it is free, leaving `Starting` in it; the guard
    /// gives the slot back unless it is filled.
    fn reserve(self: &Arc<Self>) -> Result<Reservation, EngineError> {
        let mut slot = self.slot();
        if !matches!(*slot, Slot::Idle) {
            return Err(EngineError::AlreadyRunning);
        }
        *slot = Slot::Starting;
        Ok(Reservation {
            inner: Some(self.clone()),
        })
    }

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
                endpoints: Mutex::new(Vec::new()),
                events,
                running: Mutex::new(Slot::Idle),
                runs: AtomicU64::new(0),
                network: Mutex::new(NetworkSource::Off),
            }),
        }
    }

    /// Follows this machine's network from the next run on (the app and
    /// the CLI do; a library user opts in): on a change, an active session
    /// is probed at once (see [`TunnelSession::probe`]) and a waiting
    /// reconnect is tried at once, with its attempts counted afresh.
    pub fn watch_system_network(&self) {
        *self.inner.network.lock().unwrap_or_else(|e| e.into_inner()) = NetworkSource::System;
    }

    /// Follows `changes` instead (`None`: nothing), as
    /// [`Engine::watch_system_network`] does.
    pub fn watch_network(&self, changes: Option<NetworkChanges>) {
        *self.inner.network.lock().unwrap_or_else(|e| e.into_inner()) = match changes {
            Some(c) => NetworkSource::Given(c),
            None => NetworkSource::Off,
        };
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
        match &*self.inner.slot() {
            Slot::Running(r) => r.proxy.as_ref().map(|(_, addr)| *addr),
            _ => None,
        }
    }

    /// What the current run exposes to the network, logged at warn level
    /// when it began: a local proxy beyond loopback without credentials, a
    /// DNS server beyond loopback. Empty when nothing runs.
    pub fn warnings(&self) -> Vec<Warning> {
        match &*self.inner.slot() {
            Slot::Running(r) => r.warnings.clone(),
            _ => Vec::new(),
        }
    }

    /// Whether a run holds the engine (starting, live, or being stopped):
    /// `false` once the session manager ended on its own or `stop` returned.
    pub fn is_running(&self) -> bool {
        !matches!(*self.inner.slot(), Slot::Idle)
    }

    /// Where others reach what is published, while a publication is active.
    pub fn endpoints(&self) -> Vec<String> {
        self.inner
            .endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// State, streams and totals now; rates as of the stats ticker's last
    /// sample (reading changes nothing).
    pub fn snapshot(&self) -> Snapshot {
        let (open, closed, mut totals) = self.inner.table.snapshot();
        self.inner.add_slot_stats(&mut totals);
        Snapshot {
            state: self.state(),
            proxy_addr: self.proxy_addr(),
            endpoints: self.endpoints(),
            warnings: self.warnings(),
            open,
            closed,
            totals,
        }
    }

    /// Closes one live row's connection (the app's ×, `httvps streams
    /// --close`): both of its ends are dropped as soon as its copy loop
    /// next waits on it, and the row closes with the reason
    /// [`crate::table::CLOSED_ON_REQUEST`] (see [`StreamTable::request_close`]).
    /// Returns the row as it was when asked.
    pub fn close_stream(&self, key: u64) -> Result<StreamInfo, EngineError> {
        self.inner
            .table
            .request_close(key)
            .ok_or(EngineError::StreamGone { key })
    }

    /// Binds the local proxy and starts the session manager. Returns the
    /// proxy's address at once; follow [`Engine::watch_state`] for the session.
    ///
    /// A proxy that listens beyond loopback without credentials is logged
    /// at warn level and kept in [`Engine::warnings`]: anyone who can reach
    /// it can use the tunnel.
    pub async fn start(&self, options: StartOptions) -> Result<SocketAddr, EngineError> {
        // Reserved before the bind: a concurrent start fails at once and
        // binds nothing; a failed (or abandoned) bind frees the slot.
        let reservation = self.inner.reserve()?;
        let connector = EngineConnector {
            current: self.inner.current.subscribe(),
            table: self.inner.table.clone(),
            events: self.inner.events.clone(),
            reconnect_wait: options.reconnect_wait,
            slot_wait: options.slot_wait,
            // The proxy serves these rules as its PAC file; the connector
            // applies the same ones.
            router: options.proxy.rules.clone(),
        };
        let listen = options.proxy.listen;
        let open_to_network = options.proxy.open_to_network();
        let proxy = LocalProxy::bind(options.proxy, Arc::new(connector))
            .await
            .map_err(|source| EngineError::Listen {
                addr: listen,
                source,
            })?;
        let proxy_addr = proxy.local_addr();
        let mut warnings = Vec::new();
        if open_to_network {
            let warning = Warning::open_proxy(proxy_addr);
            warn!(code = warning.code.as_str(), %proxy_addr, "{}", warning.message);
            warnings.push(warning);
        }
        let link = Link::Outbound(options.transport);
        let supervisor = Supervisor {
            policy: options.reconnect,
            retry_initial: options.retry_initial,
        };
        self.launch(
            reservation,
            link,
            supervisor,
            Some((proxy.spawn(), proxy_addr)),
            warnings,
        );
        info!(%proxy_addr, "local proxy listening");
        Ok(proxy_addr)
    }

    /// Serves plain DNS (UDP and TCP, one port) on `listen` for as long as
    /// the current run lasts, answered through the session's
    /// [`Resolver`](crate::Resolver). Call after [`Engine::start`]; returns
    /// the bound address (port 0 picks one). A DNS server beyond loopback
    /// (which has no authentication) is logged at warn level and kept in
    /// [`Engine::warnings`].
    pub async fn serve_dns(
        &self,
        listen: SocketAddr,
        limits: DnsLimits,
    ) -> Result<SocketAddr, EngineError> {
        let listen_error = |source| EngineError::Listen {
            addr: listen,
            source,
        };
        let (udp, tcp, addr) = bind_udp_and_tcp(listen).await.map_err(listen_error)?;
        let server = DnsServer {
            current: self.inner.current.subscribe(),
            table: self.inner.table.clone(),
            events: self.inner.events.clone(),
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight.max(1))),
            limits,
        };
        let mut slot = self.inner.slot();
        let Slot::Running(running) = &mut *slot else {
            return Err(EngineError::NotRunning);
        };
        let cancel = running.cancel.clone();
        running
            .tasks
            .push(tokio::spawn(server.run(udp, tcp, cancel)));
        if local_proxy::beyond_loopback(addr.ip()) {
            let warning = Warning::open_dns(addr);
            warn!(code = warning.code.as_str(), %addr, "{}", warning.message);
            running.warnings.push(warning);
        }
        info!(%addr, "dns listening");
        Ok(addr)
    }

    /// Starts publishing: the session manager keeps a publication of
    /// `options.publisher` alive; its inbound connections show in the table.
    pub fn publish(&self, options: PublishOptions) -> Result<(), EngineError> {
        let reservation = self.inner.reserve()?;
        let inbound = Inbound::new(self.inner.table.clone(), self.inner.events.clone());
        let link = Link::Publish(options.publisher, inbound);
        let supervisor = Supervisor {
            policy: options.reconnect,
            retry_initial: options.retry_initial,
        };
        self.launch(reservation, link, supervisor, None, Vec::new());
        Ok(())
    }

    /// Spawns the session manager and the stats ticker into the reserved slot.
    fn launch(
        &self,
        mut reservation: Reservation,
        link: Link,
        supervisor: Supervisor,
        proxy: Option<(ProxyHandle, SocketAddr)>,
        warnings: Vec<Warning>,
    ) {
        let id = self.inner.runs.fetch_add(1, Ordering::Relaxed) + 1;
        let cancel = CancellationToken::new();
        let network = self.inner.network_changes();
        // Holding the slot's lock while spawning: the manager's own release
        // (if it ends at once) waits until the run is in the slot.
        let mut slot = self.inner.slot();
        let manager = tokio::spawn(drive_sessions(
            self.inner.clone(),
            id,
            link,
            supervisor,
            network,
            cancel.clone(),
        ));
        let ticker = tokio::spawn(drive_stats(self.inner.clone(), cancel.clone()));
        *slot = Slot::Running(Running {
            id,
            cancel,
            proxy,
            warnings,
            tasks: vec![manager, ticker],
        });
        reservation.inner = None;
    }

    /// Stops everything: the session, the proxy and its connections. The
    /// engine counts as running until this returns.
    pub async fn stop(&self) {
        let running = {
            let mut slot = self.inner.slot();
            match std::mem::replace(&mut *slot, Slot::Idle) {
                Slot::Running(running) => {
                    *slot = Slot::Stopping;
                    running
                }
                other => {
                    *slot = other;
                    return;
                }
            }
        };
        // Frees the slot when done, or if this future is dropped midway.
        let _release = Reservation {
            inner: Some(self.inner.clone()),
        };
        running.cancel.cancel();
        if let Some((proxy, _)) = running.proxy {
            proxy.shutdown().await;
        }
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

/// Holds the slot in `Starting` (or `Stopping`) and frees it when dropped,
/// unless it was filled.
struct Reservation {
    inner: Option<Arc<Inner>>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            *inner.slot() = Slot::Idle;
        }
    }
}

/// A UDP socket and a TCP listener on the same address. With port 0 the
/// UDP port is picked first and may be taken for TCP: then another pair is
/// tried, a few times.
async fn bind_udp_and_tcp(
    listen: SocketAddr,
) -> std::io::Result<(UdpSocket, TcpListener, SocketAddr)> {
    let mut attempts = if listen.port() == 0 { 16 } else { 1 };
    loop {
        let udp = UdpSocket::bind(listen).await?;
        let addr = udp.local_addr()?;
        match TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((udp, tcp, addr)),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && attempts > 1 => attempts -= 1,
            Err(e) => return Err(e),
        }
    }
}

/// The rate sampler: measures stream rates on its cadence (the only caller of
/// [`StreamTable::sample`]), and publishes counters a few times a second
/// while streams move.
async fn drive_stats(inner: Arc<Inner>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(STATS_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last: Option<(u64, u64, u64, u64)> = None;
    // Nothing is open and the last figures are out: the sampler sleeps
    // until a row opens, so an idle engine has no timer waking it.
    let mut settled = false;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        if settled && inner.table.open_count() == 0 {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = inner.table.row_opened() => {}
            }
            settled = false;
            tick.reset();
            continue;
        }
        inner.table.sample();
        if inner.events.receiver_count() == 0 {
            settled = inner.table.open_count() == 0;
            continue;
        }
        let (open, _, mut totals) = inner.table.snapshot();
        inner.add_slot_stats(&mut totals);
        let fingerprint = (
            totals.bytes_up,
            totals.bytes_down,
            open.len() as u64,
            totals.slot_waits + totals.evictions + u64::from(totals.connections),
        );
        // Publish while anything moves, plus once after it stops (rates drop to zero).
        if last == Some(fingerprint) && open.iter().all(|s| s.rate_up == 0.0 && s.rate_down == 0.0)
        {
            settled = open.is_empty();
            continue;
        }
        settled = false;
        last = Some(fingerprint);
        let _ = inner.events.send(EngineEvent::Streams { open, totals });
    }
}
