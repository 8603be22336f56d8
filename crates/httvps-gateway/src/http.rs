//! TLS, HTTP/1.1, the WebSocket upgrade and the decoy website.
//!
//! A prober that is not a client in the know meets a stock nginx serving a
//! small, dull website: `server_kit::decoy` answers every request exactly
//! as Debian's nginx would, malformed ones included, the WebSocket path too
//! when the request is not a valid upgrade. Only a valid WebSocket upgrade
//! on the configured path is claimed from it and handed, unread, to hyper,
//! whose upgrade leads into the tunnel.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use server_kit::decoy;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tracing::debug;

use server_kit::admission::{Progress, Ticket};

use crate::config::SiteSource;
use crate::{GatewayError, Shared, driver};

/// The body of every response: a page, a file, or nothing.
type Body = UnsyncBoxBody<Bytes, std::io::Error>;

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

/// Bytes tungstenite gathers before it writes to the socket.
const WS_WRITE_BUFFER: usize = 128 * 1024;

/// The WebSocket settings of a session: message and frame size capped near
/// the frame limit; no extensions (no permessage-deflate) are negotiated.
/// The write buffer is capped too: tungstenite's default is unbounded, and
/// a client that floods pings without reading made it queue pongs until the
/// gateway held 1.86 GB. At the cap the pending pong is replaced rather than
/// queued, and our own writes wait for the socket.
pub fn ws_config(max_frame_len: usize, max_write_buffer: usize) -> WebSocketConfig {
    let floor = WS_WRITE_BUFFER + max_frame_len + WS_SLACK;
    WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(WS_WRITE_BUFFER)
        .max_write_buffer_size(max_write_buffer.max(floor))
        .max_message_size(Some(max_frame_len + WS_SLACK))
        .max_frame_size(Some(max_frame_len + WS_SLACK))
}

/// A connection's admission ticket, until an upgrade takes it into the
/// session it starts.
type TicketSlot = Arc<Mutex<Option<Ticket>>>;

/// Runs one accepted TCP connection: TLS, then HTTP until it ends or
/// upgrades. Until then it is pending: evicted (closed) when newer
/// connections need its place.
pub async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut ticket: Ticket,
) {
    let _ = tcp.set_nodelay(true);
    let Ok(local) = tcp.local_addr() else { return };
    let evicted = ticket.eviction();
    let handshake = shared.config.timeouts.handshake;
    // Each step of the handshake moves the connection behind idle ones in
    // the eviction order (see `server_kit::admission`).
    let tls_handshake = async {
        tcp.readable().await?;
        ticket.progressed(Progress::Spoke);
        shared.tls.accept(tcp).await
    };
    let accepted = tokio::select! {
        r = tokio::time::timeout(handshake, tls_handshake) => r,
        _ = shared.shutdown.cancelled() => return,
        _ = evicted.cancelled() => {
            debug!(%peer, "evicted during the TLS handshake");
            return;
        }
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
    ticket.progressed(Progress::Secured);
    let slot: TicketSlot = Arc::new(Mutex::new(Some(ticket)));
    // The decoy serves the connection until a request is a valid upgrade
    // on the WebSocket path; that request, still unread, goes to hyper.
    let mut opts = decoy::Options::new(local, true);
    opts.header_timeout = handshake;
    opts.keepalive_timeout = handshake;
    opts.send_timeout = shared.config.timeouts.write;
    let conn = async {
        let ws_path = shared.config.ws_path.as_str();
        let claimed = decoy::serve(tls, &shared.site.0, &opts, &shared.shutdown, |head| {
            is_tunnel_upgrade(head, ws_path)
        })
        .await;
        let Some(io) = claimed else { return };
        if let Some(ticket) = slot.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            ticket.progressed(Progress::Claimed);
        }
        let svc_shared = shared.clone();
        let svc_slot = slot.clone();
        let svc = hyper::service::service_fn(move |req| {
            let shared = svc_shared.clone();
            let slot = svc_slot.clone();
            async move { Ok::<_, Infallible>(route(req, shared, peer, slot).await) }
        });
        let upgrade = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(handshake)
            .serve_connection(TokioIo::new(io), svc)
            .with_upgrades();
        if let Err(e) = upgrade.await {
            debug!(%peer, error = %e, "HTTP connection ended with an error");
        }
    };
    tokio::pin!(conn);
    tokio::select! {
        () = conn.as_mut() => {}
        // Once upgraded the session owns the ticket, and the connection's
        // future has ended; until then an eviction closes the connection.
        _ = evicted.cancelled() => debug!(%peer, "evicted"),
        // The decoy closes idle connections itself on shutdown and makes a
        // response in progress the last; it gets `close` to finish it.
        _ = shared.shutdown.cancelled() => {
            let _ = tokio::time::timeout(shared.config.timeouts.close, conn).await;
        }
    }
}

/// Whether a request head (one nginx accepts) is a valid WebSocket upgrade
/// on the tunnel's path: everything `route` and `upgrade` check, so that a
/// claimed request never meets their 400 or 426; and a head hyper parses
/// too. Anything else on that path gets the decoy's answer, the same as for
/// any path without a file: the path does not give itself away.
fn is_tunnel_upgrade(head: &decoy::Head<'_>, ws_path: &str) -> bool {
    if head.path() != ws_path.as_bytes() || head.method() != b"GET" || head.version() != (1, 1) {
        return false;
    }
    let mut headers = HeaderMap::new();
    for (name, value) in head.headers() {
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }
    wants_websocket(&headers)
        && headers
            .get(header::SEC_WEBSOCKET_KEY)
            .is_some_and(|k| is_websocket_key(k.as_bytes()))
        && headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v == "13")
        && head.parses_strictly(HYPER_MAX_HEADERS)
}

/// hyper's limit on header lines (its default).
const HYPER_MAX_HEADERS: usize = 100;

/// RFC 6455 §4.1: a key is 16 bytes in base64 (22 characters, the last of
/// them with its low four bits clear, then `==`). Stricter than `upgrade`'s
/// length check: any other key gets the decoy's answer.
fn is_websocket_key(key: &[u8]) -> bool {
    let b64 = |c: &u8| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/';
    key.len() == 24
        && key[..22].iter().all(b64)
        && matches!(key[21], b'A' | b'Q' | b'g' | b'w')
        && &key[22..] == b"=="
}

async fn route(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    peer: SocketAddr,
    slot: TicketSlot,
) -> Response<Body> {
    // Only claimed requests get here (see `is_tunnel_upgrade`).
    let mut resp = if req.uri().path() == shared.config.ws_path && wants_websocket(req.headers()) {
        upgrade(req, shared, peer, slot)
    } else {
        plain(StatusCode::NOT_FOUND, "Not Found")
    };
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        // Not upgraded (503 while full): the connection ends here rather
        // than going on with hyper.
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

pub use proto_httvps::unmasked::UNMASKED_EXTENSION;

/// Whether `Sec-WebSocket-Extensions` offers `name` (parameters ignored).
fn extension_offered(headers: &HeaderMap, name: &str) -> bool {
    headers
        .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| proto_httvps::unmasked::lists_extension(v, name))
}

fn wants_websocket(headers: &HeaderMap) -> bool {
    header_has_token(headers, header::CONNECTION, "upgrade")
        && header_has_token(headers, header::UPGRADE, "websocket")
}

fn upgrade(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    peer: SocketAddr,
    slot: TicketSlot,
) -> Response<Body> {
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
    // Choice: while every session place is taken (or while shutting down)
    // the upgrade is refused with 503 before any WebSocket exists. The place
    // itself is taken only after the hello's token is valid (the driver's
    // `promote`), so tokenless upgrades never hold one.
    let admission = &shared.admission;
    let full = admission.occupancy().admitted >= admission.limits().max_admitted;
    // Taken only when upgrading; otherwise the connection keeps its place.
    let ticket = (!full && !shared.shutdown.is_cancelled())
        .then(|| slot.lock().unwrap_or_else(|p| p.into_inner()).take())
        .flatten();
    let Some(ticket) = ticket else {
        let mut resp = plain(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return resp;
    };
    // Unmasked client frames (the client's `x-httvps-unmasked` extension):
    // inside TLS masking protects nothing and costs a pass over every byte.
    let unmasked =
        shared.config.unmasked_frames && extension_offered(req.headers(), UNMASKED_EXTENSION);
    let on_upgrade = hyper::upgrade::on(req);
    let ws_shared = shared.clone();
    shared.tracker.spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let limits = &ws_shared.config.limits;
                let cfg = ws_config(limits.max_frame_len, limits.max_write_buffer)
                    .accept_unmasked_frames(unmasked);
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(cfg),
                )
                .await;
                driver::run_session(ws, ws_shared, peer, ticket).await;
            }
            Err(e) => debug!(%peer, error = %e, "upgrade failed"),
        }
    });
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
    );
    if unmasked {
        h.insert(
            header::SEC_WEBSOCKET_EXTENSIONS,
            HeaderValue::from_static(UNMASKED_EXTENSION),
        );
    }
    resp
}

fn full(bytes: Bytes) -> Body {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// An error answer in nginx's words: its page for `status` where it has one
/// (`title` is the fallback), `Server: nginx`, `text/html`.
fn plain(status: StatusCode, title: &str) -> Response<Body> {
    let mut page = decoy::error_page(status.as_u16(), false);
    if page.is_empty() {
        page = format!(
            "<html>\r\n<head><title>{code} {title}</title></head>\r\n<body>\r\n<center><h1>{code} {title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
            code = status.as_u16()
        );
    }
    let mut resp = Response::new(full(Bytes::from(page)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::SERVER, HeaderValue::from_static("nginx"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    resp
}

/// The decoy website (`server_kit::decoy::Site`): `--site-dir`, or the
/// built-in page.
pub struct Site(decoy::Site);

impl Site {
    /// A site from the configuration: checks the directory, or writes the
    /// built-in page to a fresh private directory.
    pub fn new(source: &SiteSource) -> Result<Self, GatewayError> {
        let site = match source {
            SiteSource::BuiltIn => decoy::Site::built_in(decoy::BUILT_IN_PAGE),
            SiteSource::Dir(dir) => decoy::Site::dir(dir),
        };
        site.map(Site).map_err(|e| GatewayError::Site {
            path: e.path,
            source: e.source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn websocket_keys_are_16_bytes_of_base64() {
        assert!(is_websocket_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(is_websocket_key(b"AAAAAAAAAAAAAAAAAAAAAA=="));
        for bad in [
            &b"dGhlIHNhbXBsZSBub25jZQ%="[..],
            b"dGhlIHNhbXBsZSBub25jZR==",
            b"dGhlIHNhbXBsZSBub25jZQ=",
            b"dGhlIHNhbXBsZSBub25jZQ===",
            b"",
        ] {
            assert!(!is_websocket_key(bad), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn the_built_in_page_is_a_site() {
        let site = Site::new(&SiteSource::BuiltIn).unwrap();
        drop(site);
        let missing = std::path::PathBuf::from("/nonexistent/decoy/site");
        assert!(matches!(
            Site::new(&SiteSource::Dir(missing.clone())),
            Err(GatewayError::Site { path, .. }) if path == missing
        ));
    }
}
