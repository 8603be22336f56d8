//! The `httvps` binary end to end, with real clients: curl and headless
//! Chromium as proxy clients, the `httvps-gateway` binary (real TLS), Debian's
//! `ss-server` as the Outline node, local HTTP/TCP servers as targets.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
mod cli;
use cli::{HTTVPS, JsonClient as Client, gateway_bin, headless_chromium};
use testkit::{
    EchoServer, FreezingRelay, Grant, HttpServer, SsServer, TestBackend, TestGateway, closed_port,
    closes_without_data, socks5_connect,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

const TOKEN: &str = "cli-e2e-token-42";

/// The token-file gateway (direct mode) most tests use.
async fn direct_gateway(extra: &[&str]) -> TestGateway {
    TestGateway::with_tokens(&gateway_bin(), &[TOKEN], extra)
        .await
        .expect("gateway starts")
}

/// `httvps connect` to `gateway` with the test token (plus `extra` flags
/// and `envs`), its proxy on a free port.
async fn connect(gateway: &TestGateway, extra: &[&str], envs: &[(&str, &str)]) -> Client {
    Client::connect(&gateway.url(), gateway.ca(), TOKEN, extra, envs).await
}

/// Waits for a `stream_closed` event whose reason contains `reason`.
async fn wait_stream_closed(client: &Client, reason: &str) -> Value {
    client
        .wait_line(
            &format!("a stream_closed ({reason})"),
            |v| {
                v["type"] == "stream_closed"
                    && v["data"]["close_reason"]
                        .as_str()
                        .is_some_and(|r| r.contains(reason))
            },
            Duration::from_secs(5),
        )
        .await
}

/// Runs curl through the proxy; returns (exit code, stdout bytes).
async fn curl(args: &[&str]) -> (i32, Vec<u8>) {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "60"])
        .args(args)
        .output()
        .await
        .expect("run curl (apt-get install curl)");
    if !out.status.success() {
        eprintln!("curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    (out.status.code().unwrap_or(-1), out.stdout)
}

/// The HTTP status curl got for `url` through `proxy` (`-x`), as text.
async fn curl_status(extra: &[&str], proxy: &str, url: &str) -> String {
    let mut args = extra.to_vec();
    args.extend(["-x", proxy, "-o", "/dev/null", "-w", "%{http_code}", url]);
    String::from_utf8_lossy(&curl(&args).await.1).into_owned()
}

async fn curl_sha(proxy_flag: &str, proxy: SocketAddr, url: &str) -> String {
    let (code, body) = curl(&[proxy_flag, &proxy.to_string(), url]).await;
    assert_eq!(code, 0, "curl {url}");
    testkit::sha256_hex(&body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_mode_serves_curl_over_socks5_and_http_with_identical_bytes() {
    let gateway = direct_gateway(&["--allow-private-targets"]).await;
    let client = connect(&gateway, &[], &[]).await;
    client.wait_state("active", Duration::from_secs(20)).await;
    let http = HttpServer::start().await;
    for n in [1usize, 65536] {
        let url = format!("{}/bytes/{n}", http.url());
        assert_eq!(
            curl_sha("--socks5-hostname", client.proxy, &url).await,
            testkit::bytes_sha256(n)
        );
        assert_eq!(
            curl_sha("-x", client.proxy, &url).await,
            testkit::bytes_sha256(n)
        );
    }
    let big = 100 * 1024 * 1024;
    let url = format!("{}/bytes/{big}", http.url());
    assert_eq!(
        curl_sha("--socks5-hostname", client.proxy, &url).await,
        testkit::bytes_sha256(big),
        "100 MiB"
    );

    // The live table saw the streams, with their byte counts.
    let closed = client
        .wait_line(
            "a closed 100 MiB stream",
            |v| {
                v["type"] == "stream_closed"
                    && v["data"]["bytes_down"].as_u64().unwrap_or(0) > big as u64
            },
            Duration::from_secs(10),
        )
        .await;
    assert!(
        closed["data"]["stream_id"]
            .as_str()
            .unwrap()
            .starts_with('s')
    );

    // `httvps status` and `streams` read the running instance.
    let out = Command::new(HTTVPS)
        .args(["status", "--json"])
        .env("HTTVPS_CONTROL_FILE", &client.control_file)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["state"]["state"], "active");
    assert!(status["totals"]["bytes_down"].as_u64().unwrap() > big as u64);
    let out = Command::new(HTTVPS)
        .args(["streams"])
        .env("HTTVPS_CONTROL_FILE", &client.control_file)
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&http.addr().to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outline_mode_through_real_ss_server() {
    let ss = SsServer::start("chacha20-ietf-poly1305", "cli-e2e")
        .await
        .unwrap();
    let backend = TestBackend::builder()
        .session_token(
            TOKEN,
            Grant {
                device_id: "d".into(),
                max_streams: 8,
                outline: Some(ss.outline_node()),
            },
        )
        .start()
        .await;
    // The target lives on loopback: Outline mode judges IP literals too.
    let gateway = TestGateway::with_backend(
        &gateway_bin(),
        &backend.url(),
        None,
        &["--allow-private-targets"],
    )
    .await
    .expect("gateway starts");
    let client = connect(&gateway, &[], &[]).await;
    client.wait_state("active", Duration::from_secs(20)).await;
    let http = HttpServer::start().await;
    let n = 5 * 1024 * 1024 + 3;
    let url = format!("{}/bytes/{n}", http.url());
    let expected = testkit::bytes_sha256(n);
    assert_eq!(
        curl_sha("--socks5-hostname", client.proxy, &url).await,
        expected
    );
    assert_eq!(curl_sha("-x", client.proxy, &url).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_loads_a_page_with_its_resources_through_the_tunnel() {
    let gateway = direct_gateway(&["--allow-private-targets"]).await;
    let client = connect(&gateway, &[], &[]).await;
    client.wait_state("active", Duration::from_secs(20)).await;
    let http = HttpServer::start().await;
    let profile = tempfile::tempdir().unwrap();
    let proxy = format!("socks5://{}", client.proxy);
    let out = headless_chromium(profile.path(), &proxy)
        .args([
            "--proxy-bypass-list=<-loopback>",
            "--virtual-time-budget=5000",
            "--dump-dom",
            &format!("{}/page", http.url()),
        ])
        .kill_on_drop(true)
        .output()
        .await
        .expect("run chromium (apt-get install chromium)");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("testkit page"),
        "page not loaded: {dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let requests = http.requests();
    for path in ["/page", "/static/a.css", "/static/b.js", "/static/c.png"] {
        assert!(
            requests.iter().any(|r| r == path),
            "{path} not fetched through the tunnel: {requests:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_connections_share_eight_streams() {
    let gateway = direct_gateway(&["--allow-private-targets", "--max-streams", "8"]).await;
    let client = connect(&gateway, &[], &[]).await;
    client.wait_state("active", Duration::from_secs(20)).await;
    let echo = EchoServer::start().await;
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let (proxy, target) = (client.proxy, echo.addr());
        tasks.push(tokio::spawn(async move {
            let mut s = socks5_connect(proxy, target)
                .await
                .unwrap_or_else(|code| panic!("connection {i}: reply {code}"));
            let data = testkit::pseudo_random_bytes(i as u64, 20_000);
            s.write_all(&data).await.unwrap();
            let mut back = vec![0u8; data.len()];
            s.read_exact(&mut back).await.unwrap();
            assert_eq!(back, data, "connection {i}");
        }));
    }
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("all complete")
            .unwrap();
    }
    // Some had to queue for a slot, and the table says how long.
    let waited = client
        .wait_line(
            "a queued stream",
            |v| v["type"] == "stream_opened" && v["data"]["wait_ms"].as_u64().unwrap_or(0) > 0,
            Duration::from_secs(5),
        )
        .await;
    assert!(waited["data"]["wait_ms"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimistic_open_answers_before_the_dial_and_reports_failures_by_closing() {
    let gateway = direct_gateway(&["--allow-private-targets"]).await;
    let careful = connect(&gateway, &[], &[]).await;
    let fast = connect(&gateway, &["--optimistic-open"], &[]).await;
    careful.wait_state("active", Duration::from_secs(20)).await;
    fast.wait_state("active", Duration::from_secs(20)).await;
    // A port nobody listens on: the gateway's dial is refused.
    let closed = closed_port();

    // By default the SOCKS reply waits for the gateway: "connection refused".
    assert_eq!(socks5_connect(careful.proxy, closed).await.err(), Some(5));
    // Optimistic: success at once, then the connection closes without data.
    let mut s = socks5_connect(fast.proxy, closed)
        .await
        .expect("an optimistic proxy answers before the dial");
    assert!(
        closes_without_data(&mut s).await,
        "the failed stream is closed"
    );
    wait_stream_closed(&fast, "refused").await;

    // And it carries real traffic, byte for byte, over SOCKS5 and HTTP.
    let http = HttpServer::start().await;
    let n = 1 << 20;
    let url = format!("{}/bytes/{n}", http.url());
    assert_eq!(
        curl_sha("--socks5-hostname", fast.proxy, &url).await,
        testkit::bytes_sha256(n)
    );
    assert_eq!(
        curl_sha("-x", fast.proxy, &url).await,
        testkit::bytes_sha256(n)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_gateway_mid_transfer_reconnects_when_it_returns() {
    let port = testkit::free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut gateway = direct_gateway(&["--allow-private-targets", "--listen", &listen]).await;
    let client = connect(&gateway, &[], &[]).await;
    client.wait_state("active", Duration::from_secs(20)).await;
    let http = HttpServer::start().await;

    // A slow, long download; the gateway dies under it.
    let url = format!("{}/stream/{}", http.url(), 1u64 << 30);
    let proxy = client.proxy.to_string();
    let download = tokio::spawn(async move {
        curl(&[
            "--limit-rate",
            "2M",
            "--socks5-hostname",
            &proxy,
            "-o",
            "/dev/null",
            &url,
        ])
        .await
        .0
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    gateway.kill(); // SIGKILL: no close frame, no goodbye
    let code = tokio::time::timeout(Duration::from_secs(30), download)
        .await
        .expect("curl ends")
        .unwrap();
    assert_ne!(code, 0, "a cut transfer must fail, not look complete");
    client
        .wait_state("reconnecting", Duration::from_secs(10))
        .await;

    // While reconnecting, a new connection waits (bounded) rather than hangs forever.
    // The gateway comes back on the same address with the same certificate.
    gateway.restart().await.expect("gateway restarts");
    let actives = || client.states().iter().filter(|s| *s == "active").count();
    let deadline = Instant::now() + Duration::from_secs(10);
    while actives() < 2 {
        assert!(
            Instant::now() < deadline,
            "not active again: {:?}",
            client.states()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let small = format!("{}/bytes/1000", http.url());
    let (code, body) = curl(&["--socks5-hostname", &client.proxy.to_string(), &small]).await;
    assert_eq!((code, body.len()), (0, 1000));
}

/// The path to the gateway dies silently (the relay in between freezes its
/// connections, as when the laptop moves to another network) and the
/// network changes (a veth pair appears: a real rtnetlink event). The
/// client probes at once and is active again over the new path in a few
/// seconds, where its keepalive alone would take 45 s. Needs root for the
/// link (skipped otherwise).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_change_recovers_a_silently_dead_session_in_seconds() {
    if !testkit::is_root() {
        println!("skipping: adding a link needs root");
        return;
    }
    let gateway = direct_gateway(&["--allow-private-targets"]).await;
    let relay = FreezingRelay::start(gateway.addr()).await;
    let url = format!("wss://127.0.0.1:{}/ws", relay.addr().port());
    let client = Client::connect(&url, gateway.ca(), TOKEN, &[], &[]).await;
    client.wait_state("active", Duration::from_secs(20)).await;

    relay.freeze_current();
    let name = format!("hrc{}", std::process::id() % 100_000);
    let ip = |args: &[&str]| {
        let status = std::process::Command::new("ip")
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "ip {args:?}");
    };
    let changed = Instant::now();
    ip(&[
        "link",
        "add",
        &name,
        "type",
        "veth",
        "peer",
        "name",
        &format!("{name}p"),
    ]);
    let actives = || client.states().iter().filter(|s| *s == "active").count();
    let deadline = changed + Duration::from_secs(15);
    while actives() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ip(&["link", "del", &name]);
    assert!(
        actives() >= 2,
        "active again well before the 45 s keepalive: {:?}",
        client.states()
    );
    println!("recovered {:?} after the network change", changed.elapsed());
    let http = HttpServer::start().await;
    let small = format!("{}/bytes/1000", http.url());
    let (code, body) = curl(&["--socks5-hostname", &client.proxy.to_string(), &small]).await;
    assert_eq!((code, body.len()), (0, 1000), "the new session carries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_right_error_and_the_engine_keeps_serving() {
    // A strict gateway: loopback targets are refused by policy.
    let strict = direct_gateway(&[]).await;
    let client = connect(
        &strict,
        &["--proxy-user", "alice"],
        &[("HTTVPS_PROXY_PASSWORD", "wonderland")],
    )
    .await;
    client.wait_state("active", Duration::from_secs(20)).await;
    let proxy = client.proxy.to_string();
    let http = HttpServer::start().await;

    // Garbage and a truncated greeting: closed, no panic.
    let mut garbage = TcpStream::connect(client.proxy).await.unwrap();
    garbage.write_all(b"\x16\x03\x01garbage").await.unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), garbage.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0),
        0
    );
    let mut truncated = TcpStream::connect(client.proxy).await.unwrap();
    truncated.write_all(&[5, 2]).await.unwrap();
    drop(truncated);

    // Wrong proxy password: SOCKS auth failure (curl 97) and HTTP 407.
    let wrong = format!("socks5h://alice:nope@{proxy}");
    assert_ne!(curl(&["-x", &wrong, &http.url()]).await.0, 0);
    assert_eq!(
        curl_status(
            &["-U", "alice:nope"],
            &format!("http://{proxy}"),
            &http.url()
        )
        .await,
        "407"
    );

    let good = format!("socks5h://alice:wonderland@{proxy}");
    let http_proxy = format!("http://alice:wonderland@{proxy}");
    // A host the gateway refuses (loopback, by policy): SOCKS "not allowed", HTTP 403.
    let (socks_code, _) = curl(&["-x", &good, &http.url()]).await;
    assert_eq!(socks_code, 97, "curl reports the SOCKS failure");
    assert_eq!(curl_status(&[], &http_proxy, &http.url()).await, "403");
    // An unresolvable host: HTTP 502 with the reason, SOCKS failure.
    assert_eq!(
        curl_status(&[], &http_proxy, "http://no-such-host.invalid/").await,
        "502"
    );
    assert_eq!(
        curl(&["-x", &good, "http://no-such-host.invalid/"]).await.0,
        97
    );
    // The refusals were recorded with their reasons, and the session survived.
    wait_stream_closed(&client, "not allowed").await;
    assert!(
        !client.states().iter().any(|s| s == "reconnecting"),
        "{:?}",
        client.states()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_under_json_are_a_json_line_with_a_stable_code() {
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(HTTVPS)
            .args(args)
            .env("HTTVPS_CONFIG", home.path().join("profiles.toml"))
            .env("HTTVPS_CONTROL_FILE", home.path().join("control.json"))
            .env_remove("HTTVPS_SESSION_TOKEN")
            .output()
    };
    let error_line = |stdout: &[u8]| -> serde_json::Value {
        let text = String::from_utf8_lossy(stdout);
        let line = text.lines().last().unwrap_or_default().to_owned();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {text}"))
    };
    let out = run(&["connect", "--json", "--profile", "nosuch"])
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let line = error_line(&out.stdout);
    assert_eq!(line["type"], "error");
    assert_eq!(line["data"]["code"], "not_found", "{line}");
    assert!(line["data"]["message"].as_str().unwrap().contains("nosuch"));

    let out = run(&["connect", "--json", "--gateway", "wss://gw.example/ws"])
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let line = error_line(&out.stdout);
    assert_eq!(line["data"]["code"], "not_signed_in", "{line}");

    // Without --json, stdout stays clean and the sentence goes to stderr.
    let out = run(&["connect", "--profile", "nosuch"]).await.unwrap();
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nosuch"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_prints_auth_failed_and_exits_non_zero() {
    let gateway = direct_gateway(&[]).await;
    let out = Command::new(HTTVPS)
        .args([
            "connect",
            "--gateway",
            &gateway.url(),
            "--ca",
            gateway.ca().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .env("HTTVPS_SESSION_TOKEN", "wrong-token")
        .env("HTTVPS_CONTROL_FILE", gateway.dir().join("control.json"))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("auth_failed"), "{stdout}");
    assert!(
        !stdout.contains("wrong-token")
            && !String::from_utf8_lossy(&out.stderr).contains("wrong-token")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_works_with_no_configuration() {
    let client = Client::start(&["demo", "--listen", "127.0.0.1:0"], &[]).await;
    client.wait_state("active", Duration::from_secs(20)).await;
    let demo = client
        .wait_line("demo info", |v| v["type"] == "demo", Duration::from_secs(5))
        .await;
    let page = demo["data"]["page"].as_str().unwrap().to_owned();
    let (code, body) = curl(&["--socks5-hostname", &client.proxy.to_string(), &page]).await;
    assert_eq!(code, 0);
    assert!(String::from_utf8_lossy(&body).contains("It works."));
    let (code, body) = curl(&["-x", &format!("http://{}", client.proxy), &page]).await;
    assert_eq!(code, 0);
    assert!(String::from_utf8_lossy(&body).contains("It works."));
    // Ctrl-C (SIGINT) stops it cleanly.
    let pid = client.child.id().unwrap() as i32;
    unsafe { libc::kill(pid, libc::SIGINT) };
    assert_eq!(client.exit_code(Duration::from_secs(10)).await, 0);
}

/// Whether this run must use the real keychain (scripts/test sets it; it runs
/// the suite inside a D-Bus session with an unlocked gnome-keyring).
fn keychain_required() -> bool {
    std::env::var("HTTVPS_REQUIRE_KEYRING").is_ok_and(|v| v == "1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_stores_the_token_in_the_keychain_and_connect_uses_it() {
    if !keychain_required() {
        eprintln!("no Secret Service required here; scripts/test runs this against gnome-keyring");
        return;
    }
    let gateway = direct_gateway(&["--allow-private-targets"]).await;
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("profiles.toml");
    let service = format!("httvps-cli-test-{}", std::process::id());
    let run = |args: Vec<String>, stdin: Option<String>| {
        let (config, service) = (config.clone(), service.clone());
        async move {
            let mut child = Command::new(HTTVPS)
                .args(&args)
                .env("HTTVPS_CONFIG", &config)
                .env("HTTVPS_KEYRING_SERVICE", &service)
                .env_remove("HTTVPS_SESSION_TOKEN")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut input = child.stdin.take().unwrap();
            if let Some(text) = stdin {
                input.write_all(text.as_bytes()).await.unwrap();
            }
            drop(input);
            child.wait_with_output().await.unwrap()
        }
    };
    let ca = gateway.ca().display().to_string();
    let login = vec![
        "login",
        "--profile",
        "work",
        "--gateway",
        &gateway.url(),
        "--ca",
        &ca,
        "--listen",
        "127.0.0.1:0",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let out = run(login, Some(format!("{TOKEN}\n"))).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The token is in the keychain, not in the settings file.
    let file = std::fs::read_to_string(&config).unwrap();
    assert!(file.contains("work") && !file.contains(TOKEN), "{file}");
    let listed = run(vec!["profiles".into()], None).await;
    assert!(String::from_utf8_lossy(&listed.stdout).contains("token in keychain"));

    // `connect --profile` takes the token from the keychain.
    let client = Client::start(
        &["connect", "--profile", "work"],
        &[
            ("HTTVPS_CONFIG", config.to_str().unwrap()),
            ("HTTVPS_KEYRING_SERVICE", service.as_str()),
        ],
    )
    .await;
    client.wait_state("active", Duration::from_secs(20)).await;
    let http = HttpServer::start().await;
    let (code, body) = curl(&[
        "--socks5-hostname",
        &client.proxy.to_string(),
        &format!("{}/bytes/10", http.url()),
    ])
    .await;
    assert_eq!((code, body.len()), (0, 10));
    drop(client);

    // Logout deletes it; connect then says how to log in.
    let out = run(
        vec!["logout".into(), "--profile".into(), "work".into()],
        None,
    )
    .await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed 1 secret"));
    let out = run(
        vec!["connect".into(), "--profile".into(), "work".into()],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("httvps login --profile work"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_login_reconnects_with_a_fresh_token() {
    let ss = SsServer::start("chacha20-ietf-poly1305", "device")
        .await
        .unwrap();
    let port = testkit::free_port();
    let listen = format!("127.0.0.1:{port}");
    let grant = Grant {
        device_id: String::new(),
        max_streams: 8,
        outline: Some(ss.outline_node()),
    };
    let backend = TestBackend::builder()
        .device(
            "dev-9",
            "device-token",
            grant,
            &format!("wss://127.0.0.1:{port}/ws"),
        )
        .start()
        .await;
    let backend_url = backend.url();
    let flags = [
        "--backend",
        &backend_url,
        "--listen",
        &listen,
        "--drain-timeout",
        "0",
        "--allow-private-targets",
    ];
    let mut gateway = TestGateway::start(&gateway_bin(), &flags, &[])
        .await
        .expect("gateway starts");
    let client = Client::start(
        &[
            "connect",
            "--backend",
            &backend.url(),
            "--device-id",
            "dev-9",
            "--ca",
            gateway.ca().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        &[("HTTVPS_DEVICE_TOKEN", "device-token")],
    )
    .await;
    client.wait_state("active", Duration::from_secs(20)).await;
    assert_eq!(backend.session_calls(), 1);

    // The gateway goes away (a graceful restart) and comes back.
    gateway.process().sigterm();
    gateway
        .process_mut()
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("gateway stops");
    client
        .wait_state("reconnecting", Duration::from_secs(10))
        .await;
    gateway.restart().await.expect("gateway restarts");
    let deadline = Instant::now() + Duration::from_secs(15);
    while client.states().iter().filter(|s| *s == "active").count() < 2 {
        assert!(
            Instant::now() < deadline,
            "not active again: {:?}",
            client.states()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Session tokens are single-use: every attempt asked the control plane again.
    assert!(
        backend.session_calls() >= 2,
        "{} session calls",
        backend.session_calls()
    );
    let http = HttpServer::start().await;
    let (code, body) = curl(&[
        "-x",
        &format!("http://{}", client.proxy),
        &format!("{}/bytes/2048", http.url()),
    ])
    .await;
    assert_eq!((code, body.len()), (0, 2048));
}
