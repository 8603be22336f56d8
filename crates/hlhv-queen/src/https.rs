//! The public HTTPS side: hyper over rustls, HTTP/2 or HTTP/1.1 as ALPN
//! chose; each request routed (`proto_hlhv::route`), then carried to its
//! cell over a band ([`crate::relay`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::HeaderValue;
use http::{Method, Request, Response, StatusCode};
use hyper::body::{Body, Frame as BodyFrame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use proto_hlhv::queen::Failure;
use proto_hlhv::route::{Route, strip_port};
use server_kit::admission::{Progress, Ticket};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::hub::Hub;
use crate::metrics;
use crate::relay::{self, BandBody, BodyError, RelayLimits, ResponseHead};
use crate::reqhead::{self, Origin};

/// What every public connection needs.
pub(crate) struct HttpsCtx {
    pub hub: Arc<Hub>,
    pub tls: TlsAcceptor,
    pub https_port: u16,
    pub relay: RelayLimits,
    pub handshake_timeout: Duration,
    pub header_read_timeout: Duration,
    /// How long open requests may take to finish at shutdown.
    pub drain: Duration,
    pub stop: CancellationToken,
}

/// Serves one public connection.
pub(crate) async fn serve(
    ctx: Arc<HttpsCtx>,
    tcp: TcpStream,
    peer: SocketAddr,
    mut ticket: Ticket,
) {
    let _ = tcp.set_nodelay(true);
    let evicted = ticket.eviction();
    let stream = tokio::select! {
        r = tokio::time::timeout(ctx.handshake_timeout, ctx.tls.accept(tcp)) => match r {
            Ok(Ok(s)) => s,
            _ => return debug!(%peer, "TLS handshake failed or timed out"),
        },
        _ = evicted.cancelled() => return,
        _ = ctx.stop.cancelled() => return,
    };
    ticket.progressed(Progress::Secured);
    if ticket.promote().is_err() {
        return;
    }
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let svc_ctx = ctx.clone();
    // The client's `ip:port` as every request head on this connection
    // carries it: formatted once, not per request (`SocketAddr`'s
    // formatting was ~1 % of the queen's CPU per request in the HLHV bench
    // row, issue 14).
    let peer_text: Arc<str> = peer.to_string().into();
    let svc = hyper::service::service_fn(move |req| {
        let ctx = svc_ctx.clone();
        let peer_text = peer_text.clone();
        async move { Ok::<_, Infallible>(handle(&ctx, &peer_text, req).await) }
    });
    let io = TokioIo::new(stream);
    // Both connection kinds end the same way: on shutdown, stop taking
    // requests and give open ones `drain` to finish.
    macro_rules! drive {
        ($conn:expr) => {{
            let conn = $conn;
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => if let Err(e) = r { debug!(%peer, error = %e, "public connection ended") },
                _ = ctx.stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(ctx.drain, conn).await;
                }
            }
        }};
    }
    if h2 {
        drive!(
            hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .serve_connection(io, svc)
        )
    } else {
        drive!(
            hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(ctx.header_read_timeout)
                .serve_connection(io, svc)
        )
    }
}

async fn handle(ctx: &HttpsCtx, peer: &str, req: Request<Incoming>) -> Response<QueenBody> {
    let started = Instant::now();
    let response = respond(ctx, peer, req).await;
    metrics::request(response.status().as_u16(), started);
    response
}

async fn respond(ctx: &HttpsCtx, peer: &str, req: Request<Incoming>) -> Response<QueenBody> {
    let (parts, body) = req.into_parts();
    let host_full = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            parts
                .headers
                .get(http::header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let route = ctx
        .hub
        .route(&host_full, parts.uri.path(), parts.uri.query());
    let Route::Cell { cell, path, .. } = route else {
        // Answered without the body: read it on the side, so the client
        // finishes sending and sees the answer (an HTTP/2 stream whose body
        // is dropped unread is reset, and curl then loses the response).
        tokio::spawn(discard(body));
        return early_response(route, parts.method == Method::GET);
    };
    let host = strip_port(&host_full).to_ascii_lowercase();
    let head = reqhead::build(
        &parts,
        Origin {
            peer,
            host: &host,
            https_port: ctx.https_port,
            path,
        },
    );
    let result = match cell.take().await {
        Ok(lease) => relay::exchange(lease, &head, body, ctx.relay).await,
        Err(f) => Err(f),
    };
    match result {
        Ok((head, body)) => cell_response(head, body),
        Err(failure) => failure_page(&failure),
    }
}

/// The queen's own answer to a request no cell takes.
fn early_response<K>(route: Route<K>, get: bool) -> Response<QueenBody> {
    match route {
        Route::NotFound { path } => page(
            StatusCode::NOT_FOUND,
            "not found",
            &format!("No cell is mounted on {}.", html_escape(&path)),
        ),
        Route::Redirect { location } => redirect(&location, get),
        Route::BadRequest | Route::Cell { .. } => page(
            StatusCode::BAD_REQUEST,
            "bad request",
            "The request target is not a path.",
        ),
    }
}

/// How much of an unwanted request body is read and thrown away, and for how
/// long, before the connection is given up on.
const DISCARD_LIMIT: usize = 16 * 1024 * 1024;
const DISCARD_WAIT: Duration = Duration::from_secs(10);

async fn discard(mut body: Incoming) {
    use http_body_util::BodyExt as _;
    let mut left = DISCARD_LIMIT;
    let _ = tokio::time::timeout(DISCARD_WAIT, async {
        while let Some(Ok(frame)) = body.frame().await {
            let n = frame.data_ref().map_or(0, |d| d.len());
            if n > left {
                return;
            }
            left -= n;
        }
    })
    .await;
}

fn cell_response(head: ResponseHead, body: BandBody) -> Response<QueenBody> {
    let mut response = Response::new(QueenBody::Band(Box::new(body)));
    *response.status_mut() = head.status;
    *response.headers_mut() = head.headers;
    response
}

fn failure_page(failure: &Failure) -> Response<QueenBody> {
    ::metrics::counter!(metrics::FAILURES, "reason" => failure.reason()).increment(1);
    debug!(reason = failure.reason(), "request failed");
    let status = StatusCode::from_u16(failure.status()).unwrap_or(StatusCode::BAD_GATEWAY);
    let title = status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase();
    page(
        status,
        &title,
        &format!("The cell could not answer: {failure}."),
    )
}

fn page(status: StatusCode, title: &str, text: &str) -> Response<QueenBody> {
    let html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{code} {title}</title></head>\
         <body><h1>{code} {title}</h1><p>{text}</p><hr><p>hlhv queen</p></body></html>\n",
        code = status.as_u16()
    );
    let mut response = Response::new(QueenBody::Page(Some(Bytes::from(html))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// 301 to `location`, with the short page Go's `http.Redirect` writes for
/// a GET.
fn redirect(location: &str, with_page: bool) -> Response<QueenBody> {
    let body = with_page.then(|| {
        Bytes::from(format!(
            "<a href=\"{}\">Moved Permanently</a>.\n\n",
            html_escape(location)
        ))
    });
    let mut response = Response::new(QueenBody::Page(body));
    *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(http::header::LOCATION, value);
    }
    if with_page {
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
    }
    response
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// A response body: one of the queen's own pages, or the cell's.
pub(crate) enum QueenBody {
    Page(Option<Bytes>),
    /// Boxed: it holds the band's TLS connection.
    Band(Box<BandBody>),
}

impl Body for QueenBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<BodyFrame<Bytes>, BodyError>>> {
        match self.get_mut() {
            QueenBody::Page(page) => Poll::Ready(page.take().map(|b| Ok(BodyFrame::data(b)))),
            QueenBody::Band(body) => Pin::new(body.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            QueenBody::Page(page) => page.is_none(),
            QueenBody::Band(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            QueenBody::Page(Some(b)) => SizeHint::with_exact(b.len() as u64),
            QueenBody::Page(None) => SizeHint::with_exact(0),
            QueenBody::Band(body) => body.size_hint(),
        }
    }
}
