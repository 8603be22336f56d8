use super::*;
use proptest::prelude::*;

fn req(text: &str) -> Result<Option<(RequestHead, usize)>, HeadError> {
    decode_request_head(text.as_bytes(), 16 * 1024)
}

fn forward(text: &str) -> String {
    let (head, _) = req(text).unwrap().unwrap();
    let mut out = Vec::new();
    head.encode_forward(&mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn absolute_form_is_rewritten() {
    let text = "GET http://user:pw@example.com:8080/a/b?c=d#frag HTTP/1.1\r\n\
                Host: wrong\r\n\
                Proxy-Authorization: Basic dTpw\r\n\
                Proxy-Connection: keep-alive\r\n\
                Connection: keep-alive, X-Private\r\n\
                Keep-Alive: timeout=5\r\n\
                X-Private: secret\r\n\
                TE: trailers\r\n\
                Accept: */*\r\n\r\n";
    let (head, used) = req(text).unwrap().unwrap();
    assert_eq!(used, text.len());
    assert_eq!(head.target, TargetAddr::Domain("example.com".into(), 8080));
    assert!(head.keep_alive);
    assert_eq!(head.body, BodyFraming::Empty);
    assert_eq!(head.proxy_authorization(), Some(&b"Basic dTpw"[..]));
    assert_eq!(
        forward(text),
        "GET /a/b?c=d HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\n\r\n"
    );
}

#[test]
fn targets_and_default_port() {
    let cases = [
        ("http://example.com", "example.com:80", "/"),
        ("http://example.com?x", "example.com:80", "/?x"),
        ("HTTP://10.1.2.3:81/", "10.1.2.3:81", "/"),
        ("http://[::1]:8080/x", "[::1]:8080", "/x"),
        ("http://[::1]/x", "[::1]:80", "/x"),
    ];
    for (uri, target, path) in cases {
        let (head, _) = req(&format!("GET {uri} HTTP/1.1\r\n\r\n"))
            .unwrap()
            .unwrap();
        assert_eq!(head.target.to_string(), target, "{uri}");
        match head.kind {
            RequestKind::Forward { path: p, .. } => assert_eq!(p, path, "{uri}"),
            RequestKind::Connect => panic!("not a forward"),
        }
    }
}

#[test]
fn connect_head() {
    let (head, _) = req("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(head.kind, RequestKind::Connect);
    assert_eq!(head.target, TargetAddr::Domain("example.com".into(), 443));
    let (head, _) = req("CONNECT [2001:db8::1]:443 HTTP/1.1\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(
        head.target,
        TargetAddr::Ip("[2001:db8::1]:443".parse().unwrap())
    );
    assert!(matches!(
        req("CONNECT example.com HTTP/1.1\r\n\r\n"),
        Err(HeadError::BadTarget(_))
    ));
}

#[test]
fn bad_requests() {
    assert_eq!(
        req("GET https://example.com/ HTTP/1.1\r\n\r\n"),
        Err(HeadError::HttpsTarget)
    );
    assert!(matches!(
        req("GET / HTTP/1.1\r\n\r\n"),
        Err(HeadError::NotAbsolute(_))
    ));
    assert!(matches!(
        req("GET ftp://x/ HTTP/1.1\r\n\r\n"),
        Err(HeadError::UnsupportedScheme(_))
    ));
    assert!(matches!(
        req("GET http://:80/ HTTP/1.1\r\n\r\n"),
        Err(HeadError::BadTarget(_))
    ));
    assert!(matches!(
        req("GET http://a:99999/ HTTP/1.1\r\n\r\n"),
        Err(HeadError::BadTarget(_))
    ));
    assert!(matches!(
        req("GET http://a/ HTTP/1.1\r\nBad Header\r\n\r\n"),
        Err(HeadError::Malformed(_))
    ));
    for framing in [
        "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: gzip\r\n",
        "Content-Length: 1\r\nContent-Length: 2\r\n",
        "Content-Length: -1\r\n",
        "Content-Length: 1x\r\n",
    ] {
        let text = format!("POST http://a/ HTTP/1.1\r\n{framing}\r\n");
        assert!(
            matches!(req(&text), Err(HeadError::BadFraming(_))),
            "{framing}"
        );
    }
    assert_eq!(HeadError::HttpsTarget.status().code, 400);
}

#[test]
fn request_framing_and_keep_alive() {
    let (h, _) = req("POST http://a/ HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(h.body, BodyFraming::Length(5));
    let (h, _) = req("POST http://a/ HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(h.body, BodyFraming::Chunked);
    let (h, _) = req("GET http://a/ HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(!h.keep_alive);
    assert!(
        forward("GET http://a/ HTTP/1.1\r\nConnection: close\r\n\r\n")
            .ends_with("Connection: close\r\n\r\n")
    );
    let (h, _) = req("GET http://a/ HTTP/1.0\r\n\r\n").unwrap().unwrap();
    assert!(!h.keep_alive);
    let (h, _) = req("GET http://a/ HTTP/1.0\r\nProxy-Connection: Keep-Alive\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(h.keep_alive);
    assert!(
        forward("GET http://a/ HTTP/1.0\r\nProxy-Connection: Keep-Alive\r\n\r\n")
            .ends_with("Connection: keep-alive\r\n\r\n")
    );
}

#[test]
fn upgrade_is_forwarded() {
    let text = "GET http://a/ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
    let (h, _) = req(text).unwrap().unwrap();
    assert!(h.upgrade);
    assert_eq!(
        forward(text),
        "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    );
}

#[test]
fn oversized_heads() {
    let big = format!(
        "GET http://a/ HTTP/1.1\r\nX: {}\r\n\r\n",
        "x".repeat(20_000)
    );
    assert_eq!(req(&big), Err(HeadError::TooLarge));
    // Incomplete but already at the limit: too large, not "need more".
    let partial = format!("GET http://a/ HTTP/1.1\r\nX: {}", "x".repeat(20_000));
    assert_eq!(req(&partial), Err(HeadError::TooLarge));
    let many: String = (0..MAX_HEADERS + 1)
        .map(|i| format!("H{i}: v\r\n"))
        .collect();
    assert_eq!(
        req(&format!("GET http://a/ HTTP/1.1\r\n{many}\r\n")),
        Err(HeadError::TooLarge)
    );
    assert_eq!(HeadError::TooLarge.status().code, 431);
}

#[test]
fn response_framing() {
    let resp = |text: &str, head: bool| {
        decode_response_head(text.as_bytes(), 65536, head)
            .unwrap()
            .unwrap()
            .0
    };
    let r = resp("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", false);
    assert_eq!(
        (r.code, r.body, r.keep_alive),
        (200, BodyFraming::Length(3), true)
    );
    let r = resp("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", true);
    assert_eq!(r.body, BodyFraming::Empty);
    let r = resp(
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n",
        false,
    );
    assert_eq!(r.body, BodyFraming::Empty);
    let r = resp("HTTP/1.1 200 OK\r\n\r\n", false);
    assert_eq!((r.body, r.keep_alive), (BodyFraming::UntilClose, false));
    let r = resp(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n",
        false,
    );
    assert_eq!(r.body, BodyFraming::Chunked);
    let mut out = Vec::new();
    r.encode_for_client(None, &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let r = resp("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false);
    assert!(!r.keep_alive);
    let r = resp(
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
        false,
    );
    assert!(!r.keep_alive);
    let r = resp("HTTP/1.1 100 Continue\r\n\r\n", false);
    assert!(r.is_interim());
    assert!(matches!(
        decode_response_head(
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            65536,
            false
        ),
        Err(HeadError::BadFraming(_))
    ));
}

#[test]
fn response_encoding_drops_hop_by_hop() {
    let text = "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\nKeep-Alive: x\r\nProxy-Authenticate: Basic\r\nX: y\r\n\r\n";
    let (r, _) = decode_response_head(text.as_bytes(), 65536, false)
        .unwrap()
        .unwrap();
    let mut out = Vec::new();
    r.encode_for_client(Some("Upgrade"), &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nX: y\r\nConnection: Upgrade\r\n\r\n"
    );
}

#[test]
fn connect_errors_map_to_statuses() {
    use ConnectErrorKind::*;
    let cases = [
        (Refused, 502),
        (Unreachable, 502),
        (Other, 502),
        (TimedOut, 504),
        (Busy, 504),
        (NotAllowed, 403),
        (Unavailable, 503),
    ];
    for (kind, code) in cases {
        assert_eq!(status_for(kind).code, code, "{kind:?}");
    }
    let target = TargetAddr::Domain("example.com".into(), 80);
    assert_eq!(
        connect_error_text(Refused, &target, ""),
        "connection refused by example.com:80"
    );
}

#[test]
fn error_response_shape() {
    let bytes = encode_error_response(Status::BAD_GATEWAY, "boom", &[PROXY_AUTHENTICATE]);
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.starts_with("HTTP/1.1 502 Bad Gateway\r\n"));
    assert!(text.contains("Proxy-Authenticate: Basic realm=\"httvps\"\r\n"));
    assert!(text.contains("Connection: close\r\n"));
    assert!(text.ends_with("\r\n\r\n502 Bad Gateway: boom\n"));
    let body_len = "502 Bad Gateway: boom\n".len();
    assert!(text.contains(&format!("Content-Length: {body_len}\r\n")));
}

#[test]
fn header_debug_redacts_credentials() {
    let h = Header {
        name: "Proxy-Authorization".into(),
        value: b"Basic c2VjcmV0".to_vec(),
    };
    assert!(!format!("{h:?}").contains("c2VjcmV0"));
}

proptest! {
    #[test]
    fn truncated_request_heads_need_more(
        host in "[a-z]{1,20}",
        port in any::<u16>(),
        path in "/[a-z0-9/]{0,30}",
        values in proptest::collection::vec("[ -~]{0,40}", 0..6),
    ) {
        let mut text = format!("GET http://{host}:{port}{path} HTTP/1.1\r\n");
        for (i, v) in values.iter().enumerate() {
            text.push_str(&format!("X-{i}: {v}\r\n"));
        }
        text.push_str("\r\n");
        let bytes = text.as_bytes();
        for cut in 0..bytes.len() {
            prop_assert_eq!(decode_request_head(&bytes[..cut], 16 * 1024), Ok(None));
        }
        let (head, used) = decode_request_head(bytes, 16 * 1024).unwrap().unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(head.target, TargetAddr::parse(&format!("{host}:{port}")).unwrap());
        prop_assert_eq!(head.headers.len(), values.len());
    }

    #[test]
    fn head_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), max in 1usize..700) {
        if let Ok(Some((_, n))) = decode_request_head(&bytes, max) { prop_assert!(n <= bytes.len().min(max)); }
        if let Ok(Some((_, n))) = decode_response_head(&bytes, max, false) { prop_assert!(n <= bytes.len().min(max)); }
    }
}
