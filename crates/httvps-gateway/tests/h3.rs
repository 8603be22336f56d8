//! HTTVPS over HTTP/3 (RFC 9220) end to end: the client SDK with
//! `Transport::H3` against the gateway's own `--h3-listen`, against
//! aioquic's RFC 9220 server relaying to the gateway (an independent
//! HTTP/3 implementation), QUIC migration when the client's UDP socket
//! changes, and `Transport::Auto` falling back to HTTP/1.1 when UDP is
//! blocked.

use std::time::{Duration, Instant};

use httvps_client::{ClientConfig, Secret, Transport, Tunnel};
use testkit::h3peer::PeerProcess;
use testkit::{EchoServer, HttpServer};

mod sdk;
use sdk::*;

/// An echo round trip and a download, checked byte for byte.
async fn transfers(tunnel: &Tunnel, echo_len: usize, download: usize) {
    let echo = EchoServer::start().await;
    let (sent, received) = echo_round_trip(tunnel, echo.addr(), echo_len).await;
    assert_eq!(sent, received);
    let http = HttpServer::start().await;
    let (status, expected, got, len) = http_get(tunnel, &http, &format!("/bytes/{download}")).await;
    assert_eq!((status, len), (200, download));
    assert_eq!(expected, got);
}

/// The client configuration for HTTP/3 to UDP `port` on loopback.
fn h3_config(gateway: &Gateway, port: u16) -> ClientConfig {
    let mut config = gateway.config();
    config.url = format!("wss://127.0.0.1:{port}/ws");
    config.transport = Transport::H3;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_gateways_own_h3_listener_with_parallel_streams_and_migration() {
    let gateway = Gateway::direct(&["--h3-listen", "127.0.0.1:0", "--max-streams", "32"]).await;
    let h3 = gateway
        .process()
        .h3_addr()
        .expect("the gateway logs h3 listening");
    let tunnel = Tunnel::connect(h3_config(&gateway, h3.port()), &Secret::from(TOKEN))
        .await
        .expect("an HTTP/3 session");
    assert_eq!(tunnel.transport(), Transport::H3);
    assert!(!tunnel.unmasked_frames(), "pipelined, so masked");
    transfers(&tunnel, 3_000_000, 2_000_000).await;

    // The hello follows the CONNECT without waiting for its answer; a
    // refusal still comes back as a clear error.
    let mut wrong = h3_config(&gateway, h3.port());
    wrong.url = format!("wss://127.0.0.1:{}/nope", h3.port());
    let err = Tunnel::connect(wrong, &Secret::from(TOKEN))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("answered 404"), "{err}");

    // Eight streams at once, each byte-checked.
    let http = HttpServer::start().await;
    let downloads = (0..8).map(|i| {
        let (tunnel, http) = (&tunnel, &http);
        async move { http_get(tunnel, http, &format!("/bytes/{}", 4_000_000 + i)).await }
    });
    for (status, expected, got, _) in futures_util::future::join_all(downloads).await {
        assert_eq!(status, 200);
        assert_eq!(expected, got);
    }

    // The client's address changes mid-transfer (a new UDP socket, so a new
    // port): QUIC migrates and not a byte is lost.
    let echo = EchoServer::start().await;
    let moving = echo_round_trip(&tunnel, echo.addr(), 20_000_000);
    let rebind = async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let first = tunnel.rebind().expect("rebinding the UDP socket");
        tokio::time::sleep(Duration::from_millis(60)).await;
        let second = tunnel.rebind().expect("rebinding again");
        assert_ne!(first.port(), second.port(), "a new port each time");
    };
    let started = Instant::now();
    let ((sent, received), ()) = tokio::join!(moving, rebind);
    assert_eq!(sent, received);
    assert!(
        started.elapsed() > Duration::from_millis(90),
        "the transfer was still running when the socket moved"
    );
    transfers(&tunnel, 100_000, 100_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_aioquics_rfc_9220_server_to_the_gateway() {
    let gateway = Gateway::direct(&[]).await;
    let cert = gateway.dir().join("cert.pem");
    let key = gateway.dir().join("key.pem");
    let backend = format!("wss://127.0.0.1:{}", gateway.addr().port());
    let mut relay = PeerProcess::spawn(&[
        "server",
        "--listen",
        "127.0.0.1:0",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--backend",
        &backend,
        "--backend-ca",
        cert.to_str().unwrap(),
    ])
    .await
    .expect("aioquic's server starts");
    let port = relay.listening().await.expect("it listens").port();
    let tunnel = Tunnel::connect(h3_config(&gateway, port), &Secret::from(TOKEN))
        .await
        .expect("a session through aioquic");
    assert_eq!(tunnel.transport(), Transport::H3);
    assert!(!tunnel.unmasked_frames());
    transfers(&tunnel, 2_000_000, 2_000_000).await;
    let session = relay
        .event("session", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(session["backend_status"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_falls_back_to_http1_when_udp_is_blocked_and_remembers() {
    // No HTTP/3 listener: nothing answers on UDP.
    let gateway = Gateway::direct(&[]).await;
    let mut config = gateway.config();
    config.transport = Transport::Auto;
    let started = Instant::now();
    let tunnel = Tunnel::connect(config.clone(), &Secret::from(TOKEN))
        .await
        .expect("auto connects over HTTP/1.1");
    let first = started.elapsed();
    assert_eq!(tunnel.transport(), Transport::H1);
    assert!(first < Duration::from_secs(2), "fell back after {first:?}");
    assert!(
        first >= Transport::AUTO_H3_WAIT,
        "tried HTTP/3 first ({first:?})"
    );
    transfers(&tunnel, 100_000, 100_000).await;
    // Remembered: the next session goes straight to HTTP/1.1.
    let started = Instant::now();
    let again = Tunnel::connect(config, &Secret::from(TOKEN)).await.unwrap();
    assert_eq!(again.transport(), Transport::H1);
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_http3_sessions_like_http1_ones() {
    let mut gateway =
        Gateway::direct(&["--h3-listen", "127.0.0.1:0", "--drain-timeout", "1"]).await;
    let h3 = gateway.process().h3_addr().expect("h3 listening");
    let tunnel = Tunnel::connect(h3_config(&gateway, h3.port()), &Secret::from(TOKEN))
        .await
        .expect("an HTTP/3 session");
    sigterm_cuts_a_download_cleanly(&mut gateway, &tunnel).await;
}
