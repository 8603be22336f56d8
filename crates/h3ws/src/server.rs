//! The server side: accept HTTP/3 connections and the requests on them.
//!
//! [`ServerConnection::accept`] hands out each request once its head has
//! arrived; the application checks it (`proto_h3ws::connect::check`) and
//! [`IncomingRequest::accept`]s it, getting the stream as bytes, or
//! [`IncomingRequest::reject`]s it with a status.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use proto_h3ws::fields::{Fields, Request, Response};
use proto_h3ws::frame;
use proto_h3ws::request::{Part, RequestStream};
use proto_h3ws::{Code, H3Error};
use tokio::sync::{mpsc, watch};
use tracing::debug;

use crate::conn::{self, PeerState};
use crate::stream::H3Stream;
use crate::{Limits, quic_code as code};

/// Accepts an incoming QUIC connection and returns it before its handshake
/// completes (0.5-RTT, RFC 9001 §4.1.1), so that our SETTINGS leave in the
/// server's first flight: a client may not send an extended CONNECT before
/// it has them (RFC 8441 §4), and waiting for the handshake to end first
/// cost every connect half a round trip. Nothing secret is sent that early;
/// requests only arrive after the client finished its handshake. The
/// connection gets the configuration for the path toward its peer.
pub fn accept_early(
    incoming: quinn::Incoming,
    configs: &crate::quic::ServerConfigs,
) -> Result<quinn::Connection, quinn::ConnectionError> {
    let config = configs.for_peer(incoming.remote_address());
    match incoming.accept_with(config)?.into_0rtt() {
        Ok((conn, _)) => Ok(conn),
        // quinn documents that an incoming connection always converts.
        Err(_) => Err(quinn::ConnectionError::LocallyClosed),
    }
}

/// One accepted HTTP/3 connection.
pub struct ServerConnection {
    conn: quinn::Connection,
    /// Our control stream: closing it would be a connection error.
    control: quinn::SendStream,
    _peer: watch::Receiver<PeerState>,
    requests: mpsc::Receiver<IncomingRequest>,
    /// The id after the highest request stream accepted, for GOAWAY.
    next_id: Arc<AtomicU64>,
}

impl ServerConnection {
    /// Sets up HTTP/3 on an established QUIC connection: our SETTINGS
    /// (extended CONNECT enabled), the peer's streams read, and its request
    /// streams accepted, each reading its head on its own.
    pub async fn new(
        conn: quinn::Connection,
        limits: Limits,
    ) -> Result<ServerConnection, quinn::ConnectionError> {
        let (control, rx) = conn::start(&conn, limits, true).await?;
        let (req_tx, requests) = mpsc::channel(64);
        let next_id = Arc::new(AtomicU64::new(0));
        tokio::spawn(accept_requests(
            conn.clone(),
            limits,
            req_tx,
            next_id.clone(),
        ));
        Ok(ServerConnection {
            conn,
            control,
            _peer: rx,
            requests,
            next_id,
        })
    }

    /// The QUIC connection (peer address, stats, close).
    pub fn quic(&self) -> &quinn::Connection {
        &self.conn
    }

    /// The next request whose head arrived, `None` once the connection is
    /// closed. Streams whose head is malformed or late are reset without
    /// showing up here.
    pub async fn accept(&mut self) -> Option<IncomingRequest> {
        self.requests.recv().await
    }

    /// Tells the client that no request after those accepted will be
    /// processed (GOAWAY, RFC 9114 §5.2), for a graceful shutdown.
    pub async fn goaway(&mut self) {
        let mut payload = Vec::new();
        proto_h3ws::varint::put(&mut payload, self.next_id.load(Ordering::Relaxed));
        let _ = self
            .control
            .write_all(&frame::encode(frame::kind::GOAWAY, &payload))
            .await;
    }
}

async fn accept_requests(
    conn: quinn::Connection,
    limits: Limits,
    requests: mpsc::Sender<IncomingRequest>,
    next_id: Arc<AtomicU64>,
) {
    while let Ok((mut send, recv)) = conn.accept_bi().await {
        next_id.fetch_max(u64::from(send.id()) + 4, Ordering::Relaxed);
        let requests = requests.clone();
        tokio::spawn(async move {
            let head = tokio::time::timeout(limits.head_timeout, read_head(recv, limits)).await;
            let (e, recv) = match head {
                Ok(Ok((request, recv, parser))) => {
                    let incoming = IncomingRequest {
                        request,
                        send,
                        recv,
                        parser,
                    };
                    let _ = requests.send(incoming).await;
                    return;
                }
                Ok(Err(failed)) => failed,
                Err(_) => (
                    H3Error::new(Code::RequestIncomplete, "no request head in time"),
                    None,
                ),
            };
            debug!(error = %e, "request stream refused");
            let _ = send.reset(code(e.code));
            if let Some(mut recv) = recv {
                let _ = recv.stop(code(e.code));
            }
        });
    }
}

type HeadResult =
    Result<(Request, quinn::RecvStream, RequestStream), (H3Error, Option<quinn::RecvStream>)>;

async fn read_head(mut recv: quinn::RecvStream, limits: Limits) -> HeadResult {
    let mut parser = RequestStream::new(limits.max_field_section);
    loop {
        match parser.next_part() {
            Ok(Some(Part::Head(fields))) => {
                return match Request::from_fields(fields) {
                    Ok(req) => Ok((req, recv, parser)),
                    Err(e) => Err((e, Some(recv))),
                };
            }
            Ok(Some(_)) => unreachable!("a head comes first or the parser fails"),
            Ok(None) => {}
            Err(e) => return Err((e, Some(recv))),
        }
        match recv.read_chunk(64 * 1024, true).await {
            Ok(Some(chunk)) => parser.push(&chunk.bytes),
            Ok(None) => {
                return Err((
                    H3Error::new(Code::RequestIncomplete, "the stream ended before its head"),
                    None,
                ));
            }
            Err(e) => {
                return Err((
                    H3Error::new(Code::RequestCancelled, format!("reading the head: {e}")),
                    None,
                ));
            }
        }
    }
}

/// A request whose head arrived, waiting for its answer.
pub struct IncomingRequest {
    /// The head.
    pub request: Request,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    parser: RequestStream,
}

impl IncomingRequest {
    /// Answers `200` (with `extra` fields) and hands out the stream.
    pub async fn accept(self, extra: &[(&str, &[u8])]) -> std::io::Result<H3Stream> {
        let IncomingRequest {
            mut send,
            recv,
            parser,
            ..
        } = self;
        let head = Response::new(200, extra).fields.encode();
        send.write_all(&frame::encode(frame::kind::HEADERS, &head))
            .await?;
        Ok(H3Stream::new(send, recv, parser))
    }

    /// Answers `status` with a short text body and ends the stream.
    pub async fn reject(self, status: u16, body: &str) {
        let IncomingRequest {
            mut send, mut recv, ..
        } = self;
        let mut fields = Fields::default();
        fields.push(":status", status.to_string());
        fields.push("content-type", "text/plain; charset=utf-8");
        fields.push("content-length", body.len().to_string());
        let mut bytes = frame::encode(frame::kind::HEADERS, &fields.encode()).to_vec();
        if !body.is_empty() {
            bytes.extend_from_slice(&frame::encode(frame::kind::DATA, body.as_bytes()));
        }
        let _ = send.write_all(&bytes).await;
        let _ = send.finish();
        // The request's body, if any, is not wanted (RFC 9114 §4.1.1).
        let _ = recv.stop(code(Code::NoError));
    }
}
