//! The local app: HTTP/1.1 to `http://HOST:PORT` with hyper's connection
//! API. Each band keeps its own keep-alive connection to the app and drives
//! it in the band's own task ([`AppLink::drive`]): a request, its response
//! head and every body piece stay on one task instead of hopping to a
//! connection task and back (the HLHV bench row, issue 14).
//!
//! A kept connection may have been closed by the app while idle. A request
//! that hyper hands back unsent is retried on a new connection; one that
//! failed after being sent is retried only when its method is idempotent
//! (RFC 9110 §9.2.2), so a POST is never sent twice.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper_util::rt::TokioIo;
use proto_hlhv::ReqHead;
use proto_hlhv::cell::map::{
    Forwarding, LocalHead, map_request_headers, request_method, request_target,
};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use crate::config::LocalTarget;

type Sender = SendRequest<Full<Bytes>>;
type Conn = Connection<TokioIo<TcpStream>, Full<Bytes>>;

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

/// The local app, as every band of a publisher shares it.
pub(crate) struct LocalApp {
    pub target: LocalTarget,
    /// Connections the bands keep between requests at most.
    max_idle: usize,
    /// Connections the bands hold now.
    open: AtomicUsize,
    timeout: Duration,
}

impl LocalApp {
    pub fn new(target: LocalTarget, max_idle: usize, timeout: Duration) -> LocalApp {
        LocalApp {
            target,
            max_idle,
            open: AtomicUsize::new(0),
            timeout,
        }
    }
}

/// One band's connection to the local app, dialled when the band first
/// needs it and driven only by the band's task: while the band waits for
/// a request ([`drive`](Self::drive) around the read), so an app that
/// closes an idle connection is noticed, and while it waits for the app.
pub(crate) struct AppLink<'a> {
    app: &'a LocalApp,
    sender: Option<Sender>,
    conn: Option<Pin<Box<Conn>>>,
    deadline: Deadline,
}

impl<'a> AppLink<'a> {
    pub fn new(app: &'a LocalApp) -> AppLink<'a> {
        AppLink {
            app,
            sender: None,
            conn: None,
            deadline: Deadline::new(app.timeout),
        }
    }

    /// The app's address, for messages.
    pub fn url(&self) -> &str {
        &self.app.target.url
    }

    /// Runs `fut` to its end while driving the connection (if any).
    pub async fn drive<F: Future>(&mut self, fut: F) -> F::Output {
        drive(&mut self.conn, fut).await
    }

    /// Sends a request and waits for the response head, within the
    /// response timeout. Read its body through [`drive`](Self::drive),
    /// then call [`done`](Self::done).
    pub async fn send(
        &mut self,
        head: &impl AppHead,
        body: Bytes,
    ) -> Result<Response<Incoming>, LocalError> {
        let request = build(head, body.clone())?;
        self.deadline.start();
        let AppLink {
            app,
            sender,
            conn,
            deadline,
        } = self;
        let result = {
            let mut send = pin!(send(app, sender, conn, head, body, request));
            poll_fn(|cx| {
                if let Poll::Ready(result) = send.as_mut().poll(cx) {
                    return Poll::Ready(result);
                }
                if deadline.poll_expired(cx) {
                    return Poll::Ready(Err(LocalError::Timeout(app.timeout.as_secs())));
                }
                Poll::Pending
            })
            .await
        };
        if result.is_err() {
            // Whatever the connection was doing, it is not reused.
            self.close();
        }
        result
    }

    /// The response body has been read to its end: the connection is kept
    /// for the next request, within the idle bound.
    pub fn done(&mut self) {
        let closed = self.sender.as_ref().is_none_or(Sender::is_closed);
        if closed || self.app.open.load(Ordering::Relaxed) > self.app.max_idle {
            self.close();
        }
    }

    /// Drops the connection.
    pub fn close(&mut self) {
        self.conn = None;
        if self.sender.take().is_some() {
            self.app.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for AppLink<'_> {
    fn drop(&mut self) {
        self.close();
    }
}

/// Polls `fut` to its end; meanwhile polls the connection too (it reads
/// and writes only when polled), and drops it once it has ended.
async fn drive<F: Future>(conn: &mut Option<Pin<Box<Conn>>>, fut: F) -> F::Output {
    let mut fut = pin!(fut);
    poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        let Some(driven) = conn.as_mut() else {
            return Poll::Pending;
        };
        if let Poll::Ready(result) = driven.as_mut().poll(cx) {
            if let Err(e) = result {
                tracing::debug!(error = %e, "local app connection ended");
            }
            // Dropping it fails whatever still waits on it.
            *conn = None;
        }
        // What the connection just did (a response head, body bytes, the
        // end) is there now: no need to wait for a wake-up to see it.
        fut.as_mut().poll(cx)
    })
    .await
}

/// Sends `request` on the kept connection or a new one, with the retry on
/// a kept connection the app had closed.
async fn send(
    app: &LocalApp,
    sender: &mut Option<Sender>,
    conn: &mut Option<Pin<Box<Conn>>>,
    head: &impl AppHead,
    body: Bytes,
    mut request: Request<Full<Bytes>>,
) -> Result<Response<Incoming>, LocalError> {
    let idempotent = is_idempotent(request.method());
    loop {
        let kept = match sender {
            Some(s) if !s.is_closed() => true,
            _ => {
                if sender.take().is_some() {
                    app.open.fetch_sub(1, Ordering::Relaxed);
                }
                *conn = None;
                let (s, c) = dial(&app.target).await?;
                app.open.fetch_add(1, Ordering::Relaxed);
                *sender = Some(s);
                *conn = Some(Box::pin(c));
                false
            }
        };
        let s = sender.as_mut().expect("set above");
        if let Err(e) = drive(conn, poll_fn(|cx| s.poll_ready(cx))).await {
            if kept {
                drop_link(app, sender, conn);
                continue;
            }
            return Err(LocalError::Http(e));
        }
        let sent = s.try_send_request(request);
        match drive(conn, sent).await {
            Ok(response) => return Ok(response),
            Err(mut e) => {
                drop_link(app, sender, conn);
                match e.take_message() {
                    // Never written: safe to send elsewhere.
                    Some(unsent) if kept => request = unsent,
                    _ if kept && idempotent => request = build(head, body.clone())?,
                    _ => return Err(LocalError::Http(e.into_error())),
                }
            }
        }
    }
}

fn drop_link(app: &LocalApp, sender: &mut Option<Sender>, conn: &mut Option<Pin<Box<Conn>>>) {
    *conn = None;
    if sender.take().is_some() {
        app.open.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn dial(target: &LocalTarget) -> Result<(Sender, Conn), LocalError> {
    let tcp = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(LocalError::Connect)?;
    let _ = tcp.set_nodelay(true);
    http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(LocalError::Http)
}

/// The response timeout of a band, without a timer registration per
/// request: one [`Sleep`] stays armed at an earlier request's deadline,
/// and when it fires it moves on to the current one (requests on a band
/// follow each other, so deadlines only grow).
struct Deadline {
    timeout: Duration,
    /// The current request's deadline.
    at: Instant,
    sleep: Pin<Box<Sleep>>,
}

impl Deadline {
    fn new(timeout: Duration) -> Deadline {
        let at = Instant::now() + timeout;
        Deadline {
            timeout,
            at,
            sleep: Box::pin(tokio::time::sleep_until(at)),
        }
    }

    /// A request starts now.
    fn start(&mut self) {
        self.at = Instant::now() + self.timeout;
    }

    /// Whether the current request's deadline has passed.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.sleep.as_mut().poll(cx).is_pending() {
                return false;
            }
            if self.sleep.deadline() >= self.at {
                return true;
            }
            let at = self.at;
            self.sleep.as_mut().reset(at);
        }
    }
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// A request head for the local app, as [`build`] reads it.
pub(crate) trait AppHead {
    fn method(&self) -> &str;
    fn target(&self) -> &str;
    /// Hands every header over, in order.
    fn headers(&self, header: &mut dyn FnMut(&str, &str));
}

impl AppHead for LocalHead {
    fn method(&self) -> &str {
        &self.method
    }

    fn target(&self) -> &str {
        &self.target
    }

    fn headers(&self, header: &mut dyn FnMut(&str, &str)) {
        for (name, value) in &self.headers {
            header(name, value);
        }
    }
}

/// The queen's request head as the local app gets it
/// (`proto_hlhv::cell::map::map_request`), its headers handed to [`build`]
/// straight from the head, not copied into a [`LocalHead`] first (the HLHV
/// bench row, issue 14: the copies were ~3 % of the cell's CPU).
pub(crate) struct MappedHead<'a> {
    pub head: &'a ReqHead,
    pub body_len: Option<u64>,
    pub forwarding: &'a Forwarding,
    pub target: String,
}

impl<'a> MappedHead<'a> {
    pub fn new(head: &'a ReqHead, body_len: Option<u64>, forwarding: &'a Forwarding) -> Self {
        MappedHead {
            head,
            body_len,
            forwarding,
            target: request_target(head),
        }
    }
}

impl AppHead for MappedHead<'_> {
    fn method(&self) -> &str {
        request_method(self.head)
    }

    fn target(&self) -> &str {
        &self.target
    }

    fn headers(&self, header: &mut dyn FnMut(&str, &str)) {
        map_request_headers(self.head, self.body_len, self.forwarding, header);
    }
}

/// The `http` request for a mapped head. Headers `http` refuses (a value
/// with a control character) are left out rather than failing the request.
fn build(head: &impl AppHead, body: Bytes) -> Result<Request<Full<Bytes>>, LocalError> {
    let method = Method::from_bytes(head.method().as_bytes())
        .map_err(|_| LocalError::BadRequest(format!("method {:?}", head.method())))?;
    let uri: Uri = head
        .target()
        .parse()
        .map_err(|_| LocalError::BadRequest(format!("path {:?}", head.target())))?;
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    head.headers(&mut |name, value| {
        let (Ok(name), Ok(value)) = (header_name(name), header_value(value)) else {
            tracing::debug!(header = %name, "header not representable, left out");
            return;
        };
        headers.append(name, value);
    });
    Ok(request)
}

/// The names the cell adds to every request are not among `http`'s
/// standard ones, which cost no copy: made from static text instead of a
/// copy each per request.
fn header_name(name: &str) -> Result<HeaderName, http::header::InvalidHeaderName> {
    Ok(match name {
        "x-forwarded-host" => HeaderName::from_static("x-forwarded-host"),
        "x-forwarded-proto" => HeaderName::from_static("x-forwarded-proto"),
        "x-forwarded-for" => HeaderName::from_static("x-forwarded-for"),
        "x-forwarded-prefix" => HeaderName::from_static("x-forwarded-prefix"),
        _ => return HeaderName::from_bytes(name.as_bytes()),
    })
}

/// The value, copied unless it is the usual `X-Forwarded-Proto`.
fn header_value(value: &str) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    match value {
        "https" => Ok(HeaderValue::from_static("https")),
        _ => HeaderValue::from_str(value),
    }
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
