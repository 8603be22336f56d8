//! Routing rules end to end: `httvps connect --rules FILE` in front of a real
//! gateway, driven by curl over SOCKS5 and the HTTP proxy. A `direct` target
//! is fetched from this machine (the gateway never sees it), a `tunnel`
//! target goes through the gateway (its stream counter moves), a `block`
//! target is refused with SOCKS5 reply 0x02 and HTTP 403; the proxy serves
//! the rules as a PAC file. The same rules hold over HT, UDP datagrams
//! included.

use std::net::SocketAddr;
use std::time::Duration;

mod cli;
use cli::{JsonClient as Client, gateway_bin};
use serde_json::Value;
use testkit::hostile::{http_get_text, metric};
use testkit::{HttpServer, Socks5Udp, TestGateway, TestHtServer, UdpEchoServer, socks5_connect};
use tokio::process::Command;

const TOKEN: &str = "routing-e2e-token";

/// A loopback port free right now (for the gateway's metrics listener).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// curl with `args`: (exit code, stdout, stderr).
async fn curl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "20"])
        .args(args)
        .output()
        .await
        .expect("run curl (apt-get install curl)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn streams_total(metrics: SocketAddr) -> f64 {
    let text = http_get_text(metrics, "/metrics").await.expect("metrics");
    metric(&text, "httvps_gateway_streams_total", "")
}

/// The closed-stream event for `target`.
async fn closed_row(client: &Client, target: &str) -> Value {
    client
        .wait_line(
            &format!("stream_closed for {target}"),
            |v| v["type"] == "stream_closed" && v["data"]["target"] == target,
            Duration::from_secs(10),
        )
        .await["data"]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_tunnel_and_block_targets_take_their_own_ways() {
    let metrics: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let metrics_flag = metrics.to_string();
    let gateway = TestGateway::with_tokens(
        &gateway_bin(),
        &[TOKEN],
        &["--allow-private-targets", "--metrics", &metrics_flag],
    )
    .await
    .expect("gateway starts");
    let direct_site = HttpServer::start().await;
    let tunnel_site = HttpServer::start().await;

    // `localhost` (a name: matched before any lookup) goes direct; the
    // tunnel site is an IP literal and takes the default.
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        r#"
default = "tunnel"
rules = [
  { match = "domain-suffix", value = "blocked.example", action = "block" },
  { match = "ip", value = "127.0.0.2", action = "block" },
  { match = "domain", value = "localhost", action = "direct" },
]
"#,
    )
    .unwrap();
    let rules_flag = rules.display().to_string();
    let client = Client::connect(
        &gateway.url(),
        gateway.ca(),
        TOKEN,
        &["--rules", &rules_flag],
        &[],
    )
    .await;
    client.wait_state("active", Duration::from_secs(20)).await;
    let proxy = client.proxy.to_string();
    let before = streams_total(metrics).await;

    let direct_url = format!("http://localhost:{}/bytes/1000", direct_site.addr().port());
    let tunnel_url = format!("{}/bytes/1000", tunnel_site.url());
    for (flag, url) in [
        ("--socks5-hostname", &direct_url),
        ("-x", &direct_url),
        ("--socks5-hostname", &tunnel_url),
        ("-x", &tunnel_url),
    ] {
        let out = ["-o", "/dev/null", "-w", "%{http_code} %{size_download}"];
        let (code, got, stderr) =
            curl(&[&[flag, proxy.as_str(), url.as_str()][..], &out[..]].concat()).await;
        assert_eq!(
            (code, got.as_str()),
            (0, "200 1000"),
            "curl {flag} {url}: {stderr}"
        );
    }
    assert_eq!(direct_site.requests().len(), 2);
    assert_eq!(tunnel_site.requests().len(), 2);
    // Only the two tunnelled fetches reached the gateway.
    assert_eq!(streams_total(metrics).await - before, 2.0);

    // Blocked: SOCKS5 reply 0x02 "connection not allowed by ruleset", HTTP
    // 403 saying which rule; the gateway sees nothing.
    let (code, _, stderr) =
        curl(&["--socks5-hostname", &proxy, "http://www.blocked.example/"]).await;
    assert_ne!(code, 0, "blocked over SOCKS5: {stderr}");
    let (_, status, _) = curl(&[
        "-x",
        &proxy,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "http://www.blocked.example/",
    ])
    .await;
    assert_eq!(status, "403");
    let (_, text, _) = curl(&["-x", &proxy, "http://blocked.example:8080/"]).await;
    assert!(
        text.contains(
            "blocked by the routing rules (rule 1: domain-suffix blocked.example → block)"
        ),
        "{text}"
    );
    let (code, _, stderr) = curl(&[
        "-x",
        &proxy,
        "-p",
        "-o",
        "/dev/null",
        "https://www.blocked.example/",
    ])
    .await;
    assert_ne!(code, 0, "blocked CONNECT: {stderr}");
    assert!(stderr.contains("403"), "{stderr}");
    // The exact SOCKS5 replies: 0x02 for a blocked IP literal, 0x00 (and a
    // tunnel stream) for the tunnel site.
    let blocked_ip: SocketAddr = ([127, 0, 0, 2], 80).into();
    assert_eq!(
        socks5_connect(client.proxy, blocked_ip).await.err(),
        Some(0x02)
    );
    assert!(
        socks5_connect(client.proxy, tunnel_site.addr())
            .await
            .is_ok()
    );
    assert_eq!(streams_total(metrics).await - before, 3.0);

    // The table marks each row with its way and rule.
    let direct_row = closed_row(&client, &format!("localhost:{}", direct_site.addr().port())).await;
    assert_eq!(direct_row["route"], "direct");
    assert_eq!(direct_row["stream_id"], "direct");
    assert_eq!(direct_row["rule"], "rule 3: domain localhost → direct");
    let tunnel_row = closed_row(&client, &tunnel_site.addr().to_string()).await;
    assert_eq!(tunnel_row["route"], "tunnel");
    assert_eq!(tunnel_row["rule"], "default → tunnel");
    assert!(tunnel_row["stream_id"].as_str().unwrap().starts_with('s'));
    let blocked = closed_row(&client, "www.blocked.example:80").await;
    assert_eq!(blocked["route"], "block");
    assert!(
        blocked["close_reason"]
            .as_str()
            .unwrap()
            .contains("not allowed"),
        "{blocked}"
    );

    // The PAC file, from the proxy port itself (not a proxy request).
    let pac_url = format!("http://{proxy}/proxy.pac");
    let (code, head_and_body, stderr) = curl(&["-i", &pac_url]).await;
    assert_eq!(code, 0, "{stderr}");
    let lower = head_and_body.to_ascii_lowercase();
    assert!(
        lower.contains("content-type: application/x-ns-proxy-autoconfig"),
        "{head_and_body}"
    );
    assert!(head_and_body.contains("function FindProxyForURL(url, host)"));
    assert!(head_and_body.contains(&format!("var proxy = \"SOCKS5 {proxy}; PROXY {proxy}\";")));
    assert!(head_and_body.contains("if (name && h == \"localhost\") return \"DIRECT\";"));
    // Other origin-form requests keep their answer (400: not a proxy request).
    let (_, status, _) = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://{proxy}/"),
    ])
    .await;
    assert_eq!(status, "400");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_rule_stops_connect_naming_the_file_and_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("bad.toml");
    std::fs::write(
        &rules,
        "rules = [{ match = \"port\", value = \"443\", action = \"direct\" }, { match = \"ip\", value = \"10.0.0.0/33\", action = \"block\" }]\n",
    )
    .unwrap();
    let rules_flag = rules.display().to_string();
    let client = Client::spawn(
        &[
            "connect",
            "--gateway",
            "wss://127.0.0.1:9/ws",
            "--listen",
            "127.0.0.1:0",
            "--rules",
            &rules_flag,
        ],
        &[("HTTVPS_SESSION_TOKEN", "t")],
    );
    let error = client
        .wait_line(
            "the error line",
            |v| v["type"] == "error",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(error["data"]["code"], "invalid_input", "{error}");
    let message = error["data"]["message"].as_str().unwrap();
    assert!(message.contains("bad.toml"), "{message}");
    assert!(
        message.contains("rule 2 (ip 10.0.0.0/33 → block): the prefix length must be 0 to 32"),
        "{message}"
    );
    assert_ne!(client.exit_code(Duration::from_secs(10)).await, 0);
}

/// HT: the same rules, and UDP datagrams judged one by one (a `block`ed
/// target's datagrams are dropped, the tunnelled one's echo).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ht_follows_the_rules_for_streams_and_datagrams() {
    let server = TestHtServer::start(
        &cli::sibling_bin("ht-server", "ht-server"),
        true,
        &["--allow-private-targets"],
    )
    .await
    .expect("ht-server starts");
    let direct_site = HttpServer::start().await;
    let tunnel_site = HttpServer::start().await;
    let echo = UdpEchoServer::start().await;
    let blocked_echo = UdpEchoServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        format!(
            "[[rules]]\nmatch = \"port\"\nvalue = \"{}\"\naction = \"block\"\n\n\
             [[rules]]\nmatch = \"domain\"\nvalue = \"localhost\"\naction = \"direct\"\n",
            blocked_echo.addr().port()
        ),
    )
    .unwrap();
    let rules_flag = rules.display().to_string();
    let url = server.url();
    let ca = server.ca().map(|p| p.display().to_string());
    let mut args = vec![
        "connect",
        "--ht",
        &url,
        "--listen",
        "127.0.0.1:0",
        "--rules",
        &rules_flag,
    ];
    if let Some(ca) = &ca {
        args.extend(["--ca", ca]);
    }
    let client = Client::start(&args, &[("HTTVPS_HT_KEY", server.key_hex())]).await;
    client.wait_state("active", Duration::from_secs(20)).await;
    let proxy = client.proxy.to_string();

    let out = ["-o", "/dev/null", "-w", "%{http_code} %{size_download}"];
    let direct_url = format!("http://localhost:{}/bytes/10", direct_site.addr().port());
    let tunnel_url = format!("{}/bytes/10", tunnel_site.url());
    for url in [&direct_url, &tunnel_url] {
        let (code, got, stderr) = curl(
            &[
                &["--socks5-hostname", proxy.as_str(), url.as_str()][..],
                &out[..],
            ]
            .concat(),
        )
        .await;
        assert_eq!((code, got.as_str()), (0, "200 10"), "{url}: {stderr}");
    }
    let direct_row = closed_row(&client, &format!("localhost:{}", direct_site.addr().port())).await;
    assert_eq!(
        (
            direct_row["route"].as_str(),
            direct_row["stream_id"].as_str()
        ),
        (Some("direct"), Some("direct"))
    );
    let tunnel_row = closed_row(&client, &tunnel_site.addr().to_string()).await;
    assert_eq!(tunnel_row["route"], "tunnel");
    assert_ne!(tunnel_row["stream_id"], "direct");

    let udp = Socks5Udp::associate(client.proxy).await;
    udp.send_to(blocked_echo.addr(), b"blocked").await;
    udp.send_to(echo.addr(), b"tunnelled").await;
    let (from, payload) = udp.recv(Duration::from_secs(5)).await.expect("the echo");
    assert_eq!((from, payload.as_slice()), (echo.addr(), &b"tunnelled"[..]));
    assert_eq!(
        udp.recv(Duration::from_secs(1)).await,
        None,
        "the blocked datagram was dropped"
    );
}
