//! The client's session pool as the engine uses it (`HttvpsTransport`),
//! against the `httvps-gateway` binary with a small stream limit: more
//! sessions when every slot is busy, the slot figures, extra sessions
//! retired once unused, and idle streams closed when the pool is full.

use std::time::Duration;

use engine::transport::Transport;
use httvps_client::{HttvpsAuth, HttvpsTransport, Secret, TargetAddr};
use testkit::EchoServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
