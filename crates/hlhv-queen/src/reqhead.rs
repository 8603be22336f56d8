//! The ReqHead frame for a public request, filled as the Go queen fills it
//! (remoteAddr, method, the rewritten path, the decoded query, proto and
//! its numbers, lower-cased merged headers, cookies) plus what it leaves
//! empty: scheme (`https`), host (without port) and port (ours).

use std::borrow::Cow;

use http::Version;
use http::request::Parts;

use proto_hlhv::ReqHeadRef;
use proto_hlhv::frame::Multimap;
use proto_hlhv::head_ref::CowMultimap;

/// Everything about the request the head needs besides its parts.
pub(crate) struct Origin<'a> {
    /// The client's `ip:port`.
    pub peer: &'a str,
    /// The host from `Host` or `:authority`, without port.
    pub host: &'a str,
    pub https_port: u16,
    /// The path the cell sees (mount prefix replaced by `/`).
    pub path: String,
}

/// The head, its text borrowed from `parts` where it can be: it is
/// written into the band's buffer at once, and the owned copies of every
/// header were the queen's largest cost after TLS and the socket (the HLHV
/// bench row, issue 14).
pub(crate) fn build<'a>(parts: &'a Parts, origin: Origin<'a>) -> ReqHeadRef<'a> {
    let (proto, major, minor) = match parts.version {
        Version::HTTP_09 => ("HTTP/0.9", 0, 9),
        Version::HTTP_10 => ("HTTP/1.0", 1, 0),
        Version::HTTP_2 => ("HTTP/2.0", 2, 0),
        Version::HTTP_3 => ("HTTP/3.0", 3, 0),
        _ => ("HTTP/1.1", 1, 1),
    };
    let mut headers = CowMultimap::new();
    for (name, value) in &parts.headers {
        headers
            .entry(Cow::Borrowed(name.as_str()))
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()));
    }
    // HTTP/2 carries the host as :authority, which is not a header.
    if !headers.contains_key("host")
        && let Some(authority) = parts.uri.authority()
    {
        headers.insert("host".into(), vec![authority.as_str().into()]);
    }
    let mut cookies = Multimap::new();
    for value in parts.headers.get_all(http::header::COOKIE) {
        for (name, value) in parse_cookies(&String::from_utf8_lossy(value.as_bytes())) {
            cookies.entry(name).or_default().push(value);
        }
    }
    ReqHeadRef {
        remote_addr_real: Cow::Borrowed(""),
        remote_addr: origin.peer.into(),
        method: parts.method.as_str().into(),
        scheme: "https".into(),
        host: origin.host.into(),
        port: i64::from(origin.https_port),
        path: origin.path.into(),
        fragment: Cow::Borrowed(""),
        query: parse_query(parts.uri.query().unwrap_or("")),
        proto: proto.into(),
        proto_major: major,
        proto_minor: minor,
        headers,
        cookies,
    }
}

/// Go's `url.ParseQuery`: `&`-separated pairs, split at the first `=`,
/// `+` and `%XX` decoded; a pair with a `;` or a bad escape is skipped.
pub(crate) fn parse_query(raw: &str) -> Multimap {
    let mut out = Multimap::new();
    for pair in raw.split('&') {
        if pair.is_empty() || pair.contains(';') {
            continue;
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (Some(key), Some(value)) = (unescape_query(key), unescape_query(value)) else {
            continue;
        };
        out.entry(key).or_default().push(value);
    }
    out
}

fn unescape_query(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// The pairs of a `Cookie` header: `name=value` separated by `;`, a value
/// in double quotes unquoted, pairs without a name skipped.
pub(crate) fn parse_cookies(header: &str) -> Vec<(String, String)> {
    header
        .split(';')
        .filter_map(|part| {
            let (name, value) = part.trim().split_once('=')?;
            let name = name.trim();
            if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == ',') {
                return None;
            }
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            Some((name.to_owned(), value.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_like_go() {
        let q = parse_query("a=1&a=2&b=x+y%21&c&bad=%zz&semi=1;2&=e&&");
        assert_eq!(q["a"], vec!["1", "2"]);
        assert_eq!(q["b"], vec!["x y!"]);
        assert_eq!(q["c"], vec![""]);
        assert_eq!(q[""], vec!["e"]);
        assert!(!q.contains_key("bad") && !q.contains_key("semi"));
    }

    #[test]
    fn heads_carry_what_the_cell_needs() {
        let req = http::Request::builder()
            .method("POST")
            .uri("https://Demo.example:8443/app/x?k=v")
            .version(Version::HTTP_2)
            .header("cookie", "sid=\"abc\"; theme=dark")
            .header("x-a", "1")
            .header("X-A", "2")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let head = build(
            &parts,
            Origin {
                peer: "192.0.2.1:5000",
                host: "demo.example",
                https_port: 8443,
                path: "/x".into(),
            },
        );
        assert_eq!(head.proto, "HTTP/2.0");
        assert_eq!((head.proto_major, head.proto_minor), (2, 0));
        assert_eq!(head.headers["x-a"], vec!["1", "2"]);
        assert_eq!(head.headers["host"], vec!["Demo.example:8443"]);
        assert_eq!(head.cookies["sid"], vec!["abc"]);
        assert_eq!(head.query["k"], vec!["v"]);
        assert_eq!((&*head.scheme, head.port), ("https", 8443));
        assert_eq!(head.remote_addr, "192.0.2.1:5000");
        assert_eq!(head.path, "/x");
    }
}
