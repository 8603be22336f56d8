//! `httvps connect --transport h3` end to end with curl: through our
//! `h3ws-proxy` in front of the gateway's TLS WebSocket, and straight to the
//! gateway's own `--h3-listen`; each time 8 downloads at once, one of them
//! 100 MiB, byte-identical.

mod cli;

use std::net::SocketAddr;
use std::time::Duration;

use cli::JsonClient;
use testkit::{HttpServer, TestGateway};
use tokio::process::Command;

const TOKEN: &str = "tok-h3-0123456789";
const BIG: usize = 100 * 1024 * 1024;
const SMALL: usize = 8 * 1024 * 1024;

async fn curl_sha(proxy: SocketAddr, url: &str) -> String {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "120"])
        .args(["--socks5-hostname", &proxy.to_string(), url])
        .output()
        .await
        .expect("run curl (apt-get install curl)");
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    testkit::sha256_hex(&out.stdout)
}

/// Eight downloads through `client` at once: one of [`BIG`], seven of
/// [`SMALL`] (each a little different in size), every body checked.
async fn eight_downloads(client: &JsonClient, http: &HttpServer) {
    let sizes: Vec<usize> = std::iter::once(BIG)
        .chain((1..8).map(|i| SMALL + i))
        .collect();
    let fetches = sizes.iter().map(|&n| {
        let url = format!("{}/bytes/{n}", http.url());
        async move { (n, curl_sha(client.proxy, &url).await) }
    });
    for (n, sha) in futures_util::future::join_all(fetches).await {
        assert_eq!(sha, testkit::bytes_sha256(n), "{n} bytes");
    }
}

async fn h3_client(port: u16, gateway: &TestGateway) -> JsonClient {
    let url = format!("wss://127.0.0.1:{port}/ws");
    let client = JsonClient::connect(&url, gateway.ca(), TOKEN, &["--transport", "h3"], &[]).await;
    client.wait_state("active", Duration::from_secs(20)).await;
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_through_h3ws_proxy_and_through_the_gateways_h3_listener() {
    let gateway = TestGateway::with_tokens(
        &cli::gateway_bin(),
        &[TOKEN],
        &["--allow-private-targets", "--h3-listen", "127.0.0.1:0"],
    )
    .await
    .expect("gateway starts");
    let http = HttpServer::start().await;

    // Our proxy in front of the gateway's HTTP/1.1 WebSocket.
    let cert = gateway.dir().join("cert.pem");
    let key = gateway.dir().join("key.pem");
    let backend = format!("wss://127.0.0.1:{}", gateway.addr().port());
    let proxy_bin = cli::sibling_bin("h3ws-proxy", "h3ws-proxy");
    let ca = ["-backend-ca", cert.to_str().unwrap()];
    let proxy = testkit::h3peer::start_h3ws_proxy(&proxy_bin, &cert, &key, &backend, &ca)
        .await
        .expect("h3ws-proxy starts");
    let client = h3_client(proxy.addr().port(), &gateway).await;
    eight_downloads(&client, &http).await;
    drop(client);

    // The gateway's own HTTP/3 listener.
    let h3 = gateway.process().h3_addr().expect("h3 listening");
    let client = h3_client(h3.port(), &gateway).await;
    eight_downloads(&client, &http).await;
}
