//! End to end through real parts: the client SDK → the `httvps-gateway` binary
//! (real TLS) → Debian's `ss-server` as the Outline node (or direct mode) → a
//! local TCP/HTTP server. Every test starts its own peers on port 0.

use std::time::Duration;

use httvps_client::{
    ClientConfig, CloseReason, ControlPlane, DeviceCredentials, Frame, KeepaliveConfig, Secret,
    Session, TargetAddr, Tunnel, connect_with_device,
};
use testkit::{
    EchoServer, Grant, HttpServer, InProcessSsServer, ServerFirst, SsServer, TcpBlackhole,
    TestBackend,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod sdk;
use sdk::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outline_mode_bytes_are_identical_through_real_ss_server() {
    let ss = SsServer::start("chacha20-ietf-poly1305", "e2e-password")
        .await
        .unwrap();
    let backend = TestBackend::builder()
        .secret("internal-secret")
        .session_token(TOKEN, outline_grant(&ss, 8))
        .start()
        .await;
    let gateway = Gateway::with_backend(&backend, "internal-secret", &[]).await;
    let tunnel = gateway.tunnel().await;
    assert_eq!(tunnel.max_streams(), 8);
    assert_eq!(
        backend.last_secret_seen().as_deref(),
        Some("internal-secret")
    );

    let echo = EchoServer::start().await;
    for len in [1, 64 * 1024, 3 * 1024 * 1024 + 17] {
        let (sent, received) = echo_round_trip(&tunnel, echo.addr(), len).await;
        assert_eq!(sent, received, "echo of {len} bytes");
    }

    let http = HttpServer::start().await;
    for len in [1usize, 64 * 1024, 100 * 1024 * 1024] {
        let (status, expected, got, got_len) =
            http_get(&tunnel, &http, &format!("/bytes/{len}")).await;
        assert_eq!(status, 200);
        assert_eq!(got_len, len);
        assert_eq!(got, expected, "download of {len} bytes");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outline_mode_works_with_aes_gcm_ciphers() {
    for method in ["aes-256-gcm", "aes-128-gcm"] {
        let ss = SsServer::start(method, "another-password").await.unwrap();
        let backend = TestBackend::builder()
            .session_token(TOKEN, outline_grant(&ss, 4))
            .start()
            .await;
        let gateway = Gateway::with_backend(&backend, "", &[]).await;
        let tunnel = gateway.tunnel().await;
        let echo = EchoServer::start().await;
        let (sent, received) = echo_round_trip(&tunnel, echo.addr(), 200_000).await;
        assert_eq!(sent, received, "{method}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_mode_carries_eight_concurrent_streams() {
    let gateway = Gateway::direct(&[]).await;
    let tunnel = gateway.tunnel().await;
    let echo = EchoServer::start().await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (tunnel, echo_addr) = (tunnel.clone(), echo.addr());
        tasks.push(tokio::spawn(async move {
            echo_round_trip(&tunnel, echo_addr, 1_000_000 + i).await
        }));
    }
    for task in tasks {
        let (sent, received) = task.await.unwrap();
        assert_eq!(sent, received);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_first_protocols_work() {
    let gateway = Gateway::direct(&[]).await;
    let tunnel = gateway.tunnel().await;
    let banner = b"SSH-2.0-OpenSSH_9.2 test\r\n";
    let server = ServerFirst::start(banner).await;
    let mut stream = tunnel.open(TargetAddr::Ip(server.addr())).await.unwrap();
    let mut got = vec![0u8; banner.len()];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut got))
        .await
        .expect("banner in time")
        .unwrap();
    assert_eq!(&got, banner);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_limit_and_unknown_stream_are_raised_locally() {
    let gateway = Gateway::direct(&["--max-streams", "2"]).await;
    let mut session = Session::connect(gateway.config(), &Secret::from(TOKEN))
        .await
        .unwrap();
    assert_eq!(session.max_streams(), 2);
    let echo = EchoServer::start().await;
    let target = TargetAddr::Ip(echo.addr());
    assert_eq!(session.open_stream(&target, None).await.unwrap(), "s1");
    assert_eq!(session.open_stream(&target, None).await.unwrap(), "s2");
    let err = session.open_stream(&target, None).await.unwrap_err();
    assert_eq!(err.code(), "stream_limit");
    let err = session.send_data("s9", b"x").await.unwrap_err();
    assert_eq!(err.code(), "unknown_stream");

    // Nothing was sent for the refused stream: the gateway reports no error,
    // and the open streams still work.
    session.send_data("s1", b"ping me").await.unwrap();
    let mut echoed = Vec::new();
    while echoed.len() < 7 {
        match session.next_event(Duration::from_secs(5)).await.unwrap() {
            Some(Frame::StreamData { stream_id, data }) => {
                assert_eq!(stream_id, "s1");
                echoed.extend(data);
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert_eq!(echoed, b"ping me");

    // Closing frees a slot; ids are never reused.
    session.close_stream("s1", None).await.unwrap();
    assert_eq!(session.open_stream(&target, None).await.unwrap(), "s3");
    assert_eq!(
        session.send_data("s1", b"x").await.unwrap_err().code(),
        "unknown_stream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_enforces_the_limit_and_queues_with_open_wait() {
    let gateway = Gateway::direct(&["--max-streams", "2"]).await;
    let tunnel = gateway.tunnel().await;
    let echo = EchoServer::start().await;
    let target = TargetAddr::Ip(echo.addr());
    let a = tunnel.open(target.clone()).await.unwrap();
    let _b = tunnel.open(target.clone()).await.unwrap();
    assert_eq!(
        tunnel.open(target.clone()).await.unwrap_err().code(),
        "stream_limit"
    );
    let err = tunnel
        .open_wait(target.clone(), Duration::from_millis(200))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "stream_limit");
    let waiter = {
        let (tunnel, target) = (tunnel.clone(), target.clone());
        tokio::spawn(async move { tunnel.open_wait(target, Duration::from_secs(10)).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(a);
    let mut c = waiter.await.unwrap().expect("a slot frees up");
    c.write_all(b"hi").await.unwrap();
    let mut got = [0u8; 2];
    c.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"hi");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_is_auth_failed() {
    let ss = SsServer::start("chacha20-ietf-poly1305", "pw")
        .await
        .unwrap();
    let backend = TestBackend::builder()
        .session_token(TOKEN, outline_grant(&ss, 8))
        .start()
        .await;
    let gateway = Gateway::with_backend(&backend, "", &[]).await;
    let err = Tunnel::connect(gateway.config(), &Secret::from("not-a-token"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "auth_failed", "{err}");

    let direct = Gateway::direct(&[]).await;
    let err = Tunnel::connect(direct.config(), &Secret::from("wrong"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "auth_failed", "{err}");
    for line in direct
        .process()
        .logs()
        .iter()
        .chain(gateway.process().logs().iter())
    {
        assert!(
            !line.contains("not-a-token") && !line.contains(TOKEN),
            "token in logs: {line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_reach_the_stream_with_their_reason() {
    let gateway = Gateway::direct(&[]).await;
    let tunnel = gateway.tunnel().await;
    let mut stream = tunnel
        .open(TargetAddr::Ip(testkit::closed_port()))
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let err = stream.read(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");

    // Without --allow-private-targets a loopback target is refused by policy.
    let strict = Gateway::strict().await;
    let tunnel = strict.tunnel().await;
    let echo = EchoServer::start().await;
    let mut stream = tunnel.open(TargetAddr::Ip(echo.addr())).await.unwrap();
    let err = stream.read(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
    // The session survives a failed stream.
    assert!(tunnel.is_active());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_login_fetches_a_fresh_token_for_every_connect() {
    let ss = SsServer::start("chacha20-ietf-poly1305", "pw")
        .await
        .unwrap();
    // The backend must advertise the gateway's URL before the gateway (which
    // needs the backend's URL) starts: pick the gateway's port first.
    let port = testkit::free_port();
    let gateway_url = format!("wss://127.0.0.1:{port}/ws");
    let backend = TestBackend::builder()
        .device(
            "dev-7",
            "device-secret",
            outline_grant(&ss, 8),
            &gateway_url,
        )
        .start()
        .await;
    let listen = format!("127.0.0.1:{port}");
    let gateway = Gateway::with_backend(&backend, "", &["--listen", &listen]).await;
    assert_eq!(gateway.url(), gateway_url);

    let control = ControlPlane::new(backend.url(), &Default::default()).unwrap();
    let creds = DeviceCredentials {
        device_id: "dev-7".into(),
        token: Secret::from("device-secret"),
        region: None,
    };
    let mut template = ClientConfig::new("wss://set-by-the-grant.invalid/ws");
    template.tls.ca_file = Some(gateway.ca().to_path_buf());
    let echo = EchoServer::start().await;
    for _ in 0..2 {
        let tunnel = connect_with_device(&control, &creds, &template)
            .await
            .unwrap();
        assert_eq!(tunnel.max_streams(), 8);
        let (sent, received) = echo_round_trip(&tunnel, echo.addr(), 1000).await;
        assert_eq!(sent, received);
    }
    assert_eq!(
        backend.session_calls(),
        2,
        "a fresh token for every connect"
    );

    // Session tokens are single-use: a replay is refused.
    let grant = control.create_session(&creds).await.unwrap();
    let config = ClientConfig {
        url: grant.gateway_url.clone(),
        ..template.clone()
    };
    Tunnel::connect(config.clone(), &grant.session_token)
        .await
        .unwrap();
    let err = Tunnel::connect(config, &grant.session_token)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "auth_failed", "{err}");

    // A wrong device token is a clear auth error from the control plane.
    let bad = DeviceCredentials {
        token: Secret::from("nope"),
        ..creds
    };
    let err = control.create_session(&bad).await.unwrap_err();
    assert_eq!(err.code(), "auth_failed", "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_verified_and_pins_work() {
    let gateway = Gateway::direct(&[]).await;
    // System roots only: the self-signed gateway is refused.
    let err = Tunnel::connect(ClientConfig::new(gateway.url()), &Secret::from(TOKEN))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "handshake_failed");
    assert!(err.to_string().contains("certificate"), "{err}");

    // The right pin alone is enough; a wrong pin is refused.
    let pem = std::fs::read(gateway.ca()).unwrap();
    let der = rustls_pki_der(&pem);
    let mut pinned = ClientConfig::new(gateway.url());
    pinned.tls.pin_sha256 = Some(httvps_client::spki_sha256(&der).unwrap());
    let tunnel = Tunnel::connect(pinned.clone(), &Secret::from(TOKEN))
        .await
        .unwrap();
    assert!(tunnel.is_active());
    pinned.tls.pin_sha256 = Some([7u8; 32]);
    let err = Tunnel::connect(pinned, &Secret::from(TOKEN))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "handshake_failed", "{err}");
}

fn rustls_pki_der(pem: &[u8]) -> Vec<u8> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem).unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_times_out_on_a_silent_server() {
    let hole = TcpBlackhole::start().await;
    let mut config = ClientConfig::new(format!("wss://127.0.0.1:{}/ws", hole.addr().port()));
    config.handshake_timeout = Duration::from_millis(500);
    let started = std::time::Instant::now();
    let err = Tunnel::connect(config, &Secret::from(TOKEN))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "handshake_failed");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Stops process `pid` (SIGSTOP) and waits until every one of its threads
/// is stopped. `kill` returns before that: a thread running on another CPU
/// goes on until the stop reaches it, and under load it once answered the
/// probe's ping in that window, so the session rightly stayed up and the
/// probe test failed.
async fn freeze(pid: i32) {
    // SAFETY: a plain kill(2) of the test's own child process.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let stopped = || {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return false;
        };
        tasks.flatten().all(|task| {
            std::fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
                // `tid (comm) STATE …`: comm may hold spaces or parentheses.
                stat.rsplit_once(") ")
                    .is_some_and(|(_, rest)| rest.starts_with('T') || rest.starts_with('t'))
            })
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !stopped() {
        assert!(
            std::time::Instant::now() < deadline,
            "the gateway did not stop"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_gateway_is_detected_by_keepalive() {
    let gateway = Gateway::direct(&[]).await;
    let mut config = gateway.config();
    config.keepalive = KeepaliveConfig {
        interval: Duration::from_millis(200),
        dead_after: Duration::from_secs(1),
    };
    let tunnel = Tunnel::connect(config, &Secret::from(TOKEN)).await.unwrap();
    let pid = gateway.process().pid().expect("pid") as i32;
    // SIGSTOP freezes the gateway with its sockets open: only keepalive notices.
    freeze(pid).await;
    let reason = tokio::time::timeout(Duration::from_secs(10), tunnel.closed()).await;
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert_eq!(
        reason.expect("declared dead in time"),
        CloseReason::KeepaliveTimeout(Duration::from_secs(1))
    );
}

/// After a network change the engine probes: a live gateway answers and
/// the session stays; a frozen one is declared dead at the probe's short
/// deadline, not after the keepalive's minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_finds_a_frozen_gateway_at_its_deadline() {
    let gateway = Gateway::direct(&[]).await;
    let mut config = gateway.config();
    config.keepalive = KeepaliveConfig {
        interval: Duration::from_secs(30),
        dead_after: Duration::from_secs(60),
    };
    let tunnel = Tunnel::connect(config, &Secret::from(TOKEN)).await.unwrap();
    tunnel.probe(Duration::from_millis(500));
    let answered = tokio::time::timeout(Duration::from_secs(2), tunnel.closed()).await;
    assert!(
        answered.is_err(),
        "a live gateway answers the probe: {answered:?}"
    );
    assert!(tunnel.is_active());

    let pid = gateway.process().pid().expect("pid") as i32;
    freeze(pid).await;
    tunnel.probe(Duration::from_millis(500));
    let reason = tokio::time::timeout(Duration::from_secs(10), tunnel.closed()).await;
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert_eq!(
        reason.expect("declared dead well before the keepalive would"),
        CloseReason::KeepaliveTimeout(Duration::from_millis(500))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_sessions_cleanly() {
    let mut gateway = Gateway::direct(&["--drain-timeout", "1"]).await;
    let tunnel = gateway.tunnel().await;
    sigterm_cuts_a_download_cleanly(&mut gateway, &tunnel).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_half_closes_and_the_reply_still_arrives() {
    // Through an Outline node too: the shadowsocks crate's server carries the
    // half-close like outline-ss-server does. (Debian's ss-libev would drop
    // the rest of the reply; see docs/protocol.md.)
    let ss = InProcessSsServer::start("chacha20-ietf-poly1305", "half-close")
        .await
        .unwrap();
    let grant = Grant {
        device_id: "dev-1".into(),
        max_streams: 8,
        outline: Some(ss.outline_node()),
    };
    let backend = TestBackend::builder()
        .session_token(TOKEN, grant)
        .start()
        .await;
    let outline = Gateway::with_backend(&backend, "", &[]).await;
    let direct = Gateway::direct(&[]).await;
    for (name, gateway) in [("direct", &direct), ("outline", &outline)] {
        eprintln!("half-close through {name}");
        let tunnel = gateway.tunnel().await;
        let echo = EchoServer::start().await;
        let mut stream = tunnel.open(TargetAddr::Ip(echo.addr())).await.unwrap();
        let data = testkit::pseudo_random_bytes(9, 300_000);
        stream.write_all(&data).await.unwrap();
        stream.shutdown().await.unwrap();
        // The echo server sees EOF only through the half-close; it then
        // closes, and the stream ends cleanly after the whole reply.
        let mut back = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut back))
            .await
            .expect("the target saw the half-close")
            .unwrap();
        assert_eq!(back.len(), data.len(), "{name}");
        assert!(back == data, "{name}");
        assert_eq!(
            stream.end(),
            Some(httvps_client::StreamEnd::Gateway(
                proto_httvps::client::StreamEnd::Closed {
                    reason: Some("eof".into())
                }
            )),
            "{name}"
        );
    }
}

/// The contract's JSON `stream_data` and the `binary_data` extension carry
/// the same bytes both ways; the extension is used only when both sides want
/// it (a gateway run with `--no-binary-data` stands for one that predates it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_binary_data_paths_carry_identical_bytes() {
    let echo = EchoServer::start().await;
    let http = HttpServer::start().await;
    let binary_gateway = Gateway::direct(&[]).await;
    let json_gateway = Gateway::direct(&["--no-binary-data"]).await;
    for (gateway, offer, binary) in [
        (&binary_gateway, true, true),
        (&binary_gateway, false, false),
        (&json_gateway, true, false),
    ] {
        let mut config = gateway.config();
        config.binary_data = offer;
        let tunnel = Tunnel::connect(config, &Secret::from(TOKEN))
            .await
            .expect("tunnel connects");
        assert_eq!(tunnel.binary_data(), binary, "offer {offer}");
        let (sent, received) = echo_round_trip(&tunnel, echo.addr(), 3_000_017).await;
        assert_eq!(sent, received, "echo, binary {binary}");
        let len = 20 * 1024 * 1024 + 3;
        let (status, expected, got, got_len) =
            http_get(&tunnel, &http, &format!("/bytes/{len}")).await;
        assert_eq!((status, got_len), (200, len), "binary {binary}");
        assert_eq!(got, expected, "download, binary {binary}");
    }
}

/// `ready()` waits for the gateway's verdict by default, so a proxy can pass
/// the precise refusal on; with `optimistic_open` it returns without waiting
/// and the same refusal arrives as the first read's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimistic_open_skips_the_ready_wait_but_keeps_the_error() {
    let gateway = Gateway::direct(&[]).await;
    let hanging_target = testkit::HangingTarget::start().await;
    let hanging = TargetAddr::Ip(hanging_target.addr());

    let tunnel = gateway.tunnel().await;
    let refused = tunnel
        .open(TargetAddr::Ip(testkit::closed_port()))
        .await
        .unwrap();
    let end = refused.ready().await.unwrap_err();
    assert_eq!(end.reason(), Some("refused"), "{end}");
    let pending = tunnel.open(hanging.clone()).await.unwrap();
    let wait = tokio::time::timeout(Duration::from_millis(300), pending.ready()).await;
    assert!(wait.is_err(), "ready() must wait while the gateway dials");

    let mut config = gateway.config();
    config.optimistic_open = true;
    let tunnel = Tunnel::connect(config, &Secret::from(TOKEN)).await.unwrap();
    // The gateway is still dialing (its dial timeout is 10 s), yet ready() is done.
    let pending = tunnel.open(hanging).await.unwrap();
    assert!(pending.ready().await.is_ok());
    let mut refused = tunnel
        .open(TargetAddr::Ip(testkit::closed_port()))
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let err = refused.read(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    let echo = EchoServer::start().await;
    let (sent, received) = echo_round_trip(&tunnel, echo.addr(), 100_000).await;
    assert_eq!(sent, received);
}
