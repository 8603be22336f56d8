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
