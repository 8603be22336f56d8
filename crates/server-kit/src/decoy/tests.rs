//! The decoy over an in-memory connection. The comparison with a real
//! nginx lives in the gateway's `tests/decoy_nginx.rs`.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

fn site() -> (tempfile::TempDir, Site) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<p>hi</p>\n").unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let site = Site::dir(dir.path()).unwrap();
    (dir, site)
}

fn opts() -> Options {
    let mut o = Options::new("127.0.0.1:8443".parse().unwrap(), true);
    o.lingering_timeout = Duration::from_millis(200);
    o
}

/// Sends `request`, half-closes, returns everything answered.
async fn exchange(site: &Site, request: &[u8]) -> String {
    let (mut client, server) = tokio::io::duplex(1 << 20);
    let opts = opts();
    let stop = CancellationToken::new();
    let serving = serve(server, site, &opts, &stop, |_| false);
    let talking = async {
        client.write_all(request).await.unwrap();
        let mut out = Vec::new();
        let _ =
            tokio::time::timeout(Duration::from_millis(500), client.read_to_end(&mut out)).await;
        drop(client);
        out
    };
    let (_, out) = tokio::join!(serving, talking);
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn answers_like_nginx() {
    let (_dir, site) = site();
    let r = exchange(
        &site,
        b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        r.starts_with("HTTP/1.1 404 Not Found\r\nServer: nginx\r\nDate: "),
        "{r}"
    );
    assert!(
        r.contains(
            "\r\nContent-Type: text/html\r\nContent-Length: 146\r\nConnection: close\r\n\r\n<html>"
        ),
        "{r}"
    );
    let r = exchange(&site, b"GET /sub HTTP/1.0\r\n\r\n").await;
    assert!(
        r.contains("\r\nLocation: https://127.0.0.1:8443/sub/\r\n"),
        "{r}"
    );
    let r = exchange(&site, b"garbage\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{r}");
    assert!(r.contains("Connection: close"), "{r}");
    let r = exchange(&site, b"GET /\r\n").await;
    assert_eq!(r, "<p>hi</p>\n", "HTTP/0.9: the body alone");
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let (_dir, site) = site();
    let r = exchange(
        &site,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\nHEAD /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let first = r.find("HTTP/1.1 200 OK").unwrap();
    let second = r.find("HTTP/1.1 404 Not Found").unwrap();
    assert!(first < second, "{r}");
    assert!(
        r.ends_with("Connection: close\r\n\r\n"),
        "HEAD: no body: {r}"
    );
}

#[tokio::test]
async fn a_claimed_request_comes_back_unread() {
    let (_dir, site) = site();
    let (mut client, server) = tokio::io::duplex(1 << 16);
    let opts = opts();
    let stop = CancellationToken::new();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\nrest")
        .await
        .unwrap();
    let rewind = serve(server, &site, &opts, &stop, |head| {
        head.path() == b"/ws"
            && head.header("upgrade").any(|v| v == b"websocket")
            && head.parses_strictly(100)
    })
    .await
    .expect("claimed");
    let (_io, unread) = rewind.into_inner();
    assert_eq!(
        unread,
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\nrest"
    );
    let mut answer = vec![0u8; 4096];
    let n = client.read(&mut answer).await.unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200 OK\r\n"));
}

#[tokio::test]
async fn stop_closes_an_idle_connection() {
    let (_dir, site) = site();
    let (_client, server) = tokio::io::duplex(1 << 16);
    let opts = opts();
    let stop = CancellationToken::new();
    stop.cancel();
    let ended = tokio::time::timeout(
        Duration::from_secs(1),
        serve(server, &site, &opts, &stop, |_| false),
    )
    .await;
    assert!(matches!(ended, Ok(None)));
}

#[tokio::test]
async fn bodies_are_dropped_and_continue_precedes_files() {
    let (_dir, site) = site();
    let r = exchange(
        &site,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
    )
    .await;
    let allowed = r.find("HTTP/1.1 405 Not Allowed\r\n").unwrap();
    let resumed = r
        .find("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")
        .unwrap();
    assert!(allowed < resumed, "{r}");
    assert!(r.ends_with("<p>hi</p>\n"), "{r}");
}

#[tokio::test]
async fn oversized_heads_are_refused() {
    let (_dir, site) = site();
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
    let r = exchange(&site, long.as_bytes()).await;
    assert!(
        r.starts_with("HTTP/1.1 414 Request-URI Too Large\r\n"),
        "{r}"
    );
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
        "b".repeat(8200)
    );
    let r = exchange(&site, big.as_bytes()).await;
    assert!(r.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{r}");
    assert!(r.contains("Request Header Or Cookie Too Large"), "{r}");
}
