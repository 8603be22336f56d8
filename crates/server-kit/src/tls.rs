//! A rustls server configuration from PEM.
//!
//! Built with an explicit aws-lc-rs provider rather than the process default,
//! so an embedded server works whether or not its host installed one.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why the certificate and key cannot make a server configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

/// Where a server's certificate chain and key come from: files for the
/// binaries, memory for the embedded demo servers and tests.
#[derive(Clone)]
pub enum TlsSource {
    /// PEM files on disk.
    Files {
        /// The certificate chain, leaf first.
        cert: PathBuf,
        /// The private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
    /// PEM text in memory.
    Pem {
        /// The certificate chain, leaf first.
        cert_pem: String,
        /// The private key.
        key_pem: String,
    },
}

/// A certificate or key file that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}", path.display())]
pub struct ReadPemError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

impl TlsSource {
    /// The certificate chain and the key, as PEM bytes.
    pub fn read(&self) -> Result<(Vec<u8>, Vec<u8>), ReadPemError> {
        match self {
            TlsSource::Files { cert, key } => {
                let read = |path: &PathBuf| {
                    std::fs::read(path).map_err(|source| ReadPemError {
                        path: path.clone(),
                        source,
                    })
                };
                Ok((read(cert)?, read(key)?))
            }
            TlsSource::Pem { cert_pem, key_pem } => {
                Ok((cert_pem.as_bytes().to_vec(), key_pem.as_bytes().to_vec()))
            }
        }
    }
}

/// The key stays out of debug output.
impl std::fmt::Debug for TlsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsSource::Files { cert, key } => f
                .debug_struct("Files")
                .field("cert", cert)
                .field("key", key)
                .finish(),
            TlsSource::Pem { .. } => f.write_str("Pem(<in memory>)"),
        }
    }
}

/// A server configuration from a certificate chain (PEM, leaf first) and its
/// private key (PEM), offering `alpn` (HTTP/1.1 for our servers: the
/// WebSocket upgrade and HT's chunked bodies both need it).
pub fn server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_with_versions(cert_pem, key_pem, alpn, rustls::DEFAULT_VERSIONS)
}

/// [`server_config`] restricted to `versions` (the Relay's control channel
/// is TLS 1.3 only, by its contract).
pub fn server_config_with_versions(
    cert_pem: &[u8],
    key_pem: &[u8],
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<Arc<ServerConfig>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError(format!("certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError("no certificate in the PEM".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| TlsError(format!("private key PEM: {e}")))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| TlsError(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError(format!("certificate and key: {e}")))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_pem_is_an_error() {
        assert!(server_config(b"", b"", &[]).is_err());
        assert!(server_config(b"not pem", b"not pem", &[]).is_err());
    }
}
