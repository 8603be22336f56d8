//! The client's session pool as the engine uses it (`HttvpsTransport`),
//! against the `httvps-gateway` binary with a small stream limit: more
//! sessions when every slot is busy, the slot figures, extra sessions
//! retired once unused, idle streams closed when the pool is full, and a
//! burst of streams opening the sessions it needs at once.

use std::net::SocketAddr;
use std::time::Duration;

use engine::transport::Transport;
use httvps_client::{ClientConfig, HttvpsAuth, HttvpsTransport, Secret, TargetAddr};
use testkit::EchoServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod sdk;
use sdk::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_grows_when_slots_run_out_and_retires_unused_sessions() {
    let gateway = Gateway::direct(&["--max-streams", "2"]).await;
    let mut config = gateway.config();
    config.max_connections = 2;
    config.retire_extra_after = Duration::from_millis(200);
    config.evict_idle_after = Some(Duration::from_millis(100));
    let transport = HttvpsTransport::new(config, HttvpsAuth::SessionToken(Secret::from(TOKEN)));
    let session = transport.connect().await.expect("connects");
    let echo = EchoServer::start().await;
    let target = TargetAddr::Ip(echo.addr());
    let wait = Duration::from_secs(5);

    // Four streams on two sessions of two slots each.
    let mut streams = Vec::new();
    for n in 0..4u8 {
        let mut opened = session.open(target.clone(), wait).await.expect("opens");
        opened.stream.write_all(&[n]).await.unwrap();
        let mut back = [0u8; 1];
        opened.stream.read_exact(&mut back).await.unwrap();
        streams.push(opened);
    }
    let stats = session.slot_stats();
    assert_eq!(stats.connections, 2, "{stats:?}");
    assert_eq!(stats.slot_waits, 1, "{stats:?}");
    assert_eq!(stats.evictions, 0, "{stats:?}");

    // A fifth: the pool is full, so the longest-idle stream makes room (its
    // reader sees a clean end).
    let mut fifth = session.open(target.clone(), wait).await.expect("opens");
    fifth.stream.write_all(b"5").await.unwrap();
    let mut back = [0u8; 1];
    fifth.stream.read_exact(&mut back).await.unwrap();
    let stats = session.slot_stats();
    assert_eq!(stats.evictions, 1, "{stats:?}");
    let mut evicted = 0;
    for opened in &mut streams {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(
            Duration::from_millis(100),
            opened.stream.read_to_end(&mut rest),
        )
        .await;
        if let Ok(result) = read {
            result.expect("an evicted stream ends cleanly");
            evicted += 1;
        }
    }
    assert_eq!(evicted, 1);

    // Every stream gone: the extra session is closed once unused.
    drop(streams);
    drop(fifth);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while session.slot_stats().connections > 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the extra session stayed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A TCP relay in front of the gateway that lets its first connection
/// through and holds every later one until `hold` of them have arrived.
/// Sessions opened one after the other would never get there: the second
/// is only dialled once the first is up.
async fn gate(gateway: SocketAddr, hold: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (first, _) = listener.accept().await.unwrap();
        tokio::spawn(relay(first, gateway));
        let mut held = Vec::new();
        while held.len() < hold {
            held.push(listener.accept().await.unwrap().0);
        }
        for conn in held {
            tokio::spawn(relay(conn, gateway));
        }
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(relay(conn, gateway));
        }
    });
    addr
}

async fn relay(mut conn: TcpStream, to: SocketAddr) {
    let mut upstream = TcpStream::connect(to).await.unwrap();
    let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_streams_opens_the_sessions_it_needs_at_once() {
    let gateway = Gateway::direct(&["--max-streams", "2"]).await;
    // Eight streams at two per session: the primary and three more, all
    // three dialled before any of them is up.
    let gated = gate(gateway.addr(), 3).await;
    let mut config = ClientConfig::new(format!("wss://127.0.0.1:{}/ws", gated.port()));
    config.tls.ca_file = Some(gateway.ca().to_path_buf());
    config.max_connections = 4;
    let transport = HttvpsTransport::new(config, HttvpsAuth::SessionToken(Secret::from(TOKEN)));
    let session = transport.connect().await.expect("connects");
    let echo = EchoServer::start().await;
    let target = TargetAddr::Ip(echo.addr());

    let opens = (0..8u8).map(|n| {
        let (session, target) = (&session, target.clone());
        async move {
            let mut opened = session
                .open(target, Duration::from_secs(10))
                .await
                .expect("opens");
            opened.stream.write_all(&[n]).await.unwrap();
            let mut back = [0u8; 1];
            opened.stream.read_exact(&mut back).await.unwrap();
            assert_eq!(back, [n]);
            opened
        }
    });
    let streams = tokio::time::timeout(
        Duration::from_secs(20),
        futures_util::future::join_all(opens),
    )
    .await
    .expect("the extra sessions were opened one at a time: the gate never let them through");
    assert_eq!(streams.len(), 8);
    let stats = session.slot_stats();
    assert_eq!(stats.connections, 4, "{stats:?}");
    assert_eq!(stats.evictions, 0, "{stats:?}");
}
