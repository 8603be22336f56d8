//! The rustls client configuration: system roots (plus an optional CA file),
//! or a certificate pin.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

/// A TLS client configuration that cannot be built (unreadable CA file, no
/// trusted root, bad certificate): a settings problem, never retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

/// How the server's certificate is verified. Verification is always on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// Extra PEM file of CA certificates trusted besides the system roots.
    pub ca_file: Option<PathBuf>,
    /// SHA-256 of the server certificate's SubjectPublicKeyInfo. When set,
    /// the pin alone authenticates the server (a self-signed certificate
    /// works) and the chain is not checked against roots.
    pub pin_sha256: Option<[u8; 32]>,
    /// Server name for SNI and certificate checks, when it differs from the
    /// URL's host (e.g. connecting by IP to a named server).
    pub sni: Option<String>,
}

/// The process-wide provider: aws-lc-rs (the shadowsocks crate forces it).
/// Installed on first use so that `ClientConfig::builder()` never panics on an
/// ambiguous choice; an existing default is kept.
pub fn provider() -> Arc<CryptoProvider> {
    if let Some(p) = CryptoProvider::get_default() {
        return p.clone();
    }
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    CryptoProvider::get_default()
        .expect("a provider was just installed")
        .clone()
}

/// SHA-256 of a certificate's SubjectPublicKeyInfo: the value to pin.
pub fn spki_sha256(cert_der: &[u8]) -> Result<[u8; 32], TlsError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| TlsError(format!("cannot parse certificate: {e}")))?;
    Ok(Sha256::digest(cert.tbs_certificate.subject_pki.raw).into())
}

/// Builds the rustls client configuration for `opts`, with `alpn` protocols.
pub fn client_config(opts: &TlsOptions, alpn: &[&[u8]]) -> Result<rustls::ClientConfig, TlsError> {
    client_config_with_versions(opts, alpn, rustls::DEFAULT_VERSIONS)
}

/// [`client_config`] restricted to `versions` (the Relay's control channel
/// is TLS 1.3 only, by its contract).
pub fn client_config_with_versions(
    opts: &TlsOptions,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<rustls::ClientConfig, TlsError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| TlsError(e.to_string()))?;
    let mut config = if let Some(pin) = opts.pin_sha256 {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinVerifier { pin, provider }))
            .with_no_client_auth()
    } else {
        builder
            .with_root_certificates(root_store(opts)?)
            .with_no_client_auth()
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The system's root certificates, read once per process: reading and
/// parsing them is blocking file I/O of a few hundred certificates, which
/// every connect and reconnect used to repeat on an async thread. Global
/// state set once (the system's trust store does not change under us in a
/// way a running client could act on).
fn native_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            // A single malformed system certificate must not make TLS unusable.
            let _ = roots.add(cert);
        }
        roots
    })
}

/// System roots plus the optional CA file.
fn root_store(opts: &TlsOptions) -> Result<RootCertStore, TlsError> {
    let mut roots = native_roots().clone();
    if let Some(path) = &opts.ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| TlsError(format!("cannot read CA file {}: {e}", path.display())))?;
        let mut added = 0;
        for cert in certs {
            let cert =
                cert.map_err(|e| TlsError(format!("bad certificate in {}: {e}", path.display())))?;
            roots
                .add(cert)
                .map_err(|e| TlsError(format!("unusable CA in {}: {e}", path.display())))?;
            added += 1;
        }
        if added == 0 {
            return Err(TlsError(format!(
                "no PEM certificate found in {}",
                path.display()
            )));
        }
    }
    if roots.is_empty() {
        return Err(TlsError(
            "no trusted roots: install ca-certificates, or give a CA file or a pin".into(),
        ));
    }
    Ok(roots)
}

/// Accepts exactly the certificate whose SPKI hashes to the pin; handshake
/// signatures are still verified with that key, so only its holder passes.
#[derive(Debug)]
struct PinVerifier {
    pin: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = spki_sha256(end_entity).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        if got == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_roots_are_read_once_and_shared() {
        let first = native_roots();
        let second = native_roots();
        assert!(std::ptr::eq(first, second), "the same store, not a re-read");
        let opts = TlsOptions::default();
        assert_eq!(root_store(&opts).unwrap().len(), first.len());
    }
}
