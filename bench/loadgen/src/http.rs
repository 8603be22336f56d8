//! Just enough HTTP/1.1 for one GET: the target URL, the request bytes, and a
//! response head parsed from a buffer.

use std::fmt;

/// Largest response head accepted.
pub const MAX_HEAD: usize = 16 * 1024;

/// An `http://host[:port]/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name or address as written (IPv6 without its brackets).
    pub host: String,
    /// Port, 80 when the URL has none.
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
}

impl Target {
    /// Parses a plain `http://` URL; anything else (https, user info,
    /// fragments) is refused, since the benchmark never needs it.
    pub fn parse(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') || path.contains('#') {
            return Err(format!("{url}: expected http://host[:port]/path"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url}: unclosed '[' in the host"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        let port = match port {
            None => 80,
            Some(p) => p.parse().map_err(|_| format!("{url}: bad port {p:?}"))?,
        };
        if host.is_empty() {
            return Err(format!("{url}: no host"));
        }
        Ok(Target {
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }

    /// The `Host` header value.
    fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// The GET request. The connection stays open after the answer (HTTP/1.1
    /// keep-alive): the caller decides when the stream ends.
    pub fn get_request(&self) -> Vec<u8> {
        format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: httvps-loadgen\r\nAccept: */*\r\n\r\n",
            self.path,
            self.host_header()
        )
        .into_bytes()
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.host_header(), self.path)
    }
}

/// What the benchmark needs from a response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The status code.
    pub status: u16,
    /// The body length.
    pub content_length: u64,
    /// Bytes of the buffer taken by the head, blank line included.
    pub head_len: usize,
}

/// Why a response head is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeadError {
    /// No blank line within [`MAX_HEAD`] bytes.
    #[error("http: response head larger than {MAX_HEAD} bytes")]
    TooLarge,
    /// The status line is not `HTTP/1.x NNN …`.
    #[error("http: bad status line")]
    BadStatusLine,
    /// No `Content-Length` (chunked answers are not supported).
    #[error("http: no content-length in the answer")]
    NoContentLength,
    /// A `Content-Length` that is not a number.
    #[error("http: bad content-length")]
    BadContentLength,
}

/// Parses the response head at the start of `buf`: `Ok(None)` means more
/// bytes are needed.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, HeadError> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() >= MAX_HEAD {
            Err(HeadError::TooLarge)
        } else {
            Ok(None)
        };
    };
    let head_len = end + 4;
    if head_len > MAX_HEAD {
        return Err(HeadError::TooLarge);
    }
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| HeadError::BadStatusLine)?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") || code.len() != 3 {
        return Err(HeadError::BadStatusLine);
    }
    let status = code.parse().map_err(|_| HeadError::BadStatusLine)?;
    let mut content_length = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            content_length = Some(
                value
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| HeadError::BadContentLength)?,
            );
        }
    }
    Ok(Some(Head {
        status,
        content_length: content_length.ok_or(HeadError::NoContentLength)?,
        head_len,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let t = Target::parse("http://127.0.0.1:8080/1k.bin").unwrap();
        assert_eq!(
            t,
            Target {
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/1k.bin".into()
            }
        );
        let t = Target::parse("http://example.org").unwrap();
        assert_eq!((t.port, t.path.as_str()), (80, "/"));
        let t = Target::parse("http://[::1]:81/x?y=1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("::1", 81, "/x?y=1")
        );
        assert_eq!(t.to_string(), "http://[::1]:81/x?y=1");
        for bad in [
            "https://a/",
            "http://",
            "http://a:x/",
            "http://u@a/",
            "http://[::1/",
            "http://:80/",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn request_has_host_header() {
        let t = Target::parse("http://127.0.0.1:8080/a").unwrap();
        let req = String::from_utf8(t.get_request()).unwrap();
        assert!(req.starts_with("GET /a HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"));
        assert!(req.ends_with("\r\n\r\n"));
    }

    #[test]
    fn parses_heads() {
        let resp = b"HTTP/1.1 200 OK\r\nServer: x\r\ncontent-length: 1024\r\n\r\nbody";
        let head = parse_head(resp).unwrap().unwrap();
        assert_eq!(
            head,
            Head {
                status: 200,
                content_length: 1024,
                head_len: resp.len() - 4
            }
        );
        // Every truncation of the head asks for more.
        for n in 0..resp.len() - 4 {
            assert_eq!(parse_head(&resp[..n]), Ok(None), "{n}");
        }
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(HeadError::NoContentLength)
        );
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"),
            Err(HeadError::BadContentLength)
        );
        assert_eq!(
            parse_head(b"SSH-2.0-x\r\n\r\n"),
            Err(HeadError::BadStatusLine)
        );
        assert_eq!(parse_head(&[b'a'; MAX_HEAD]), Err(HeadError::TooLarge));
    }
}
