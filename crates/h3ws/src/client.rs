//! The client side: an HTTP/3 connection and extended CONNECTs on it.

use std::net::SocketAddr;
use std::time::Duration;

use proto_h3ws::fields::{Request, Response};
use proto_h3ws::frame;
use proto_h3ws::request::{Part, RequestStream};
use proto_h3ws::settings::Settings;
use tokio::sync::watch;

use crate::Limits;
use crate::conn::{self, PeerState};
use crate::stream::H3Stream;

/// Why a connection or a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("QUIC connection to {addr} failed: {source}")]
    Connect {
        addr: SocketAddr,
        source: quinn::ConnectError,
    },
    #[error("QUIC handshake with {addr} failed: {source}")]
    Handshake {
        addr: SocketAddr,
        source: quinn::ConnectionError,
    },
    #[error("the connection ended: {0}")]
    Connection(#[from] quinn::ConnectionError),
    #[error("no HTTP/3 SETTINGS from the server within {0:?}")]
    NoSettings(Duration),
    #[error("the server does not offer extended CONNECT (SETTINGS_ENABLE_CONNECT_PROTOCOL)")]
    NoExtendedConnect,
    #[error("the server is going away (GOAWAY)")]
    GoingAway,
    #[error("writing the request: {0}")]
    Write(#[from] quinn::WriteError),
    #[error("reading the response: {0}")]
    Read(String),
    #[error("HTTP/3 protocol error: {0}")]
    Protocol(#[from] proto_h3ws::H3Error),
}

/// One HTTP/3 connection to a server.
pub struct ClientConnection {
    conn: quinn::Connection,
    limits: Limits,
    _control: quinn::SendStream,
    peer: watch::Receiver<PeerState>,
}

impl ClientConnection {
    /// Connects to `addr`, verifying the certificate for `server_name` with
    /// the TLS settings in `config` (see `quic::client_config`).
    pub async fn connect(
        endpoint: &quinn::Endpoint,
        config: quinn::ClientConfig,
        addr: SocketAddr,
        server_name: &str,
        limits: Limits,
    ) -> Result<ClientConnection, ClientError> {
        let connecting = endpoint
            .connect_with(config, addr, server_name)
            .map_err(|source| ClientError::Connect { addr, source })?;
        let conn = connecting
            .await
            .map_err(|source| ClientError::Handshake { addr, source })?;
        let (control, peer) = conn::start(&conn, limits, false).await?;
        Ok(ClientConnection {
            conn,
            limits,
            _control: control,
            peer,
        })
    }

    /// The QUIC connection (stats, rebinding, close).
    pub fn quic(&self) -> &quinn::Connection {
        &self.conn
    }

    /// The server's SETTINGS, waiting up to `wait` for them.
    pub async fn settings(&mut self, wait: Duration) -> Result<Settings, ClientError> {
        let got = tokio::time::timeout(wait, self.peer.wait_for(|p| p.settings.is_some())).await;
        match got {
            Ok(Ok(state)) => Ok(state.settings.expect("waited for")),
            Ok(Err(_)) => Err(self
                .conn
                .close_reason()
                .map_or(ClientError::NoSettings(wait), ClientError::Connection)),
            Err(_) => Err(ClientError::NoSettings(wait)),
        }
    }

    /// Sends `request` and hands out its stream at once, before the
    /// response: what the caller writes follows the request without waiting
    /// a round trip for it, and the first read consumes the response head
    /// (an error unless it is `2xx`). RFC 8441 §4 still holds: only after
    /// the server's SETTINGS allowed extended CONNECT.
    pub async fn open_pipelined(
        &mut self,
        request: &Request,
        settings_wait: Duration,
    ) -> Result<H3Stream, ClientError> {
        let (send, recv) = self.send_request(request, settings_wait).await?;
        let parser = RequestStream::new(self.limits.max_field_section);
        Ok(H3Stream::new(send, recv, parser).awaiting_response())
    }

    async fn send_request(
        &mut self,
        request: &Request,
        settings_wait: Duration,
    ) -> Result<(quinn::SendStream, quinn::RecvStream), ClientError> {
        let settings = self.settings(settings_wait).await?;
        if request.protocol.is_some() && !settings.enable_connect_protocol {
            return Err(ClientError::NoExtendedConnect);
        }
        if self.peer.borrow().goaway.is_some() {
            return Err(ClientError::GoingAway);
        }
        let (mut send, recv) = self.conn.open_bi().await?;
        send.write_all(&frame::encode(
            frame::kind::HEADERS,
            &request.fields.encode(),
        ))
        .await?;
        Ok((send, recv))
    }

    /// Sends an extended CONNECT for `protocol` on a new stream and reads
    /// the response head. RFC 8441 §4: only after the server's SETTINGS
    /// allowed it. On `2xx` the stream comes with the response.
    pub async fn open(
        &mut self,
        request: &Request,
        settings_wait: Duration,
    ) -> Result<(Response, Option<H3Stream>), ClientError> {
        let settings = self.settings(settings_wait).await?;
        if request.protocol.is_some() && !settings.enable_connect_protocol {
            return Err(ClientError::NoExtendedConnect);
        }
        if self.peer.borrow().goaway.is_some() {
            return Err(ClientError::GoingAway);
        }
        let (mut send, mut recv) = self.conn.open_bi().await?;
        send.write_all(&frame::encode(
            frame::kind::HEADERS,
            &request.fields.encode(),
        ))
        .await?;
        let mut parser = RequestStream::new(self.limits.max_field_section);
        loop {
            match parser.next_part()? {
                Some(Part::Head(fields)) => {
                    let response = Response::from_fields(fields)?;
                    if (100..200).contains(&response.status) {
                        parser.expect_head_again();
                        continue;
                    }
                    if (200..300).contains(&response.status) {
                        let stream = H3Stream::new(send, recv, parser);
                        return Ok((response, Some(stream)));
                    }
                    let _ = send.finish();
                    return Ok((response, None));
                }
                Some(_) => unreachable!("a head comes first or the parser fails"),
                None => {}
            }
            match recv.read_chunk(64 * 1024, true).await {
                Ok(Some(chunk)) => parser.push(&chunk.bytes),
                Ok(None) => {
                    return Err(ClientError::Read(
                        "the stream ended without a response".into(),
                    ));
                }
                Err(e) => return Err(ClientError::Read(e.to_string())),
            }
        }
    }
}
