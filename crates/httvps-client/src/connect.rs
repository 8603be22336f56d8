//! Dialing a gateway: TCP, TLS, WebSocket upgrade, then `hello` → `ready`.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use http::Uri;
use proto_httvps::{
    FEATURE_BINARY_DATA, FEATURE_HALF_CLOSE, FEATURE_STREAM_READY, Frame, PROTOCOL_VERSION,
    decode_limited, frame::SessionToken,
};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::tls;
use net::Secret;

/// The WebSocket over TLS over TCP that a session runs on.
pub(crate) type WsStream = WebSocketStream<TlsStream<TcpStream>>;

/// A session right after `ready`.
pub(crate) struct Connected {
    pub ws: WsStream,
    pub session_id: String,
    pub max_streams: u32,
    /// The gateway will send `stream_ready` for each stream.
    pub stream_ready: bool,
    /// The gateway understands `stream_shutdown`.
    pub half_close: bool,
    /// Stream bytes may travel as binary messages both ways (`binary_data`).
    pub binary_data: bool,
}

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

/// Dials the gateway and completes the handshake within `handshake_timeout`,
/// offering the protocol extensions in `features` (see `proto_httvps::FEATURE_*`).
pub(crate) async fn connect(
    config: &ClientConfig,
    token: &Secret,
    features: &[&str],
) -> Result<Connected, ClientError> {
    let endpoint = parse_url(&config.url)?;
    let rustls_config = Arc::new(tls::client_config(&config.tls, &[b"http/1.1"])?);
    match tokio::time::timeout(
        config.handshake_timeout,
        handshake(config, endpoint, rustls_config, token, features),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Err(ClientError::handshake(format!(
            "no ready from {} within {:?}",
            config.url, config.handshake_timeout
        ))),
    }
}

async fn handshake(
    config: &ClientConfig,
    endpoint: Endpoint,
    rustls_config: Arc<rustls::ClientConfig>,
    token: &Secret,
    features: &[&str],
) -> Result<Connected, ClientError> {
    let Endpoint { uri, host, port } = endpoint;
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| ClientError::handshake(format!("cannot reach gateway {host}:{port}: {e}")))?;
    tcp.set_nodelay(true)
        .map_err(|e| ClientError::handshake(format!("cannot set TCP_NODELAY: {e}")))?;
    let name = config.tls.sni.clone().unwrap_or_else(|| host.clone());
    let server_name = ServerName::try_from(name.clone())
        .map_err(|_| ClientError::TlsConfig(format!("{name:?} is not a valid TLS server name")))?;
    let tls = TlsConnector::from(rustls_config)
        .connect(server_name, tcp)
        .await
        .map_err(|e| ClientError::handshake(format!("TLS handshake with {name} failed: {e}")))?;
    let request = uri
        .into_client_request()
        .map_err(|e| ClientError::handshake(format!("bad WebSocket request: {e}")))?;
    let (mut ws, _response) = tokio_tungstenite::client_async_with_config(
        request,
        tls,
        Some(ws_config(config.max_frame_len)),
    )
    .await
    .map_err(|e| ClientError::handshake(format!("WebSocket upgrade failed: {e}")))?;

    let hello = Frame::Hello {
        session_token: SessionToken(token.expose().into()),
        version: PROTOCOL_VERSION.into(),
        client: config.client_name.as_str().into(),
        features: features.iter().map(|f| (*f).into()).collect(),
    };
    let mut text = String::new();
    proto_httvps::encode(&hello, &mut text);
    ws.send(Message::Text(Utf8Bytes::from(text)))
        .await
        .map_err(|e| ClientError::handshake(format!("cannot send hello: {e}")))?;

    loop {
        let message = match ws.next().await {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                return Err(ClientError::handshake(format!(
                    "connection failed before ready: {e}"
                )));
            }
            None => {
                return Err(ClientError::handshake(
                    "gateway closed the connection before ready",
                ));
            }
        };
        let text = match message {
            Message::Text(text) => text,
            Message::Close(frame) => {
                let why = frame
                    .map(|f| format!("{} {}", u16::from(f.code), f.reason))
                    .unwrap_or_default();
                return Err(ClientError::handshake(format!(
                    "gateway closed the connection before ready {why}"
                )));
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            Message::Binary(_) => {
                return Err(ClientError::handshake(
                    "gateway sent a binary message before ready",
                ));
            }
        };
        match decode_limited(&text, config.max_frame_len) {
            Ok(Frame::Ready {
                session_id,
                max_streams,
                features: accepted,
            }) => {
                // Only what we offered counts, whatever the gateway claims.
                let agreed = |feature: &str| {
                    features.contains(&feature) && accepted.iter().any(|f| f == feature)
                };
                return Ok(Connected {
                    ws,
                    session_id: session_id.into_owned(),
                    max_streams,
                    stream_ready: agreed(FEATURE_STREAM_READY),
                    half_close: agreed(FEATURE_HALF_CLOSE),
                    binary_data: agreed(FEATURE_BINARY_DATA),
                });
            }
            Ok(Frame::Error { code, message, .. }) => {
                return Err(ClientError::HandshakeFailed {
                    code: Some(code),
                    message: message.into_owned(),
                });
            }
            Ok(Frame::Ping) => {
                let _ = ws
                    .send(Message::Text(Utf8Bytes::from_static(r#"{"type":"pong"}"#)))
                    .await;
            }
            Ok(other) => {
                return Err(ClientError::handshake(format!(
                    "unexpected {} before ready",
                    other.kind()
                )));
            }
            Err(e) => {
                return Err(ClientError::handshake(format!(
                    "unreadable answer to hello: {e}"
                )));
            }
        }
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
