//! HTTP/1.x proxy messages as pure functions: request and response heads
//! (parsed by `httparse`), the rewrite from absolute form to origin form, body
//! framing, and the error responses the proxy sends itself.
//!
//! ```text
//! client ── GET http://host:8080/a?b HTTP/1.1 ─▶ proxy ── GET /a?b HTTP/1.1 ─▶ host:8080
//!           Proxy-Authorization: …                        Host: host:8080
//!           Proxy-Connection: keep-alive                  (hop-by-hop and Proxy-* dropped)
//! client ── CONNECT host:443 HTTP/1.1 ─────────▶ proxy ── raw bytes ─────────▶ host:443
//! ```

mod body;

pub use body::{BodyError, BodyFraming, BodyScanner, MAX_CHUNK_EXTENSION, MAX_TRAILERS};

use std::fmt::Write as _;

use net::TargetAddr;

use crate::ConnectErrorKind;

/// Most header fields parsed in one head; more is answered like an oversized
/// head (431 for requests).
pub const MAX_HEADERS: usize = 128;

/// Why a head cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeadError {
    /// The head is longer than the limit, or has more than [`MAX_HEADERS`] fields.
    #[error("header section too large")]
    TooLarge,
    /// The bytes are not an HTTP/1.x head.
    #[error("malformed HTTP head: {0}")]
    Malformed(String),
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
    /// Content-Length / Transfer-Encoding do not say where the body ends.
    #[error("ambiguous or invalid message framing: {0}")]
    BadFraming(&'static str),
}

impl HeadError {
    /// The status the proxy answers a bad request head with.
    pub fn status(&self) -> Status {
        match self {
            HeadError::TooLarge => Status::HEADER_TOO_LARGE,
            _ => Status::BAD_REQUEST,
        }
    }
}

/// A status line the proxy sends itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// The code, like 502.
    pub code: u16,
    /// The reason phrase, like "Bad Gateway".
    pub reason: &'static str,
}

impl Status {
    /// 400 Bad Request.
    pub const BAD_REQUEST: Status = Status::new(400, "Bad Request");
    /// 403 Forbidden.
    pub const FORBIDDEN: Status = Status::new(403, "Forbidden");
    /// 407 Proxy Authentication Required.
    pub const PROXY_AUTH_REQUIRED: Status = Status::new(407, "Proxy Authentication Required");
    /// 431 Request Header Fields Too Large.
    pub const HEADER_TOO_LARGE: Status = Status::new(431, "Request Header Fields Too Large");
    /// 502 Bad Gateway.
    pub const BAD_GATEWAY: Status = Status::new(502, "Bad Gateway");
    /// 503 Service Unavailable.
    pub const UNAVAILABLE: Status = Status::new(503, "Service Unavailable");
    /// 504 Gateway Timeout.
    pub const GATEWAY_TIMEOUT: Status = Status::new(504, "Gateway Timeout");

    const fn new(code: u16, reason: &'static str) -> Self {
        Status { code, reason }
    }
}

/// The status for a failed connect: the one place HTTP codes are chosen.
pub fn status_for(kind: ConnectErrorKind) -> Status {
    match kind {
        ConnectErrorKind::Refused
        | ConnectErrorKind::Unreachable
        | ConnectErrorKind::Unsupported
        | ConnectErrorKind::Other => Status::BAD_GATEWAY,
        ConnectErrorKind::TimedOut | ConnectErrorKind::Busy => Status::GATEWAY_TIMEOUT,
        ConnectErrorKind::NotAllowed => Status::FORBIDDEN,
        ConnectErrorKind::Unavailable => Status::UNAVAILABLE,
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

/// Encodes a complete error response: a `text/plain` body saying
/// "`code reason: text`", `Connection: close`, and `extra_headers` (each a
/// full `Name: value` line without CRLF).
pub fn encode_error_response(status: Status, text: &str, extra_headers: &[&str]) -> Vec<u8> {
    let body = format!("{} {}: {}\n", status.code, status.reason, text);
    let mut out = format!("HTTP/1.1 {} {}\r\n", status.code, status.reason);
    for h in extra_headers {
        out.push_str(h);
        out.push_str("\r\n");
    }
    let _ = write!(
        out,
        "Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    out.into_bytes()
}

/// The `Proxy-Authenticate` challenge sent with 407.
pub const PROXY_AUTHENTICATE: &str = "Proxy-Authenticate: Basic realm=\"httvps\"";

/// One header field, name as received.
#[derive(Clone, PartialEq, Eq)]
pub struct Header {
    /// Field name, original case.
    pub name: String,
    /// Field value bytes.
    pub value: Vec<u8>,
}

impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials never reach logs, even through a Debug of a whole head.
        let value = if is_secret_header(&self.name) {
            "<redacted>".into()
        } else {
            String::from_utf8_lossy(&self.value)
        };
        write!(f, "{}: {}", self.name, value)
    }
}

fn is_secret_header(name: &str) -> bool {
    [
        "proxy-authorization",
        "authorization",
        "cookie",
        "set-cookie",
    ]
    .iter()
    .any(|s| name.eq_ignore_ascii_case(s))
}

/// What a request asks the proxy to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestKind {
    /// `CONNECT host:port`: open a raw tunnel.
    Connect,
    /// A request in absolute form to forward.
    Forward {
        /// The authority as written in the URL, minus any userinfo: the new
        /// `Host` header.
        host: String,
        /// The origin-form target: path and query, at least `/`.
        path: String,
    },
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The method, like `GET`.
    pub method: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Where the request goes.
    pub target: TargetAddr,
    /// Tunnel or forward.
    pub kind: RequestKind,
    /// All header fields in order.
    pub headers: Vec<Header>,
    /// How the request body is delimited.
    pub body: BodyFraming,
    /// Whether the client wants the connection kept open afterwards.
    pub keep_alive: bool,
    /// Whether the client asks for a protocol upgrade (`Connection: upgrade`
    /// plus an `Upgrade` field), e.g. a WebSocket over plain HTTP.
    pub upgrade: bool,
}

impl RequestHead {
    /// The `Proxy-Authorization` value, if any.
    pub fn proxy_authorization(&self) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("proxy-authorization"))
            .map(|h| h.value.as_slice())
    }

    /// Encodes the head to send to the origin server: origin form, a fresh
    /// `Host`, no hop-by-hop or `Proxy-*` fields, and our own `Connection`.
    ///
    /// Does nothing useful for a CONNECT request (nothing is forwarded).
    pub fn encode_forward(&self, out: &mut Vec<u8>) {
        let RequestKind::Forward { host, path } = &self.kind else {
            return;
        };
        push_str(
            out,
            &format!("{} {} HTTP/1.{}\r\n", self.method, path, self.minor_version),
        );
        push_str(out, &format!("Host: {host}\r\n"));
        let connection_tokens = connection_tokens(&self.headers);
        for h in &self.headers {
            if h.name.eq_ignore_ascii_case("host")
                || (is_hop_by_hop(&h.name, &connection_tokens)
                    && !(self.upgrade && h.name.eq_ignore_ascii_case("upgrade")))
            {
                continue;
            }
            push_header(out, h);
        }
        let connection = if self.upgrade {
            Some("Upgrade")
        } else if !self.keep_alive {
            Some("close")
        } else if self.minor_version == 0 {
            Some("keep-alive")
        } else {
            None
        };
        if let Some(value) = connection {
            push_str(out, &format!("Connection: {value}\r\n"));
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// Decodes a request head of at most `max_len` bytes from the start of `buf`.
///
/// `Ok(None)`: the head is incomplete and may still fit. Errors carry the
/// status to answer with ([`HeadError::status`]).
pub fn decode_request_head(
    buf: &[u8],
    max_len: usize,
) -> Result<Option<(RequestHead, usize)>, HeadError> {
    let window = &buf[..buf.len().min(max_len)];
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    let used = match req.parse(window) {
        Ok(httparse::Status::Complete(used)) => used,
        Ok(httparse::Status::Partial) if buf.len() >= max_len => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(e) => return Err(HeadError::Malformed(e.to_string())),
    };
    let (Some(method), Some(uri), Some(minor_version)) = (req.method, req.path, req.version) else {
        return Err(HeadError::Malformed("incomplete request line".into()));
    };
    let headers = collect_headers(req.headers);
    let (target, kind) = if method.eq_ignore_ascii_case("CONNECT") {
        // RFC 9110 §9.3.6: CONNECT uses authority form, `host:port`.
        let target = TargetAddr::parse(uri).map_err(|_| HeadError::BadTarget(uri.to_owned()))?;
        (target, RequestKind::Connect)
    } else {
        parse_absolute_http(uri)?
    };
    let tokens = connection_tokens(&headers);
    let has_token = |t: &str| tokens.iter().any(|x| x == t);
    let keep_alive = if minor_version >= 1 {
        !has_token("close")
    } else {
        has_token("keep-alive") && !has_token("close")
    };
    let upgrade = has_token("upgrade") && find(&headers, "upgrade").next().is_some();
    let body = if kind == RequestKind::Connect {
        BodyFraming::Empty
    } else {
        request_framing(&headers)?
    };
    Ok(Some((
        RequestHead {
            method: method.to_owned(),
            minor_version,
            target,
            kind,
            headers,
            body,
            keep_alive,
            upgrade,
        },
        used,
    )))
}

/// Splits `http://[userinfo@]host[:port][/path][?query]` into the target, the
/// new Host value and the origin-form path.
fn parse_absolute_http(uri: &str) -> Result<(TargetAddr, RequestKind), HeadError> {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return Err(HeadError::NotAbsolute(uri.to_owned()));
    };
    if scheme.eq_ignore_ascii_case("https") {
        return Err(HeadError::HttpsTarget);
    }
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(HeadError::UnsupportedScheme(scheme.to_owned()));
    }
    let bad = || HeadError::BadTarget(uri.to_owned());
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    // Userinfo in a URL is deprecated (RFC 9110 §4.2.4) and must not reach
    // the origin's Host field.
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let tail = tail.split('#').next().unwrap_or("");
    let path = if tail.starts_with('/') {
        tail.to_owned()
    } else {
        format!("/{tail}")
    };
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
    Ok((
        target,
        RequestKind::Forward {
            host: authority.to_owned(),
            path,
        },
    ))
}

/// RFC 9112 §6.3 for requests: chunked must be the final coding; both
/// Content-Length and Transfer-Encoding is refused (a request smuggling
/// vector); several Content-Length values must agree.
fn request_framing(headers: &[Header]) -> Result<BodyFraming, HeadError> {
    let te = transfer_encoding(headers);
    let cl = content_length(headers)?;
    match (te, cl) {
        (Some(_), Some(_)) => Err(HeadError::BadFraming(
            "both Content-Length and Transfer-Encoding",
        )),
        (Some(true), None) => Ok(BodyFraming::Chunked),
        (Some(false), None) => Err(HeadError::BadFraming(
            "Transfer-Encoding does not end with chunked",
        )),
        (None, Some(n)) => Ok(BodyFraming::Length(n)),
        (None, None) => Ok(BodyFraming::Empty),
    }
}

/// `Some(chunked_is_last)` when Transfer-Encoding is present.
fn transfer_encoding(headers: &[Header]) -> Option<bool> {
    let mut last = None;
    for h in find(headers, "transfer-encoding") {
        for coding in split_list(&h.value) {
            last = Some(coding.eq_ignore_ascii_case(b"chunked"));
        }
        if last.is_none() {
            last = Some(false);
        }
    }
    last
}

fn content_length(headers: &[Header]) -> Result<Option<u64>, HeadError> {
    let mut value = None;
    for h in find(headers, "content-length") {
        for item in split_list(&h.value) {
            let n = std::str::from_utf8(item)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or(HeadError::BadFraming("invalid Content-Length"))?;
            if value.is_some_and(|v| v != n) {
                return Err(HeadError::BadFraming("conflicting Content-Length values"));
            }
            value = Some(n);
        }
    }
    Ok(value)
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// The status code.
    pub code: u16,
    /// The reason phrase.
    pub reason: String,
    /// All header fields in order.
    pub headers: Vec<Header>,
    /// How the response body is delimited.
    pub body: BodyFraming,
    /// Whether the server keeps the connection open afterwards.
    pub keep_alive: bool,
}

impl ResponseHead {
    /// A 1xx response other than 101: another head follows.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.code) && self.code != 101
    }

    /// Encodes the head for the client: hop-by-hop and `Proxy-*` fields
    /// dropped and `connection` (if any) as our own `Connection` value. A 101
    /// keeps its `Upgrade` field. With chunked framing any `Content-Length`
    /// is dropped (RFC 9112 §6.3).
    pub fn encode_for_client(&self, connection: Option<&str>, out: &mut Vec<u8>) {
        push_str(
            out,
            &format!(
                "HTTP/1.{} {} {}\r\n",
                self.minor_version, self.code, self.reason
            ),
        );
        let tokens = connection_tokens(&self.headers);
        for h in &self.headers {
            let keep_upgrade = self.code == 101 && h.name.eq_ignore_ascii_case("upgrade");
            let stale_length =
                self.body == BodyFraming::Chunked && h.name.eq_ignore_ascii_case("content-length");
            if (is_hop_by_hop(&h.name, &tokens) && !keep_upgrade) || stale_length {
                continue;
            }
            push_header(out, h);
        }
        if let Some(value) = connection {
            push_str(out, &format!("Connection: {value}\r\n"));
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// Decodes a response head of at most `max_len` bytes; `head_request` says
/// whether it answers a HEAD (which never has a body).
pub fn decode_response_head(
    buf: &[u8],
    max_len: usize,
    head_request: bool,
) -> Result<Option<(ResponseHead, usize)>, HeadError> {
    let window = &buf[..buf.len().min(max_len)];
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut fields);
    let used = match resp.parse(window) {
        Ok(httparse::Status::Complete(used)) => used,
        Ok(httparse::Status::Partial) if buf.len() >= max_len => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(e) => return Err(HeadError::Malformed(e.to_string())),
    };
    let (Some(minor_version), Some(code)) = (resp.version, resp.code) else {
        return Err(HeadError::Malformed("incomplete status line".into()));
    };
    let reason = resp.reason.unwrap_or("").to_owned();
    let headers = collect_headers(resp.headers);
    let tokens = connection_tokens(&headers);
    let has_token = |t: &str| tokens.iter().any(|x| x == t);
    // RFC 9112 §6.3, in its order: no body for HEAD, 1xx, 204 and 304; then
    // Transfer-Encoding (chunked last, or else until close); then
    // Content-Length; then until close.
    let body = if head_request || (100..200).contains(&code) || code == 204 || code == 304 {
        BodyFraming::Empty
    } else {
        match transfer_encoding(&headers) {
            Some(true) => BodyFraming::Chunked,
            Some(false) => BodyFraming::UntilClose,
            None => match content_length(&headers)? {
                Some(n) => BodyFraming::Length(n),
                None => BodyFraming::UntilClose,
            },
        }
    };
    let keep_alive = body != BodyFraming::UntilClose
        && if minor_version >= 1 {
            !has_token("close")
        } else {
            has_token("keep-alive") && !has_token("close")
        };
    Ok(Some((
        ResponseHead {
            minor_version,
            code,
            reason,
            headers,
            body,
            keep_alive,
        },
        used,
    )))
}

fn collect_headers(fields: &[httparse::Header<'_>]) -> Vec<Header> {
    fields
        .iter()
        .map(|h| Header {
            name: h.name.to_owned(),
            value: h.value.to_vec(),
        })
        .collect()
}

fn find<'a>(headers: &'a [Header], name: &'a str) -> impl Iterator<Item = &'a Header> + 'a {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
}

/// Comma-separated list items, trimmed, empty ones skipped.
fn split_list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(|item| item.trim_ascii())
        .filter(|item| !item.is_empty())
}

/// Lower-cased tokens of all `Connection` and `Proxy-Connection` fields (the
/// latter is the legacy spelling clients use towards proxies).
fn connection_tokens(headers: &[Header]) -> Vec<String> {
    headers
        .iter()
        .filter(|h| {
            h.name.eq_ignore_ascii_case("connection")
                || h.name.eq_ignore_ascii_case("proxy-connection")
        })
        .flat_map(|h| split_list(&h.value))
        .map(|t| String::from_utf8_lossy(t).to_ascii_lowercase())
        .collect()
}

/// Fields that concern only one hop (RFC 9110 §7.6.1), `Proxy-*` fields, and
/// fields named in `Connection`. The framing fields are kept whatever
/// `Connection` says: bodies are forwarded as they are.
fn is_hop_by_hop(name: &str, connection_tokens: &[String]) -> bool {
    const HOP: [&str; 4] = ["connection", "keep-alive", "te", "upgrade"];
    let lower = name.to_ascii_lowercase();
    if lower == "transfer-encoding" || lower == "content-length" {
        return false;
    }
    HOP.contains(&lower.as_str())
        || lower.starts_with("proxy-")
        || connection_tokens.contains(&lower)
}

fn push_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
}

fn push_header(out: &mut Vec<u8>, h: &Header) {
    out.extend_from_slice(h.name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(&h.value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests;
