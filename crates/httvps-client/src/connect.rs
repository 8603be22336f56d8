//! Dialing a gateway: TCP, TLS, WebSocket upgrade, then `hello` → `ready`,
//! which the sans-IO client machine (`proto_httvps::client`) decides: this
//! driver only carries its messages and its handshake timer.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use http::Uri;
use proto_httvps::client::{self, Client, CloseReason, Event, Features, Transmit};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::carrier::{self, CarrierIo, H3Link};
use crate::config::{ClientConfig, Transport};
use crate::error::ClientError;
use crate::upgrade::upgrade;
use h3ws::client::ClientConnection;
use net::Secret;
use tracing::warn;

/// The WebSocket a session runs on, over HTTP/1.1 or HTTP/3.
pub(crate) type WsStream = WebSocketStream<CarrierIo>;

/// Where to connect, read from a `wss://` URL.
struct Endpoint {
    uri: Uri,
    host: String,
    port: u16,
}

fn parse_url(url: &str) -> Result<Endpoint, ClientError> {
    let invalid = |reason: &str| ClientError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
    match uri.scheme_str() {
        Some("wss") => {}
        Some("ws") => {
            return Err(invalid(
                "plain ws:// is refused: HTTVPS runs over TLS (use wss://)",
            ));
        }
        _ => return Err(invalid("the scheme must be wss://")),
    }
    let host = uri.host().ok_or_else(|| invalid("no host"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(443);
    Ok(Endpoint { uri, host, port })
}

/// Most bytes tungstenite asks TLS for per read. Its default (128 KiB) is
/// zero-filled before *every* read attempt, even one that finds nothing:
/// for a 1 KiB request through the tunnel that was 0.5 MB of memset per
/// stream (76% of the client's instructions), and for bulk data about one
/// zeroed byte per byte received. One TLS record (16 KiB) is what a read
/// yields at most anyway.
const WS_READ_BUFFER: usize = 16 * 1024;

/// Frames are gathered up to this many bytes before they are written to TLS;
/// the writer task flushes after every batch, so nothing waits for the buffer
/// to fill. Writing each frame at once (a buffer of 0) cost one TLS record
/// and one system call per frame: two for every new stream (`stream_open`
/// and its address header), where one does.
const WS_WRITE_BUFFER: usize = 64 * 1024;

/// WebSocket limits matching the frame limit; compression is never offered.
pub(crate) fn ws_config(max_frame_len: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER)
        .max_message_size(Some(max_frame_len))
        .max_frame_size(Some(max_frame_len))
        .write_buffer_size(WS_WRITE_BUFFER)
        .max_write_buffer_size(WS_WRITE_BUFFER + max_frame_len * 4)
}

/// The machine's clock: tokio's, so paused-time tests drive it too.
pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// A frame the machine queued, as a WebSocket message.
pub(crate) fn to_message(transmit: Transmit) -> Message {
    match transmit {
        Transmit::Text(text) => Message::Text(Utf8Bytes::from(text)),
        Transmit::Binary(bytes) => Message::Binary(bytes.into()),
    }
}

/// Dials the gateway and runs the machine's handshake (it was made with
/// [`Client::new`], so its first transmit is `hello`): returns the WebSocket
/// and the machine once `ready` arrived. Dialing, TLS and the upgrade are
/// bounded by `handshake_timeout` too, measured from the start.
pub(crate) async fn connect(
    config: &ClientConfig,
    token: &Secret,
    machine_config: client::Config,
) -> Result<(WsStream, Client, bool), ClientError> {
    let endpoint = parse_url(&config.url)?;
    let started = now();
    let (ws, unmasked) = tokio::time::timeout(config.handshake_timeout, dial(config, endpoint))
        .await
        .map_err(|_| {
            ClientError::handshake(format!(
                "no ready from {} within {:?}",
                config.url, config.handshake_timeout
            ))
        })??;
    // The machine's handshake deadline counts from the start, like the timeout above.
    let machine = Client::new(machine_config, token.expose(), started);
    let (ws, machine) = handshake(ws, machine).await?;
    Ok((ws, machine, unmasked))
}

/// The machine's settings for a client configuration, offering `offer`.
pub(crate) fn machine_config(config: &ClientConfig, offer: Features) -> client::Config {
    client::Config {
        client_name: config.client_name.clone(),
        handshake_timeout: config.handshake_timeout,
        keepalive_interval: config.keepalive.interval,
        dead_after: config.keepalive.dead_after,
        max_frame_len: config.max_frame_len,
        max_chunk: config.max_chunk,
        offer,
        // At least 2: a bulk writer keeps one frame in flight while the
        // writer task sends the other.
        send_queue_frames: config.write_queue_frames.max(2),
        stream_queue_frames: config.stream_queue_frames.max(2),
        windows: config.windows,
        ..client::Config::default()
    }
}

/// Opens the WebSocket over the configured transport.
async fn dial(config: &ClientConfig, endpoint: Endpoint) -> Result<(WsStream, bool), ClientError> {
    match config.transport {
        Transport::H1 => dial_h1(config, &endpoint).await,
        Transport::H3 => dial_h3(config, &endpoint).await,
        Transport::Auto => {
            let key = format!("{}:{}", endpoint.host, endpoint.port);
            if carrier::h3_recently_failed(&key) {
                return dial_h1(config, &endpoint).await;
            }
            let h3 = tokio::time::timeout(Transport::AUTO_H3_WAIT, dial_h3(config, &endpoint));
            match h3.await {
                Ok(Ok(opened)) => Ok(opened),
                failed => {
                    let why = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => format!("no answer within {:?}", Transport::AUTO_H3_WAIT),
                    };
                    warn!(gateway = %key, reason = %why, "HTTP/3 failed; using HTTP/1.1 for this gateway for a while");
                    carrier::remember_h3_failure(&key);
                    dial_h1(config, &endpoint).await
                }
            }
        }
    }
}

/// The server name the certificate is checked against.
fn server_name(config: &ClientConfig, endpoint: &Endpoint) -> String {
    config
        .tls
        .sni
        .clone()
        .unwrap_or_else(|| endpoint.host.clone())
}

async fn dial_h1(
    config: &ClientConfig,
    endpoint: &Endpoint,
) -> Result<(WsStream, bool), ClientError> {
    let Endpoint { uri, host, port } = endpoint;
    let rustls_config = Arc::new(client_kit::client_config(&config.tls, &[b"http/1.1"])?);
    let tcp = TcpStream::connect((host.as_str(), *port))
        .await
        .map_err(|e| ClientError::handshake(format!("cannot reach gateway {host}:{port}: {e}")))?;
    tcp.set_nodelay(true)
        .map_err(|e| ClientError::handshake(format!("cannot set TCP_NODELAY: {e}")))?;
    let name = server_name(config, endpoint);
    let server_name = ServerName::try_from(name.clone())
        .map_err(|_| ClientError::TlsConfig(format!("{name:?} is not a valid TLS server name")))?;
    let tls = TlsConnector::from(rustls_config)
        .connect(server_name, tcp)
        .await
        .map_err(|e| ClientError::handshake(format!("TLS handshake with {name} failed: {e}")))?;
    let ws_config = ws_config(config.max_frame_len);
    let io = CarrierIo::Tls(Box::new(tls));
    upgrade(io, uri, config.unmasked_frames, ws_config).await
}

/// HTTP/3: QUIC to UDP on the URL's port, then an extended CONNECT for
/// `websocket` on the URL's path (RFC 9220), pipelined: the WebSocket (and
/// with it the `hello`) follows the request without waiting for the `200`,
/// which saves a round trip on every connect. Its frames are masked: the
/// unmasked-frames extension needs the answer before the first frame, and a
/// round trip at connect is worth more than the pass over uploaded bytes
/// that masking costs (QUIC's own packet protection costs more).
async fn dial_h3(
    config: &ClientConfig,
    endpoint: &Endpoint,
) -> Result<(WsStream, bool), ClientError> {
    let Endpoint { uri, host, port } = endpoint;
    let failed = |why: String| ClientError::handshake(format!("HTTP/3 to {host}:{port}: {why}"));
    let addr = tokio::net::lookup_host((host.as_str(), *port))
        .await
        .map_err(|e| failed(format!("cannot resolve: {e}")))?
        .next()
        .ok_or_else(|| failed("no address".into()))?;
    let tls = client_kit::client_config(&config.tls, &[h3ws::quic::ALPN])?;
    let path = h3ws::quic::Path::toward(addr);
    let quic = h3ws::quic::client_config(tls, h3ws::quic::Timing::default(), path)
        .map_err(|e| failed(e.to_string()))?;
    let quic_endpoint = h3ws::quic::client_endpoint(addr).map_err(|e| failed(e.to_string()))?;
    let name = server_name(config, endpoint);
    let mut connection =
        ClientConnection::connect(&quic_endpoint, quic, addr, &name, h3ws::Limits::default())
            .await
            .map_err(|e| failed(e.to_string()))?;
    let authority = uri.authority().map_or(host.as_str(), |a| a.as_str());
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let fields: [(&str, &[u8]); 1] = [("sec-websocket-version", b"13")];
    let request = h3ws::Request::extended_connect(authority, path, "websocket", &fields);
    let stream = connection
        .open_pipelined(&request, config.handshake_timeout)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let io = CarrierIo::H3(Box::new(H3Link {
        stream,
        _connection: connection,
        endpoint: quic_endpoint,
    }));
    let ws_config = ws_config(config.max_frame_len);
    let ws = WebSocketStream::from_raw_socket(io, Role::Client, Some(ws_config)).await;
    Ok((ws, false))
}

/// Carries the machine's messages until it reports `ready` or the end of
/// the session, re-arming its handshake timer.
async fn handshake(
    mut ws: WsStream,
    mut machine: Client,
) -> Result<(WsStream, Client), ClientError> {
    loop {
        while let Some(transmit) = machine.poll_transmit() {
            ws.send(to_message(transmit))
                .await
                .map_err(|e| ClientError::handshake(format!("cannot send to the gateway: {e}")))?;
        }
        while let Some(event) = machine.poll_event() {
            match event {
                Event::Connected(_) => return Ok((ws, machine)),
                Event::SessionClosed(reason) => return Err(handshake_error(reason)),
                _ => {}
            }
        }
        let deadline = machine.poll_timeout();
        let timer = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = timer => machine.handle_timeout(now()),
            message = ws.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    machine.handle_text(now(), &text);
                }
                Some(Ok(Message::Binary(bytes))) => {
                    machine.handle_binary(now(), &bytes);
                }
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((u16::from(CloseCode::Status), String::new()));
                    machine.handle_close(Some(code), &reason);
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {
                    machine.handle_control(now());
                }
                Some(Err(e)) => machine.handle_transport_error(&e.to_string()),
                None => machine.handle_transport_error("the gateway closed the connection"),
            },
        }
    }
}

/// How a session that never became ready is reported: the SDK's
/// `handshake_failed`, with the gateway's code when it refused.
fn handshake_error(reason: CloseReason) -> ClientError {
    match reason {
        CloseReason::Refused { code, message } => ClientError::HandshakeFailed {
            code: Some(code),
            message,
        },
        CloseReason::HandshakeTimeout(d) => {
            ClientError::handshake(format!("no ready from the gateway within {d:?}"))
        }
        CloseReason::Gateway { code, reason } => ClientError::handshake(format!(
            "gateway closed the connection before ready ({code} {reason})"
        )),
        CloseReason::Transport(e) => {
            ClientError::handshake(format!("connection failed before ready: {e}"))
        }
        other => ClientError::handshake(format!("{other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let e = parse_url("wss://gw.example:8443/ws").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("gw.example", 8443));
        let e = parse_url("wss://[::1]/ws").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 443));
        assert!(matches!(
            parse_url("ws://a/ws"),
            Err(ClientError::InvalidUrl { .. })
        ));
        assert!(matches!(
            parse_url("https://a/ws"),
            Err(ClientError::InvalidUrl { .. })
        ));
        assert!(matches!(
            parse_url("not a url"),
            Err(ClientError::InvalidUrl { .. })
        ));
    }
}
