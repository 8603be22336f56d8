//! The gateway's HTTP/3 listener (`--h3-listen`): the same WebSocket as on
//! `/ws` over TLS, opened by extended CONNECT on QUIC (RFC 9220), so a
//! deployment needs no separate `h3ws-proxy` in front.
//!
//! Each QUIC connection takes an admission ticket at accept (per source and
//! pending, like a TCP connection); its first request takes that ticket
//! into the session, and further requests on the connection take their own.
//! A connection that sends no request within the handshake timeout, or is
//! evicted while pending, is closed.

use std::net::SocketAddr;
use std::sync::Arc;

use h3ws::connect::{self, Verdict};
use h3ws::quic::ServerConfigs;
use h3ws::server::{IncomingRequest, ServerConnection};
use server_kit::admission::{Progress, Ticket};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_util::task::TaskTracker;
use tracing::debug;

use crate::Shared;
use crate::http::ws_config;

/// Binds the QUIC endpoint on `addr` with the gateway's certificate.
pub(crate) fn bind(
    addr: SocketAddr,
    tls: &rustls::ServerConfig,
    max_streams_per_connection: u32,
) -> Result<(quinn::Endpoint, ServerConfigs), h3ws::quic::QuicError> {
    h3ws::quic::server_endpoint(
        addr,
        tls.clone(),
        h3ws::quic::Timing::default(),
        max_streams_per_connection,
    )
}

/// Accepts QUIC connections until shutdown begins.
pub(crate) async fn serve(endpoint: quinn::Endpoint, configs: ServerConfigs, shared: Arc<Shared>) {
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => i,
            _ = shared.shutdown.cancelled() => break,
        };
        let Some(incoming) = incoming else { break };
        let peer = incoming.remote_address();
        let ticket = match shared.admission.admit(peer.ip()) {
            Ok(t) => t,
            Err(why) => {
                debug!(%peer, reason = why.label(), "QUIC connection refused");
                incoming.refuse();
                continue;
            }
        };
        match h3ws::server::accept_early(incoming, &configs) {
            Ok(conn) => {
                shared
                    .tracker
                    .spawn(serve_connection(conn, peer, ticket, shared.clone()));
            }
            Err(e) => debug!(%peer, error = %e, "QUIC connection refused"),
        }
    }
    // The endpoint closes once the sessions drained (`Gateway::run`).
}

async fn serve_connection(
    conn: quinn::Connection,
    peer: SocketAddr,
    ticket: Ticket,
    shared: Arc<Shared>,
) {
    // The QUIC handshake finishes in the background (0.5-RTT, see
    // `accept_early`); the first request's deadline covers it.
    let evicted = ticket.eviction();
    let limits = h3ws::Limits {
        head_timeout: shared.config.timeouts.handshake,
        ..h3ws::Limits::default()
    };
    let Ok(mut h3) = ServerConnection::new(conn, limits).await else {
        return;
    };
    // The connection's own ticket, until its first request takes it.
    let mut first = Some(ticket);
    // This connection's sessions: the connection (and its control stream,
    // whose end would end them abruptly) stays until they drained.
    let sessions = TaskTracker::new();
    let first_deadline = tokio::time::Instant::now() + shared.config.timeouts.handshake;
    loop {
        let pending = first.is_some();
        let req = tokio::select! {
            r = h3.accept() => r,
            _ = shared.shutdown.cancelled() => {
                h3.goaway().await;
                break;
            }
            _ = evicted.cancelled(), if pending => {
                debug!(%peer, "evicted before its first request");
                close(&h3, "evicted");
                return;
            }
            () = tokio::time::sleep_until(first_deadline), if pending => {
                close(&h3, "no request");
                return;
            }
        };
        let Some(req) = req else { break };
        let ticket = match first.take() {
            Some(t) => t,
            None => match shared.admission.admit(peer.ip()) {
                Ok(t) => t,
                Err(_) => {
                    req.reject(503, "").await;
                    continue;
                }
            },
        };
        let session = sessions.track_future(serve_request(req, peer, ticket, shared.clone()));
        shared.tracker.spawn(session);
    }
    sessions.close();
    sessions.wait().await;
}

fn close(h3: &ServerConnection, why: &str) {
    h3.quic()
        .close(h3ws::quic_code(h3ws::Code::NoError), why.as_bytes());
}

async fn serve_request(
    req: IncomingRequest,
    peer: SocketAddr,
    mut ticket: Ticket,
    shared: Arc<Shared>,
) {
    let ws_path = shared.config.ws_path.as_str();
    match connect::check(&req.request, |p| p == ws_path) {
        Verdict::Accept { .. } => {}
        Verdict::Reject { status, reason } => {
            debug!(%peer, status, reason, "HTTP/3 request refused");
            req.reject(status, "").await;
            return;
        }
    }
    // As for an HTTP/1.1 upgrade: 503 while every session place is taken
    // or while shutting down; the place itself is taken after the hello.
    let admission = &shared.admission;
    if admission.occupancy().admitted >= admission.limits().max_admitted
        || shared.shutdown.is_cancelled()
    {
        req.reject(503, "").await;
        return;
    }
    ticket.progressed(Progress::Claimed);
    // No unmasked-frames extension here: our client pipelines its hello
    // after the CONNECT and so masks (see the client's `dial_h3`).
    let stream = match req.accept(&[]).await {
        Ok(s) => s,
        Err(e) => {
            debug!(%peer, error = %e, "could not answer the CONNECT");
            return;
        }
    };
    let limits = &shared.config.limits;
    let cfg = ws_config(limits.max_frame_len, limits.max_write_buffer);
    let ws = WebSocketStream::from_raw_socket(stream, Role::Server, Some(cfg)).await;
    crate::driver::run_session(ws, shared, peer, ticket).await;
}
