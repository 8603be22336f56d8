//! The rustls server configuration: the certificate and key read from files
//! or memory, built by `server-kit` (shared with the HT server).

use std::sync::Arc;

use rustls::ServerConfig;

use crate::GatewayError;
use crate::config::TlsSource;

/// The ALPN names offered: HTTP/1 only (the WebSocket upgrade needs it),
/// every version a stock nginx accepts, so that a client offering only
/// `http/1.0` is served as nginx serves it rather than refused with an alert.
const ALPN: &[&[u8]] = &[b"http/1.1", b"http/1.0", b"http/0.9"];

/// Loads the certificate and key and builds the server configuration.
pub fn server_config(source: &TlsSource) -> Result<Arc<ServerConfig>, GatewayError> {
    let (cert_pem, key_pem) = source.read().map_err(|e| GatewayError::ReadFile {
        path: e.path,
        source: e.source,
    })?;
    server_kit::tls::server_config(&cert_pem, &key_pem, ALPN).map_err(|e| GatewayError::Tls(e.0))
}
