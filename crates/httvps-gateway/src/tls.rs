//! The rustls server configuration.
//!
//! Built with an explicit aws-lc-rs provider rather than the process default,
//! so an embedded gateway works whether or not its host installed one.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::GatewayError;
use crate::config::TlsSource;

/// Loads the certificate and key and builds the server configuration
/// (HTTP/1.1 only: the WebSocket upgrade needs it).
pub fn server_config(source: &TlsSource) -> Result<Arc<ServerConfig>, GatewayError> {
    let (cert_pem, key_pem) = match source {
        TlsSource::Files { cert, key } => {
            let read = |path: &std::path::Path| {
                std::fs::read(path).map_err(|source| GatewayError::ReadFile {
                    path: path.to_owned(),
                    source,
                })
            };
            (read(cert)?, read(key)?)
        }
        TlsSource::Pem { cert_pem, key_pem } => {
            (cert_pem.as_bytes().to_vec(), key_pem.as_bytes().to_vec())
        }
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| GatewayError::Tls(format!("certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(GatewayError::Tls("no certificate in the PEM".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| GatewayError::Tls(format!("private key PEM: {e}")))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| GatewayError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| GatewayError::Tls(format!("certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
