//! Inbound mode: the engine keeps a publication alive with the same
//! lifecycle as a tunnel (active, reconnect after a loss, stop), shows its
//! endpoints, and records each inbound connection in the live table. The
//! publisher here publishes an echo service on a real loopback port, as a
//! Relay share or an HLHV cell serves what arrives through its server.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use engine::transport::BoxFuture;
use engine::{
    Engine, EngineError, Inbound, Publication, PublishOptions, Publisher, ReconnectPolicy,
    SessionState, TransportError,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

struct EchoPublisher {
    connects: AtomicU32,
    /// Set to end the current publication, as a lost server connection does.
    lose: watch::Sender<u32>,
}

struct EchoPublication {
    id: String,
    endpoint: String,
    lost: watch::Receiver<u32>,
    generation: u32,
    accept: tokio::task::JoinHandle<()>,
}

impl Publisher for EchoPublisher {
    fn server(&self) -> String {
        "loopback echo".into()
    }

    fn connect(
        &self,
        inbound: Inbound,
    ) -> BoxFuture<'_, Result<Arc<dyn Publication>, TransportError>> {
        Box::pin(async move {
            let n = self.connects.fetch_add(1, Ordering::SeqCst) + 1;
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let endpoint = listener.local_addr().unwrap().to_string();
            let accept = tokio::spawn(async move {
                let mut next = 0;
                while let Ok((socket, peer)) = listener.accept().await {
                    next += 1;
                    let stream = inbound.accept(
                        &peer.to_string(),
                        "echo",
                        &format!("in{next}"),
                        Box::new(socket),
                    );
                    tokio::spawn(async move {
                        let (mut r, mut w) = tokio::io::split(stream);
                        let _ = tokio::io::copy(&mut r, &mut w).await;
                    });
                }
            });
            Ok(Arc::new(EchoPublication {
                id: format!("pub{n}"),
                endpoint,
                lost: self.lose.subscribe(),
                generation: *self.lose.borrow(),
                accept,
            }) as Arc<dyn Publication>)
        })
    }
}

impl Publication for EchoPublication {
    fn session_id(&self) -> String {
        self.id.clone()
    }
    fn endpoints(&self) -> Vec<String> {
        vec![self.endpoint.clone()]
    }
    fn closed(&self) -> BoxFuture<'_, String> {
        let mut lost = self.lost.clone();
        let generation = self.generation;
        Box::pin(async move {
            let _ = lost.wait_for(|g| *g > generation).await;
            self.accept.abort();
            "the server went away".to_owned()
        })
    }
    fn close(&self) {
        self.accept.abort();
    }
}

async fn wait_for(engine: &Engine, what: impl Fn(&SessionState) -> bool) -> SessionState {
    let mut state = engine.watch_state();
    tokio::time::timeout(Duration::from_secs(10), state.wait_for(what))
        .await
        .expect("the state is reached")
        .unwrap()
        .clone()
}

#[tokio::test]
async fn publications_serve_inbound_connections_and_come_back_after_a_loss() {
    let (lose, _) = watch::channel(0);
    let publisher = Arc::new(EchoPublisher {
        connects: AtomicU32::new(0),
        lose,
    });
    let engine = Engine::new();
    let reconnect = ReconnectPolicy {
        initial_delay: Duration::from_millis(10),
        ..ReconnectPolicy::default()
    };
    engine
        .publish(PublishOptions {
            publisher: publisher.clone(),
            reconnect,
            retry_initial: false,
        })
        .unwrap();
    let SessionState::Active { session_id, .. } = wait_for(&engine, SessionState::is_active).await
    else {
        unreachable!()
    };
    assert_eq!(session_id, "pub1");
    assert!(
        engine.proxy_addr().is_none(),
        "no local proxy when publishing"
    );
    let endpoints = engine.snapshot().endpoints;
    assert_eq!(endpoints.len(), 1);

    // An inbound connection is served and counted.
    let mut peer = TcpStream::connect(&endpoints[0]).await.unwrap();
    peer.write_all(b"hello inbound").await.unwrap();
    let mut echo = [0u8; 13];
    peer.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"hello inbound");
    let row = engine
        .snapshot()
        .open
        .into_iter()
        .find(|s| s.protocol == "inbound")
        .expect("the inbound connection has a row");
    assert_eq!(
        (row.target.as_str(), row.stream_id.as_deref().unwrap_or("")),
        ("echo", "in1")
    );
    assert_eq!((row.bytes_down, row.bytes_up), (13, 13));
    let mut events = engine.subscribe();
    drop(peer);
    tokio::time::timeout(Duration::from_secs(5), async {
        while !engine.snapshot().open.is_empty() {
            let _ = events.recv().await;
        }
    })
    .await
    .expect("the row closes with the connection");

    // A lost publication is replaced by a new one.
    assert!(matches!(
        engine.publish(PublishOptions {
            publisher: publisher.clone(),
            reconnect,
            retry_initial: false,
        }),
        Err(EngineError::AlreadyRunning)
    ));
    publisher.lose.send_replace(1);
    wait_for(
        &engine,
        |s| matches!(s, SessionState::Active { session_id, .. } if session_id == "pub2"),
    )
    .await;
    assert_eq!(publisher.connects.load(Ordering::SeqCst), 2);
    let again = engine.snapshot().endpoints;
    assert_eq!(again.len(), 1);
    let mut peer = TcpStream::connect(&again[0]).await.unwrap();
    peer.write_all(b"x").await.unwrap();
    peer.read_exact(&mut [0u8; 1]).await.unwrap();

    engine.stop().await;
    assert!(matches!(
        engine.state(),
        SessionState::Disconnected { reason: None }
    ));
    assert!(engine.snapshot().endpoints.is_empty());
}

struct RefusingPublisher;

impl Publisher for RefusingPublisher {
    fn server(&self) -> String {
        "refusing".into()
    }
    fn connect(
        &self,
        _inbound: Inbound,
    ) -> BoxFuture<'_, Result<Arc<dyn Publication>, TransportError>> {
        Box::pin(async {
            Err(TransportError::new(
                net::ErrorCode::AuthFailed,
                "the share token was refused",
            ))
        })
    }
}

#[tokio::test]
async fn refused_credentials_stop_publishing_with_the_code() {
    let engine = Engine::new();
    let mut events = engine.subscribe();
    engine
        .publish(PublishOptions {
            publisher: Arc::new(RefusingPublisher),
            reconnect: ReconnectPolicy::default(),
            retry_initial: true,
        })
        .unwrap();
    let state = wait_for(&engine, |s| {
        matches!(s, SessionState::Disconnected { reason: Some(_) })
    })
    .await;
    let SessionState::Disconnected {
        reason: Some(reason),
    } = state
    else {
        unreachable!()
    };
    assert!(reason.starts_with("auth_failed"), "{reason}");
    loop {
        if let engine::EngineEvent::Error { code, .. } = events.recv().await.unwrap() {
            assert_eq!(code, net::ErrorCode::AuthFailed);
            break;
        }
    }
    engine.stop().await;
}

/// Serves one pretend HTTP request per connect, recording it as a request
/// row the way the HLHV cell does, then stays up until closed.
struct RequestPublisher {
    served: watch::Sender<u32>,
}

struct IdlePublication;

impl Publication for IdlePublication {
    fn session_id(&self) -> String {
        "cell-uuid".into()
    }
    fn endpoints(&self) -> Vec<String> {
        vec!["https://demo.example/app/".into()]
    }
    fn closed(&self) -> BoxFuture<'_, String> {
        Box::pin(std::future::pending())
    }
    fn close(&self) {}
}

impl Publisher for RequestPublisher {
    fn server(&self) -> String {
        "queen.example:2001".into()
    }
    fn connect(
        &self,
        inbound: Inbound,
    ) -> BoxFuture<'_, Result<Arc<dyn Publication>, TransportError>> {
        let served = self.served.clone();
        Box::pin(async move {
            tokio::spawn(async move {
                let ok = inbound.request("203.0.113.7", "POST /items?x=1", "band1");
                ok.add_received(5);
                ok.add_sent(1234);
                ok.finish(201);
                let lost = inbound.request("203.0.113.8", "GET /big", "band2");
                lost.add_sent(10);
                drop(lost);
                served.send_replace(1);
            });
            Ok(Arc::new(IdlePublication) as Arc<dyn Publication>)
        })
    }
}

#[tokio::test]
async fn request_rows_carry_method_path_status_bytes_duration_and_band() {
    let (served, mut done) = watch::channel(0);
    let engine = Engine::new();
    engine
        .publish(PublishOptions {
            publisher: Arc::new(RequestPublisher { served }),
            reconnect: ReconnectPolicy::default(),
            retry_initial: false,
        })
        .unwrap();
    wait_for(&engine, SessionState::is_active).await;
    tokio::time::timeout(Duration::from_secs(5), done.wait_for(|n| *n == 1))
        .await
        .unwrap()
        .unwrap();
    let snapshot = engine.snapshot();
    assert!(snapshot.open.is_empty(), "{:?}", snapshot.open);
    let rows: Vec<_> = snapshot
        .closed
        .iter()
        .filter(|r| r.protocol == engine::publish::REQUEST_PROTOCOL)
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let ok = rows[0];
    assert_eq!(ok.target, "POST /items?x=1");
    assert_eq!(ok.client, "203.0.113.7");
    assert_eq!(ok.stream_id.as_deref(), Some("band1"));
    assert_eq!((ok.bytes_down, ok.bytes_up), (5, 1234));
    let reason = ok.close_reason.as_deref().unwrap();
    assert!(
        reason.starts_with("201 in ") && reason.ends_with(" ms"),
        "{reason}"
    );
    let lost = rows[1];
    assert_eq!(
        (lost.target.as_str(), lost.close_reason.as_deref()),
        ("GET /big", Some("aborted"))
    );
    assert_eq!(lost.bytes_up, 10);
    engine.stop().await;
}
