//! The engine's run slot: concurrent starts, a failed bind, and a session
//! manager that gives up on its own. Real sockets; the transports are
//! stand-ins that either never connect (pending) or are always refused.

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use engine::transport::BoxFuture;
use engine::{
    Engine, EngineError, ReconnectPolicy, SessionState, StartOptions, Transport, TransportError,
    TunnelSession,
};
use local_proxy::ProxyConfig;
use net::ErrorCode;
use testkit::free_port;

/// Connects never (the session stays `Authenticating`), or is refused.
struct Stub {
    refuse: bool,
}

impl Transport for Stub {
    fn server(&self) -> String {
        "stub".into()
    }

    fn connect(&self) -> BoxFuture<'_, Result<Arc<dyn TunnelSession>, TransportError>> {
        let refuse = self.refuse;
        Box::pin(async move {
            if refuse {
                Err(TransportError::new(ErrorCode::AuthFailed, "refused"))
            } else {
                std::future::pending().await
            }
        })
    }
}

fn options(port: u16, refuse: bool) -> StartOptions {
    StartOptions {
        transport: Arc::new(Stub { refuse }),
        proxy: ProxyConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            ..ProxyConfig::default()
        },
        reconnect: ReconnectPolicy::default(),
        retry_initial: false,
        slot_wait: Duration::from_secs(1),
        reconnect_wait: Duration::from_secs(1),
    }
}

fn listening(port: u16) -> bool {
    TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_concurrent_starts_exactly_one_binds() {
    for _ in 0..20 {
        let engine = Engine::new();
        let (a, b) = (free_port(), free_port());
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let start = |port: u16| {
            let engine = engine.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                engine.start(options(port, false)).await
            })
        };
        let (first, second) = (start(a), start(b));
        let (first, second) = (first.await.unwrap(), second.await.unwrap());
        let (won, lost) = match (&first, &second) {
            (Ok(addr), Err(EngineError::AlreadyRunning)) => (*addr, b),
            (Err(EngineError::AlreadyRunning), Ok(addr)) => (*addr, a),
            other => panic!("exactly one start succeeds: {other:?}"),
        };
        assert_eq!(engine.proxy_addr(), Some(won));
        assert!(listening(won.port()), "the winner's proxy listens");
        assert!(!listening(lost), "the loser bound nothing");
        engine.stop().await;
        assert!(!engine.is_running());
        assert!(!listening(won.port()), "stop releases the port");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_bind_frees_the_slot() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let engine = Engine::new();
    let err = engine.start(options(port, false)).await.unwrap_err();
    assert!(matches!(err, EngineError::Listen { .. }), "{err:?}");
    assert!(!engine.is_running());
    let free = free_port();
    let addr = engine.start(options(free, false)).await.unwrap();
    assert_eq!(addr.port(), free);
    assert!(matches!(
        engine.start(options(free_port(), false)).await,
        Err(EngineError::AlreadyRunning)
    ));
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_manager_that_gives_up_releases_the_engine_before_saying_so() {
    let engine = Engine::new();
    let port = free_port();
    let mut state = engine.watch_state();
    engine.start(options(port, true)).await.unwrap();
    let reason = tokio::time::timeout(
        Duration::from_secs(10),
        state.wait_for(|s| matches!(s, SessionState::Disconnected { reason: Some(_) })),
    )
    .await
    .expect("the refusal ends the session")
    .unwrap()
    .clone();
    // By the time the state says so, the run is gone and the port is free.
    assert!(!engine.is_running(), "{reason:?}");
    assert_eq!(engine.proxy_addr(), None);
    assert!(!listening(port));
    // So a new start works at once, on the same port.
    let addr = engine.start(options(port, false)).await.unwrap();
    assert_eq!(addr.port(), port);
    assert!(listening(port));
    engine.stop().await;
    assert!(matches!(
        engine.state(),
        SessionState::Disconnected { reason: None }
    ));
    assert!(!listening(port));
}

/// Sessions that end when told, or when probed while `dead_path` is set
/// (as a session whose network path is gone fails its probe).
#[derive(Default)]
struct Probed {
    connects: std::sync::atomic::AtomicU32,
    probes: std::sync::atomic::AtomicU32,
    dead_path: std::sync::atomic::AtomicBool,
    current: std::sync::Mutex<Option<Arc<ProbedSession>>>,
}

struct ProbedSession {
    id: u32,
    owner: Arc<Probed>,
    end: tokio_util::sync::CancellationToken,
}

struct ProbedTransport(Arc<Probed>);

impl Transport for ProbedTransport {
    fn server(&self) -> String {
        "probed".into()
    }

    fn connect(&self) -> BoxFuture<'_, Result<Arc<dyn TunnelSession>, TransportError>> {
        Box::pin(async move {
            use std::sync::atomic::Ordering::SeqCst;
            self.0.dead_path.store(false, SeqCst);
            let session = Arc::new(ProbedSession {
                id: self.0.connects.fetch_add(1, SeqCst) + 1,
                owner: self.0.clone(),
                end: tokio_util::sync::CancellationToken::new(),
            });
            *self.0.current.lock().unwrap() = Some(session.clone());
            Ok(session as Arc<dyn TunnelSession>)
        })
    }
}

impl TunnelSession for ProbedSession {
    fn session_id(&self) -> String {
        format!("s{}", self.id)
    }

    fn max_streams(&self) -> u32 {
        1
    }

    fn open(
        &self,
        _target: net::TargetAddr,
        _slot_wait: Duration,
    ) -> BoxFuture<'_, Result<engine::OpenedStream, local_proxy::ConnectError>> {
        Box::pin(async {
            Err(local_proxy::ConnectError::new(
                local_proxy::ConnectErrorKind::Other,
                "no streams here",
            ))
        })
    }

    fn closed(&self) -> BoxFuture<'_, String> {
        Box::pin(async move {
            self.end.cancelled().await;
            "ended".into()
        })
    }

    fn close(&self) {
        self.end.cancel();
    }

    fn probe(&self, _deadline: Duration) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        self.owner.probes.fetch_add(1, SeqCst);
        if self.owner.dead_path.load(SeqCst) {
            self.end.cancel();
        }
        true
    }
}

/// A session on `probed` with reconnect delays far longer than any wait
/// here: a reconnect that happens at all happened without backoff.
async fn probed_engine(probed: &Arc<Probed>) -> (Engine, tokio::sync::watch::Sender<u64>) {
    let engine = Engine::new();
    let (changes_tx, changes) = engine::NetworkChanges::manual();
    engine.watch_network(Some(changes));
    let mut options = options(free_port(), false);
    options.transport = Arc::new(ProbedTransport(probed.clone()));
    options.reconnect = ReconnectPolicy {
        initial_delay: Duration::from_secs(600),
        max_delay: Duration::from_secs(600),
        ..ReconnectPolicy::default()
    };
    engine.start(options).await.unwrap();
    (engine, changes_tx)
}

async fn active_session(engine: &Engine, id: &str) {
    let mut state = engine.watch_state();
    tokio::time::timeout(
        Duration::from_secs(10),
        state
            .wait_for(|s| matches!(s, SessionState::Active { session_id, .. } if session_id == id)),
    )
    .await
    .unwrap_or_else(|_| panic!("session {id} active in time: {:?}", engine.state()))
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_change_probes_the_session_and_replaces_a_dead_one_at_once() {
    use std::sync::atomic::Ordering::SeqCst;
    let probed = Arc::new(Probed::default());
    let (engine, changes) = probed_engine(&probed).await;
    active_session(&engine, "s1").await;

    // The path still works: the probe is answered, the session stays.
    changes.send_modify(|n| *n += 1);
    tokio::time::timeout(Duration::from_secs(10), async {
        while probed.probes.load(SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("probed");
    assert_eq!(probed.connects.load(SeqCst), 1);
    assert!(matches!(engine.state(), SessionState::Active { .. }));

    // The path is gone: the probe ends the session and the next one comes
    // at once, not after the ten-minute backoff.
    probed.dead_path.store(true, SeqCst);
    changes.send_modify(|n| *n += 1);
    active_session(&engine, "s2").await;
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_change_cuts_a_reconnect_wait_short() {
    let probed = Arc::new(Probed::default());
    let (engine, changes) = probed_engine(&probed).await;
    active_session(&engine, "s1").await;
    // Lost on its own: the engine waits out its (ten-minute) backoff...
    let session = probed.current.lock().unwrap().clone().unwrap();
    session.close();
    let mut state = engine.watch_state();
    state
        .wait_for(|s| matches!(s, SessionState::Reconnecting { .. }))
        .await
        .unwrap();
    // ...unless the network changes.
    changes.send_modify(|n| *n += 1);
    active_session(&engine, "s2").await;
    engine.stop().await;
}

/// Fails its first `failures` connects (a server not up yet), then works.
struct LateServer {
    failures: u32,
    inner: Arc<Probed>,
}

impl Transport for LateServer {
    fn server(&self) -> String {
        "late".into()
    }

    fn connect(&self) -> BoxFuture<'_, Result<Arc<dyn TunnelSession>, TransportError>> {
        Box::pin(async move {
            use std::sync::atomic::Ordering::SeqCst;
            if self.inner.probes.fetch_add(1, SeqCst) < self.failures {
                return Err(TransportError::new(
                    ErrorCode::HandshakeFailed,
                    "not up yet",
                ));
            }
            ProbedTransport(self.inner.clone()).connect().await
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_trying_goes_on_past_the_attempts() {
    let engine = Engine::new();
    let mut options = options(free_port(), false);
    let late = Arc::new(Probed::default());
    options.transport = Arc::new(LateServer {
        failures: 5,
        inner: late.clone(),
    });
    options.retry_initial = true;
    options.reconnect = ReconnectPolicy {
        initial_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(20),
        max_attempts: 2,
        keep_trying: true,
        ..ReconnectPolicy::default()
    };
    engine.start(options).await.unwrap();
    // Without keep_trying the engine gives up after attempt 2; with it,
    // the sixth connect (the first to work) comes.
    active_session(&engine, "s1").await;
    assert_eq!(late.probes.load(std::sync::atomic::Ordering::SeqCst), 6);
    engine.stop().await;
}
