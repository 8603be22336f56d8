//! Header mapping between the queen's [`ReqHead`] and the local app, as pure
//! functions.
//!
//! The queen hands over a request already taken apart by Go's `net/http`:
//! the path and query decoded, header names lower-cased and same-named
//! headers merged, `Host` removed (Go keeps it apart), and the mount prefix
//! replaced by `/`. The original request text is gone, so the local request
//! is rebuilt from the parts: the path and query are re-encoded (the query
//! in name order, as Go's `url.Values.Encode` writes it: `?b=2&a=1` reaches
//! the app as `?a=1&b=2`, and a bare `?flag` as `?flag=`).
//!
//! Hop-by-hop headers (RFC 9110 §7.6.1) are dropped both ways: they belong
//! to the connection between the public client and the queen, or between
//! the cell and the app, never to both.

use std::io::Write as _;

use bytes::BytesMut;

use crate::frame::{Multimap, ReqHead, ResHead};

/// Headers that never cross a proxy, besides those named in `Connection`.
/// `proxy-*` (`proxy-connection`, `proxy-authorization`, …) is matched by
/// prefix.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether `name` (lower case) is hop-by-hop by itself.
pub fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.contains(&name) || name.starts_with("proxy-")
}

/// The header names a `Connection` header lists, in lower case.
fn connection_tokens<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    values
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// What the cell adds to every request: where the local app is and how the
/// public saw the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarding {
    /// The local app's `host:port`, sent as `Host`.
    pub local_authority: String,
    /// The public host (the mount's), for `X-Forwarded-Host` when the queen
    /// does not say it (the Go queen never does: Go removes `Host` from the
    /// header map and leaves the URL's host empty).
    pub public_host: String,
    /// The mount path, for `X-Forwarded-Prefix`.
    pub mount_path: String,
}

/// The request as the local app gets it. Header names are lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalHead {
    /// The method (`GET` when the queen sent none).
    pub method: String,
    /// The request target: the encoded path and query.
    pub target: String,
    /// Headers in order, one value each; a name may repeat.
    pub headers: Vec<(String, String)>,
}

/// The client's IP address from the queen's `ip:port` (`[v6]:port`), for
/// `X-Forwarded-For`: `remoteAddrReal` when the queen knows it, else
/// `remoteAddr`. `None` when both are empty.
pub fn client_ip(head: &ReqHead) -> Option<String> {
    client_ip_str(head).map(str::to_owned)
}

/// [`client_ip`], borrowed from the head (no copy per request).
pub fn client_ip_str(head: &ReqHead) -> Option<&str> {
    let addr = if head.remote_addr_real.is_empty() {
        head.remote_addr.trim()
    } else {
        head.remote_addr_real.trim()
    };
    if addr.is_empty() {
        return None;
    }
    if let Some(rest) = addr.strip_prefix('[') {
        return Some(rest.split(']').next().unwrap_or(rest));
    }
    match addr.rsplit_once(':') {
        // One colon: IPv4 or a name with a port. More: a bare IPv6 address.
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            Some(host)
        }
        _ => Some(addr),
    }
}

/// The local request for `head`. `body_len` is the length of the body that
/// will be sent (`None`: the request has none), so `Content-Length` always
/// matches what the app receives.
pub fn map_request(head: &ReqHead, body_len: Option<u64>, forwarding: &Forwarding) -> LocalHead {
    let mut headers = Vec::new();
    map_request_headers(head, body_len, forwarding, |name, value| {
        headers.push((name.to_owned(), value.to_owned()));
    });
    LocalHead {
        method: request_method(head).to_owned(),
        target: request_target(head),
        headers,
    }
}

/// The method of [`map_request`]'s request (`GET` when the queen sent none).
pub fn request_method(head: &ReqHead) -> &str {
    if head.method.is_empty() {
        "GET"
    } else {
        &head.method
    }
}

/// The request target of [`map_request`]'s request: the encoded path and
/// query.
pub fn request_target(head: &ReqHead) -> String {
    let mut target = encode_path(&head.path);
    if !head.query.is_empty() {
        let query = encode_query(&head.query);
        if !query.is_empty() {
            target.push('?');
            target.push_str(&query);
        }
    }
    target
}

/// The headers of [`map_request`]'s request, in the same order, handed to
/// `header` one by one as borrowed text: the cell builds its HTTP request
/// from them without an owned copy of every name and value first (the HLHV
/// bench row, issue 14: `map_request` and the copies were ~7 % of the
/// cell's CPU per request).
pub fn map_request_headers(
    head: &ReqHead,
    body_len: Option<u64>,
    forwarding: &Forwarding,
    mut header: impl FnMut(&str, &str),
) {
    let listed = connection_tokens(
        head.headers
            .get("connection")
            .into_iter()
            .flatten()
            .map(String::as_str),
    );
    header("host", &forwarding.local_authority);
    let mut forwarded_for: Vec<&str> = Vec::new();
    for (name, values) in &head.headers {
        // The queen sends names in lower case; others are lowered here.
        let name = lower(name);
        if is_hop_by_hop(&name) || listed.iter().any(|t| *t == *name) {
            continue;
        }
        match &*name {
            // Replaced below, or by the cell's own framing.
            "host" | "content-length" | "x-forwarded-host" | "x-forwarded-proto"
            | "x-forwarded-prefix" => {}
            "x-forwarded-for" => forwarded_for.extend(values.iter().map(String::as_str)),
            // HTTP/1.1 allows one Cookie header only (RFC 6265 §5.4); HTTP/2
            // clients send one per cookie, which Go merged into a list.
            "cookie" => match values.as_slice() {
                [] => {}
                [one] => header(&name, one),
                many => header(&name, &many.join("; ")),
            },
            _ => {
                for value in values {
                    header(&name, value);
                }
            }
        }
    }
    if let Some(len) = body_len {
        header("content-length", &len.to_string());
    }

    let public_host: std::borrow::Cow<'_, str> = match head
        .headers
        .get("host")
        .and_then(|v| v.first())
        .filter(|h| !h.is_empty())
    {
        Some(host) => host.into(),
        None if !head.host.is_empty() => match head.port {
            0 => head.host.as_str().into(),
            port => format!("{}:{port}", head.host).into(),
        },
        None => forwarding.public_host.as_str().into(),
    };
    if !public_host.is_empty() {
        header("x-forwarded-host", &public_host);
    }
    let scheme = if head.scheme.is_empty() {
        "https"
    } else {
        &head.scheme
    };
    header("x-forwarded-proto", scheme);
    if let Some(ip) = client_ip_str(head) {
        forwarded_for.push(ip);
    }
    match forwarded_for.as_slice() {
        [] => {}
        [one] => header("x-forwarded-for", one),
        many => header("x-forwarded-for", &many.join(", ")),
    }
    // `/app/` is announced as `/app`, the form frameworks join paths to;
    // a mount at the root has no prefix to announce.
    let prefix = forwarding.mount_path.trim_end_matches('/');
    if !prefix.is_empty() {
        header("x-forwarded-prefix", prefix);
    }
}

/// `name` in lower case, copied only when it is not already.
fn lower(name: &str) -> std::borrow::Cow<'_, str> {
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        name.to_ascii_lowercase().into()
    } else {
        name.into()
    }
}

/// The response head for the queen from the local app's status and headers
/// (`(name, value)` in order; names in any case). Hop-by-hop headers are
/// dropped; repeated headers keep every value, in order.
pub fn map_response<'a>(
    status: u16,
    headers: impl IntoIterator<Item = (&'a str, &'a str)> + Clone,
) -> ResHead {
    let mut out = Multimap::new();
    for (name, value) in response_headers(headers) {
        out.entry(name.into_owned())
            .or_default()
            .push(value.to_owned());
    }
    ResHead {
        status_code: i64::from(status),
        headers: out,
    }
}

/// The headers [`map_response`] keeps, lower-cased, sorted by name (a
/// stable sort: a name's values stay in order).
fn response_headers<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)> + Clone,
) -> Vec<(std::borrow::Cow<'a, str>, &'a str)> {
    let listed = connection_tokens(
        headers
            .clone()
            .into_iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
            .map(|(_, v)| v),
    );
    let mut kept: Vec<_> = headers
        .into_iter()
        .map(|(name, value)| (lower(name), value))
        .filter(|(name, _)| !is_hop_by_hop(name) && !listed.iter().any(|t| *t == **name))
        .collect();
    kept.sort_by(|a, b| a.0.cmp(&b.0));
    kept
}

/// Writes the ResHead frame of [`map_response`]`(status, headers)`, byte
/// for byte what its `write_frame` writes, without building the head's
/// map (a copy of every name and value, a tree of them) first: the cell's
/// hot path (the HLHV bench row, issue 14).
pub fn write_response_head<'a>(
    status: u16,
    headers: impl IntoIterator<Item = (&'a str, &'a str)> + Clone,
    out: &mut BytesMut,
) {
    let kept = response_headers(headers);
    crate::frame::put_frame_with(out, crate::frame::Kind::ResHead as u8, |w| {
        // What serde_json writes for `ResHead`: its fields in order, the
        // map's names in order, each with its list of values.
        write!(w, "{{\"statusCode\":{status},\"headers\":{{")?;
        let mut i = 0;
        while i < kept.len() {
            let name = &kept[i].0;
            if i > 0 {
                w.write_all(b",")?;
            }
            json_str(w, name)?;
            w.write_all(b":[")?;
            let mut first = true;
            while i < kept.len() && kept[i].0 == *name {
                if !first {
                    w.write_all(b",")?;
                }
                first = false;
                json_str(w, kept[i].1)?;
                i += 1;
            }
            w.write_all(b"]")?;
        }
        w.write_all(b"}}")
    });
}

/// `text` as a JSON string, as serde_json writes it: text that needs no
/// escape (every header of a usual response) goes in one copy, the rest
/// through serde_json itself.
fn json_str(w: &mut impl std::io::Write, text: &str) -> std::io::Result<()> {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        w.write_all(b"\"")?;
        w.write_all(text.as_bytes())?;
        w.write_all(b"\"")
    } else {
        serde_json::to_writer(w, text).map_err(std::io::Error::other)
    }
}

/// Percent-encodes a decoded path for a request target: RFC 3986 `pchar`s
/// and `/` stay, everything else (a literal `%` included, since the path
/// arrives decoded) is escaped. An empty path becomes `/`.
pub fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 1);
    if !path.starts_with('/') {
        out.push('/');
    }
    for &b in path.as_bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b);
        push_byte(&mut out, b, keep);
    }
    out
}

/// Encodes a decoded query like Go's `url.Values.Encode`: names in order,
/// `name=value` pairs joined by `&`, space as `+`, everything but
/// unreserved characters escaped.
pub fn encode_query(query: &Multimap) -> String {
    let mut out = String::new();
    for (name, values) in query {
        for value in values {
            if !out.is_empty() {
                out.push('&');
            }
            escape_query_part(&mut out, name);
            out.push('=');
            escape_query_part(&mut out, value);
        }
    }
    out
}

fn escape_query_part(out: &mut String, text: &str) {
    for &b in text.as_bytes() {
        if b == b' ' {
            out.push('+');
        } else {
            push_byte(out, b, b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        }
    }
}

fn push_byte(out: &mut String, b: u8, keep: bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    if keep {
        out.push(char::from(b));
    } else {
        out.push('%');
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn forwarding() -> Forwarding {
        Forwarding {
            local_authority: "127.0.0.1:3000".into(),
            public_host: "demo.example".into(),
            mount_path: "/app/".into(),
        }
    }

    fn multimap(pairs: &[(&str, &[&str])]) -> Multimap {
        pairs
            .iter()
            .map(|(n, vs)| (n.to_string(), vs.iter().map(|v| v.to_string()).collect()))
            .collect()
    }

    fn get<'a>(head: &'a LocalHead, name: &str) -> Vec<&'a str> {
        head.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// What the Go queen sends for `GET https://demo.example/app/a b?q=1 2&a=x`
    /// over HTTP/2.
    fn go_head() -> ReqHead {
        ReqHead {
            remote_addr: "203.0.113.7:51000".into(),
            method: "GET".into(),
            path: "/a b".into(),
            query: multimap(&[("q", &["1 2"]), ("a", &["x", "y&z"])]),
            proto: "HTTP/2.0".into(),
            proto_major: 2,
            headers: multimap(&[
                ("accept", &["text/html", "*/*"]),
                ("connection", &["keep-alive, x-hop"]),
                ("x-hop", &["1"]),
                ("keep-alive", &["timeout=5"]),
                ("te", &["trailers"]),
                ("upgrade", &["h2c"]),
                ("proxy-authorization", &["Basic eA=="]),
                ("transfer-encoding", &["chunked"]),
                ("cookie", &["a=1", "b=2"]),
                ("x-forwarded-for", &["198.51.100.1"]),
                ("x-forwarded-host", &["spoofed.example"]),
            ]),
            ..ReqHead::default()
        }
    }

    #[test]
    fn a_go_head_becomes_a_clean_local_request() {
        let local = map_request(&go_head(), None, &forwarding());
        assert_eq!(local.method, "GET");
        assert_eq!(local.target, "/a%20b?a=x&a=y%26z&q=1+2");
        assert_eq!(get(&local, "host"), ["127.0.0.1:3000"]);
        assert_eq!(get(&local, "accept"), ["text/html", "*/*"]);
        assert_eq!(get(&local, "cookie"), ["a=1; b=2"]);
        assert_eq!(get(&local, "x-forwarded-host"), ["demo.example"]);
        assert_eq!(get(&local, "x-forwarded-proto"), ["https"]);
        assert_eq!(
            get(&local, "x-forwarded-for"),
            ["198.51.100.1, 203.0.113.7"]
        );
        assert_eq!(get(&local, "x-forwarded-prefix"), ["/app"]);
        for gone in [
            "connection",
            "x-hop",
            "keep-alive",
            "te",
            "upgrade",
            "proxy-authorization",
            "transfer-encoding",
            "content-length",
        ] {
            assert!(get(&local, gone).is_empty(), "{gone} crossed");
        }
    }

    #[test]
    fn the_body_length_is_the_one_sent() {
        let mut head = go_head();
        head.headers
            .insert("content-length".into(), vec!["999".into()]);
        let local = map_request(&head, Some(5), &forwarding());
        assert_eq!(get(&local, "content-length"), ["5"]);
    }

    #[test]
    fn the_public_host_comes_from_the_head_when_given() {
        let mut head = ReqHead {
            host: "pub.example".into(),
            port: 8443,
            scheme: "http".into(),
            ..ReqHead::default()
        };
        let local = map_request(&head, None, &forwarding());
        assert_eq!(get(&local, "x-forwarded-host"), ["pub.example:8443"]);
        assert_eq!(get(&local, "x-forwarded-proto"), ["http"]);
        assert_eq!(local.method, "GET");
        assert_eq!(local.target, "/");
        assert!(get(&local, "x-forwarded-for").is_empty());
        head.headers.insert("host".into(), vec!["h.example".into()]);
        let local = map_request(&head, None, &forwarding());
        assert_eq!(get(&local, "x-forwarded-host"), ["h.example"]);
        let root = Forwarding {
            mount_path: "/".into(),
            ..forwarding()
        };
        assert!(get(&map_request(&head, None, &root), "x-forwarded-prefix").is_empty());
    }

    #[test]
    fn client_ips_come_out_of_every_address_form() {
        let ip = |real: &str, addr: &str| {
            client_ip(&ReqHead {
                remote_addr_real: real.into(),
                remote_addr: addr.into(),
                ..ReqHead::default()
            })
        };
        assert_eq!(ip("", "203.0.113.7:5000").as_deref(), Some("203.0.113.7"));
        assert_eq!(ip("", "[2001:db8::1]:443").as_deref(), Some("2001:db8::1"));
        assert_eq!(ip("", "2001:db8::1").as_deref(), Some("2001:db8::1"));
        assert_eq!(ip("", "10.0.0.1").as_deref(), Some("10.0.0.1"));
        assert_eq!(
            ip("198.51.100.9:1", "10.0.0.1:2").as_deref(),
            Some("198.51.100.9")
        );
        assert_eq!(ip("", ""), None);
    }

    #[test]
    fn responses_keep_every_value_and_drop_hop_by_hop() {
        let headers = [
            ("Content-Type", "text/html"),
            ("Set-Cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("Connection", "close, X-Private"),
            ("X-Private", "p"),
            ("Transfer-Encoding", "chunked"),
            ("Keep-Alive", "timeout=5"),
            ("Content-Length", "12"),
        ];
        let head = map_response(200, headers.iter().map(|(n, v)| (*n, *v)));
        assert_eq!(head.status_code, 200);
        assert_eq!(
            head.headers,
            multimap(&[
                ("content-type", &["text/html"]),
                ("set-cookie", &["a=1", "b=2"]),
                ("content-length", &["12"]),
            ])
        );
    }

    #[test]
    fn paths_are_encoded_for_a_request_line() {
        assert_eq!(encode_path(""), "/");
        assert_eq!(encode_path("x"), "/x");
        assert_eq!(encode_path("/a/b.css"), "/a/b.css");
        assert_eq!(encode_path("/100%/é?#"), "/100%25/%C3%A9%3F%23");
        assert_eq!(encode_path("/k=v;p@h:1"), "/k=v;p@h:1");
    }

    /// Decodes what `encode_query` writes, as a server would.
    fn decode_query(text: &str) -> Multimap {
        let mut out = Multimap::new();
        for pair in text.split('&').filter(|p| !p.is_empty()) {
            let (n, v) = pair.split_once('=').unwrap();
            out.entry(unescape(n)).or_default().push(unescape(v));
        }
        out
    }

    fn unescape(text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).unwrap()
    }

    fn visible_ascii(text: &str) -> bool {
        text.bytes().all(|b| b.is_ascii_graphic())
    }

    proptest! {
        #[test]
        fn queries_round_trip(query in proptest::collection::btree_map(
            "\\PC{0,8}", proptest::collection::vec("\\PC{0,8}", 1..3), 0..5)) {
            let text = encode_query(&query);
            prop_assert!(visible_ascii(&text), "{}", text);
            prop_assert!(!text.contains('#'));
            prop_assert_eq!(decode_query(&text), query);
        }

        #[test]
        fn a_response_head_written_directly_is_the_mapped_one(
            status in 200u16..1000,
            headers in proptest::collection::vec(
                (prop_oneof![
                    Just("Connection".to_owned()),
                    Just("connection".to_owned()),
                    Just("X-Private".to_owned()),
                    Just("Keep-Alive".to_owned()),
                    Just("proxy-x".to_owned()),
                    "[A-Za-z-]{1,6}",
                ], prop_oneof![
                    Just("x-private, close".to_owned()),
                    "\\PC{0,12}",
                    "[ -~]{0,12}",
                    "[\\x00-\\x7f]{0,8}",
                ]),
                0..10),
        ) {
            let pairs = || headers.iter().map(|(n, v)| (n.as_str(), v.as_str()));
            let mut direct = BytesMut::new();
            write_response_head(status, pairs(), &mut direct);
            let mut mapped = BytesMut::new();
            map_response(status, pairs()).write_frame(&mut mapped);
            prop_assert_eq!(direct, mapped);
        }

        #[test]
        fn any_head_maps_to_a_valid_request(
            path in "\\PC{0,24}",
            method in "[A-Z]{0,7}",
            headers in proptest::collection::btree_map(
                "[a-z-]{1,12}", proptest::collection::vec("[ -~]{0,12}", 0..3), 0..8),
            remote in "\\PC{0,20}",
        ) {
            let head = ReqHead {
                method,
                path,
                remote_addr: remote,
                headers,
                ..ReqHead::default()
            };
            let local = map_request(&head, Some(3), &forwarding());
            prop_assert!(local.target.starts_with('/'));
            prop_assert!(visible_ascii(&local.target), "{}", local.target);
            prop_assert!(!local.target.contains('#'));
            prop_assert!(!local.method.is_empty());
            prop_assert_eq!(get(&local, "host"), vec!["127.0.0.1:3000"]);
            prop_assert_eq!(get(&local, "content-length"), vec!["3"]);
            prop_assert_eq!(get(&local, "x-forwarded-proto").len(), 1);
            for (name, _) in &local.headers {
                prop_assert!(!is_hop_by_hop(name), "{} crossed", name);
            }
        }
    }
}
