//! The HTTP/1.1 edge: reading a request head, and the few responses the
//! server ever sends.
//!
//! HT frames one query per HTTP chunk, so the server reads bodies with
//! `proto_ht::chunked` (which keeps chunk boundaries) rather than
//! through hyper, whose body stream hands on bytes without them. What is
//! left of HTTP here is small: one request head per connection (no
//! keep-alive: a tunnel connection lives as long as its body, and every
//! other request is answered once and closed).

use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest request head read; a longer one is answered like any stranger.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most headers parsed.
pub const MAX_HEADERS: usize = 64;

/// The path of HT's transport connections.
pub const TUNNEL_PATH: &str = "/ht/create.php";

/// A reclaimed PHPSESSID: the client starts a new session.
pub const FORBIDDEN: &[u8] =
    b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// Too many sessions: retry later.
pub const UNAVAILABLE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Retry-After: 5\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// The head of an accepted transport connection; chunks follow.
pub const TUNNEL_OK: &[u8] = b"HTTP/1.1 200 OK\r\n\
Content-Type: application/octet-stream\r\n\
Cache-Control: no-store\r\n\
Transfer-Encoding: chunked\r\n\
\r\n";

/// The answer for an HTTP status the server machine chose. A 404 (a wrong
/// key, garbage, a probe on the tunnel path) is the decoy's: nginx's page,
/// as for a `POST` to any missing file; nothing in it names HT.
pub fn refusal(status: u16) -> std::borrow::Cow<'static, [u8]> {
    match status {
        403 => FORBIDDEN.into(),
        503 => UNAVAILABLE.into(),
        _ => server_kit::decoy::error_response(404).into(),
    }
}

/// What the server needs from a request head.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    /// `POST /ht/create.php` with a chunked body.
    pub tunnel: bool,
    /// The PHPSESSID cookie, when there is one.
    pub phpsessid: Option<String>,
}

/// Why a head could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// Not HTTP/1.x, or over [`MAX_HEAD`].
    #[error("not an HTTP/1.1 request head")]
    Malformed,
    /// The peer closed or failed before the head was complete.
    #[error("connection closed before the request head")]
    Io(#[from] std::io::Error),
}

/// Reads one request head from `io` into `buf`; returns it and the bytes of
/// `buf` it took (what follows is the body's start).
pub async fn read_head<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut bytes::BytesMut,
) -> Result<(Head, usize), HeadError> {
    loop {
        if let Some(done) = parse_head(buf)? {
            return Ok(done);
        }
        if buf.len() >= MAX_HEAD {
            return Err(HeadError::Malformed);
        }
        let mut chunk = [0u8; 4096];
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Err(HeadError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Parses a complete head at the start of `buf`, `None` while incomplete.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let used = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(HeadError::Malformed),
    };
    let mut chunked = false;
    let mut content_length = false;
    let mut phpsessid = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // `chunked` must be the final coding (RFC 9112 §6.3).
            chunked = std::str::from_utf8(h.value).is_ok_and(|v| {
                v.rsplit(',')
                    .next()
                    .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
            });
        } else if h.name.eq_ignore_ascii_case("content-length") {
            content_length = true;
        } else if h.name.eq_ignore_ascii_case("cookie")
            && let Some(id) = cookie(h.value, "PHPSESSID")
        {
            phpsessid = Some(id);
        }
    }
    let path = req.path.unwrap_or("");
    let path = path.split('?').next().unwrap_or("");
    let tunnel = req.method == Some("POST")
        && path == TUNNEL_PATH
        && req.version == Some(1)
        && chunked
        && !content_length;
    Ok(Some((Head { tunnel, phpsessid }, used)))
}

/// The value of cookie `name` in a `Cookie` header (`a=1; b=2`).
fn cookie(value: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(value).ok()?;
    text.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"').to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_404_is_the_decoys_page_with_its_length() {
        let bytes = refusal(404);
        let text = std::str::from_utf8(&bytes).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 404 Not Found\r\nServer: nginx\r\n"),
            "{head}"
        );
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert!(!body.contains("HT"), "nothing names HT");
    }

    #[test]
    fn only_a_chunked_post_to_the_tunnel_path_is_a_tunnel() {
        let ok = b"POST /ht/create.php HTTP/1.1\r\nHost: x\r\nCookie: a=1; PHPSESSID=abc\r\nTransfer-Encoding: chunked\r\n\r\nrest";
        let (head, used) = parse_head(ok).unwrap().unwrap();
        assert!(head.tunnel);
        assert_eq!(head.phpsessid.as_deref(), Some("abc"));
        assert_eq!(&ok[used..], b"rest");
        let get = b"GET /ht/create.php HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(!parse_head(get).unwrap().unwrap().0.tunnel);
        let other = b"POST /other HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(!parse_head(other).unwrap().unwrap().0.tunnel);
        let sized = b"POST /ht/create.php HTTP/1.1\r\nContent-Length: 3\r\n\r\n";
        assert!(!parse_head(sized).unwrap().unwrap().0.tunnel);
        assert!(
            parse_head(b"POST /ht/create.php HTTP/1.1\r\n")
                .unwrap()
                .is_none()
        );
        assert!(parse_head(b"\x16\x03\x01garbage\r\n\r\n").is_err());
    }
}
