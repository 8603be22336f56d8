//! HTTP proxy driver: CONNECT tunnels and forwarding of `http://` requests
//! with keep-alive.
//!
//! One upstream per client connection: it is reused while requests go to the
//! same target and replaced when the target changes or the server ends it.
//! Each exchange relays the request body and the response at the same time,
//! so `Expect: 100-continue` and early error responses work.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Buf;
use tokio::io::{AsyncWriteExt, ReadHalf};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::time::Instant;
use tracing::{debug, info};

use super::ClientConn;
use super::io::{Reader, RelayError, Upstream, relay, relay_body};
use crate::http1::{
    self, BodyFraming, BodyScanner, HeadError, PROXY_AUTHENTICATE, RequestHead, RequestKind, Status,
};
use crate::{BoxStream, ConnectRequest, Credentials, ProxyProtocol};

/// How long an idle keep-alive client connection may wait for its next
/// request. Longer than the handshake timeout (browsers keep idle
/// connections for about a minute), and the upstream is held meanwhile.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);

/// Largest response head accepted from a server. Servers send larger heads
/// than clients do (cookies, CSP), so this is not `max_header_bytes`.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// The reply to a successful CONNECT.
const CONNECT_ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";

pub(crate) async fn serve(mut conn: ClientConn) {
    let mut upstream: Option<Upstream> = None;
    let mut first = true;
    loop {
        let head = match read_head(&mut conn, first).await {
            NextHead::Head(head) => head,
            NextHead::Closed => return,
            NextHead::Invalid(err) => {
                debug!(error = %err, "bad HTTP request");
                let status = err.status();
                conn.reply_and_close(&http1::encode_error_response(status, &err.to_string(), &[]))
                    .await;
                return;
            }
        };
        first = false;
        if let Some(creds) = &conn.shared.config.auth
            && !basic_auth_matches(creds, head.proxy_authorization())
        {
            if head.proxy_authorization().is_some() {
                info!(target = %head.target, "HTTP proxy authentication failed");
            } else {
                debug!(target = %head.target, "HTTP proxy credentials required; sent 407");
            }
            let text = "this proxy requires a username and password (Basic)";
            let response = http1::encode_error_response(
                Status::PROXY_AUTH_REQUIRED,
                text,
                &[PROXY_AUTHENTICATE],
            );
            conn.reply_and_close(&response).await;
            return;
        }
        if head.kind == RequestKind::Connect {
            drop(upstream);
            return tunnel(conn, head).await;
        }
        match forward(&mut conn, &head, &mut upstream).await {
            Flow::KeepAlive => {}
            Flow::Close => {
                conn.close_gracefully().await;
                return;
            }
            Flow::Drop => return,
            Flow::Reply(status, text) => {
                conn.reply_and_close(&http1::encode_error_response(status, &text, &[]))
                    .await;
                return;
            }
            Flow::Upgraded => {
                if let Some(mut up) = upstream.take() {
                    match relay(&mut conn.reader, &mut conn.writer, &mut up).await {
                        Ok(c) => {
                            debug!(target = %up.target, up = c.up, down = c.down, "upgraded connection closed")
                        }
                        Err(err) => {
                            debug!(target = %up.target, error = %err, "upgraded connection ended")
                        }
                    }
                }
                return;
            }
        }
    }
}

enum NextHead {
    Head(RequestHead),
    /// Closed, idle too long, or truncated: end without a reply.
    Closed,
    Invalid(HeadError),
}

async fn read_head(conn: &mut ClientConn, first: bool) -> NextHead {
    let config = &conn.shared.config;
    let deadline = if first {
        conn.handshake_deadline
    } else {
        // Between requests: wait for the next one to start, then give its
        // head as long as a first one gets.
        if conn.reader.buf.is_empty() {
            match tokio::time::timeout(KEEPALIVE_IDLE, conn.reader.fill()).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return NextHead::Closed,
            }
        }
        Instant::now() + config.handshake_timeout
    };
    let max = config.max_header_bytes;
    let reader = &mut conn.reader;
    let result = tokio::time::timeout_at(deadline, async {
        loop {
            match http1::decode_request_head(&reader.buf, max) {
                Ok(Some((head, used))) => {
                    reader.buf.advance(used);
                    return NextHead::Head(head);
                }
                Ok(None) => {}
                Err(err) => return NextHead::Invalid(err),
            }
            match reader.fill().await {
                Ok(0) | Err(_) => return NextHead::Closed,
                Ok(_) => {}
            }
        }
    })
    .await;
    result.unwrap_or_else(|_| {
        debug!("HTTP request head not complete before the handshake timeout");
        NextHead::Closed
    })
}

/// Checks `Proxy-Authorization: Basic base64(user:pass)`.
fn basic_auth_matches(creds: &Credentials, value: Option<&[u8]>) -> bool {
    let Some(value) = value else {
        return false;
    };
    let value = value.trim_ascii();
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

async fn connect(
    conn: &ClientConn,
    head: &RequestHead,
    protocol: ProxyProtocol,
) -> Result<BoxStream, (Status, String)> {
    debug!(%protocol, target = %head.target, method = %head.method, "connecting");
    let request = ConnectRequest {
        target: head.target.clone(),
        client: conn.addr,
        protocol,
    };
    conn.shared.connector.connect(request).await.map_err(|err| {
        let status = http1::status_for(err.kind);
        info!(%protocol, target = %head.target, error = %err, status = status.code, "connect failed");
        (
            status,
            http1::connect_error_text(err.kind, &head.target, &err.message),
        )
    })
}

/// CONNECT: answer 200, then copy raw bytes both ways.
async fn tunnel(mut conn: ClientConn, head: RequestHead) {
    let stream = match connect(&conn, &head, ProxyProtocol::HttpConnect).await {
        Ok(stream) => stream,
        Err((status, text)) => {
            conn.reply_and_close(&http1::encode_error_response(status, &text, &[]))
                .await;
            return;
        }
    };
    if conn.writer.write_all(CONNECT_ESTABLISHED).await.is_err() {
        return;
    }
    let config = &conn.shared.config;
    let mut upstream = Upstream::new(
        head.target.clone(),
        stream,
        config.copy_buffer,
        config.copy_buffer,
    );
    // Bytes the client sent right after the head (no wait for the 200) are
    // still in the reader's buffer and go first.
    match relay(&mut conn.reader, &mut conn.writer, &mut upstream).await {
        Ok(c) => debug!(target = %head.target, up = c.up, down = c.down, "closed"),
        Err(err) if err.is_disconnect() => {
            debug!(target = %head.target, error = %err, "relay ended")
        }
        Err(err) => info!(target = %head.target, error = %err, "relay failed"),
    }
}

/// What to do with the client connection after one forwarded exchange.
enum Flow {
    /// Read the next request.
    KeepAlive,
    /// Close after what was sent.
    Close,
    /// Close at once without a reply: the client retries on a fresh
    /// connection (what browsers and curl do when a reused connection closes
    /// before any response byte).
    Drop,
    /// Nothing was sent yet: answer with this error and close.
    Reply(Status, String),
    /// The server switched protocols: copy raw bytes from now on.
    Upgraded,
}

async fn forward(
    conn: &mut ClientConn,
    head: &RequestHead,
    upstream: &mut Option<Upstream>,
) -> Flow {
    let reused = match upstream.as_mut() {
        Some(up) if up.target == head.target => {
            let stale = up.is_stale();
            if stale {
                debug!(target = %head.target, "idle upstream was closed; reconnecting");
            }
            !stale
        }
        _ => false,
    };
    if !reused {
        // Different host (or none yet): the old upstream is closed here.
        *upstream = None;
        match connect(conn, head, ProxyProtocol::HttpForward).await {
            Ok(stream) => {
                let chunk = conn.shared.config.copy_buffer;
                *upstream = Some(Upstream::new(
                    head.target.clone(),
                    stream,
                    chunk,
                    chunk.max(MAX_RESPONSE_HEAD),
                ));
            }
            Err((status, text)) => return Flow::Reply(status, text),
        }
    } else {
        debug!(target = %head.target, method = %head.method, "reusing upstream");
    }
    let Some(up) = upstream.as_mut() else {
        return Flow::Close;
    };
    let mut head_bytes = Vec::new();
    head.encode_forward(&mut head_bytes);
    let end = exchange(conn, up, head, &head_bytes).await;
    match end {
        Exchange::Complete {
            client_keep_alive,
            upstream_reusable,
        } => {
            if !upstream_reusable {
                *upstream = None;
            }
            if client_keep_alive {
                Flow::KeepAlive
            } else {
                Flow::Close
            }
        }
        Exchange::Upgraded => Flow::Upgraded,
        Exchange::Failed { sent, reason } => {
            *upstream = None;
            if let Failure::Client(err) = &reason {
                debug!(target = %head.target, error = %err, "client went away mid-exchange");
                Flow::Drop
            } else if sent {
                debug!(target = %head.target, %reason, "exchange failed mid-response");
                Flow::Drop
            } else if reused && reason.upstream_closed_early() {
                debug!(target = %head.target, "reused upstream closed before responding");
                Flow::Drop
            } else {
                info!(target = %head.target, %reason, "no response from upstream");
                Flow::Reply(Status::BAD_GATEWAY, reason.client_text(&head.target))
            }
        }
    }
}

enum Exchange {
    Complete {
        client_keep_alive: bool,
        upstream_reusable: bool,
    },
    Upgraded,
    Failed {
        /// Whether any response byte reached the client.
        sent: bool,
        reason: Failure,
    },
}

#[derive(Debug)]
enum Failure {
    /// The client side failed or went away.
    Client(RelayError),
    /// The server closed or failed before a whole response head.
    UpstreamBeforeHead(RelayError),
    /// The server's response head is unusable.
    BadResponse(HeadError),
    /// The server switched protocols without being asked.
    UnrequestedUpgrade,
    /// The server failed while sending the body.
    UpstreamBody(RelayError),
}

impl Failure {
    fn upstream_closed_early(&self) -> bool {
        matches!(self, Failure::UpstreamBeforeHead(e) if e.is_disconnect())
    }

    fn client_text(&self, target: &net::TargetAddr) -> String {
        match self {
            Failure::BadResponse(e) => format!("{target} sent an invalid response ({e})"),
            Failure::UnrequestedUpgrade => format!("{target} switched protocols unasked"),
            _ => format!("{target} closed the connection without a response"),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Client(e) => write!(f, "client: {e}"),
            Failure::UpstreamBeforeHead(e) => write!(f, "upstream before response head: {e}"),
            Failure::BadResponse(e) => write!(f, "bad response head: {e}"),
            Failure::UnrequestedUpgrade => f.write_str("unrequested 101 response"),
            Failure::UpstreamBody(e) => write!(f, "upstream body: {e}"),
        }
    }
}

/// One request/response exchange over `up`. The request body (client →
/// server) and the response (server → client) are relayed concurrently.
async fn exchange(
    conn: &mut ClientConn,
    up: &mut Upstream,
    head: &RequestHead,
    head_bytes: &[u8],
) -> Exchange {
    let client_reader = &mut conn.reader;
    let client_writer = &mut conn.writer;
    let up_writer = &mut up.writer;
    let up_reader = &mut up.reader;

    let request_side = async {
        up_writer
            .write_all(head_bytes)
            .await
            .map_err(RelayError::Write)?;
        relay_body(client_reader, up_writer, BodyScanner::new(head.body))
            .await
            .map(|_| ())
    };
    // Set once any response byte went to the client (then no error reply
    // can follow). Atomic only so that the future stays Send.
    let sent = AtomicBool::new(false);
    let response_side = relay_response(up_reader, client_writer, head, &sent);
    tokio::pin!(request_side, response_side);

    let mut request_done: Option<Result<(), RelayError>> = None;
    let response = loop {
        tokio::select! {
            biased;
            r = &mut request_side, if request_done.is_none() => match r {
                // The client broke off its own request: nothing sensible
                // can follow on this connection.
                Err(err) if !matches!(err, RelayError::Write(_)) => {
                    return Exchange::Failed {
                        sent: sent.load(Ordering::Relaxed),
                        reason: Failure::Client(err),
                    };
                }
                // A write error means the server stopped reading; it may
                // still answer (413, say), so wait for the response.
                r => request_done = Some(r),
            },
            r = &mut response_side => break r,
        }
    };
    match response {
        Ok(Response::Upgraded) => {
            if request_done.is_none() {
                request_done = Some(request_side.await);
            }
            if matches!(request_done, Some(Ok(()))) {
                Exchange::Upgraded
            } else {
                Exchange::Failed {
                    sent: true,
                    reason: Failure::Client(RelayError::Truncated),
                }
            }
        }
        Ok(Response::Complete {
            client_keep_alive,
            upstream_reusable,
        }) => {
            // A response that ends before its request body was all
            // forwarded (an early 413, say) leaves the rest of that body
            // unread on both connections: neither can be reused.
            let request_complete = matches!(request_done, Some(Ok(())));
            Exchange::Complete {
                client_keep_alive: client_keep_alive && request_complete,
                upstream_reusable: upstream_reusable && request_complete,
            }
        }
        Err(reason) => Exchange::Failed {
            sent: sent.load(Ordering::Relaxed),
            reason,
        },
    }
}

enum Response {
    Complete {
        client_keep_alive: bool,
        upstream_reusable: bool,
    },
    Upgraded,
}

/// Reads response heads (skipping past interim 1xx ones, which are passed
/// on) and relays the final response to the client.
async fn relay_response(
    up_reader: &mut Reader<ReadHalf<BoxStream>>,
    client: &mut OwnedWriteHalf,
    request: &RequestHead,
    sent: &AtomicBool,
) -> Result<Response, Failure> {
    let head_request = request.method.eq_ignore_ascii_case("HEAD");
    let mut out = Vec::new();
    loop {
        let response = match up_reader
            .read_message(|buf| http1::decode_response_head(buf, MAX_RESPONSE_HEAD, head_request))
            .await
        {
            Ok(response) => response,
            Err(super::io::ReadError::Eof) => {
                return Err(Failure::UpstreamBeforeHead(RelayError::Truncated));
            }
            Err(super::io::ReadError::Io(e)) => {
                return Err(Failure::UpstreamBeforeHead(RelayError::Read(e)));
            }
            Err(super::io::ReadError::Invalid(e)) => return Err(Failure::BadResponse(e)),
        };
        out.clear();
        if response.is_interim() {
            response.encode_for_client(None, &mut out);
            write_client(client, &out, sent).await?;
            continue;
        }
        if response.code == 101 {
            if !request.upgrade {
                return Err(Failure::UnrequestedUpgrade);
            }
            response.encode_for_client(Some("Upgrade"), &mut out);
            write_client(client, &out, sent).await?;
            return Ok(Response::Upgraded);
        }
        let client_keep_alive = request.keep_alive && response.body != BodyFraming::UntilClose;
        let connection = if !client_keep_alive {
            Some("close")
        } else if request.minor_version == 0 {
            Some("keep-alive")
        } else {
            None
        };
        response.encode_for_client(connection, &mut out);
        write_client(client, &out, sent).await?;
        let ended_by_eof = relay_body(up_reader, client, BodyScanner::new(response.body))
            .await
            .map_err(|e| match e {
                RelayError::Write(_) => Failure::Client(e),
                other => Failure::UpstreamBody(other),
            })?;
        debug!(target = %request.target, method = %request.method, status = response.code, "response relayed");
        return Ok(Response::Complete {
            client_keep_alive,
            // Leftover bytes after a complete response mean the server does
            // not frame its messages as we think: do not trust it again.
            upstream_reusable: response.keep_alive && !ended_by_eof && up_reader.buf.is_empty(),
        });
    }
}

async fn write_client(
    client: &mut OwnedWriteHalf,
    bytes: &[u8],
    sent: &AtomicBool,
) -> Result<(), Failure> {
    sent.store(true, Ordering::Relaxed);
    client
        .write_all(bytes)
        .await
        .map_err(|e| Failure::Client(RelayError::Write(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth() {
        let creds = Credentials::new("user", "pa:ss");
        let token = base64_simd::STANDARD.encode_to_string(b"user:pa:ss");
        let good = format!("Basic {token}");
        assert!(basic_auth_matches(&creds, Some(good.as_bytes())));
        let lower = format!("basic   {token} ");
        assert!(basic_auth_matches(&creds, Some(lower.as_bytes())));
        let wrong = base64_simd::STANDARD.encode_to_string(b"user:nope");
        assert!(!basic_auth_matches(
            &creds,
            Some(format!("Basic {wrong}").as_bytes())
        ));
        assert!(!basic_auth_matches(&creds, Some(b"Bearer abc")));
        assert!(!basic_auth_matches(&creds, Some(b"Basic !!!")));
        assert!(!basic_auth_matches(&creds, None));
    }
}
