//! HTTP proxy driver on hyper: CONNECT tunnels and forwarding of `http://`
//! requests with keep-alive.
//!
//! hyper's HTTP/1 server reads the client's requests; each one is answered by
//! [`handle`]. A forwarded request goes out through a hyper client
//! connection over a stream from the connector: one per client connection,
//! reused while requests go to the same target and replaced when the target
//! changes or the server closes it. Bodies stream through hyper both ways.
//!
//! The upstream client connection must be polled while its response body
//! streams to the client, after [`handle`] returned: the connection task
//! drives it next to the server connection (no extra task).
//!
//! A CONNECT (or a forwarded protocol switch) ends hyper's part: the
//! connection task takes the raw client socket back from the upgrade and
//! relays bytes with the same buffers as SOCKS5.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::{Body as _, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::ext::ReasonPhrase;
use hyper::header::HeaderValue;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper::{Method, Request, Response, StatusCode, client, server};
use hyper_util::rt::{TokioIo, TokioTimer};
use net::TargetAddr;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info};

use super::io::{Upstream, relay};
use super::{ClientConn, Shared};
use crate::http1::{self, RequestError};
use crate::{BoxStream, ConnectRequest, Credentials, ProxyConfig, ProxyProtocol};

/// Largest response head accepted from a server. Servers send larger heads
/// than clients do (cookies, CSP), so this is not `max_header_bytes`.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// The smallest read buffer limit hyper accepts.
const MIN_BUF_SIZE: usize = 8192;

/// The body of every response the proxy sends: the origin's, or its own.
type ProxyBody = Either<Incoming, Full<Bytes>>;

/// A service error makes hyper close the client connection without a
/// response.
type Dropped = Box<dyn std::error::Error + Send + Sync>;

/// An upstream client connection, polled by the connection task.
type Driver = Pin<Box<dyn Future<Output = ()> + Send>>;

/// hyper's HTTP/1 settings from a [`ProxyConfig`], made once per listener.
#[derive(Clone)]
pub(crate) struct Builders {
    server: server::conn::http1::Builder,
    client: client::conn::http1::Builder,
}

impl Builders {
    pub(crate) fn new(config: &ProxyConfig) -> Self {
        let mut server = server::conn::http1::Builder::new();
        server
            .timer(TokioTimer::new())
            // Each request head, and the wait for it on an idle keep-alive
            // connection: hyper's timer runs while it waits for a head.
            .header_read_timeout(config.handshake_timeout)
            .max_header_size(config.max_header_bytes)
            .max_buf_size(
                config
                    .copy_buffer
                    .max(config.max_header_bytes)
                    .max(MIN_BUF_SIZE),
            )
            // A client that shuts down its sending side after the request
            // still gets the response.
            .half_close(true)
            // Field names go out as they came in; our own in Title-Case.
            .preserve_header_case(true)
            .title_case_headers(true)
            // A proxy passes the origin's Date on and adds none of its own.
            .auto_date_header(false);
        let mut client = client::conn::http1::Builder::new();
        client
            .preserve_header_case(true)
            .title_case_headers(true)
            .max_header_size(MAX_RESPONSE_HEAD)
            .max_buf_size(config.copy_buffer.max(MAX_RESPONSE_HEAD));
        Builders { server, client }
    }
}

/// What the requests of one client connection share.
struct ConnState {
    shared: Arc<Shared>,
    client: SocketAddr,
    /// The proxy address this client reached: the one a PAC file names.
    local: Option<SocketAddr>,
    /// Set once the first request head is complete.
    started: AtomicBool,
    /// The upstream kept for the next request.
    origin: Mutex<Option<Origin>>,
    /// Hands new upstream connections to the connection task to poll.
    drivers: mpsc::UnboundedSender<Driver>,
    /// Set by a CONNECT or a protocol switch: what to relay once hyper has
    /// handed the client socket back.
    tunnel: Mutex<Option<Tunnel>>,
}

/// A keep-alive upstream connection to one target.
struct Origin {
    target: TargetAddr,
    sender: SendRequest<Incoming>,
}

struct Tunnel {
    target: TargetAddr,
    client: OnUpgrade,
    upstream: TunnelUpstream,
}

enum TunnelUpstream {
    /// CONNECT: the stream from the connector, untouched.
    Stream(BoxStream),
    /// A forwarded request the server answered with 101.
    Upgraded(Upgraded),
}

/// Serves one HTTP client connection to the end.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    stream: TcpStream,
    addr: SocketAddr,
    handshake_deadline: Instant,
) {
    let (drivers, mut new_drivers) = mpsc::unbounded_channel();
    let local = stream.local_addr().ok();
    let state = Arc::new(ConnState {
        shared: Arc::clone(&shared),
        client: addr,
        local,
        started: AtomicBool::new(false),
        origin: Mutex::new(None),
        drivers,
        tunnel: Mutex::new(None),
    });
    let service = {
        let state = Arc::clone(&state);
        hyper::service::service_fn(move |req| handle(Arc::clone(&state), req))
    };
    let mut conn = shared
        .http
        .server
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let mut driver: Option<Driver> = None;
    let first_head = tokio::time::sleep_until(handshake_deadline);
    tokio::pin!(first_head);
    let mut awaiting_first_head = true;
    let result = loop {
        tokio::select! {
            result = &mut conn => break result,
            // A new upstream replaces (closes) the previous one.
            Some(next) = new_drivers.recv() => driver = Some(next),
            () = async { driver.as_mut().expect("guarded").await }, if driver.is_some() => {
                driver = None;
            }
            // hyper's header timer starts when it first polls; the first
            // head must also be done by the deadline counted from accept.
            () = &mut first_head, if awaiting_first_head => {
                if !state.started.load(Ordering::Relaxed) {
                    debug!("HTTP request head not complete before the handshake timeout");
                    return;
                }
                awaiting_first_head = false;
            }
        }
    };
    match &result {
        Ok(()) => {}
        Err(err) if err.is_timeout() => debug!("HTTP request head timed out"),
        Err(err) if err.is_parse() => debug!(error = %err, "bad HTTP request"),
        Err(err) => debug!(error = %err, "HTTP connection ended"),
    }
    // Any upstream HTTP connection still open goes now.
    drop(driver);
    let tunnel = state.tunnel.lock().expect("tunnel lock").take();
    drop(state);
    if let Some(tunnel) = tunnel {
        drop(conn);
        run_tunnel(shared, addr, tunnel).await;
    } else if let Some(parts) = conn.into_parts() {
        let mut conn = ClientConn::new(shared, parts.io.into_inner(), addr, handshake_deadline);
        conn.close_gracefully().await;
    }
}

/// Answers one request.
async fn handle(
    state: Arc<ConnState>,
    mut req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Dropped> {
    state.started.store(true, Ordering::Relaxed);
    // Before the credentials check: a browser fetching its PAC file sends no
    // Proxy-Authorization (it is not a proxy request).
    if http1::is_pac_request(req.method(), req.uri())
        && let Some(local) = state.local
    {
        debug!("served the PAC file");
        let pac = state.shared.config.rules.pac(local);
        return Ok(http1::pac_response(req.method(), pac).map(Either::Right));
    }
    let credentials = http1::take_proxy_authorization(req.headers_mut());
    if let Some(creds) = &state.shared.config.auth
        && !basic_auth_matches(creds, credentials.as_ref())
    {
        // The host only: a URL's userinfo may hold a password.
        let host = req.uri().host().unwrap_or_default();
        if credentials.is_some() {
            info!(host, "HTTP proxy authentication failed");
        } else {
            debug!(host, "HTTP proxy credentials required; sent 407");
        }
        let text = "this proxy requires a username and password (Basic)";
        return Ok(reply(StatusCode::PROXY_AUTHENTICATION_REQUIRED, text));
    }
    if req.method() == Method::CONNECT {
        Ok(connect_tunnel(&state, req).await)
    } else {
        forward(&state, req).await
    }
}

fn reply(status: StatusCode, text: &str) -> Response<ProxyBody> {
    http1::error_response(status, text).map(Either::Right)
}

fn bad_request(err: &RequestError) -> Response<ProxyBody> {
    debug!(error = %err, "bad HTTP request");
    reply(StatusCode::BAD_REQUEST, &err.to_string())
}

/// Checks `Proxy-Authorization: Basic base64(user:pass)`.
fn basic_auth_matches(creds: &Credentials, value: Option<&HeaderValue>) -> bool {
    let Some(value) = value else {
        return false;
    };
    let value = value.as_bytes().trim_ascii();
    let Some(space) = value.iter().position(|&b| b == b' ') else {
        return false;
    };
    let (scheme, token) = value.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return false;
    }
    let Ok(decoded) = base64_simd::STANDARD.decode_to_vec(token.trim_ascii()) else {
        return false;
    };
    // RFC 7617: user-id cannot contain ':', the password may.
    let Some(colon) = decoded.iter().position(|&b| b == b':') else {
        return false;
    };
    creds.matches(&decoded[..colon], &decoded[colon + 1..])
}

/// Asks the connector for a stream; a failure becomes the error response.
async fn open(
    state: &ConnState,
    target: &TargetAddr,
    protocol: ProxyProtocol,
) -> Result<BoxStream, Response<ProxyBody>> {
    debug!(%protocol, %target, "connecting");
    let request = ConnectRequest {
        target: target.clone(),
        client: state.client,
        protocol,
    };
    state
        .shared
        .connector
        .connect(request)
        .await
        .map_err(|err| {
            let status = http1::status_for(err.kind);
            info!(%protocol, %target, error = %err, status = status.as_u16(), "connect failed");
            reply(
                status,
                &http1::connect_error_text(err.kind, target, &err.message),
            )
        })
}

/// CONNECT: open the stream, answer 200, and leave the relay to the
/// connection task once hyper hands the socket back.
async fn connect_tunnel(state: &ConnState, mut req: Request<Incoming>) -> Response<ProxyBody> {
    let target = match http1::connect_target(req.uri()) {
        Ok(target) => target,
        Err(err) => return bad_request(&err),
    };
    let stream = match open(state, &target, ProxyProtocol::HttpConnect).await {
        Ok(stream) => stream,
        Err(response) => return response,
    };
    *state.tunnel.lock().expect("tunnel lock") = Some(Tunnel {
        target,
        client: hyper::upgrade::on(&mut req),
        upstream: TunnelUpstream::Stream(stream),
    });
    let mut response = Response::new(Either::Right(Full::new(Bytes::new())));
    response
        .extensions_mut()
        .insert(ReasonPhrase::from_static(b"Connection established"));
    response
}

/// Relays raw bytes between the client socket, taken back from hyper, and
/// the upstream, with the SOCKS5 path's buffers.
async fn run_tunnel(shared: Arc<Shared>, addr: SocketAddr, tunnel: Tunnel) {
    let Tunnel {
        target,
        client,
        upstream,
    } = tunnel;
    let client = match client.await {
        Ok(upgraded) => upgraded,
        Err(err) => {
            debug!(%target, error = %err, "client left before the tunnel started");
            return;
        }
    };
    // Both were handed to hyper by this module, so the types are known.
    let Ok(client) = client.downcast::<TokioIo<TcpStream>>() else {
        debug!(%target, "unexpected client transport after upgrade");
        return;
    };
    let (stream, upstream_early) = match upstream {
        TunnelUpstream::Stream(stream) => (stream, Bytes::new()),
        TunnelUpstream::Upgraded(upgraded) => match upgraded.downcast::<TokioIo<BoxStream>>() {
            Ok(parts) => (parts.io.into_inner(), parts.read_buf),
            Err(_) => {
                debug!(%target, "unexpected upstream transport after upgrade");
                return;
            }
        },
    };
    let chunk = shared.config.copy_buffer;
    let mut conn = ClientConn::new(shared, client.io.into_inner(), addr, Instant::now());
    // Bytes the client sent right after its head (no wait for our answer)
    // and bytes the server sent right after its 101 go first.
    conn.reader.buf.extend_from_slice(&client.read_buf);
    let mut upstream = Upstream::new(stream, chunk, chunk);
    upstream.reader.buf.extend_from_slice(&upstream_early);
    match relay(&mut conn.reader, &mut conn.writer, &mut upstream).await {
        Ok(c) => debug!(%target, up = c.up, down = c.down, "closed"),
        Err(err) if err.is_disconnect() => debug!(%target, error = %err, "relay ended"),
        Err(err) => info!(%target, error = %err, "relay failed"),
    }
}

/// An absolute-form request: rewrite it and send it upstream over the kept
/// connection to its target, or a new one.
async fn forward(
    state: &ConnState,
    mut req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Dropped> {
    let target = match http1::forward_target(req.uri()) {
        Ok(target) => target,
        Err(err) => return Ok(bad_request(&err)),
    };
    let client_version = req.version();
    let upgrade = http1::wants_upgrade(client_version, req.headers());
    let client_close = http1::client_wants_close(client_version, req.headers());
    let method = req.method().clone();
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    if let Err(err) = http1::rewrite_request(&mut parts, &target, upgrade, client_close) {
        return Ok(bad_request(&err));
    }
    let mut request = Request::from_parts(parts, body);
    let target = target.target;
    let mut response = loop {
        let (mut sender, reused) = match take_origin(state, &target) {
            Some(sender) => (sender, true),
            None => match open_origin(state, &target).await {
                Ok(sender) => (sender, false),
                Err(response) => return Ok(response),
            },
        };
        if reused {
            if sender.ready().await.is_err() {
                debug!(%target, "idle upstream was closed; reconnecting");
                continue;
            }
            debug!(%target, %method, "reusing upstream");
        }
        match sender.try_send_request(request).await {
            Ok(response) => {
                if !upgrade {
                    *state.origin.lock().expect("origin lock") = Some(Origin {
                        target: target.clone(),
                        sender,
                    });
                }
                break response;
            }
            Err(mut err) => match err.take_message() {
                // The idle upstream closed before it took the request:
                // send it again on a fresh one.
                Some(unsent) if reused => {
                    debug!(%target, "idle upstream was closed; reconnecting");
                    request = unsent;
                }
                _ => return failed(&err.into_error(), reused, &target),
            },
        }
    };
    let status = response.status();
    debug!(%target, %method, status = status.as_u16(), "forwarded");
    if status == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            info!(%target, "upstream switched protocols unasked");
            return Ok(reply(
                StatusCode::BAD_GATEWAY,
                &format!("{target} switched protocols unasked"),
            ));
        };
        let upstream = match hyper::upgrade::on(&mut response).await {
            Ok(upgraded) => upgraded,
            Err(err) => {
                info!(%target, error = %err, "upstream upgrade failed");
                return Ok(reply(
                    StatusCode::BAD_GATEWAY,
                    &format!("{target} failed to switch protocols"),
                ));
            }
        };
        *state.tunnel.lock().expect("tunnel lock") = Some(Tunnel {
            target,
            client: client_upgrade,
            upstream: TunnelUpstream::Upgraded(upstream),
        });
    }
    let (mut parts, body) = response.into_parts();
    let exact_length = body.size_hint().exact().is_some();
    http1::rewrite_response(&mut parts, client_version, client_close, exact_length);
    Ok(Response::from_parts(parts, Either::Left(body)))
}

/// Takes the kept upstream if it goes to `target` and is still open; an
/// upstream to another target is closed.
fn take_origin(state: &ConnState, target: &TargetAddr) -> Option<SendRequest<Incoming>> {
    let origin = state.origin.lock().expect("origin lock").take()?;
    if origin.target == *target && !origin.sender.is_closed() {
        Some(origin.sender)
    } else {
        None
    }
}

/// Connects to `target` and starts an HTTP/1 client connection over it,
/// handing its driver to the connection task.
async fn open_origin(
    state: &ConnState,
    target: &TargetAddr,
) -> Result<SendRequest<Incoming>, Response<ProxyBody>> {
    let stream = open(state, target, ProxyProtocol::HttpForward).await?;
    let (sender, conn) = state
        .shared
        .http
        .client
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|err| {
            info!(%target, error = %err, "HTTP handshake with upstream failed");
            reply(
                StatusCode::BAD_GATEWAY,
                &format!("could not talk HTTP to {target}"),
            )
        })?;
    let target = target.clone();
    let driver: Driver = Box::pin(async move {
        if let Err(err) = conn.with_upgrades().await {
            debug!(%target, error = %err, "upstream connection ended");
        }
    });
    // The receiver lives as long as the client connection, which this
    // request belongs to.
    let _ = state.drivers.send(driver);
    Ok(sender)
}

/// The answer when no response came from upstream.
fn failed(
    err: &hyper::Error,
    reused: bool,
    target: &TargetAddr,
) -> Result<Response<ProxyBody>, Dropped> {
    // Reading the client's request body failed (the body's error is
    // hyper's, from the client connection): a malformed chunked body, or
    // the client went away.
    if err.is_user()
        && let Some(cause) =
            std::error::Error::source(err).and_then(|c| c.downcast_ref::<hyper::Error>())
    {
        if cause.is_incomplete_message() {
            debug!(%target, "client went away inside its request body");
            return Err("client went away".into());
        }
        let detail =
            std::error::Error::source(cause).map_or_else(|| cause.to_string(), ToString::to_string);
        debug!(%target, error = %detail, "bad request body");
        return Ok(reply(
            StatusCode::BAD_REQUEST,
            &format!("invalid request body ({detail})"),
        ));
    }
    if err.is_parse() {
        info!(%target, error = %err, "bad response from upstream");
        return Ok(reply(
            StatusCode::BAD_GATEWAY,
            &format!("{target} sent an invalid response ({err})"),
        ));
    }
    if reused {
        // A kept connection the server closed just as the request went
        // out: close without a reply, and the client retries on a fresh
        // connection (what browsers and curl do).
        debug!(%target, error = %err, "reused upstream closed before responding");
        return Err("reused upstream closed before responding".into());
    }
    info!(%target, error = %err, "no response from upstream");
    Ok(reply(
        StatusCode::BAD_GATEWAY,
        &format!("{target} closed the connection without a response"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth() {
        let creds = Credentials::new("user", "pa:ss");
        let header = |s: &str| HeaderValue::from_str(s).unwrap();
        let token = base64_simd::STANDARD.encode_to_string(b"user:pa:ss");
        assert!(basic_auth_matches(
            &creds,
            Some(&header(&format!("Basic {token}")))
        ));
        assert!(basic_auth_matches(
            &creds,
            Some(&header(&format!("basic   {token} ")))
        ));
        let wrong = base64_simd::STANDARD.encode_to_string(b"user:nope");
        assert!(!basic_auth_matches(
            &creds,
            Some(&header(&format!("Basic {wrong}")))
        ));
        assert!(!basic_auth_matches(&creds, Some(&header("Bearer abc"))));
        assert!(!basic_auth_matches(&creds, Some(&header("Basic !!!"))));
        assert!(!basic_auth_matches(&creds, None));
    }
}
