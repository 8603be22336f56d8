use super::*;
use hyper::Request;
use proptest::prelude::*;

/// A request head as hyper hands it to the proxy.
fn request(method: &str, uri: &str, version: Version, headers: &[(&str, &str)]) -> request::Parts {
    let mut builder = Request::builder().method(method).uri(uri).version(version);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap().into_parts().0
}

/// The head sent upstream for `uri`, as `name: value` lines, sorted.
fn forwarded(uri: &str, version: Version, headers: &[(&str, &str)]) -> (request::Parts, String) {
    let mut parts = request("GET", uri, version, headers);
    let target = forward_target(&parts.uri).unwrap();
    let upgrade = wants_upgrade(version, &parts.headers);
    let close = client_wants_close(version, &parts.headers);
    take_proxy_authorization(&mut parts.headers);
    rewrite_request(&mut parts, &target, upgrade, close).unwrap();
    let text = lines(&parts.headers);
    (parts, text)
}

fn lines(headers: &HeaderMap) -> String {
    let mut lines: Vec<String> = headers
        .iter()
        .map(|(n, v)| format!("{}: {}\n", n, v.to_str().unwrap()))
        .collect();
    lines.sort();
    lines.concat()
}

#[test]
fn absolute_form_is_rewritten() {
    let (parts, text) = forwarded(
        "http://user:pw@example.com:8080/a/b?c=d",
        Version::HTTP_11,
        &[
            ("Host", "wrong"),
            ("Proxy-Authorization", "Basic dTpw"),
            ("Proxy-Connection", "keep-alive"),
            ("Connection", "keep-alive, X-Private"),
            ("Keep-Alive", "timeout=5"),
            ("X-Private", "secret"),
            ("TE", "trailers"),
            ("Accept", "*/*"),
        ],
    );
    assert_eq!(parts.uri, "/a/b?c=d");
    assert_eq!(parts.version, Version::HTTP_11);
    assert_eq!(text, "accept: */*\nhost: example.com:8080\n");
    let target = forward_target(&"http://user:pw@example.com:8080/".parse().unwrap()).unwrap();
    assert_eq!(
        target.target,
        TargetAddr::Domain("example.com".into(), 8080)
    );
}

#[test]
fn framing_fields_are_left_to_hyper() {
    // Named in Connection or not, the framing fields stay: hyper re-frames
    // the body it forwards and needs them.
    let (_, text) = forwarded(
        "http://a/",
        Version::HTTP_11,
        &[
            ("Connection", "content-length, transfer-encoding"),
            ("Transfer-Encoding", "gzip, chunked"),
            ("Trailer", "X-Sum"),
        ],
    );
    assert_eq!(
        text,
        "host: a\ntrailer: X-Sum\ntransfer-encoding: gzip, chunked\n"
    );
}

#[test]
fn targets_and_default_port() {
    let cases = [
        ("http://example.com", "example.com:80", "/", "example.com"),
        (
            "http://example.com?x",
            "example.com:80",
            "/?x",
            "example.com",
        ),
        ("HTTP://10.1.2.3:81/", "10.1.2.3:81", "/", "10.1.2.3:81"),
        ("http://[::1]:8080/x", "[::1]:8080", "/x", "[::1]:8080"),
        ("http://[::1]/x", "[::1]:80", "/x", "[::1]"),
        ("http://a:/x", "a:80", "/x", "a:"),
    ];
    for (uri, target, path, host) in cases {
        let t = forward_target(&uri.parse().unwrap()).unwrap();
        assert_eq!(t.target.to_string(), target, "{uri}");
        assert_eq!(t.path, path, "{uri}");
        assert_eq!(t.host, host, "{uri}");
    }
    // IP literals need no resolution; names stay names.
    let t = forward_target(&"http://127.0.0.1:8/".parse().unwrap()).unwrap();
    assert_eq!(t.target, TargetAddr::Ip("127.0.0.1:8".parse().unwrap()));
    let t = forward_target(&"http://localhost/".parse().unwrap()).unwrap();
    assert_eq!(t.target, TargetAddr::Domain("localhost".into(), 80));
}

#[test]
fn connect_targets() {
    let t = |s: &str| connect_target(&s.parse().unwrap());
    assert_eq!(
        t("example.com:443"),
        Ok(TargetAddr::Domain("example.com".into(), 443))
    );
    assert_eq!(
        t("[2001:db8::1]:443"),
        Ok(TargetAddr::Ip("[2001:db8::1]:443".parse().unwrap()))
    );
    for bad in [
        "example.com",
        "http://example.com:443/",
        "/path",
        "user@example.com:443",
    ] {
        assert!(matches!(t(bad), Err(RequestError::BadTarget(_))), "{bad}");
    }
}

#[test]
fn bad_requests() {
    let f = |s: &str| forward_target(&s.parse().unwrap());
    assert_eq!(f("https://example.com/"), Err(RequestError::HttpsTarget));
    assert!(matches!(f("/"), Err(RequestError::NotAbsolute(_))));
    assert!(matches!(f("*"), Err(RequestError::NotAbsolute(_))));
    assert!(matches!(
        f("ftp://x/"),
        Err(RequestError::UnsupportedScheme(_))
    ));
    assert!(matches!(f("http://:80/"), Err(RequestError::BadTarget(_))));
    assert!(matches!(
        f("http://a:99999/"),
        Err(RequestError::BadTarget(_))
    ));
    assert!(RequestError::HttpsTarget.to_string().contains("CONNECT"));
}

#[test]
fn keep_alive_and_close() {
    let h = |pairs: &[(&str, &str)], version| {
        client_wants_close(version, &request("GET", "/", version, pairs).headers)
    };
    assert!(!h(&[], Version::HTTP_11));
    assert!(h(&[("Connection", "close")], Version::HTTP_11));
    assert!(h(&[("Connection", "Keep-Alive, Close")], Version::HTTP_11));
    assert!(h(&[], Version::HTTP_10));
    assert!(!h(&[("Connection", "keep-alive")], Version::HTTP_10));
    // The client's Connection: close goes upstream as ours.
    let (_, text) = forwarded("http://a/", Version::HTTP_11, &[("Connection", "close")]);
    assert_eq!(text, "connection: close\nhost: a\n");
    // HTTP/1.0 clients are forwarded as HTTP/1.1 (each hop its own version).
    let (parts, _) = forwarded(
        "http://a/",
        Version::HTTP_10,
        &[("Connection", "keep-alive")],
    );
    assert_eq!(parts.version, Version::HTTP_11);
}

#[test]
fn upgrade_is_forwarded() {
    let headers = [("Connection", "Upgrade"), ("Upgrade", "websocket")];
    let parts = request("GET", "http://a/ws", Version::HTTP_11, &headers);
    assert!(wants_upgrade(Version::HTTP_11, &parts.headers));
    // Upgrade is an HTTP/1.1 mechanism.
    assert!(!wants_upgrade(Version::HTTP_10, &parts.headers));
    let (_, text) = forwarded("http://a/ws", Version::HTTP_11, &headers);
    assert_eq!(text, "connection: Upgrade\nhost: a\nupgrade: websocket\n");
    // Upgrade without Connection: upgrade is no upgrade, and is dropped.
    let (_, text) = forwarded("http://a/ws", Version::HTTP_11, &[("Upgrade", "x")]);
    assert_eq!(text, "host: a\n");
}

fn response(status: u16, headers: &[(&str, &str)]) -> response::Parts {
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap().into_parts().0
}

#[test]
fn response_drops_hop_by_hop() {
    let mut r = response(
        101,
        &[
            ("Connection", "upgrade"),
            ("Upgrade", "websocket"),
            ("Keep-Alive", "x"),
            ("Proxy-Authenticate", "Basic"),
            ("X", "y"),
        ],
    );
    rewrite_response(&mut r, Version::HTTP_11, false, true);
    assert_eq!(
        lines(&r.headers),
        "connection: Upgrade\nupgrade: websocket\nx: y\n"
    );
    let mut r = response(200, &[("Upgrade", "h2c"), ("Connection", "close")]);
    rewrite_response(&mut r, Version::HTTP_11, false, true);
    assert_eq!(lines(&r.headers), "");
}

#[test]
fn response_framing_and_connection() {
    // A stale Content-Length beside Transfer-Encoding goes.
    let mut r = response(
        200,
        &[("Transfer-Encoding", "chunked"), ("Content-Length", "9")],
    );
    rewrite_response(&mut r, Version::HTTP_11, false, false);
    assert_eq!(lines(&r.headers), "transfer-encoding: chunked\n");
    assert_eq!(r.version, Version::HTTP_11);
    let conn = |version, close, exact| {
        let mut r = response(200, &[("Content-Length", "1")]);
        rewrite_response(&mut r, version, close, exact);
        r.headers.get(header::CONNECTION).cloned()
    };
    assert_eq!(conn(Version::HTTP_11, false, true), None);
    assert_eq!(conn(Version::HTTP_11, true, true).unwrap(), "close");
    assert_eq!(conn(Version::HTTP_10, false, true).unwrap(), "keep-alive");
    // An HTTP/1.0 client cannot keep a connection without a length.
    assert_eq!(conn(Version::HTTP_10, false, false).unwrap(), "close");
    assert_eq!(conn(Version::HTTP_10, true, true).unwrap(), "close");
}

#[test]
fn connect_errors_map_to_statuses() {
    use ConnectErrorKind::*;
    let cases = [
        (Refused, 502),
        (Unreachable, 502),
        (Other, 502),
        (Unsupported, 502),
        (TimedOut, 504),
        (Busy, 504),
        (NotAllowed, 403),
        (Unavailable, 503),
    ];
    for (kind, code) in cases {
        assert_eq!(status_for(kind).as_u16(), code, "{kind:?}");
    }
    let target = TargetAddr::Domain("example.com".into(), 80);
    assert_eq!(
        connect_error_text(Refused, &target, ""),
        "connection refused by example.com:80"
    );
    assert_eq!(
        connect_error_text(TimedOut, &target, "after 10 s"),
        "timed out connecting to example.com:80 (after 10 s)"
    );
}

#[tokio::test]
async fn error_response_shape() {
    use http_body_util::BodyExt;
    let r = error_response(StatusCode::BAD_GATEWAY, "boom");
    assert_eq!(r.status(), 502);
    assert_eq!(r.headers()[header::CONNECTION], "close");
    assert_eq!(
        r.headers()[header::CONTENT_TYPE],
        "text/plain; charset=utf-8"
    );
    assert!(!r.headers().contains_key(header::PROXY_AUTHENTICATE));
    let body = r.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "502 Bad Gateway: boom\n");
    let r = error_response(StatusCode::PROXY_AUTHENTICATION_REQUIRED, "who?");
    assert_eq!(
        r.headers()[header::PROXY_AUTHENTICATE],
        "Basic realm=\"httvps\""
    );
}

#[test]
fn proxy_credentials_are_taken_out_and_redacted() {
    let mut parts = request(
        "GET",
        "http://a/",
        Version::HTTP_11,
        &[("Proxy-Authorization", "Basic c2VjcmV0")],
    );
    let value = take_proxy_authorization(&mut parts.headers).unwrap();
    assert_eq!(value, "Basic c2VjcmV0");
    assert!(!format!("{value:?}").contains("c2VjcmV0"));
    assert!(!format!("{parts:?}").contains("c2VjcmV0"));
}

#[test]
fn only_origin_form_get_or_head_of_the_pac_path_is_the_pac_file() {
    let pac = |method: Method, uri: &str| is_pac_request(&method, &uri.parse().unwrap());
    assert!(pac(Method::GET, "/proxy.pac"));
    assert!(pac(Method::HEAD, "/proxy.pac"));
    assert!(pac(Method::GET, "/proxy.pac?v=2"));
    assert!(!pac(Method::POST, "/proxy.pac"));
    assert!(!pac(Method::GET, "/proxy.pac/x"));
    assert!(!pac(Method::GET, "/"));
    assert!(!pac(Method::GET, "http://127.0.0.1:1080/proxy.pac"));
    let response = pac_response(&Method::GET, "function FindProxyForURL() {}".into());
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/x-ns-proxy-autoconfig"
    );
    assert_eq!(response.headers()[header::CONTENT_LENGTH], "29");
    let head = pac_response(&Method::HEAD, "function FindProxyForURL() {}".into());
    assert_eq!(head.headers()[header::CONTENT_LENGTH], "29");
}

proptest! {
    #[test]
    fn forward_targets_match_the_url(
        host in "[a-z]{1,20}",
        port in any::<u16>(),
        path in "/[a-z0-9/]{0,30}",
        query in proptest::option::of("[a-z0-9=&]{0,20}"),
    ) {
        let path = match query {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        let uri: Uri = format!("http://{host}:{port}{path}").parse().unwrap();
        let t = forward_target(&uri).unwrap();
        prop_assert_eq!(t.target, TargetAddr::parse(&format!("{host}:{port}")).unwrap());
        prop_assert_eq!(t.host, format!("{host}:{port}"));
        prop_assert_eq!(t.path, path);
    }

    #[test]
    fn target_parsers_never_panic(text in "[ -~]{0,60}") {
        if let Ok(uri) = text.parse::<Uri>() {
            let _ = forward_target(&uri);
            let _ = connect_target(&uri);
        }
    }
}
