//! The proxy against an independent HTTP/3 implementation: aioquic's client
//! (Python, `testkit::h3peer`) in front of our `h3ws-proxy` binary, in front
//! of a Python WebSocket echo backend. Every check of issue 13's list: the
//! request checks (405, 404, 400, 503), messages both ways, fragments
//! reassembled, pings, close codes both ways, 1009, the frame abort, 1011
//! when the backend is down, and the contract's metrics.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use testkit::h3peer::PeerProcess;
use testkit::{GatewayProcess, TestCert};

const T: Duration = Duration::from_secs(15);
const MAX_FRAME: usize = 65_536;
const MAX_MESSAGE: usize = 262_144;

async fn proxy(dir: &Path, backend: &str, max_conns: usize) -> GatewayProcess {
    let bin = Path::new(env!("CARGO_BIN_EXE_h3ws-proxy"));
    let extra = [
        "-metrics",
        "127.0.0.1:0",
        "-max-conns",
        &max_conns.to_string(),
        "-max-frame",
        &MAX_FRAME.to_string(),
        "--max-message",
        &MAX_MESSAGE.to_string(),
    ];
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    testkit::h3peer::start_h3ws_proxy(bin, &cert, &key, backend, &extra)
        .await
        .expect("h3ws-proxy starts")
}

async fn client(proxy: &GatewayProcess, dir: &Path, path: &str, extra: &[&str]) -> PeerProcess {
    let url = format!("https://127.0.0.1:{}{path}", proxy.addr().port());
    let ca = dir.join("cert.pem");
    let mut args = vec!["client", "--url", &url, "--ca", ca.to_str().unwrap()];
    args.extend_from_slice(extra);
    PeerProcess::spawn(&args)
        .await
        .expect("aioquic client starts")
}

async fn status(c: &mut PeerProcess) -> i64 {
    let v = c
        .expect("a response", T, |v| v.get("status").is_some())
        .await
        .expect("a response");
    v["status"].as_i64().unwrap()
}

async fn close_code(c: &mut PeerProcess) -> Value {
    c.event("close", T).await.expect("a close frame")["code"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aioquic_client_through_our_proxy_to_an_echo_backend() {
    let dir = tempfile::tempdir().unwrap();
    TestCert::generate(&["127.0.0.1", "localhost"]).write_to(dir.path());
    let mut backend = PeerProcess::spawn(&["echo-backend", "--listen", "127.0.0.1:0"])
        .await
        .unwrap();
    let backend_addr = backend.listening().await.unwrap();
    let px = proxy(dir.path(), &format!("ws://{backend_addr}"), 2).await;

    // Messages both ways, the query passed on, fragments reassembled,
    // pings answered.
    let mut c = client(&px, dir.path(), "/ws?room=7", &[]).await;
    assert_eq!(status(&mut c).await, 200);
    let req = backend.event("request", T).await.unwrap();
    assert_eq!(req["path"], "/ws?room=7");
    c.send(json!({"text": "hello over h3"})).await.unwrap();
    assert_eq!(c.event("text", T).await.unwrap()["data"], "hello over h3");
    c.send(json!({"binary_repeat": {"byte": 7, "len": 60_000}}))
        .await
        .unwrap();
    assert_eq!(c.event("binary", T).await.unwrap()["len"], 60_000);
    let fragments =
        json!({"fragments": {"opcode": "binary", "count": 4, "size": 10_000, "byte": 98}});
    c.send(fragments).await.unwrap();
    assert_eq!(c.event("binary", T).await.unwrap()["len"], 40_000);
    c.send(json!({"ping_b64": "cGluZw=="})).await.unwrap();
    assert_eq!(c.event("pong", T).await.unwrap()["b64"], "cGluZw==");

    // max-conns: with this session and a second open, a third gets 503.
    let mut second = client(&px, dir.path(), "/ws", &[]).await;
    assert_eq!(status(&mut second).await, 200);
    let mut third = client(&px, dir.path(), "/ws", &[]).await;
    assert_eq!(status(&mut third).await, 503);

    // Close codes pass both ways: 4001 from the client reaches the backend
    // and its answer comes back; the backend's own 4002 reaches the client.
    c.send(json!({"close": {"code": 4001, "reason": "bye"}}))
        .await
        .unwrap();
    assert_eq!(close_code(&mut c).await, 4001);
    assert_eq!(backend.event("closed", T).await.unwrap()["code"], 4001);
    second.send(json!({"text": "close:4002:x"})).await.unwrap();
    assert_eq!(close_code(&mut second).await, 4002);

    // The request checks, in the contract's order.
    let mut get = client(
        &px,
        dir.path(),
        "/ws",
        &["--method", "GET", "--protocol", "none"],
    )
    .await;
    assert_eq!(status(&mut get).await, 405);
    let mut nope = client(&px, dir.path(), "/nope", &[]).await;
    assert_eq!(status(&mut nope).await, 404);
    let mut wt = client(&px, dir.path(), "/ws", &["--protocol", "webtransport"]).await;
    assert_eq!(status(&mut wt).await, 400);
    let mut v12 = client(&px, dir.path(), "/ws", &["--ws-version", "12"]).await;
    assert_eq!(status(&mut v12).await, 400);

    // A message over max-message (in frames each under max-frame): 1009.
    let mut big = client(&px, dir.path(), "/ws", &[]).await;
    assert_eq!(status(&mut big).await, 200);
    let count = MAX_MESSAGE / 50_000 + 1;
    let over =
        json!({"fragments": {"opcode": "binary", "count": count, "size": 50_000, "byte": 1}});
    big.send(over).await.unwrap();
    assert_eq!(close_code(&mut big).await, 1009);

    // A frame over max-frame: the session is aborted, no close frame.
    let mut frame = client(&px, dir.path(), "/ws", &[]).await;
    assert_eq!(status(&mut frame).await, 200);
    let over = json!({"binary_repeat": {"byte": 2, "len": MAX_FRAME + 1}});
    frame.send(over).await.unwrap();
    let end = frame
        .expect("an abort", T, |v| {
            matches!(
                v["event"].as_str(),
                Some("stream_reset" | "stream_ended" | "close")
            )
        })
        .await
        .unwrap();
    assert_eq!(end["event"], "stream_reset", "aborted, not closed: {end}");

    // The contract's metrics, by name and label (before the shutdown below).
    let metrics_addr = px.wait_metrics_addr(T).await.unwrap();
    let text = testkit::hostile::http_get_text(metrics_addr, "/metrics")
        .await
        .unwrap();
    for want in [
        "h3ws_proxy_active_sessions",
        "h3ws_proxy_accepted_total",
        "h3ws_proxy_rejected_total{reason=\"max_conns\"} 1",
        "h3ws_proxy_rejected_total{reason=\"method\"} 1",
        "h3ws_proxy_rejected_total{reason=\"path\"} 1",
        "h3ws_proxy_bytes_total{dir=\"h3_to_h1\"}",
        "h3ws_proxy_bytes_total{dir=\"h1_to_h3\"}",
        "h3ws_proxy_messages_total{dir=\"h3_to_h1\",type=\"text\"}",
        "h3ws_proxy_control_frames_total{type=\"ping\"}",
        "h3ws_proxy_oversize_drops_total{kind=\"frame\"} 1",
        "h3ws_proxy_oversize_drops_total{kind=\"message\"} 1",
        "h3ws_proxy_frames_total",
        "h3ws_proxy_message_size_bytes_bucket",
        "h3ws_proxy_session_duration_seconds_bucket",
    ] {
        assert!(text.contains(want), "metrics lack {want}:\n{text}");
    }

    // SIGTERM: open sessions get close 1001 and the proxy exits cleanly.
    let mut open = client(&px, dir.path(), "/ws", &[]).await;
    assert_eq!(status(&mut open).await, 200);
    open.send(json!({"text": "still here"})).await.unwrap();
    assert_eq!(open.event("text", T).await.unwrap()["data"], "still here");
    let mut px = px;
    px.sigterm();
    assert_eq!(close_code(&mut open).await, 1001);
    let exit = px.wait_exit(T).await.expect("the proxy exits");
    assert!(exit.success(), "{exit:?}");

    // The backend down: 200 first, then close 1011.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("ws://{}", closed_port.local_addr().unwrap());
    drop(closed_port);
    let px2 = proxy(dir.path(), &dead, 10).await;
    let mut c = client(&px2, dir.path(), "/ws", &[]).await;
    assert_eq!(status(&mut c).await, 200);
    assert_eq!(close_code(&mut c).await, 1011);
}
