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
    // Leading zeros in a chunk size are no overflow, however many.
    let zeros = format!(
        "POST http://127.0.0.1:{port}/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
         000000000000000000005\r\nhello\r\n0\r\n\r\n"
    );
    s.write_all(zeros.as_bytes()).await.unwrap();
    let head = read_head(&mut s).await;
    assert_eq!(read_body(&mut s, &head).await, b"hello");
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
async fn close_delimited_response_is_rechunked_for_the_client() {
    let server = raw_server(|mut s| async move {
        if server_read_head(&mut s).await.is_some() {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close")
                .await;
        }
    })
    .await;
    let connector = DirectConnector::new();
    let proxy = start(config(), connector.clone()).await;
    let port = server.port();
    let req = format!("GET http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut s = send(proxy.local_addr(), req.as_bytes()).await;
    // The server's close ends the body; the client gets it chunked and
    // keeps its connection.
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Type: text/plain\r\n"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    assert_eq!(read_body(&mut s, &head).await, b"until close");
    s.write_all(req.as_bytes()).await.unwrap();
    let head = read_head(&mut s).await;
    assert_eq!(read_body(&mut s, &head).await, b"until close");
    // The closed upstream was not reused.
    assert_eq!(connector.requests().len(), 2);
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
    // An HTTP/1.0 answer; the field name is as the origin server wrote it.
    assert!(text.starts_with("HTTP/1.0 200 OK\r\n"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{text}"
    );
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
    // Heads hyper accepts but the proxy cannot serve: 400 with a reason.
    let cases = [
        (
            "GET https://example.com/ HTTP/1.1\r\n\r\n",
            "must use CONNECT",
        ),
        (
            "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            "not an absolute http:// URL",
        ),
        ("GET ftp://a/ HTTP/1.1\r\n\r\n", "only http:// is forwarded"),
        ("CONNECT example.com HTTP/1.1\r\n\r\n", "invalid target"),
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
    // Heads hyper's parser refuses: 400 with an empty body, then close.
    for req in [
        "GET http://a/ HTTP/1.1\r\nbad header\r\n\r\n",
        "GET http://a/ HTTP/1.1\r\nX: \x01\r\n\r\n",
        "GET http://a/ HTTP/9.9\r\n\r\n",
        "POST http://a/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST http://a/ HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST http://a/ HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        "POST http://a/ HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
    ] {
        let text = exchange_text(proxy.local_addr(), req.as_bytes()).await;
        assert!(
            text.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{req}: {text}"
        );
        assert!(text.contains("Connection: close\r\n"), "{text}");
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"), "{text}");
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

#[tokio::test]
async fn userinfo_and_fragment_never_reach_the_origin() {
    let server = http_server().await;
    let proxy = start(config(), DirectConnector::new()).await;
    let port = server.port();
    let text = exchange_text(
        proxy.local_addr(),
        format!(
            "GET http://user:pw@127.0.0.1:{port}/headers?a=b#frag HTTP/1.1\r\nHost: wrong\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    let body = text.split("\r\n\r\n").nth(1).unwrap();
    assert!(body.starts_with("GET /headers?a=b\n"), "{body}");
    assert!(
        body.contains(&format!("host: 127.0.0.1:{port}\n")),
        "{body}"
    );
    assert!(!body.contains("user") && !body.contains("frag"), "{body}");
}

/// A raw origin that answers every request on a connection with the
/// response `respond` builds from the request head, and records the heads.
async fn scripted_server(
    respond: fn(&str) -> Vec<u8>,
) -> (Server, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = heads.clone();
    let server = raw_server(move |mut s| {
        let seen = seen.clone();
        async move {
            while let Some(head) = server_read_head(&mut s).await {
                let response = respond(&head);
                seen.lock().unwrap().push(head);
                if s.write_all(&response).await.is_err() {
                    return;
                }
            }
        }
    })
    .await;
    (server, heads)
}

#[tokio::test]
async fn response_framing_is_redone_for_the_client() {
    let (server, heads) = scripted_server(|head| {
        let path = head.split(' ').nth(1).unwrap();
        match path {
            // Chunked with a stale Content-Length beside it.
            "/chunked" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n".to_vec(),
            // No body, whatever the length says.
            "/304" => b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nETag: \"x\"\r\n\r\n".to_vec(),
            // Hop-by-hop fields of the origin's connection go.
            _ => {
                let mut r = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=5\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nProxy-Authenticate: Basic\r\nX-End: 2\r\n\r\n".to_vec();
                if !head.starts_with("HEAD ") {
                    r.extend_from_slice(b"ok");
                }
                r
            }
        }
    })
    .await;
    let connector = DirectConnector::new();
    let proxy = start(config(), connector.clone()).await;
    let port = server.port();
    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let get = |method: &str, path: &str| {
        format!("{method} http://127.0.0.1:{port}{path} HTTP/1.1\r\nHost: x\r\n\r\n")
    };
    s.write_all(get("GET", "/chunked").as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut s).await;
    assert!(
        !head.to_ascii_lowercase().contains("content-length"),
        "{head}"
    );
    assert_eq!(read_body(&mut s, &head).await, b"abcde");
    s.write_all(get("GET", "/304").as_bytes()).await.unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 304 Not Modified\r\n"), "{head}");
    assert!(head.contains("ETag: \"x\"\r\n"), "{head}");
    s.write_all(get("HEAD", "/other").as_bytes()).await.unwrap();
    let head = read_head(&mut s).await;
    assert!(head.contains("Content-Length: 2\r\n"), "{head}");
    // No body came after the 304 and HEAD heads: the next response starts
    // right here, on the same connection and the same upstream.
    s.write_all(get("GET", "/other").as_bytes()).await.unwrap();
    let (head, body) = read_response(&mut s).await;
    assert_eq!(body, b"ok");
    assert!(head.contains("X-End: 2\r\n"), "{head}");
    for gone in ["keep-alive", "x-hop", "proxy-authenticate", "connection"] {
        assert!(!head.to_ascii_lowercase().contains(gone), "{gone}: {head}");
    }
    assert_eq!(connector.requests().len(), 1);
    assert_eq!(heads.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn invalid_upstream_response_is_502() {
    let (server, _) =
        scripted_server(|_| b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n".to_vec()).await;
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
    assert!(text.contains("sent an invalid response"), "{text}");
}

#[tokio::test]
async fn http10_keep_alive_client_keeps_its_connection() {
    let server = http_server().await;
    let connector = DirectConnector::new();
    let proxy = start(config(), connector.clone()).await;
    let port = server.port();
    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    for path in ["/a", "/b"] {
        let req =
            format!("GET http://127.0.0.1:{port}{path} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let (head, body) = read_response(&mut s).await;
        assert!(head.starts_with("HTTP/1.0 200 OK\r\n"), "{head}");
        assert!(head.contains("Connection: keep-alive\r\n"), "{head}");
        assert_eq!(body, format!("hello from {path}").as_bytes());
    }
    assert_eq!(connector.requests().len(), 1);
}

#[tokio::test]
async fn http10_connect_is_tunnelled() {
    let echo = echo_server().await;
    let proxy = start(config(), DirectConnector::new()).await;
    let mut s = send(
        proxy.local_addr(),
        format!("CONNECT 127.0.0.1:{} HTTP/1.0\r\n\r\n", echo.port()).as_bytes(),
    )
    .await;
    let head = read_head(&mut s).await;
    assert!(
        head.ends_with(" 200 Connection established\r\n\r\n"),
        "{head}"
    );
    s.write_all(b"ping").await.unwrap();
    assert_eq!(read_n(&mut s, 4).await, b"ping");
}

#[tokio::test]
async fn too_many_header_fields_get_431() {
    let proxy = start(config(), DirectConnector::new()).await;
    let mut req = String::from("GET http://example.com/ HTTP/1.1\r\n");
    for i in 0..200 {
        req.push_str(&format!("X-{i}: v\r\n"));
    }
    req.push_str("\r\n");
    let text = exchange_text(proxy.local_addr(), req.as_bytes()).await;
    assert!(
        text.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{text}"
    );
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed_after_the_handshake_timeout() {
    let server = http_server().await;
    let proxy = start(
        ProxyConfig {
            handshake_timeout: Duration::from_millis(300),
            ..config()
        },
        DirectConnector::new(),
    )
    .await;
    let port = server.port();
    let mut s = send(
        proxy.local_addr(),
        format!("GET http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
    .await;
    let idle_from = {
        let (_, body) = read_response(&mut s).await;
        assert_eq!(body, b"hello from /");
        std::time::Instant::now()
    };
    assert_eq!(read_all(&mut s, CLOSE_WITHIN).await, b"");
    assert!(idle_from.elapsed() >= Duration::from_millis(250));
}

// Request smuggling: the shapes where two parsers could disagree on where a
// request body ends. hyper decides; the proxy must never let a second
// request hide inside the first one's body.

#[tokio::test]
async fn smuggling_content_length_with_transfer_encoding() {
    let server = http_server().await;
    let connector = DirectConnector::new();
    let proxy = start(config(), connector.clone()).await;
    let port = server.port();
    // Framed by Content-Length, the body would be "0\r\n\r\nGET http://…";
    // framed by chunked (RFC 9112 §6.3: Transfer-Encoding wins), it is empty
    // and a second request follows. Either way that second request must not
    // be served: hyper reads the body as chunked and closes the connection
    // after the response, as §6.3 requires.
    let smuggled = format!("GET http://127.0.0.1:{port}/smuggled HTTP/1.1\r\nHost: x\r\n\r\n");
    let req = format!(
        "POST http://127.0.0.1:{port}/headers HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}",
        5 + smuggled.len()
    );
    let text = exchange_text(proxy.local_addr(), req.as_bytes()).await;
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "{text}");
    assert!(!text.contains("smuggled"), "{text}");
    assert!(text.contains("Connection: close\r\n"), "{text}");
    // The origin got one request, framed one way only.
    let body = text.split("\r\n\r\n").nth(1).unwrap();
    assert!(body.starts_with("POST /headers\n"), "{body}");
    assert!(body.contains("transfer-encoding: chunked\n"), "{body}");
    assert!(!body.contains("content-length"), "{body}");
    assert_eq!(connector.requests().len(), 1);
}

#[tokio::test]
async fn smuggling_conflicting_content_lengths_get_400() {
    let server = http_server().await;
    let connector = DirectConnector::new();
    let proxy = start(config(), connector.clone()).await;
    let port = server.port();
    for framing in [
        "Content-Length: 3\r\nContent-Length: 5\r\n",
        "Content-Length: 3, 5\r\n",
        "Content-Length: 3\r\nContent-Length: 3, 5\r\n",
    ] {
        let text = exchange_text(
            proxy.local_addr(),
            format!("POST http://127.0.0.1:{port}/echo HTTP/1.1\r\nHost: x\r\n{framing}\r\nabcde")
                .as_bytes(),
        )
        .await;
        assert!(
            text.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{framing}: {text}"
        );
        assert!(text.contains("Connection: close\r\n"), "{text}");
    }
    assert!(connector.requests().is_empty());
    // The same length twice is no ambiguity.
    let text = exchange_text(
        proxy.local_addr(),
        format!(
            "POST http://127.0.0.1:{port}/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
        )
        .as_bytes(),
    )
    .await;
    assert!(text.ends_with("\r\n\r\nabc"), "{text}");
}

#[tokio::test]
async fn smuggling_bad_chunked_bodies_get_400() {
    // An origin that waits for a whole request body and never answers
    // before: whatever reaches the client comes from the proxy.
    let (bodies, mut got) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let server = raw_server(move |mut s| {
        let bodies = bodies.clone();
        async move {
            let mut all = Vec::new();
            let _ = s.read_to_end(&mut all).await;
            let _ = bodies.send(all);
        }
    })
    .await;
    let connector = DirectConnector::new();
    let proxy = start(config(), connector.clone()).await;
    let port = server.port();
    let long_extension = format!("5;{}\r\nhello\r\n0\r\n\r\n", "e".repeat(20_000));
    let long_trailers = format!("5\r\nhello\r\n0\r\nX: {}\r\n\r\n", "t".repeat(20_000));
    for body in [
        // Chunk extensions and trailers are bounded (16 KiB each).
        long_extension.as_str(),
        long_trailers.as_str(),
        // Not a hex size.
        "zz\r\nhello\r\n0\r\n\r\n",
        // Sizes that overflow 64 bits: 17 and 18 hex digits.
        "1ffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        "ffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        "100000000000000000\r\nhello\r\n0\r\n\r\n",
        "123456789ABCDEF012;ext=1\r\nhello\r\n0\r\n\r\n",
        // Chunk data not followed by CRLF.
        "5\r\nhelloXX0\r\n\r\n",
        // A bare LF ending the size line.
        "5\nhello\r\n0\r\n\r\n",
    ] {
        let text = exchange_text(
            proxy.local_addr(),
            format!(
                "POST http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{body}GET http://127.0.0.1:{port}/next HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
        assert!(
            text.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{:?}: {text}",
            &body[..body.len().min(40)]
        );
        assert!(text.contains("invalid request body"), "{text}");
        assert!(text.contains("Connection: close\r\n"), "{text}");
        assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "{text}");
        // The origin saw at most the start of the request, never the one
        // behind it.
        let forwarded = got.recv().await.unwrap();
        assert!(
            !String::from_utf8_lossy(&forwarded).contains("/next"),
            "{forwarded:?}"
        );
    }
}

/// An overflowing chunk size (18 hex digits) however the client's writes
/// split the request: the head alone first (the proxy has already sent it
/// upstream when the size arrives), the size line itself in two pieces, or
/// after a good chunk that went upstream. The origin waits for the whole
/// body, so the answer is the proxy's: 400, then close. (An origin that
/// answers before reading the body has the client's one response; a 400
/// cannot follow it, and the connection just closes.)
#[tokio::test]
async fn overflowing_chunk_sizes_get_400_whenever_they_arrive() {
    let server = raw_server(|mut s| async move {
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all).await;
    })
    .await;
    let proxy = start(config(), DirectConnector::new()).await;
    let port = server.port();
    let head = format!(
        "POST http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let size = "ffffffffffffffffff";
    let splits: [Vec<String>; 3] = [
        vec![head.clone(), format!("{size}\r\nhello\r\n0\r\n\r\n")],
        vec![
            head.clone(),
            size[..9].to_owned(),
            format!("{}\r\nhello\r\n0\r\n\r\n", &size[9..]),
        ],
        vec![
            format!("{head}5\r\nhello\r\n"),
            format!("{size}\r\nworld\r\n0\r\n\r\n"),
        ],
    ];
    for pieces in splits {
        let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
        for piece in &pieces {
            s.write_all(piece.as_bytes()).await.unwrap();
            // Each piece its own read on the proxy's side.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let text = String::from_utf8_lossy(&read_all(&mut s, CLOSE_WITHIN).await).into_owned();
        assert!(
            text.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{pieces:?}: {text}"
        );
        assert!(text.contains("invalid chunk size"), "{text}");
        assert!(text.contains("Connection: close\r\n"), "{text}");
        assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "{text}");
    }
}
