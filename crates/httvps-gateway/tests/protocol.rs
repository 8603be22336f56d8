//! Handshake, frame rules and direct-mode streams against an in-process gateway,
//! spoken by hand over a real TLS WebSocket.

mod util;

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use httvps_gateway::AuthSource;
use proto_httvps::TargetAddr;
use serde_json::json;
use testkit::{EchoServer, ServerFirst, TcpBlackhole, TestBackend, closed_port};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use util::{Event, start_gateway, tokens};

const TOKEN: &str = "tok-good";

async fn gateway() -> util::TestGateway {
    start_gateway(tokens(&[TOKEN]), |c| c.allow_private_targets = true).await
}

#[tokio::test]
async fn wrong_token_gets_auth_failed_and_policy_close() {
    let gw = gateway().await;
    let mut c = gw.client().await;
    let reply = c.hello("tok-wrong").await;
    assert_eq!(reply["type"], "error");
    assert_eq!(reply["code"], "auth_failed");
    assert_eq!(c.close_code().await, Some(1008));
}

#[tokio::test]
async fn good_token_gets_ready_with_default_max_streams() {
    let gw = gateway().await;
    let mut c = gw.client().await;
    let reply = c.hello(TOKEN).await;
    assert_eq!(reply["type"], "ready");
    assert_eq!(reply["max_streams"], 8);
    assert_eq!(reply["session_id"].as_str().unwrap().len(), 36);
    c.ping_pong().await;
}

#[tokio::test]
async fn bad_version_and_frame_before_hello() {
    let gw = gateway().await;
    let mut c = gw.client().await;
    c.send(json!({"type":"hello","session_token":TOKEN,"version":"2"}))
        .await;
    c.expect_error_then_close("bad_version", 1002).await;

    let mut c = gw.client().await;
    c.send(json!({"type":"ping"})).await;
    c.expect_error_then_close("bad_hello", 1002).await;

    let mut c = gw.client().await;
    c.send_text("{not json").await;
    c.expect_error_then_close("bad_hello", 1002).await;
}

#[tokio::test]
async fn hello_timeout_closes() {
    let gw = start_gateway(tokens(&[TOKEN]), |c| {
        c.timeouts.hello = Duration::from_millis(300);
    })
    .await;
    let mut c = gw.client().await;
    let started = Instant::now();
    c.expect_error_then_close("bad_hello", 1008).await;
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn violations_answer_and_session_continues() {
    let gw = gateway().await;
    let mut c = gw.ready_client(TOKEN).await;
    for (text, code) in [
        ("{\"type\":", "bad_frame"),
        (r#"{"type":"teleport"}"#, "unsupported"),
        (
            r#"{"type":"stream_data","stream_id":"s9","data":"%%%"}"#,
            "bad_stream",
        ),
        (
            r#"{"type":"hello","session_token":"x","version":"1"}"#,
            "bad_hello",
        ),
    ] {
        c.send_text(text).await;
        let f = c.frame().await;
        assert_eq!(f["type"], "error", "{text}: {f}");
        assert_eq!(f["code"], code, "{text}: {f}");
        c.ping_pong().await;
    }
    c.ws.send_binary_helper().await;
    let f = c.frame().await;
    assert_eq!(f["code"], "bad_frame");
    c.ping_pong().await;
}

trait BinarySend {
    async fn send_binary_helper(&mut self);
}

impl BinarySend
    for tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>
{
    async fn send_binary_helper(&mut self) {
        use futures_util::SinkExt;
        self.send(tokio_tungstenite::tungstenite::Message::binary(vec![
            1, 2, 3,
        ]))
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn bad_base64_on_open_stream_ends_only_that_stream() {
    let echo = EchoServer::start().await;
    let gw = gateway().await;
    let mut c = gw.ready_client(TOKEN).await;
    c.open("s1", echo.addr()).await;
    c.open("s2", echo.addr()).await;
    c.send_text(r#"{"type":"stream_data","stream_id":"s1","data":"@@@@"}"#)
        .await;
    let err = c.frame().await;
    assert_eq!(
        (&err["code"], &err["stream_id"]),
        (&json!("bad_stream"), &json!("s1"))
    );
    let close = c.frame().await;
    assert_eq!(
        close,
        json!({"type":"stream_close","stream_id":"s1","reason":"bad_stream"})
    );
    c.data("s2", b"still here").await;
    assert_eq!(c.read_exact("s2", 10).await, b"still here");
}

#[tokio::test]
async fn too_many_violations_close_the_session() {
    let gw = start_gateway(tokens(&[TOKEN]), |c| c.limits.max_violations = 2).await;
    let mut c = gw.ready_client(TOKEN).await;
    for _ in 0..3 {
        c.send_text("nope").await;
    }
    for _ in 0..3 {
        assert_eq!(c.frame().await["code"], "bad_frame");
    }
    assert_eq!(c.close_code().await, Some(1008));
}

#[tokio::test]
async fn oversized_frame_gets_bad_frame_and_1009() {
    let gw = gateway().await;
    // Just over the limit: our decoder sees it.
    let mut c = gw.ready_client(TOKEN).await;
    c.send_text(" ".repeat(256 * 1024 + 1)).await;
    c.expect_error_then_close("bad_frame", 1009).await;
    // Far over: tungstenite refuses it first; the client still gets both.
    let mut c = gw.ready_client(TOKEN).await;
    c.send_text("x".repeat(1024 * 1024)).await;
    c.expect_error_then_close("bad_frame", 1009).await;
}

#[tokio::test]
async fn stream_limit_duplicate_and_unknown() {
    let echo = EchoServer::start().await;
    let gw = start_gateway(tokens(&[TOKEN]), |c| {
        c.allow_private_targets = true;
        c.limits.max_streams = 2;
    })
    .await;
    let mut c = gw.client().await;
    assert_eq!(c.hello(TOKEN).await["max_streams"], 2);
    c.open("s1", echo.addr()).await;
    c.open("s2", echo.addr()).await;
    c.send(json!({"type":"stream_open","stream_id":"s3","target":"x:1"}))
        .await;
    let err = c.frame().await;
    assert_eq!(err["code"], "stream_error");
    assert_eq!(err["stream_id"], "s3");
    let close = c.frame().await;
    assert_eq!(
        close,
        json!({"type":"stream_close","stream_id":"s3","reason":"limit"})
    );

    c.send(json!({"type":"stream_open","stream_id":"s1","target":"x:1"}))
        .await;
    let err = c.frame().await;
    assert_eq!(
        (&err["code"], &err["stream_id"]),
        (&json!("stream_error"), &json!("s1"))
    );
    c.data("s1", b"ok").await;
    assert_eq!(
        c.read_exact("s1", 2).await,
        b"ok",
        "the existing stream continues"
    );

    c.data("never", b"x").await;
    let err = c.frame().await;
    assert_eq!(err["code"], "stream_error");
    assert_eq!(err["stream_id"], "never");
    assert_eq!(err["message"], "unknown stream");

    // A closed stream frees its slot; late frames for it are dropped quietly.
    c.close_stream("s1").await;
    c.data("s1", b"late").await;
    c.open("s4", echo.addr()).await;
    c.data("s4", b"four").await;
    assert_eq!(c.read_exact("s4", 4).await, b"four");
}

#[tokio::test]
async fn loopback_refused_unless_allowed() {
    let echo = EchoServer::start().await;
    let strict = start_gateway(tokens(&[TOKEN]), |_| {}).await;
    let mut c = strict.ready_client(TOKEN).await;
    c.open("s1", echo.addr()).await;
    let err = c.frame().await;
    assert_eq!(err["code"], "stream_error", "{err}");
    assert_eq!(err["stream_id"], "s1");
    assert_eq!(err["reason"], "not_allowed");
    let close = c.frame().await;
    assert_eq!(close["reason"], "not_allowed");
    // A name that resolves to loopback is refused too.
    c.open_target(
        "s2",
        &TargetAddr::Domain("localhost".into(), echo.addr().port()),
    )
    .await;
    assert_eq!(c.control_frame().await["reason"], "not_allowed");
    assert_eq!(c.control_frame().await["reason"], "not_allowed");

    let open = gateway().await;
    let mut c = open.ready_client(TOKEN).await;
    util::echo_round_trip(&mut c, "s1", echo.addr(), b"hello through the tunnel").await;
}

#[tokio::test]
async fn connection_refused_reason() {
    let gw = gateway().await;
    let mut c = gw.ready_client(TOKEN).await;
    let (_guard, refusing) = util::refusing_port();
    c.open("s1", refusing).await;
    let err = c.frame().await;
    assert_eq!(err["code"], "stream_error");
    assert_eq!(err["stream_id"], "s1");
    assert!(
        err["message"].as_str().unwrap().contains("refused"),
        "{err}"
    );
    let close = c.frame().await;
    assert_eq!(
        close,
        json!({"type":"stream_close","stream_id":"s1","reason":"refused"})
    );
    c.ping_pong().await;
}

#[tokio::test]
async fn dial_timeout_reason() {
    // Connects to it hang until our dial timeout.
    let hanging = testkit::HangingTarget::start().await;
    let addr = hanging.addr();
    let gw = start_gateway(tokens(&[TOKEN]), |c| {
        c.allow_private_targets = true;
        c.timeouts.dial = Duration::from_millis(300);
    })
    .await;
    let mut c = gw.ready_client(TOKEN).await;
    c.open("s1", addr).await;
    let err = c.frame().await;
    assert_eq!(err["code"], "stream_error", "{err}");
    assert_eq!(c.frame().await["reason"], "timeout");
    drop(hanging);
}

#[tokio::test]
async fn server_first_banner_arrives_after_header_only() {
    let server = ServerFirst::start(b"SSH-2.0-test\r\n").await;
    let gw = gateway().await;
    let mut c = gw.ready_client(TOKEN).await;
    c.open("s1", server.addr()).await;
    assert_eq!(c.read_exact("s1", 14).await, b"SSH-2.0-test\r\n");
}

#[tokio::test]
async fn upstream_eof_sends_stream_close_eof_after_data() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        s.write_all(&[7u8; 100_000]).await.unwrap();
        s.shutdown().await.unwrap();
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink).await;
    });
    let gw = gateway().await;
    let mut c = gw.ready_client(TOKEN).await;
    c.open("s1", addr).await;
    assert_eq!(c.read_exact("s1", 100_000).await, vec![7u8; 100_000]);
    assert_eq!(
        c.frame().await,
        json!({"type":"stream_close","stream_id":"s1","reason":"eof"})
    );
}

#[tokio::test]
async fn slow_upstream_ends_only_its_stream_after_the_stall_bound() {
    let hole = TcpBlackhole::start().await;
    let echo = EchoServer::start().await;
    let stall = Duration::from_millis(300);
    let gw = start_gateway(tokens(&[TOKEN]), |c| {
        c.allow_private_targets = true;
        c.timeouts.stall = stall;
        c.limits.stream_buffer_bytes = 64 * 1024;
    })
    .await;
    let mut c = gw.ready_client(TOKEN).await;
    c.open("hole", hole.addr()).await;
    c.open("echo", echo.addr()).await;
    // Far more than the blackhole's socket buffers plus our stream buffer.
    let chunk = vec![0u8; 128 * 1024];
    let started = Instant::now();
    let mut sent = 0usize;
    let close = loop {
        // Keep sending until the gateway gives up on the stream.
        if sent < 64 << 20 {
            c.data("hole", &chunk).await;
            sent += chunk.len();
        }
        match tokio::time::timeout(Duration::from_millis(1), c.ws.next_frame()).await {
            Ok(Some(f)) if f["type"] == "stream_close" => break f,
            Ok(Some(f)) => assert_eq!(f["type"], "error", "{f}"),
            _ => {}
        }
        assert!(
            started.elapsed() < util::WAIT,
            "no slow_upstream after {sent} bytes"
        );
    };
    assert_eq!(close["stream_id"], "hole");
    assert_eq!(close["reason"], "slow_upstream");
    // The other stream still works.
    c.data("echo", b"alive").await;
    let mut got = Vec::new();
    while got.len() < 5 {
        let f = c.frame().await;
        if f["type"] == "stream_data" {
            assert_eq!(f["stream_id"], "echo");
            got.extend(util::decode_data(&f));
        }
    }
    assert_eq!(got, b"alive");
}

trait NextFrame {
    async fn next_frame(&mut self) -> Option<serde_json::Value>;
}

impl NextFrame
    for tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>
{
    async fn next_frame(&mut self) -> Option<serde_json::Value> {
        use futures_util::StreamExt;
        loop {
            match self.next().await? {
                Ok(tokio_tungstenite::tungstenite::Message::Text(t)) => {
                    return Some(serde_json::from_str(&t).unwrap());
                }
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }
}

#[tokio::test]
async fn backend_mode_secret_limits_and_failures() {
    let grant = testkit::Grant {
        device_id: "dev-1".into(),
        max_streams: 3,
        outline: None,
    };
    let backend = TestBackend::builder()
        .secret("s3cret")
        .session_token("tok-backend", grant.clone())
        .start()
        .await;
    let auth = |secret: &str| AuthSource::Backend {
        url: backend.url(),
        secret: Some(secret.to_owned()),
        timeout: Duration::from_secs(2),
    };
    let gw = start_gateway(auth("s3cret"), |_| {}).await;
    let mut c = gw.client().await;
    let ready = c.hello("tok-backend").await;
    assert_eq!(ready["type"], "ready", "{ready}");
    assert_eq!(ready["max_streams"], 3);
    assert_eq!(backend.last_secret_seen().as_deref(), Some("s3cret"));
    // Single-use: the same token again is refused (4xx).
    let mut c = gw.client().await;
    assert_eq!(c.hello("tok-backend").await["code"], "auth_failed");
    assert_eq!(c.close_code().await, Some(1008));

    // A wrong secret makes the backend answer 401: auth_failed.
    let wrong = start_gateway(auth("nope"), |_| {}).await;
    let mut c = wrong.client().await;
    assert_eq!(c.hello("tok-backend").await["code"], "auth_failed");

    // 500 → session_error.
    let failing = TestBackend::builder()
        .fail_with_status(Some(500))
        .start()
        .await;
    let gw = start_gateway(
        AuthSource::Backend {
            url: failing.url(),
            secret: None,
            timeout: Duration::from_secs(2),
        },
        |_| {},
    )
    .await;
    let mut c = gw.client().await;
    let err = c.hello("anything").await;
    assert_eq!(err["code"], "session_error");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("backend unavailable")
    );
    assert_eq!(c.close_code().await, Some(1013));

    // Slower than the timeout → session_error, in about the timeout.
    let slow = TestBackend::builder()
        .session_token("tok-slow", grant)
        .delay(Duration::from_secs(5))
        .start()
        .await;
    let gw = start_gateway(
        AuthSource::Backend {
            url: slow.url(),
            secret: None,
            timeout: Duration::from_millis(400),
        },
        |_| {},
    )
    .await;
    let mut c = gw.client().await;
    let started = Instant::now();
    assert_eq!(c.hello("tok-slow").await["code"], "session_error");
    assert!(started.elapsed() < Duration::from_secs(3));

    // Unreachable backend → session_error.
    let gw = start_gateway(
        AuthSource::Backend {
            url: format!("http://{}", closed_port()),
            secret: None,
            timeout: Duration::from_secs(2),
        },
        |_| {},
    )
    .await;
    let mut c = gw.client().await;
    assert_eq!(c.hello("x").await["code"], "session_error");
}

#[tokio::test]
async fn idle_session_gets_ping_then_close() {
    let gw = start_gateway(tokens(&[TOKEN]), |c| {
        c.timeouts.idle = Duration::from_millis(600);
    })
    .await;
    let mut c = gw.ready_client(TOKEN).await;
    assert_eq!(c.frame().await["type"], "ping");
    assert_eq!(c.close_code().await, Some(1000));
}

#[tokio::test]
async fn session_limit_answers_503() {
    let gw = start_gateway(tokens(&[TOKEN]), |c| c.limits.max_sessions = 1).await;
    let _first = gw.ready_client(TOKEN).await;
    let second = util::Client::try_connect(gw.addr(), &gw.cert).await;
    match second {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 503)
        }
        other => panic!("expected 503, got {:?}", other.map(|_| ())),
    }
}

/// Unauthenticated upgrades never hold a session's place: with one place,
/// a tokenless upgrade waiting for its hello does not keep a real client out.
#[tokio::test]
async fn a_session_place_is_taken_only_after_the_token_is_valid() {
    let gw = start_gateway(tokens(&[TOKEN]), |c| c.limits.max_sessions = 1).await;
    let _silent = util::Client::connect(gw.addr(), &gw.cert).await;
    let mut wrong = util::Client::connect(gw.addr(), &gw.cert).await;
    assert_eq!(wrong.hello("not-a-token").await["code"], "auth_failed");
    assert_eq!(wrong.close_code().await, Some(1008));
    let mut real = gw.ready_client(TOKEN).await;
    real.ping_pong().await;
}

/// A full pending stage closes its oldest connection for the newest, so
/// idle connections cannot keep a real client waiting; sessions are never
/// evicted.
#[tokio::test]
async fn idle_connections_are_evicted_oldest_first_for_a_new_client() {
    async fn closed(tcp: &mut TcpStream) -> bool {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut byte)).await;
        matches!(read, Ok(Ok(0) | Err(_)))
    }
    let gw = start_gateway(tokens(&[TOKEN]), |c| c.limits.max_connections = 3).await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(gw.addr()).await.unwrap());
    }
    // Each newcomer evicts the oldest pending connection.
    let mut waiting = util::Client::connect(gw.addr(), &gw.cert).await;
    let started = Instant::now();
    let mut real = gw.ready_client(TOKEN).await;
    real.ping_pong().await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(closed(&mut idle[0]).await, "the oldest went first");
    assert!(closed(&mut idle[1]).await, "then the next");
    // The session left the pending stage: one arrival fits, two more evict
    // the last idle connection, then the upgrade still waiting for its
    // hello (told so with close 1013); never the session.
    let mut newer = Vec::new();
    for _ in 0..3 {
        newer.push(TcpStream::connect(gw.addr()).await.unwrap());
    }
    assert!(closed(&mut idle[2]).await);
    assert_eq!(waiting.close_code().await, Some(1013));
    real.ping_pong().await;
}

/// Before its hello a client may send a few pings; a flood is cut.
#[tokio::test]
async fn pings_before_hello_are_capped() {
    let gw = start_gateway(tokens(&[TOKEN]), |c| {
        c.limits.pings = proto_httvps::server::PingLimit {
            per_second: 1,
            burst: 3,
        }
    })
    .await;
    let mut c = util::Client::connect(gw.addr(), &gw.cert).await;
    for _ in 0..4 {
        c.ws.send(Message::Ping(Vec::new().into())).await.unwrap();
    }
    c.expect_error_then_close("bad_hello", 1008).await;
}

/// After the hello, pings past the budget are violations that end the session.
#[tokio::test]
async fn a_ping_flood_after_hello_ends_the_session() {
    let gw = start_gateway(tokens(&[TOKEN]), |c| {
        c.limits.pings = proto_httvps::server::PingLimit {
            per_second: 1,
            burst: 2,
        };
        c.limits.max_violations = 3;
    })
    .await;
    let mut c = gw.ready_client(TOKEN).await;
    for _ in 0..8 {
        c.send(json!({"type": "ping"})).await;
    }
    let mut pongs = 0;
    let code = loop {
        match c.event().await {
            Event::Close(code) => break code,
            Event::Frame(f) if f["type"] == "pong" => pongs += 1,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(code, Some(1008));
    assert!(
        pongs <= 3,
        "pings past the budget are not answered ({pongs})"
    );
}

#[tokio::test]
async fn shutdown_drains_then_closes_streams_and_session() {
    let echo = EchoServer::start().await;
    let gw = start_gateway(tokens(&[TOKEN]), |c| {
        c.allow_private_targets = true;
        c.timeouts.drain = Duration::from_millis(300);
    })
    .await;
    let mut c = gw.ready_client(TOKEN).await;
    c.open("s1", echo.addr()).await;
    c.data("s1", b"x").await;
    assert_eq!(c.read_exact("s1", 1).await, b"x");
    let TestGatewayParts { running, .. } = gw.into();
    running.begin_shutdown();
    // During the drain, a new stream is refused with reason shutdown.
    c.send(json!({"type":"stream_open","stream_id":"s2","target":"x:1"}))
        .await;
    let mut closes = Vec::new();
    let code = loop {
        match c.event().await {
            Event::Frame(f) if f["type"] == "stream_close" => closes.push(f),
            Event::Frame(f) => assert_eq!(f["type"], "error", "{f}"),
            Event::Close(code) => break code,
            Event::Ended(e) => panic!("ended without Close: {e}"),
        }
    };
    assert_eq!(code, Some(1001));
    assert!(
        closes.contains(&json!({"type":"stream_close","stream_id":"s1","reason":"shutdown"})),
        "{closes:?}"
    );
    assert!(
        closes.contains(&json!({"type":"stream_close","stream_id":"s2","reason":"shutdown"})),
        "{closes:?}"
    );
    tokio::time::timeout(util::WAIT, running.wait())
        .await
        .expect("gateway stops")
        .unwrap();
}

struct TestGatewayParts {
    running: httvps_gateway::RunningGateway,
}

impl From<util::TestGateway> for TestGatewayParts {
    fn from(gw: util::TestGateway) -> Self {
        TestGatewayParts {
            running: gw.running,
        }
    }
}

#[tokio::test]
async fn slow_client_reader_makes_the_gateway_stop_reading_upstream() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    const TOTAL: usize = 48 << 20;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let written = Arc::new(AtomicUsize::new(0));
    let counter = written.clone();
    let payload = testkit::pseudo_random_bytes(7, TOTAL);
    let want = testkit::sha256_hex(&payload);
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        for part in payload.chunks(64 * 1024) {
            if s.write_all(part).await.is_err() {
                return;
            }
            counter.fetch_add(part.len(), Ordering::SeqCst);
        }
        let _ = s.shutdown().await;
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink).await;
    });
    let gw = gateway().await;
    let mut c = gw.ready_client(TOKEN).await;
    c.open("s1", addr).await;
    // The client reads nothing: the upstream must stall well before TOTAL.
    let mut last = usize::MAX;
    let started = Instant::now();
    let stalled_at = loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = written.load(Ordering::SeqCst);
        if now == last {
            break now;
        }
        last = now;
        assert!(started.elapsed() < util::WAIT, "upstream never stalled");
    };
    eprintln!("upstream stalled after {stalled_at} of {TOTAL} bytes");
    assert!(
        stalled_at < 40 << 20,
        "gateway kept reading upstream while the client read nothing: {stalled_at} bytes"
    );
    // Reading resumes the flow, and every byte arrives intact.
    let mut got = Vec::with_capacity(TOTAL);
    while got.len() < TOTAL {
        let msg = tokio::time::timeout(util::WAIT, futures_util::StreamExt::next(&mut c.ws))
            .await
            .expect("data resumes")
            .unwrap()
            .unwrap();
        let tokio_tungstenite::tungstenite::Message::Text(t) = msg else {
            continue;
        };
        match proto_httvps::decode(&t).unwrap() {
            proto_httvps::Frame::StreamData { data, .. } => got.extend_from_slice(&data),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(testkit::sha256_hex(&got), want);
}

/// The next binary `stream_data`: (stream id, payload); panics on anything else.
async fn binary_data(c: &mut util::Client) -> (String, Vec<u8>) {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let next = tokio::time::timeout(util::WAIT, c.ws.next()).await;
    match next.expect("a message in time") {
        Some(Ok(Message::Binary(bytes))) => {
            let read = proto_httvps::decode_binary_limited(&bytes, 1 << 20).unwrap();
            (read.stream_id.to_owned(), bytes[read.payload_at..].to_vec())
        }
        other => panic!("expected a binary message, got {other:?}"),
    }
}

async fn send_binary(c: &mut util::Client, id: &str, payload: &[u8]) {
    use futures_util::SinkExt;
    let mut message = Vec::new();
    assert!(proto_httvps::binary::encode_binary_stream_data(
        id,
        payload,
        &mut message
    ));
    c.ws.send(message.into()).await.unwrap();
}

#[tokio::test]
async fn binary_data_is_negotiated_and_carries_both_ways() {
    let echo = EchoServer::start().await;
    let gw = gateway().await;
    let mut c = gw.client().await;
    c.send(json!({"type":"hello","session_token":TOKEN,"version":"1","features":["binary_data"]}))
        .await;
    let ready = c.frame().await;
    assert_eq!(ready["features"], json!(["binary_data"]), "{ready}");
    // The address header as binary too; JSON and binary mix freely.
    c.send(json!({"type":"stream_open","stream_id":"s1","target":echo.addr().to_string()}))
        .await;
    let mut header = Vec::new();
    TargetAddr::Ip(echo.addr()).encode(&mut header);
    send_binary(&mut c, "s1", &header).await;
    send_binary(&mut c, "s1", b"binary ").await;
    c.data("s1", b"and json").await;
    let mut got = Vec::new();
    while got.len() < 15 {
        let (id, payload) = binary_data(&mut c).await;
        assert_eq!(id, "s1");
        got.extend(payload);
    }
    assert_eq!(got, b"binary and json");
    // A binary message of an unknown kind is a violation, not fatal.
    send_binary(&mut c, "s1", b"x").await;
    assert_eq!(binary_data(&mut c).await.1, b"x");
    {
        use futures_util::SinkExt;
        c.ws.send(b"\x7fwhat".to_vec().into()).await.unwrap();
    }
    let err = c.frame().await;
    assert_eq!(err["code"], "bad_frame", "{err}");
    c.ping_pong().await;
}

#[tokio::test]
async fn binary_data_stays_off_unless_both_sides_want_it() {
    let echo = EchoServer::start().await;
    // Not offered: the contract's JSON, and binary messages are violations.
    let gw = gateway().await;
    let mut c = gw.ready_client(TOKEN).await;
    c.open("s1", echo.addr()).await;
    c.data("s1", b"json").await;
    assert_eq!(c.read_exact("s1", 4).await, b"json");
    send_binary(&mut c, "s1", b"x").await;
    assert_eq!(c.frame().await["code"], "bad_frame");
    // Offered to a gateway configured without it: not accepted, JSON only.
    let gw = start_gateway(tokens(&[TOKEN]), |c| {
        c.allow_private_targets = true;
        c.binary_data = false;
    })
    .await;
    let mut c = gw.client().await;
    c.send(json!({"type":"hello","session_token":TOKEN,"version":"1","features":["binary_data"]}))
        .await;
    let ready = c.frame().await;
    assert_eq!(ready["type"], "ready");
    assert!(ready.get("features").is_none(), "{ready}");
    c.open("s1", echo.addr()).await;
    c.data("s1", b"json").await;
    assert_eq!(c.read_exact("s1", 4).await, b"json");
    send_binary(&mut c, "s1", b"x").await;
    assert_eq!(c.frame().await["code"], "bad_frame");
}
