//! The `x-httvps-unmasked` WebSocket extension end to end: the client SDK
//! against the `httvps-gateway` binary. Negotiated in the upgrade; either
//! side can refuse it, and the bytes are the same every way.

use httvps_client::{Secret, Tunnel};
use testkit::{EchoServer, HttpServer};

mod sdk;
use sdk::*;

/// Both directions through a tunnel: an echo round trip and a download.
async fn transfers(tunnel: &Tunnel) {
    let echo = EchoServer::start().await;
    let (sent, received) = echo_round_trip(tunnel, echo.addr(), 3_000_000).await;
    assert_eq!(sent, received);
    let http = HttpServer::start().await;
    let (status, expected, got, len) = http_get(tunnel, &http, "/bytes/2000000").await;
    assert_eq!((status, len), (200, 2_000_000));
    assert_eq!(expected, got);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agreed_by_default_and_refusable_by_either_side() {
    let gateway = Gateway::direct(&[]).await;
    let tunnel = gateway.tunnel().await;
    assert!(tunnel.unmasked_frames(), "offered and accepted by default");
    transfers(&tunnel).await;

    // A client that does not offer it masks its frames, as the contract says.
    let mut config = gateway.config();
    config.unmasked_frames = false;
    let masked = Tunnel::connect(config, &Secret::from(TOKEN)).await.unwrap();
    assert!(!masked.unmasked_frames());
    transfers(&masked).await;

    // A gateway that refuses it: the client masks.
    let strict = Gateway::direct(&["--no-unmasked-frames"]).await;
    let tunnel = strict.tunnel().await;
    assert!(!tunnel.unmasked_frames());
    transfers(&tunnel).await;
}
