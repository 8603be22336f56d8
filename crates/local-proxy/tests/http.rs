//! HTTP proxy behaviour, driven by hand-written requests.

mod util;

use std::time::Duration;

use local_proxy::{ConnectErrorKind, Credentials, ProxyConfig, ProxyProtocol, TargetAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use util::*;

const CLOSE_WITHIN: Duration = Duration::from_secs(3);

async fn send(proxy: std::net::SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(bytes).await.unwrap();
    s
}

async fn exchange_text(proxy: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut s = send(proxy, bytes).await;
    String::from_utf8_lossy(&read_all(&mut s, CLOSE_WITHIN).await).into_owned()
}

#[tokio::test]
async fn forwards_in_origin_form_without_proxy_headers() {
    let server = http_server().await;
    let connector = DirectConnector::new();
    let proxy = start(config(), connector.clone()).await;
    let port = server.port();
    let req = format!(
        "GET http://127.0.0.1:{port}/headers?x=1 HTTP/1.1\r\n\
         Host: 127.0.0.1:{port}\r\n\
         Proxy-Connection: keep-alive\r\n\
         Proxy-Authorization: Basic Zm9vOmJhcg==\r\n\
         X-Kept: yes\r\n\
         Connection: close\r\n\r\n"
    );
    let text = exchange_text(proxy.local_addr(), req.as_bytes()).await;
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("connection: close\r\n") || text.contains("Connection: close\r\n"));
    let body = text.split("\r\n\r\n").nth(1).unwrap();
    assert!(body.starts_with("GET /headers?x=1\n"), "{body}");
    assert!(
        body.contains(&format!("host: 127.0.0.1:{port}\n")),
        "{body}"
    );
    assert!(body.contains("x-kept: yes\n"), "{body}");
    assert!(!body.contains("proxy-"), "{body}");
    let reqs = connector.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].protocol, ProxyProtocol::HttpForward);
    assert_eq!(reqs[0].target, TargetAddr::Ip(server.addr));
}

#[tokio::test]
async fn keep_alive_reuses_the_upstream_and_switches_on_a_new_host() {
    let server = http_server().await;
    let connector = DirectConnector::new();
    let proxy = start(config(), connector.clone()).await;
    let port = server.port();
    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    for (host, path) in [
        ("127.0.0.1", "/a"),
        ("127.0.0.1", "/b"),
        ("localhost", "/c"),
        ("127.0.0.1", "/d"),
    ] {
        let req = format!("GET http://{host}:{port}{path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let (head, body) = read_response(&mut s).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            !head.to_ascii_lowercase().contains("connection: close"),
            "{head}"
        );
        assert_eq!(body, format!("hello from {path}").as_bytes());
    }
    // Same host reused; each change of host opened a new upstream.
    let targets = connector.targets();
    assert_eq!(
        targets,
        [
            TargetAddr::Ip(server.addr),
            TargetAddr::Domain("localhost".into(), port),
            TargetAddr::Ip(server.addr),
        ]
    );
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let server = http_server().await;
    let proxy = start(config(), DirectConnector::new()).await;
    let port = server.port();
    let mut all = String::new();
    for path in ["/1", "/2", "/3"] {
        all.push_str(&format!(
            "GET http://127.0.0.1:{port}{path} HTTP/1.1\r\nHost: x\r\n\r\n"
        ));
    }
    let mut s = send(proxy.local_addr(), all.as_bytes()).await;
    for path in ["/1", "/2", "/3"] {
        let (_, body) = read_response(&mut s).await;
        assert_eq!(body, format!("hello from {path}").as_bytes());
    }
}

#[tokio::test]
async fn chunked_and_sized_uploads_flow_through() {
    let server = http_server().await;
    let proxy = start(config(), DirectConnector::new()).await;
    let port = server.port();
    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let chunked = format!(
        "POST http://127.0.0.1:{port}/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
    );
    s.write_all(chunked.as_bytes()).await.unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // hyper streams the echo back chunked or sized; read by either framing.
    let body = read_body(&mut s, &head).await;
    assert_eq!(body, b"hello world");
    // A sized upload on the same connection.
    let sized = format!(
        "PUT http://127.0.0.1:{port}/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd"
    );
    s.write_all(sized.as_bytes()).await.unwrap();
    let head = read_head(&mut s).await;
    assert_eq!(read_body(&mut s, &head).await, b"abcd");
}

/// Reads a body framed by Content-Length or chunked (decoding the chunks).
async fn read_body(s: &mut TcpStream, head: &str) -> Vec<u8> {
    let lower = head.to_ascii_lowercase();
    if let Some(len) = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
    {
        return read_n(s, len.trim().parse().unwrap()).await;
    }
    assert!(lower.contains("transfer-encoding: chunked"), "{head}");
    let mut body = Vec::new();
    loop {
        let mut line = Vec::new();
        while !line.ends_with(b"\r\n") {
            line.push(read_n(s, 1).await[0]);
        }
        let size = usize::from_str_radix(std::str::from_utf8(&line).unwrap().trim(), 16).unwrap();
        if size == 0 {
            assert_eq!(read_n(s, 2).await, b"\r\n");
            return body;
        }
        body.extend_from_slice(&read_n(s, size).await);
        assert_eq!(read_n(s, 2).await, b"\r\n");
    }
}

#[tokio::test]
async fn expect_100_continue_is_relayed() {
    // A server that answers 100 Continue, and only then reads the body.
    let server = raw_server(|mut s| async move {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            if s.read(&mut b).await.unwrap() == 0 {
                return;
            }
            head.push(b[0]);
        }
        s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.unwrap();
        let mut body = [0u8; 3];
        s.read_exact(&mut body).await.unwrap();
        let mut resp = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n".to_vec();
        resp.extend_from_slice(&body);
        s.write_all(&resp).await.unwrap();
    })
    .await;
    let proxy = start(config(), DirectConnector::new()).await;
    let port = server.port();
    let mut s = send(
        proxy.local_addr(),
        format!(
            "POST http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    let interim = read_head(&mut s).await;
    assert_eq!(interim, "HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"xyz").await.unwrap();
    let (head, body) = read_response(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"xyz");
}

#[tokio::test]
async fn close_delimited_response_closes_the_client() {
    let server = raw_server(|mut s| async move {
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close")
            .await;
    })
    .await;
    let proxy = start(config(), DirectConnector::new()).await;
    let port = server.port();
    let text = exchange_text(
        proxy.local_addr(),
        format!("GET http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("Connection: close\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nuntil close"), "{text}");
}

#[tokio::test]
async fn http10_client_gets_connection_close() {
    let server = http_server().await;
    let proxy = start(config(), DirectConnector::new()).await;
    let port = server.port();
    let text = exchange_text(
        proxy.local_addr(),
        format!("GET http://127.0.0.1:{port}/ten HTTP/1.0\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(text.contains("Connection: close\r\n"), "{text}");
    assert!(text.ends_with("hello from /ten"), "{text}");
}

#[tokio::test]
async fn upstream_without_response_is_502() {
    let server = raw_server(|mut s| async move {
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await;
    })
    .await;
    let proxy = start(config(), DirectConnector::new()).await;
    let text = exchange_text(
        proxy.local_addr(),
        format!(
            "GET http://127.0.0.1:{}/ HTTP/1.1\r\nHost: x\r\n\r\n",
            server.port()
        )
        .as_bytes(),
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{text}");
    assert!(
        text.contains("closed the connection without a response"),
        "{text}"
    );
}

#[tokio::test]
async fn connect_tunnels_raw_bytes_including_early_data() {
    let echo = echo_server().await;
    let connector = DirectConnector::new();
    let proxy = start(config(), connector.clone()).await;
    let port = echo.port();
    // Early data right behind the head, before the 200 arrives.
    let mut s = send(
        proxy.local_addr(),
        format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\nearly")
            .as_bytes(),
    )
    .await;
    assert_eq!(
        read_head(&mut s).await,
        "HTTP/1.1 200 Connection established\r\n\r\n"
    );
    assert_eq!(read_n(&mut s, 5).await, b"early");
    s.write_all(b"more").await.unwrap();
    assert_eq!(read_n(&mut s, 4).await, b"more");
    s.shutdown().await.unwrap();
    assert_eq!(read_all(&mut s, CLOSE_WITHIN).await, b"");
    assert_eq!(connector.requests()[0].protocol, ProxyProtocol::HttpConnect);
}

#[tokio::test]
async fn bad_requests_get_400_with_text() {
    let proxy = start(config(), DirectConnector::new()).await;
    let cases = [
        (
            "GET https://example.com/ HTTP/1.1\r\n\r\n",
            "must use CONNECT",
        ),
        (
            "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            "not an absolute http:// URL",
        ),
        ("CONNECT example.com HTTP/1.1\r\n\r\n", "invalid target"),
        ("GET http://a/ HTTP/1.1\r\nbad header\r\n\r\n", "malformed"),
        (
            "POST http://a/ HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "framing",
        ),
    ];
    for (req, needle) in cases {
        let text = exchange_text(proxy.local_addr(), req.as_bytes()).await;
        assert!(
            text.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{req}: {text}"
        );
        assert!(text.contains("Content-Type: text/plain"), "{text}");
        assert!(text.contains("Connection: close\r\n"), "{text}");
        assert!(text.contains(needle), "{req}: {text}");
    }
}

#[tokio::test]
async fn oversized_head_gets_431() {
    let proxy = start(config(), DirectConnector::new()).await;
    let mut req = String::from("GET http://example.com/ HTTP/1.1\r\n");
    while req.len() < 20 * 1024 {
        req.push_str("X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    req.push_str("\r\n");
    let text = exchange_text(proxy.local_addr(), req.as_bytes()).await;
    assert!(
        text.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{text}"
    );
    assert!(text.contains("Connection: close\r\n"));
}

#[tokio::test]
async fn connect_errors_map_to_statuses() {
    let expected = [
        (
            ConnectErrorKind::Refused,
            "502 Bad Gateway",
            "connection refused by example.com:80",
        ),
        (
            ConnectErrorKind::Unreachable,
            "502 Bad Gateway",
            "example.com:80 is unreachable",
        ),
        (
            ConnectErrorKind::Other,
            "502 Bad Gateway",
            "could not connect to example.com:80",
        ),
        (
            ConnectErrorKind::TimedOut,
            "504 Gateway Timeout",
            "timed out",
        ),
        (
            ConnectErrorKind::Busy,
            "504 Gateway Timeout",
            "no tunnel slot",
        ),
        (ConnectErrorKind::NotAllowed, "403 Forbidden", "not allowed"),
        (
            ConnectErrorKind::Unavailable,
            "503 Service Unavailable",
            "tunnel is down",
        ),
    ];
    assert_eq!(expected.len(), ALL_KINDS.len());
    for (kind, status, text) in expected {
        let proxy = start(config(), FailConnector::new(kind)).await;
        for req in [
            "GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
            "CONNECT example.com:80 HTTP/1.1\r\nHost: example.com:80\r\n\r\n",
        ] {
            let got = exchange_text(proxy.local_addr(), req.as_bytes()).await;
            assert!(
                got.starts_with(&format!("HTTP/1.1 {status}\r\n")),
                "{kind:?}: {got}"
            );
            assert!(got.contains("Connection: close\r\n"), "{got}");
            assert!(got.contains(&format!("\r\n\r\n{status}: ")), "{got}");
            assert!(got.contains(text), "{kind:?}: {got}");
        }
    }
}

#[tokio::test]
async fn proxy_auth_required_and_checked() {
    let server = http_server().await;
    let connector = DirectConnector::new();
    let config = ProxyConfig {
        auth: Some(Credentials::new("user", "pa:ss")),
        ..config()
    };
    let proxy = start(config, connector.clone()).await;
    let port = server.port();
    let url = format!("http://127.0.0.1:{port}/private");
    for auth in ["", "Proxy-Authorization: Basic dXNlcjp3cm9uZw==\r\n"] {
        let text = exchange_text(
            proxy.local_addr(),
            format!("GET {url} HTTP/1.1\r\nHost: x\r\n{auth}\r\n").as_bytes(),
        )
        .await;
        assert!(
            text.starts_with("HTTP/1.1 407 Proxy Authentication Required\r\n"),
            "{text}"
        );
        assert!(
            text.contains("Proxy-Authenticate: Basic realm=\"httvps\"\r\n"),
            "{text}"
        );
    }
    assert!(connector.requests().is_empty());
    // base64("user:pa:ss")
    let text = exchange_text(
        proxy.local_addr(),
        format!(
            "GET {url} HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Basic dXNlcjpwYTpzcw==\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert!(text.ends_with("hello from /private"), "{text}");
}

#[tokio::test]
async fn slow_head_is_dropped_at_the_handshake_timeout() {
    let proxy = start(
        ProxyConfig {
            handshake_timeout: Duration::from_millis(300),
            ..config()
        },
        DirectConnector::new(),
    )
    .await;
    let started = std::time::Instant::now();
    let mut s = send(
        proxy.local_addr(),
        b"GET http://example.com/ HTTP/1.1\r\nHo",
    )
    .await;
    assert_eq!(read_all(&mut s, CLOSE_WITHIN).await, b"");
    assert!(started.elapsed() >= Duration::from_millis(250));
}

/// Reads one request head from a raw server's socket.
async fn server_read_head(s: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        if s.read(&mut b).await.ok()? == 0 {
            return None;
        }
        head.push(b[0]);
    }
    Some(String::from_utf8(head).unwrap())
}

#[tokio::test]
async fn idle_upstream_closed_by_server_is_replaced() {
    // Answers one request as keep-alive, then closes anyway.
    let server = raw_server(|mut s| async move {
        if server_read_head(&mut s).await.is_some() {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await;
        }
    })
    .await;
    let connector = DirectConnector::new();
    let proxy = start(config(), connector.clone()).await;
    let port = server.port();
    let req = format!("GET http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut s = send(proxy.local_addr(), req.as_bytes()).await;
    assert_eq!(read_response(&mut s).await.1, b"ok");
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.write_all(req.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut s).await.1, b"ok");
    assert_eq!(connector.requests().len(), 2);
}

#[tokio::test]
async fn protocol_upgrade_switches_to_raw_bytes() {
    let server = raw_server(|mut s| async move {
        let Some(head) = server_read_head(&mut s).await else {
            return;
        };
        assert!(head.contains("Upgrade: echo\r\n"), "{head}");
        assert!(head.contains("Connection: Upgrade\r\n"), "{head}");
        s.write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
        )
        .await
        .unwrap();
        let (mut r, mut w) = s.split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
    })
    .await;
    let proxy = start(config(), DirectConnector::new()).await;
    let port = server.port();
    let mut s = send(
        proxy.local_addr(),
        format!("GET http://127.0.0.1:{port}/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
            .as_bytes(),
    )
    .await;
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.contains("Upgrade: echo\r\n"), "{head}");
    s.write_all(b"frames").await.unwrap();
    assert_eq!(read_n(&mut s, 6).await, b"frames");
}
