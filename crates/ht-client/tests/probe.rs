//! Checking an HT session on demand (`TunnelSession::probe`, what the
//! engine does after a network change), against the real server
//! (`ht-server`, in process) through a relay whose connections can go
//! silent as a dead path does (`testkit::FreezingRelay`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::transport::{Transport, TunnelSession};
use engine::{Engine, EngineEvent, NetworkChanges, ReconnectPolicy, SessionState, StartOptions};
use ht_client::{HtClientConfig, HtTransport, Key};
use local_proxy::{BoxStream, ProxyConfig};
use net::{ErrorCode, TargetAddr};
use testkit::{EchoServer, FreezingRelay, free_port, socks5_connect};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const KEY: &str = "8f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// The deadline the tests probe with: long enough for loopback under a
/// loaded test run, short enough to keep the tests quick.
const DEADLINE: Duration = Duration::from_millis(800);

/// An `ht-server` on loopback (plain HTTP: the check does not depend on
/// TLS) that may dial loopback targets, and a relay in front of it.
async fn server() -> (ht_server::RunningServer, FreezingRelay) {
    let mut config = ht_server::Config::new(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        Key::from_hex(KEY).unwrap(),
    );
    config.allow_private_targets = true;
    let server = ht_server::HtServer::bind(config).await.unwrap().spawn();
    let relay = FreezingRelay::start(server.local_addr()).await;
    (server, relay)
}

fn transport(relay: &FreezingRelay, connections: usize) -> HtTransport {
    let mut config = HtClientConfig::new(
        format!("http://127.0.0.1:{}", relay.addr().port()),
        Key::from_hex(KEY).unwrap(),
    );
    config.connections = connections;
    HtTransport::new(config).unwrap()
}

async fn open(session: &dyn TunnelSession, echo: &EchoServer) -> BoxStream {
    session
        .open(TargetAddr::Ip(echo.addr()), Duration::from_secs(5))
        .await
        .unwrap()
        .stream
}

/// Writes `message` and reads it back, within a few seconds.
async fn echoes(stream: &mut (impl AsyncRead + AsyncWrite + Unpin), message: &[u8]) {
    tokio::time::timeout(Duration::from_secs(10), async {
        stream.write_all(message).await.unwrap();
        stream.flush().await.unwrap();
        let mut back = vec![0u8; message.len()];
        stream.read_exact(&mut back).await.unwrap();
        assert_eq!(back, message);
    })
    .await
    .expect("echoed in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_of_a_healthy_session_keeps_it_and_its_streams() {
    let (_server, relay) = server().await;
    let echo = EchoServer::start().await;
    let session = transport(&relay, 4).connect().await.unwrap();
    let mut stream = open(&*session, &echo).await;
    echoes(&mut stream, b"before").await;
    relay.wait_accepted(4).await;

    assert!(session.probe(DEADLINE), "HT sessions can be checked");
    // Past the deadline the session is still there: every connection
    // answered.
    let ended = tokio::time::timeout(DEADLINE * 2, session.closed()).await;
    assert!(ended.is_err(), "a live server answers: {ended:?}");
    assert_eq!(relay.accepted(), 4, "no connection was replaced");
    assert_eq!(session.slot_stats().connections, 4);
    echoes(&mut stream, b"after").await;
    let mut fresh = open(&*session, &echo).await;
    echoes(&mut fresh, b"a new stream").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_replaces_a_silent_connection_and_the_streams_resume() {
    let (_server, relay) = server().await;
    let echo = EchoServer::start().await;
    let session = transport(&relay, 2).connect().await.unwrap();
    relay.wait_accepted(2).await;
    // Two streams: four batches over two connections, so the connection
    // that goes silent carries some of them.
    let mut streams = Vec::new();
    for i in 0..2u8 {
        let mut stream = open(&*session, &echo).await;
        echoes(&mut stream, &[i; 100]).await;
        streams.push(stream);
    }
    relay.freeze_connection(0);

    assert!(session.probe(DEADLINE));
    // The silent connection is dropped at the deadline and its slot dials
    // a new one (the relay's third).
    tokio::time::timeout(DEADLINE * 10, relay.wait_accepted(3))
        .await
        .expect("the silent connection was replaced");
    for (i, stream) in streams.iter_mut().enumerate() {
        echoes(stream, &[i as u8 + 10; 70_000]).await;
    }
    let ended = tokio::time::timeout(Duration::from_millis(100), session.closed()).await;
    assert!(ended.is_err(), "one connection answered: {ended:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_of_a_silent_path_ends_the_session_at_its_deadline() {
    let (_server, relay) = server().await;
    let echo = EchoServer::start().await;
    let session = transport(&relay, 4).connect().await.unwrap();
    let mut stream = open(&*session, &echo).await;
    echoes(&mut stream, b"before").await;
    relay.freeze_current();

    let probed = Instant::now();
    assert!(session.probe(DEADLINE));
    let reason = tokio::time::timeout(DEADLINE * 5, session.closed())
        .await
        .expect("ended at the probe's deadline, not left to hang");
    let took = probed.elapsed();
    assert!(
        reason.contains("did not answer a check within 800ms after a network change"),
        "{reason}"
    );
    assert!(took >= DEADLINE, "not before its deadline: {took:?}");
    // The stream learns it too, instead of waiting on the dead path.
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte)).await;
    assert!(
        matches!(read, Ok(Err(_)) | Ok(Ok(0))),
        "the stream ended with its session: {read:?}"
    );
}

/// The engine's side: a network change while the path works leaves the
/// session be; one while the path is silently dead ends the HT session at
/// the probe's deadline, and the engine connects a new session at once (its backoff here is ten minutes, so a reconnect
/// that happens at all happened without it), which carries streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_network_change_the_engine_replaces_a_dead_ht_session_at_once() {
    let (_server, relay) = server().await;
    let echo = EchoServer::start().await;
    let engine = Engine::new();
    let (changes, watched) = NetworkChanges::manual();
    engine.watch_network(Some(watched));
    let port = free_port();
    let proxy = engine
        .start(StartOptions {
            transport: Arc::new(transport(&relay, 4)),
            proxy: ProxyConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], port)),
                ..ProxyConfig::default()
            },
            reconnect: ReconnectPolicy {
                initial_delay: Duration::from_secs(600),
                max_delay: Duration::from_secs(600),
                ..ReconnectPolicy::default()
            },
            retry_initial: false,
            slot_wait: Duration::from_secs(5),
            reconnect_wait: Duration::from_secs(20),
        })
        .await
        .unwrap();
    let mut state = engine.watch_state();
    let first = active(&mut state, None).await;
    let mut through = socks5_connect(proxy, echo.addr()).await.unwrap();
    echoes(&mut through, b"first session").await;

    // The path still works: every connection answers the engine's probe
    // (3 s), the session and its connections stay.
    relay.wait_accepted(4).await;
    changes.send_modify(|n| *n += 1);
    let left = tokio::time::timeout(
        Duration::from_secs(4),
        state.wait_for(|s| !matches!(s, SessionState::Active { .. })),
    )
    .await
    .is_ok();
    assert!(!left, "the session stayed: {:?}", engine.state());
    assert_eq!(relay.accepted(), 4, "no connection was replaced");
    echoes(&mut through, b"still the first session").await;

    let mut events = engine.subscribe();
    relay.freeze_current();
    let changed = Instant::now();
    changes.send_modify(|n| *n += 1);
    let second = active(&mut state, Some(&first)).await;
    let took = changed.elapsed();
    // The engine probes with 3 s; a reconnect then takes a moment more.
    assert!(took < Duration::from_secs(8), "replaced in {took:?}");
    let lost = std::iter::from_fn(|| events.try_recv().ok()).find_map(|e| match e {
        EngineEvent::Error {
            code: ErrorCode::SessionLost,
            message,
        } => Some(message),
        _ => None,
    });
    let lost = lost.expect("the old session's end was reported");
    assert!(lost.contains("did not answer a check"), "{lost}");
    assert_ne!(first, second);
    let mut through = socks5_connect(proxy, echo.addr()).await.unwrap();
    echoes(&mut through, b"second session").await;
    engine.stop().await;
}

/// Waits (bounded) for `Active` with a session other than `not`.
async fn active(
    state: &mut tokio::sync::watch::Receiver<SessionState>,
    not: Option<&str>,
) -> String {
    let seen = tokio::time::timeout(
        Duration::from_secs(20),
        state.wait_for(|s| {
            matches!(s, SessionState::Active { session_id, .. } if Some(session_id.as_str()) != not)
        }),
    )
    .await
    .expect("active in time")
    .unwrap();
    match &*seen {
        SessionState::Active { session_id, .. } => session_id.clone(),
        _ => unreachable!(),
    }
}
