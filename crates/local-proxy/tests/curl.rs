//! The real `curl` binary through the proxy: SOCKS5 (socks5h, so curl sends
//! names unresolved), HTTP forwarding and CONNECT (`-p`).

mod util;

use local_proxy::{ConnectErrorKind, Credentials, ProxyConfig, ProxyProtocol, TargetAddr};
use util::*;

fn auth_config() -> ProxyConfig {
    ProxyConfig {
        auth: Some(Credentials::new("alice", "s3cr:et")),
        ..config()
    }
}

#[tokio::test]
async fn socks5_hostname_fetches_the_page() {
    let server = http_server().await;
    let connector = DirectConnector::new();
    let proxy = start(config(), connector.clone()).await;
    let socks = proxy.local_addr().to_string();
    let url = format!("http://localhost:{}/hello", server.port());
    let out = curl(&["--socks5-hostname", &socks, &url]).await;
    assert!(out.ok(), "{}", out.stderr);
    assert_eq!(out.text(), "hello from /hello");
    // The name went to the connector unresolved: no local DNS.
    let reqs = connector.requests();
    assert_eq!(
        reqs[0].target,
        TargetAddr::Domain("localhost".into(), server.port())
    );
    assert_eq!(reqs[0].protocol, ProxyProtocol::Socks5);
}

#[tokio::test]
async fn socks5_with_credentials() {
    let server = http_server().await;
    let connector = DirectConnector::new();
    let proxy = start(auth_config(), connector.clone()).await;
    let port = proxy.local_addr().port();
    let url = format!("http://127.0.0.1:{}/auth", server.port());

    let good = format!("socks5h://alice:s3cr%3Aet@127.0.0.1:{port}");
    let out = curl(&["-x", &good, &url]).await;
    assert!(out.ok(), "{}", out.stderr);
    assert_eq!(out.text(), "hello from /auth");

    let socks = format!("127.0.0.1:{port}");
    let out = curl(&[
        "--socks5-hostname",
        &socks,
        "--proxy-user",
        "alice:s3cr:et",
        &url,
    ])
    .await;
    assert!(out.ok(), "{}", out.stderr);

    let bad = format!("socks5h://alice:wrong@127.0.0.1:{port}");
    let out = curl(&["-x", &bad, &url]).await;
    assert!(!out.ok());
    assert!(out.stdout.is_empty());

    let out = curl(&["--socks5-hostname", &socks, &url]).await;
    assert!(!out.ok(), "no credentials must not pass");
    assert_eq!(connector.requests().len(), 2);
}

#[tokio::test]
async fn socks5_upload_and_big_download() {
    let server = http_server().await;
    let proxy = start(config(), DirectConnector::new()).await;
    let socks = format!("socks5h://{}", proxy.local_addr());
    let dir = std::env::temp_dir().join(format!("local-proxy-curl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("upload.bin");
    let data = pattern(300_000);
    std::fs::write(&file, &data).unwrap();
    let url = format!("http://127.0.0.1:{}/echo", server.port());
    let at_file = format!("@{}", file.display());
    let out = curl(&["-x", &socks, "--data-binary", &at_file, &url]).await;
    assert!(out.ok(), "{}", out.stderr);
    assert_eq!(out.stdout, data);
    let url = format!("http://127.0.0.1:{}/big", server.port());
    let out = curl(&["-x", &socks, &url]).await;
    assert!(out.ok(), "{}", out.stderr);
    assert_eq!(out.stdout, pattern(1 << 20));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn http_forwarding_with_keep_alive_across_urls() {
    let server = http_server().await;
    let connector = DirectConnector::new();
    let proxy = start(config(), connector.clone()).await;
    let proxy_url = format!("http://{}", proxy.local_addr());
    let base = format!("http://127.0.0.1:{}", server.port());
    let (a, b, c) = (
        format!("{base}/one"),
        format!("{base}/two"),
        format!("{base}/big"),
    );
    let out = curl(&["-x", &proxy_url, &a, &b, &c]).await;
    assert!(out.ok(), "{}", out.stderr);
    let mut expected = b"hello from /onehello from /two".to_vec();
    expected.extend_from_slice(&pattern(1 << 20));
    assert_eq!(out.stdout, expected);
    // One client connection, one upstream for the three requests.
    let reqs = connector.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].protocol, ProxyProtocol::HttpForward);
}

#[tokio::test]
async fn http_forwarding_post_head_and_two_hosts() {
    let server = http_server().await;
    let connector = DirectConnector::new();
    let proxy = start(config(), connector.clone()).await;
    let proxy_url = format!("http://{}", proxy.local_addr());
    let port = server.port();
    let url = format!("http://127.0.0.1:{port}/echo");
    let out = curl(&["-x", &proxy_url, "--data-binary", "posted body", &url]).await;
    assert!(out.ok(), "{}", out.stderr);
    assert_eq!(out.text(), "posted body");
    // Chunked upload.
    let out = curl(&[
        "-x",
        &proxy_url,
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        "chunky",
        &url,
    ])
    .await;
    assert!(out.ok(), "{}", out.stderr);
    assert_eq!(out.text(), "chunky");
    // HEAD: no body, and no hang waiting for one.
    let head_url = format!("http://127.0.0.1:{port}/x");
    let out = curl(&["-x", &proxy_url, "-I", &head_url]).await;
    assert!(out.ok(), "{}", out.stderr);
    assert!(out.text().starts_with("HTTP/1.1 200"), "{}", out.text());
    // Two hosts in one run: the upstream is switched.
    let u1 = format!("http://127.0.0.1:{port}/h1");
    let u2 = format!("http://localhost:{port}/h2");
    let out = curl(&["-x", &proxy_url, &u1, &u2]).await;
    assert!(out.ok(), "{}", out.stderr);
    assert_eq!(out.text(), "hello from /h1hello from /h2");
}

#[tokio::test]
async fn http_proxy_credentials() {
    let server = http_server().await;
    let proxy = start(auth_config(), DirectConnector::new()).await;
    let proxy_url = format!("http://{}", proxy.local_addr());
    let url = format!("http://127.0.0.1:{}/auth", server.port());
    let out = curl(&["-x", &proxy_url, "-U", "alice:s3cr:et", &url]).await;
    assert!(out.ok(), "{}", out.stderr);
    assert_eq!(out.text(), "hello from /auth");
    for extra in [&["-U", "alice:nope"][..], &[]] {
        let mut args = vec!["-x", &proxy_url, "-o", "/dev/null", "-w", "%{http_code}"];
        args.extend_from_slice(extra);
        args.push(&url);
        let out = curl(&args).await;
        assert_eq!(out.text(), "407", "{}", out.stderr);
    }
    // CONNECT with credentials too.
    let out = curl(&["-p", "-x", &proxy_url, "-U", "alice:s3cr:et", &url]).await;
    assert!(out.ok(), "{}", out.stderr);
    assert_eq!(out.text(), "hello from /auth");
}

#[tokio::test]
async fn proxytunnel_uses_connect() {
    let server = http_server().await;
    let connector = DirectConnector::new();
    let proxy = start(config(), connector.clone()).await;
    let proxy_url = format!("http://{}", proxy.local_addr());
    let url = format!("http://localhost:{}/tunnel", server.port());
    let out = curl(&["-p", "-x", &proxy_url, &url]).await;
    assert!(out.ok(), "{}", out.stderr);
    assert_eq!(out.text(), "hello from /tunnel");
    let reqs = connector.requests();
    assert_eq!(reqs[0].protocol, ProxyProtocol::HttpConnect);
    assert_eq!(
        reqs[0].target,
        TargetAddr::Domain("localhost".into(), server.port())
    );
}

#[tokio::test]
async fn curl_sees_error_statuses() {
    let cases = [
        (ConnectErrorKind::Refused, "502"),
        (ConnectErrorKind::TimedOut, "504"),
        (ConnectErrorKind::NotAllowed, "403"),
        (ConnectErrorKind::Unavailable, "503"),
    ];
    for (kind, code) in cases {
        let proxy = start(config(), FailConnector::new(kind)).await;
        let proxy_url = format!("http://{}", proxy.local_addr());
        let out = curl(&[
            "-x",
            &proxy_url,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://example.com/",
        ])
        .await;
        assert_eq!(out.text(), code, "{kind:?}: {}", out.stderr);
        // CONNECT failure: curl reports the proxy's status.
        let out = curl(&[
            "-p",
            "-x",
            &proxy_url,
            "-o",
            "/dev/null",
            "-w",
            "%{http_connect}",
            "http://example.com/",
        ])
        .await;
        assert!(!out.ok());
        assert_eq!(out.text(), code, "{kind:?}: {}", out.stderr);
        // SOCKS5 failure: curl fails without a body.
        let socks = format!("socks5h://{}", proxy.local_addr());
        let out = curl(&["-x", &socks, "http://example.com/"]).await;
        assert!(!out.ok() && out.stdout.is_empty(), "{kind:?}");
    }
}

#[tokio::test]
async fn https_url_through_forwarding_is_400() {
    // Force curl to send an https:// URL in absolute form by talking to the
    // proxy as if it were an origin server.
    let proxy = start(config(), DirectConnector::new()).await;
    let url = format!("http://{}/", proxy.local_addr());
    let out = curl(&[
        "--request-target",
        "https://example.com/",
        "-w",
        "\n%{http_code}",
        &url,
    ])
    .await;
    let text = out.text();
    assert!(text.ends_with("\n400"), "{text}");
    assert!(text.contains("CONNECT"), "{text}");
}
