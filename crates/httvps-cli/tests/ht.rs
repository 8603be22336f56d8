//! HT end to end with real peers: curl, dig and a SOCKS5 UDP client through
//! `httvps connect --ht` to the `ht-server` binary, over TLS and plain
//! HTTP, and through a relay that keeps cutting the transport connections.

mod cli;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use cli::JsonClient;
use testkit::{
    CuttingRelay, HttpServer, Socks5Udp, TestHtServer, UdpEchoServer, bytes_sha256, dig,
};
use tokio::process::Command;

/// The `ht-server` binary, built beside `httvps` (see `cli::gateway_bin`).
fn ht_server_bin() -> PathBuf {
    cli::sibling_bin("ht-server", "ht-server")
}

async fn server(tls: bool) -> TestHtServer {
    TestHtServer::start(&ht_server_bin(), tls, &["--allow-private-targets"])
        .await
        .expect("ht-server starts")
}

/// `httvps connect --ht` to `url` with the server's key in the environment.
async fn connect(server: &TestHtServer, url: &str, extra: &[&str]) -> JsonClient {
    let mut args = vec!["connect", "--ht", url, "--listen", "127.0.0.1:0"];
    let ca = server.ca().map(|p| p.display().to_string());
    if let Some(ca) = &ca {
        args.extend(["--ca", ca]);
    }
    args.extend_from_slice(extra);
    let client = JsonClient::start(&args, &[("HTTVPS_HT_KEY", server.key_hex())]).await;
    client.wait_state("active", Duration::from_secs(20)).await;
    client
}

async fn curl(args: &[&str]) -> (i32, Vec<u8>) {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "120"])
        .args(args)
        .output()
        .await
        .expect("run curl (apt-get install curl)");
    if !out.status.success() {
        eprintln!("curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    (out.status.code().unwrap_or(-1), out.stdout)
}

async fn curl_sha(proxy_flag: &str, proxy: SocketAddr, url: &str) -> String {
    let (code, body) = curl(&[proxy_flag, &proxy.to_string(), url]).await;
    assert_eq!(code, 0, "curl {url}");
    testkit::sha256_hex(&body)
}

/// Downloads of 1 B, 64 KiB and 100 MiB (SOCKS5 with the name resolved by
/// the server, and the HTTP proxy), an 8 MiB upload and 8 parallel
/// downloads: every byte identical.
async fn transfers_are_byte_identical(tls: bool) {
    let server = server(tls).await;
    let client = connect(&server, &server.url(), &[]).await;
    let http = HttpServer::start().await;
    // `localhost`, so that the server resolves the name.
    let base = format!("http://localhost:{}", http.addr().port());
    for n in [1usize, 65_536, 100 << 20] {
        let url = format!("{base}/bytes/{n}");
        assert_eq!(
            curl_sha("--socks5-hostname", client.proxy, &url).await,
            bytes_sha256(n),
            "{n} bytes over SOCKS5 (tls: {tls})"
        );
    }
    let url = format!("{base}/bytes/65536");
    assert_eq!(
        curl_sha("-x", client.proxy, &url).await,
        bytes_sha256(65_536)
    );

    let upload = testkit::pseudo_random_bytes(7, 8 << 20);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &upload).unwrap();
    let data = format!("@{}", file.path().display());
    let (code, body) = curl(&[
        "--socks5-hostname",
        &client.proxy.to_string(),
        "--data-binary",
        &data,
        &format!("{base}/upload"),
    ])
    .await;
    assert_eq!(code, 0);
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["len"], 8 << 20);
    assert_eq!(answer["sha256"], testkit::sha256_hex(&upload));

    let parallel: Vec<_> = (0..8)
        .map(|i| {
            let url = format!("{base}/bytes/{}", (4 << 20) + i);
            let proxy = client.proxy;
            tokio::spawn(async move { (i, curl_sha("--socks5-hostname", proxy, &url).await) })
        })
        .collect();
    for task in parallel {
        let (i, sha) = task.await.unwrap();
        assert_eq!(sha, bytes_sha256((4 << 20) + i), "parallel download {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_over_tls_are_byte_identical() {
    transfers_are_byte_identical(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_over_plain_http_are_byte_identical() {
    transfers_are_byte_identical(false).await;
}

/// 10,000 datagrams through SOCKS5 UDP ASSOCIATE to a UDP echo server and
/// back, at most 64 in flight; the loss is counted (none on loopback), and
/// DNS through `--dns-listen` answered by the server's resolver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_datagrams_and_dns_travel_through_the_tunnel() {
    let server = server(true).await;
    let client = connect(&server, &server.url(), &["--dns-listen", "127.0.0.1:0"]).await;

    let echo = UdpEchoServer::start().await;
    let udp = Socks5Udp::associate(client.proxy).await;
    const TOTAL: u32 = 10_000;
    const IN_FLIGHT: u32 = 64;
    let (mut sent, mut received, mut lost) = (0u32, 0u32, 0u32);
    let mut seen = vec![false; TOTAL as usize];
    while received + lost < TOTAL {
        while sent < TOTAL && sent - received - lost < IN_FLIGHT {
            udp.send_to(echo.addr(), &datagram(sent)).await;
            sent += 1;
        }
        match udp.recv(Duration::from_secs(5)).await {
            Some((from, payload)) => {
                assert_eq!(from, echo.addr(), "replies carry their source");
                let n = u32::from_be_bytes(payload[..4].try_into().unwrap());
                assert_eq!(payload, datagram(n), "datagram {n} intact");
                assert!(!std::mem::replace(&mut seen[n as usize], true), "{n} twice");
                received += 1;
            }
            // Nothing for 5 s: whatever is in flight is lost.
            None => lost = sent - received,
        }
    }
    eprintln!("udp: {received} of {TOTAL} datagrams came back, {lost} lost");
    assert_eq!(lost, 0, "no datagram lost on loopback");

    let dns: SocketAddr = client
        .lines()
        .iter()
        .find(|l| l["type"] == "listening")
        .unwrap()["data"]["dns"]
        .as_str()
        .expect("the listening line names the DNS address")
        .parse()
        .unwrap();
    let a = dig(dns, &["localhost", "A"]).await;
    assert!(
        a.contains("status: NOERROR") && a.contains("127.0.0.1"),
        "{a}"
    );
    let aaaa = dig(dns, &["localhost", "AAAA"]).await;
    assert!(aaaa.contains("status: NOERROR"), "{aaaa}");
    let ptr = dig(dns, &["-x", "127.0.0.1"]).await;
    assert!(
        ptr.contains("status: NOERROR") && ptr.contains("localhost."),
        "{ptr}"
    );
    let mx = dig(dns, &["localhost", "MX"]).await;
    assert!(mx.contains("status: NOTIMP"), "{mx}");
}

fn datagram(n: u32) -> Vec<u8> {
    let mut payload = n.to_be_bytes().to_vec();
    payload.extend((0..(n % 1200)).map(|i| (i ^ n) as u8));
    payload
}

/// A relay that cuts every transport connection after 8 MiB of answers:
/// the 100 MiB download resumes on fresh connections again and again and
/// stays byte-identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_survive_connections_cut_mid_transfer() {
    let server = server(false).await;
    let relay = CuttingRelay::start(server.addr(), 8 << 20).await;
    let url = format!("http://127.0.0.1:{}", relay.addr().port());
    let client = connect(&server, &url, &[]).await;
    let http = HttpServer::start().await;
    let n = 100usize << 20;
    let got = curl_sha(
        "--socks5-hostname",
        client.proxy,
        &format!("{}/bytes/{n}", http.url()),
    )
    .await;
    assert_eq!(got, bytes_sha256(n), "identical after the cuts");
    assert!(relay.cuts() >= 5, "only {} cuts", relay.cuts());
    assert_eq!(
        client
            .states()
            .iter()
            .filter(|s| *s == "reconnecting")
            .count(),
        0,
        "cut connections are replaced inside the session, not by a reconnect"
    );
}

/// `httvps demo --ht`: an embedded HT server with no configuration; the
/// page through SOCKS5 and DNS through `--dns-listen`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ht_demo_works_with_no_configuration() {
    let client = JsonClient::start(
        &[
            "demo",
            "--ht",
            "--listen",
            "127.0.0.1:0",
            "--dns-listen",
            "127.0.0.1:0",
        ],
        &[],
    )
    .await;
    client.wait_state("active", Duration::from_secs(20)).await;
    let demo = client
        .wait_line("demo info", |v| v["type"] == "demo", Duration::from_secs(5))
        .await;
    assert!(
        demo["data"]["server"]
            .as_str()
            .unwrap()
            .starts_with("https://127.0.0.1:")
    );
    let page = demo["data"]["page"].as_str().unwrap().to_owned();
    let (code, body) = curl(&["--socks5-hostname", &client.proxy.to_string(), &page]).await;
    assert_eq!(code, 0);
    assert!(String::from_utf8_lossy(&body).contains("It works."));
    let dns: SocketAddr = client
        .lines()
        .iter()
        .find(|l| l["type"] == "listening")
        .unwrap()["data"]["dns"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let a = dig(dns, &["localhost", "A"]).await;
    assert!(a.contains("127.0.0.1"), "{a}");
}
