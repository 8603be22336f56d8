//! TLS, HTTP/1.1, the WebSocket upgrade and the decoy website.
//!
//! A prober that is not a client in the know should see a small, dull
//! website: `/` serves a page, unknown paths get a plain 404, other methods a
//! 405, all with the headers of a common web server. Only a well-formed
//! WebSocket upgrade on the configured path reaches the tunnel.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tracing::debug;

use crate::Shared;
use crate::config::SiteSource;
use crate::driver;

type Body = Full<Bytes>;

/// Extra room over the frame limit for tungstenite's own accounting, so that
/// a message just over the limit still reaches our decoder, which answers it
/// with a `bad_frame` error rather than a bare capacity failure.
const WS_SLACK: usize = 16 * 1024;

/// Most bytes tungstenite asks TLS for per read. tungstenite zero-fills this
/// much before every read attempt, even one that finds nothing; its default
/// of 128 KiB cost ~0.8 MB of memset per short stream (88% of the gateway's
/// instructions for a 1 KiB fetch). One TLS record (16 KiB) is the most a
/// read yields anyway.
const WS_READ_BUFFER: usize = 16 * 1024;

/// The WebSocket settings of a session: message and frame size capped near
/// the frame limit; no extensions (no permessage-deflate) are negotiated.
pub fn ws_config(max_frame_len: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER)
        .max_message_size(Some(max_frame_len + WS_SLACK))
        .max_frame_size(Some(max_frame_len + WS_SLACK))
}

/// Runs one accepted TCP connection: TLS, then HTTP until it ends or upgrades.
pub async fn serve_connection(tcp: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let _ = tcp.set_nodelay(true);
    let handshake = shared.config.timeouts.handshake;
    let accepted = tokio::select! {
        r = tokio::time::timeout(handshake, shared.tls.accept(tcp)) => r,
        _ = shared.shutdown.cancelled() => return,
    };
    let tls = match accepted {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let svc_shared = shared.clone();
    let svc = hyper::service::service_fn(move |req| {
        let shared = svc_shared.clone();
        async move { Ok::<_, Infallible>(route(req, shared, peer).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(handshake)
        .serve_connection(TokioIo::new(tls), svc)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => if let Err(e) = r { debug!(%peer, error = %e, "HTTP connection ended with an error") },
        _ = shared.shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(shared.config.timeouts.close, conn).await;
        }
    }
}

async fn route(req: Request<Incoming>, shared: Arc<Shared>, peer: SocketAddr) -> Response<Body> {
    if req.uri().path() == shared.config.ws_path && wants_websocket(req.headers()) {
        return upgrade(req, shared, peer);
    }
    shared.site.respond(req.method(), req.uri().path()).await
}

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

fn wants_websocket(headers: &HeaderMap) -> bool {
    header_has_token(headers, header::CONNECTION, "upgrade")
        && header_has_token(headers, header::UPGRADE, "websocket")
}

fn upgrade(req: Request<Incoming>, shared: Arc<Shared>, peer: SocketAddr) -> Response<Body> {
    let headers = req.headers();
    // RFC 6455 §4.2.1: GET, version 13, and a key of 16 base64-encoded bytes.
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .filter(|k| k.len() == 24)
        .map(|k| derive_accept_key(k.as_bytes()));
    let version_ok = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v == "13");
    let Some(accept) = key.filter(|_| req.method() == Method::GET) else {
        return plain(StatusCode::BAD_REQUEST, "Bad Request");
    };
    if !version_ok {
        let mut resp = plain(StatusCode::UPGRADE_REQUIRED, "Upgrade Required");
        resp.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return resp;
    }
    // Choice: over the session limit (or while shutting down) the upgrade is
    // refused with 503 before any WebSocket exists.
    let permit = match shared.sessions.clone().try_acquire_owned() {
        Ok(p) if !shared.shutdown.is_cancelled() => p,
        _ => {
            let mut resp = plain(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return resp;
        }
    };
    let on_upgrade = hyper::upgrade::on(req);
    let ws_shared = shared.clone();
    shared.tracker.spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let cfg = ws_config(ws_shared.config.limits.max_frame_len);
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(cfg),
                )
                .await;
                driver::run_session(ws, ws_shared, peer).await;
            }
            Err(e) => debug!(%peer, error = %e, "upgrade failed"),
        }
        drop(permit);
    });
    let mut resp = Response::new(Body::default());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
    );
    resp
}

/// The `Server` header of every decoy response.
const SERVER: &str = "nginx";

const BUILT_IN_PAGE: &str = "<!DOCTYPE html>
<html lang=\"en\">
<head>
<meta charset=\"utf-8\">
<title>Welcome</title>
<style>body{font-family:sans-serif;max-width:40em;margin:3em auto;color:#333}</style>
</head>
<body>
<h1>Welcome</h1>
<p>This site is under construction. Please check back later.</p>
</body>
</html>
";

fn plain(status: StatusCode, title: &str) -> Response<Body> {
    let body = format!(
        "<html>\r\n<head><title>{code} {title}</title></head>\r\n<body>\r\n<center><h1>{code} {title}</h1></center>\r\n<hr><center>{SERVER}</center>\r\n</body>\r\n</html>\r\n",
        code = status.as_u16()
    );
    respond(status, "text/html", Bytes::from(body))
}

fn respond(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::SERVER, HeaderValue::from_static(SERVER));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// Largest file the decoy site serves from `--site-dir`.
const MAX_SITE_FILE: u64 = 8 * 1024 * 1024;

/// The decoy website.
pub struct Site {
    dir: Option<PathBuf>,
}

impl Site {
    /// A site from the configuration.
    pub fn new(source: &SiteSource) -> Self {
        Site {
            dir: match source {
                SiteSource::BuiltIn => None,
                SiteSource::Dir(d) => Some(d.clone()),
            },
        }
    }

    /// Answers one request for `path`.
    pub async fn respond(&self, method: &Method, path: &str) -> Response<Body> {
        if method != Method::GET && method != Method::HEAD {
            let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "Not Allowed");
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return resp;
        }
        match &self.dir {
            None => match path {
                "/" | "/index.html" => respond(
                    StatusCode::OK,
                    "text/html; charset=utf-8",
                    Bytes::from_static(BUILT_IN_PAGE.as_bytes()),
                ),
                _ => plain(StatusCode::NOT_FOUND, "Not Found"),
            },
            Some(dir) => match read_site_file(dir, path).await {
                Some((body, ctype)) => respond(StatusCode::OK, ctype, body),
                None => plain(StatusCode::NOT_FOUND, "Not Found"),
            },
        }
    }
}

/// Maps a URL path into `dir`, refusing anything that could leave it
/// (`..`, absolute parts, hidden files) and anything large.
fn site_path(dir: &Path, url_path: &str) -> Option<PathBuf> {
    let rel = url_path.strip_prefix('/')?;
    if rel.contains('\\') || rel.contains('\0') || rel.contains('%') {
        return None;
    }
    let mut out = dir.to_path_buf();
    for comp in Path::new(rel).components() {
        match comp {
            Component::Normal(part) if !part.to_string_lossy().starts_with('.') => out.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

async fn read_site_file(dir: &Path, url_path: &str) -> Option<(Bytes, &'static str)> {
    let mut path = site_path(dir, url_path)?;
    let mut meta = tokio::fs::metadata(&path).await.ok()?;
    if meta.is_dir() {
        path.push("index.html");
        meta = tokio::fs::metadata(&path).await.ok()?;
    }
    if !meta.is_file() || meta.len() > MAX_SITE_FILE {
        return None;
    }
    let body = tokio::fs::read(&path).await.ok()?;
    Some((Bytes::from(body), content_type(&path)))
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css",
        "js" => "application/javascript",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_paths_stay_inside() {
        let dir = Path::new("/srv/site");
        assert_eq!(site_path(dir, "/"), Some(dir.to_path_buf()));
        assert_eq!(site_path(dir, "/a/b.css"), Some(dir.join("a/b.css")));
        for bad in [
            "/../etc/passwd",
            "/a/../../x",
            "/.git/config",
            "/a%2e%2e",
            "x",
        ] {
            assert_eq!(site_path(dir, bad), None, "{bad}");
        }
    }

    #[test]
    fn upgrade_detection_is_token_based() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("WebSocket"));
        assert!(wants_websocket(&h));
        h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        assert!(!wants_websocket(&h));
    }
}
