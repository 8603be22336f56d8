//! The local app: HTTP/1.1 to `http://HOST:PORT` with hyper's connection
//! API, keeping a few idle keep-alive connections for reuse.
//!
//! A pooled connection may have been closed by the app while idle. A
//! request that hyper hands back unsent is retried on another connection;
//! one that failed after being sent is retried only when its method is
//! idempotent (RFC 9110 §9.2.2), so a POST is never sent twice.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use proto_hlhv::cell::map::LocalHead;
use tokio::net::TcpStream;

use crate::config::LocalTarget;

type Sender = SendRequest<Full<Bytes>>;

/// Why the local app gave no response.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LocalError {
    /// The request cannot be written as HTTP/1.1 (a method or path the
    /// queen let through that `http` refuses).
    #[error("the request cannot be sent to the local app: {0}")]
    BadRequest(String),
    /// Connecting failed (nothing listens, refused, unreachable).
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    /// The app accepted the connection and then failed it.
    #[error("{0}")]
    Http(hyper::Error),
    /// No response head within the limit.
    #[error("no response within {0} s")]
    Timeout(u64),
}

/// The local app's HTTP client.
pub(crate) struct LocalApp {
    pub target: LocalTarget,
    idle: Mutex<Vec<Sender>>,
    max_idle: usize,
    timeout: Duration,
}

/// A response and the connection to give back once its body is read.
pub(crate) struct LocalResponse {
    pub response: Response<Incoming>,
    pub conn: Sender,
}

impl LocalApp {
    pub fn new(target: LocalTarget, max_idle: usize, timeout: Duration) -> LocalApp {
        LocalApp {
            target,
            idle: Mutex::new(Vec::new()),
            max_idle,
            timeout,
        }
    }

    /// Sends a request and waits for the response head.
    pub async fn send(&self, head: &LocalHead, body: Bytes) -> Result<LocalResponse, LocalError> {
        let secs = self.timeout.as_secs();
        tokio::time::timeout(self.timeout, self.send_inner(head, body))
            .await
            .map_err(|_| LocalError::Timeout(secs))?
    }

    async fn send_inner(&self, head: &LocalHead, body: Bytes) -> Result<LocalResponse, LocalError> {
        let mut request = build(head, body.clone())?;
        let idempotent = is_idempotent(request.method());
        loop {
            let (mut conn, pooled) = match self.checkout() {
                Some(conn) => (conn, true),
                None => (self.dial().await?, false),
            };
            if let Err(e) = conn.ready().await {
                if pooled {
                    continue;
                }
                return Err(LocalError::Http(e));
            }
            match conn.try_send_request(request).await {
                Ok(response) => return Ok(LocalResponse { response, conn }),
                Err(mut e) => match e.take_message() {
                    // Never written: safe to send elsewhere.
                    Some(unsent) if pooled => request = unsent,
                    _ if pooled && idempotent => request = build(head, body.clone())?,
                    _ => return Err(LocalError::Http(e.into_error())),
                },
            }
        }
    }

    /// Keeps a connection whose response body has been read to its end.
    pub fn give_back(&self, conn: Sender) {
        if conn.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
    }

    fn checkout(&self) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(conn) = idle.pop() {
            if !conn.is_closed() {
                return Some(conn);
            }
        }
        None
    }

    async fn dial(&self) -> Result<Sender, LocalError> {
        let tcp = TcpStream::connect((self.target.host.as_str(), self.target.port))
            .await
            .map_err(LocalError::Connect)?;
        let _ = tcp.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(LocalError::Http)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "local app connection ended");
            }
        });
        Ok(sender)
    }
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// The `http` request for a mapped head. Headers `http` refuses (a value
/// with a control character) are left out rather than failing the request.
fn build(head: &LocalHead, body: Bytes) -> Result<Request<Full<Bytes>>, LocalError> {
    let method = Method::from_bytes(head.method.as_bytes())
        .map_err(|_| LocalError::BadRequest(format!("method {:?}", head.method)))?;
    let uri: Uri = head
        .target
        .parse()
        .map_err(|_| LocalError::BadRequest(format!("path {:?}", head.target)))?;
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(body))
        .map_err(|e| LocalError::BadRequest(e.to_string()))?;
    let headers = request.headers_mut();
    for (name, value) in &head.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            tracing::debug!(header = %name, "header not representable, left out");
            continue;
        };
        headers.append(name, value);
    }
    Ok(request)
}

/// The page a public client sees when the local app does not answer.
pub(crate) fn bad_gateway_page(url: &str, why: &str) -> String {
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>502 Bad Gateway</title></head>\n\
         <body><h1>502 Bad Gateway</h1>\n\
         <p>The local app at <code>{}</code> is not answering: {}.</p>\n\
         <p>This site is published from a machine through an HLHV cell; the app there \
         is not running or not listening on that address.</p>\n</body></html>\n",
        escape_html(url),
        escape_html(why)
    )
}

/// The page for a request the cell cannot pass on.
pub(crate) fn error_page(status: u16, title: &str, why: &str) -> String {
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{status} {title}</title></head>\n\
         <body><h1>{status} {title}</h1>\n<p>{}.</p>\n</body></html>\n",
        escape_html(why)
    )
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_what_they_quote() {
        let page = bad_gateway_page("http://127.0.0.1:1", "<refused> & \"gone\"");
        assert!(page.contains("<code>http://127.0.0.1:1</code> is not answering"));
        assert!(
            page.contains("&lt;refused&gt; &amp; &quot;gone&quot;"),
            "{page}"
        );
    }

    #[test]
    fn unrepresentable_heads_are_refused_or_trimmed() {
        let head = |method: &str, target: &str, headers: &[(&str, &str)]| LocalHead {
            method: method.into(),
            target: target.into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        };
        assert!(matches!(
            build(&head("GE T", "/", &[]), Bytes::new()),
            Err(LocalError::BadRequest(_))
        ));
        let request = build(
            &head(
                "GET",
                "/a?b=c",
                &[("x-ok", "1"), ("x-bad", "a\nb"), ("x-ok", "2")],
            ),
            Bytes::new(),
        )
        .unwrap();
        assert_eq!(request.uri(), "/a?b=c");
        assert_eq!(request.headers().get_all("x-ok").iter().count(), 2);
        assert!(request.headers().get("x-bad").is_none());
    }
}
