//! The HTTP/1.1 WebSocket backend: its base URL, TLS for `wss://`, and the
//! dial that opens one WebSocket per session.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request as WsRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::ProxyError;
use crate::config::Config;

/// A byte stream to the backend: TCP, or TLS over it.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A WebSocket to the backend.
pub type BackendSocket = WebSocketStream<Box<dyn Io>>;

/// Request fields passed on to the backend; every other field of the
/// client's request stays with the proxy.
const FORWARDED: [&str; 5] = [
    "authorization",
    "cookie",
    "origin",
    "sec-websocket-protocol",
    "user-agent",
];

/// The backend of every session.
pub struct Backend {
    /// `ws://host:port` or `wss://host:port` plus any base path, without a
    /// trailing slash.
    base: String,
    host: String,
    port: u16,
    tls: Option<tokio_rustls::TlsConnector>,
}

/// Why a dial failed.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("connecting to {0}: {1}")]
    Tcp(String, std::io::Error),
    #[error("TLS with {0}: {1}")]
    Tls(String, std::io::Error),
    #[error("WebSocket handshake: {0}")]
    Handshake(#[from] tokio_tungstenite::tungstenite::Error),
}

impl Backend {
    /// Checks the base URL and prepares TLS for `wss://` (system roots plus
    /// `backend_ca`).
    pub fn new(config: &Config) -> Result<Backend, ProxyError> {
        let bad = |why: String| ProxyError::Tls(format!("backend {:?}: {why}", config.backend));
        let uri: tokio_tungstenite::tungstenite::http::Uri =
            config.backend.parse().map_err(|e| bad(format!("{e}")))?;
        let tls = match uri.scheme_str() {
            Some("wss") => true,
            Some("ws") => false,
            _ => return Err(bad("the scheme must be ws:// or wss://".into())),
        };
        let host = uri
            .host()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host".into()))?;
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let connector = if tls {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            if let Some(path) = &config.backend_ca {
                let pem = std::fs::read(path).map_err(|source| ProxyError::Read {
                    what: "backend CA",
                    path: path.clone(),
                    source,
                })?;
                use rustls::pki_types::pem::PemObject;
                for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
                    let cert = cert.map_err(|e| bad(format!("CA PEM: {e}")))?;
                    roots.add(cert).map_err(|e| bad(format!("CA: {e}")))?;
                }
            }
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let mut tls = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| bad(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            tls.alpn_protocols = vec![b"http/1.1".to_vec()];
            Some(tokio_rustls::TlsConnector::from(Arc::new(tls)))
        } else {
            None
        };
        Ok(Backend {
            base: config.backend.trim_end_matches('/').to_owned(),
            host,
            port,
            tls: connector,
        })
    }

    /// Opens a WebSocket to the base URL with `path_and_query` appended,
    /// carrying `headers`.
    pub async fn dial(
        &self,
        path_and_query: &str,
        headers: &[(HeaderName, HeaderValue)],
        config: WebSocketConfig,
    ) -> Result<BackendSocket, DialError> {
        let url = format!("{}{path_and_query}", self.base);
        let mut request: WsRequest = url.as_str().into_client_request()?;
        for (name, value) in headers {
            request.headers_mut().append(name.clone(), value.clone());
        }
        let target = format!("{}:{}", self.host, self.port);
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| DialError::Tcp(target.clone(), e))?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = match &self.tls {
            Some(connector) => {
                let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| DialError::Tls(target.clone(), std::io::Error::other(e)))?;
                let tls = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| DialError::Tls(target.clone(), e))?;
                Box::new(tls)
            }
            None => Box::new(tcp),
        };
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(request, io, Some(config)).await?;
        Ok(ws)
    }
}

/// The fields of the client's request passed to the backend, plus
/// `x-forwarded-for` with the client's address.
pub fn forwarded_headers(
    request: &proto_h3ws::fields::Request,
    peer: std::net::SocketAddr,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut out: Vec<_> = request
        .fields
        .regular()
        .filter(|(n, _)| FORWARDED.iter().any(|f| f.as_bytes() == *n))
        .filter_map(|(n, v)| {
            Some((
                HeaderName::from_bytes(n).ok()?,
                HeaderValue::from_bytes(v).ok()?,
            ))
        })
        .collect();
    if let Ok(v) = HeaderValue::from_str(&peer.ip().to_string()) {
        out.push((HeaderName::from_static("x-forwarded-for"), v));
    }
    out
}
