//! HTTP/1 proxy rules as pure functions over [`hyper`]'s `http` types: where
//! a request goes, how it is rewritten for the origin server, which fields
//! concern one hop only, and the error responses the proxy sends itself.
//!
//! hyper parses and frames the messages (request heads, `Content-Length`,
//! chunked bodies, keep-alive); nothing here touches bytes on the wire.
//!
//! ```text
//! client ── GET http://host:8080/a?b HTTP/1.1 ─▶ proxy ── GET /a?b HTTP/1.1 ─▶ host:8080
//!           Proxy-Authorization: …                        Host: host:8080
//!           Proxy-Connection: keep-alive                  (hop-by-hop and Proxy-* dropped)
//! client ── CONNECT host:443 HTTP/1.1 ─────────▶ proxy ── raw bytes ─────────▶ host:443
//! ```

use std::fmt::Write as _;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::{request, response};
use hyper::{Method, Response, StatusCode, Uri, Version};
use net::TargetAddr;

use crate::ConnectErrorKind;

/// The `Proxy-Authenticate` challenge sent with 407.
pub const PROXY_AUTHENTICATE: &str = "Basic realm=\"httvps\"";

/// Why the proxy cannot serve a request whose head hyper accepted. All are
/// answered with 400 Bad Request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The request target is in origin form (`/path`): fine for a server,
    /// but a proxy needs to know the host.
    #[error("request target {0:?} is not an absolute http:// URL")]
    NotAbsolute(String),
    /// `https://` in absolute form: the client should have used CONNECT.
    #[error(
        "https:// URLs cannot be forwarded as plain requests; the client must use CONNECT (set this proxy for HTTPS too)"
    )]
    HttpsTarget,
    /// A scheme other than `http`.
    #[error("unsupported URL scheme {0:?}: only http:// is forwarded")]
    UnsupportedScheme(String),
    /// The host or port of the target cannot be used.
    #[error("invalid target {0:?}")]
    BadTarget(String),
}

/// The status for a failed connect: the one place HTTP codes are chosen.
pub fn status_for(kind: ConnectErrorKind) -> StatusCode {
    match kind {
        ConnectErrorKind::Refused
        | ConnectErrorKind::Unreachable
        | ConnectErrorKind::Unsupported
        | ConnectErrorKind::Other => StatusCode::BAD_GATEWAY,
        ConnectErrorKind::TimedOut | ConnectErrorKind::Busy => StatusCode::GATEWAY_TIMEOUT,
        ConnectErrorKind::NotAllowed => StatusCode::FORBIDDEN,
        ConnectErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The text of an error response for a failed connect to `target`.
pub fn connect_error_text(kind: ConnectErrorKind, target: &TargetAddr, message: &str) -> String {
    let mut text = match kind {
        ConnectErrorKind::Refused => format!("connection refused by {target}"),
        ConnectErrorKind::Unreachable => format!("{target} is unreachable"),
        ConnectErrorKind::NotAllowed => format!("connections to {target} are not allowed"),
        ConnectErrorKind::TimedOut => format!("timed out connecting to {target}"),
        ConnectErrorKind::Busy => format!("no tunnel slot became free in time for {target}"),
        ConnectErrorKind::Unavailable => "the tunnel is down or reconnecting".to_owned(),
        ConnectErrorKind::Other => format!("could not connect to {target}"),
        ConnectErrorKind::Unsupported => {
            format!("the tunnel cannot carry this request to {target}")
        }
    };
    if !message.is_empty() {
        let _ = write!(text, " ({message})");
    }
    text
}

/// An error response of the proxy's own: a `text/plain` body saying
/// "`code reason: text`", and `Connection: close` (hyper closes the
/// connection after sending it).
pub fn error_response(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let body = format!(
        "{} {}: {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        text
    );
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    if status == StatusCode::PROXY_AUTHENTICATION_REQUIRED {
        headers.insert(
            header::PROXY_AUTHENTICATE,
            HeaderValue::from_static(PROXY_AUTHENTICATE),
        );
    }
    response
}

/// Where the proxy serves its proxy auto-config file: `GET /proxy.pac` sent
/// to the proxy port as an ordinary (origin-form) request.
pub const PAC_PATH: &str = "/proxy.pac";

/// The PAC file's media type (Netscape's, which every browser accepts).
pub const PAC_CONTENT_TYPE: &str = "application/x-ns-proxy-autoconfig";

/// Whether a request asks for the PAC file: `GET` or `HEAD` of
/// [`PAC_PATH`] in origin form (a query string is ignored). An
/// absolute-form `http://…/proxy.pac` is a proxy request like any other.
pub fn is_pac_request(method: &Method, uri: &Uri) -> bool {
    (method == Method::GET || method == Method::HEAD)
        && uri.scheme().is_none()
        && uri.authority().is_none()
        && uri.path() == PAC_PATH
}

/// The answer to a PAC request: the file, not cached (the rules change
/// with the profile), no body for `HEAD`.
pub fn pac_response(method: &Method, pac: String) -> Response<Full<Bytes>> {
    let len = pac.len();
    let body = if method == Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from(pac)
    };
    let mut response = Response::new(Full::new(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PAC_CONTENT_TYPE),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    response
}

/// Removes the client's `Proxy-Authorization` field and returns it, marked
/// sensitive so that no `Debug` output (logs) can show the credentials.
pub fn take_proxy_authorization(headers: &mut HeaderMap) -> Option<HeaderValue> {
    let mut value = headers.remove(header::PROXY_AUTHORIZATION)?;
    value.set_sensitive(true);
    Some(value)
}

/// The target of `CONNECT host:port` (authority form, RFC 9110 §9.3.6).
pub fn connect_target(uri: &Uri) -> Result<TargetAddr, RequestError> {
    let bad = || RequestError::BadTarget(uri.to_string());
    let authority = match (uri.scheme(), uri.path_and_query(), uri.authority()) {
        (None, None, Some(authority)) if !authority.as_str().contains('@') => authority,
        _ => return Err(bad()),
    };
    TargetAddr::parse(authority.as_str()).map_err(|_| bad())
}

/// Where an absolute-form request goes, and how to ask the origin for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardTarget {
    /// The origin server.
    pub target: TargetAddr,
    /// The authority as written in the URL, minus any userinfo: the new
    /// `Host` field.
    pub host: String,
    /// The origin-form request target: path and query, at least `/`.
    pub path: String,
}

/// Splits `http://[userinfo@]host[:port][/path][?query]` into the target, the
/// new `Host` value and the origin-form path. The fragment never reaches
/// here (hyper's URI parser drops it).
pub fn forward_target(uri: &Uri) -> Result<ForwardTarget, RequestError> {
    let bad = || RequestError::BadTarget(uri.to_string());
    match uri.scheme_str() {
        None => return Err(RequestError::NotAbsolute(uri.to_string())),
        Some(s) if s.eq_ignore_ascii_case("https") => return Err(RequestError::HttpsTarget),
        Some(s) if !s.eq_ignore_ascii_case("http") => {
            return Err(RequestError::UnsupportedScheme(s.to_owned()));
        }
        Some(_) => {}
    }
    let authority = uri.authority().ok_or_else(bad)?.as_str();
    // Userinfo in a URL is deprecated (RFC 9110 §4.2.4) and must not reach
    // the origin's Host field.
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = if authority.starts_with('[') {
        let close = authority.find(']').ok_or_else(bad)?;
        let (host, after) = authority.split_at(close + 1);
        match after {
            "" => (host, ""),
            p => (host, p.strip_prefix(':').ok_or_else(bad)?),
        }
    } else {
        authority.split_once(':').unwrap_or((authority, ""))
    };
    if host.is_empty() {
        return Err(bad());
    }
    let port: u16 = if port.is_empty() {
        80
    } else {
        port.parse().map_err(|_| bad())?
    };
    let target = TargetAddr::parse(&format!("{host}:{port}")).map_err(|_| bad())?;
    let path = match uri.path_and_query().map(|pq| pq.as_str()) {
        Some(pq) if pq.starts_with('/') => pq.to_owned(),
        Some(pq) => format!("/{pq}"),
        None => "/".to_owned(),
    };
    Ok(ForwardTarget {
        target,
        host: authority.to_owned(),
        path,
    })
}

/// Whether the client asks for a protocol switch (HTTP/1.1, `Connection:
/// upgrade` plus an `Upgrade` field), e.g. a WebSocket over plain HTTP.
pub fn wants_upgrade(version: Version, headers: &HeaderMap) -> bool {
    version == Version::HTTP_11
        && headers.contains_key(header::UPGRADE)
        && connection_tokens(headers).any(|t| t == "upgrade")
}

/// Whether the client's connection ends after this exchange, by the rule
/// hyper applies to it: `Connection: close`, or HTTP/1.0 without
/// `Connection: keep-alive`.
pub fn client_wants_close(version: Version, headers: &HeaderMap) -> bool {
    let tokens = || {
        headers
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|v| list_items(v.as_bytes()))
    };
    tokens().any(|t| t.eq_ignore_ascii_case(b"close"))
        || (version == Version::HTTP_10 && !tokens().any(|t| t.eq_ignore_ascii_case(b"keep-alive")))
}

/// Rewrites a request for the origin server: origin form, a fresh `Host`,
/// HTTP/1.1 (a proxy speaks its own version on each hop), no hop-by-hop or
/// `Proxy-*` fields, and our own `Connection`. The framing fields stay for
/// hyper, which re-frames the body it forwards.
pub fn rewrite_request(
    parts: &mut request::Parts,
    forward: &ForwardTarget,
    upgrade: bool,
    close: bool,
) -> Result<(), RequestError> {
    let bad = || RequestError::BadTarget(forward.host.clone());
    parts.uri = Uri::try_from(forward.path.as_str()).map_err(|_| bad())?;
    parts.version = Version::HTTP_11;
    remove_hop_by_hop(&mut parts.headers, upgrade);
    let host = HeaderValue::try_from(forward.host.as_str()).map_err(|_| bad())?;
    parts.headers.insert(header::HOST, host);
    if upgrade {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    } else if close {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(())
}

/// Rewrites the origin's response for the client: hop-by-hop and `Proxy-*`
/// fields dropped (a 101 keeps its `Upgrade`), HTTP/1.1, and our own
/// `Connection`. `client_version` and `client_close` describe the client's
/// request; `exact_length` says whether the body's length is known, which an
/// HTTP/1.0 client needs to keep its connection.
pub fn rewrite_response(
    parts: &mut response::Parts,
    client_version: Version,
    client_close: bool,
    exact_length: bool,
) {
    let upgrade = parts.status == StatusCode::SWITCHING_PROTOCOLS;
    remove_hop_by_hop(&mut parts.headers, upgrade);
    // hyper decoded the chunked body; it re-frames it for the client, and a
    // stale length beside the new framing would be a lie (RFC 9112 §6.3).
    if parts.headers.contains_key(header::TRANSFER_ENCODING) {
        parts.headers.remove(header::CONTENT_LENGTH);
    }
    parts.version = Version::HTTP_11;
    let connection = if upgrade {
        Some("Upgrade")
    } else if client_close || (client_version == Version::HTTP_10 && !exact_length) {
        Some("close")
    } else if client_version == Version::HTTP_10 {
        Some("keep-alive")
    } else {
        None
    };
    if let Some(value) = connection {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static(value));
    }
}

/// Drops the fields that concern only one hop (RFC 9110 §7.6.1), `Proxy-*`
/// fields, and fields named in `Connection`. `Content-Length` and
/// `Transfer-Encoding` stay whatever `Connection` says: hyper owns framing.
fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let mut drop: Vec<HeaderName> = connection_tokens(headers)
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .filter(|n| *n != header::CONTENT_LENGTH && *n != header::TRANSFER_ENCODING)
        .collect();
    drop.extend(
        headers
            .keys()
            .filter(|n| n.as_str().starts_with("proxy-"))
            .cloned(),
    );
    drop.extend([
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        header::TE,
    ]);
    if !keep_upgrade {
        drop.push(header::UPGRADE);
    }
    for name in drop {
        if keep_upgrade && name == header::UPGRADE {
            continue;
        }
        headers.remove(name);
    }
}

/// Lower-cased tokens of all `Connection` and `Proxy-Connection` fields (the
/// latter is the legacy spelling clients use towards proxies).
fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = String> + '_ {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .chain(headers.get_all("proxy-connection").iter())
        .flat_map(|v| list_items(v.as_bytes()))
        .map(|t| String::from_utf8_lossy(t).to_ascii_lowercase())
}

/// Comma-separated list items, trimmed, empty ones skipped.
fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(|item| item.trim_ascii())
        .filter(|item| !item.is_empty())
}

#[cfg(test)]
mod tests;
