//! Self-signed TLS certificates for test servers, and the process-wide rustls provider.

use std::path::{Path, PathBuf};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

/// A self-signed certificate and its key, in the forms servers and clients need
/// (PEM for files and configs, DER for rustls, SPKI hash for pinning tests).
#[derive(Debug)]
pub struct TestCert {
    /// The certificate in PEM.
    pub cert_pem: String,
    /// The private key (PKCS#8) in PEM.
    pub key_pem: String,
    /// The certificate in DER, ready for a rustls root store or server config.
    pub cert_der: CertificateDer<'static>,
    /// The private key in DER, ready for a rustls server config.
    pub key_der: PrivateKeyDer<'static>,
    spki_der: Vec<u8>,
}

impl TestCert {
    /// Generates a fresh self-signed certificate so each test has its own trust
    /// anchor. `names` are DNS names or IP literals (which become IP SANs).
    pub fn generate(names: &[&str]) -> TestCert {
        install_crypto_provider();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let certified = rcgen::generate_simple_self_signed(names)
            .expect("rcgen: generating a self-signed test certificate");
        let key = &certified.signing_key;
        TestCert {
            cert_pem: certified.cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: certified.cert.der().clone(),
            key_der: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            spki_der: rcgen::PublicKeyData::subject_public_key_info(key),
        }
    }

    /// SHA-256 of the SubjectPublicKeyInfo DER, for certificate-pinning tests.
    pub fn spki_sha256(&self) -> [u8; 32] {
        Sha256::digest(&self.spki_der).into()
    }

    /// Writes `cert.pem` and `key.pem` (mode 0600) into `dir`, for programs that
    /// take file paths. Returns `(cert_path, key_path)`.
    pub fn write_to(&self, dir: &Path) -> (PathBuf, PathBuf) {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;

        let cert_path = dir.join("cert.pem");
        let key_path = dir.join("key.pem");
        std::fs::write(&cert_path, &self.cert_pem)
            .unwrap_or_else(|e| panic!("writing {}: {e}", cert_path.display()));
        let mut key_file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&key_path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", key_path.display()));
        key_file
            .write_all(self.key_pem.as_bytes())
            .unwrap_or_else(|e| panic!("writing {}: {e}", key_path.display()));
        (cert_path, key_path)
    }
}

/// Installs aws-lc-rs as the process-wide rustls provider, because with more than
/// one provider compiled in `ClientConfig::builder()` panics. Safe to call often.
pub fn install_crypto_provider() {
    // Err means a provider is installed already, which is all we need.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;

    #[test]
    fn generates_cert_with_dns_and_ip_names() {
        let cert = TestCert::generate(&["localhost", "127.0.0.1", "::1"]);
        assert!(cert.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(cert.key_pem.contains("PRIVATE KEY"));
        assert_ne!(cert.spki_sha256(), [0u8; 32]);

        // rustls accepts the pair, and a client trusting the cert verifies the IP name.
        let server = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert_der.clone()], cert.key_der.clone_key());
        assert!(server.is_ok(), "server config: {server:?}");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.cert_der.clone()).expect("add root");
        let verifier = rustls::client::WebPkiServerVerifier::builder(roots.into())
            .build()
            .expect("verifier");
        let now = rustls::pki_types::UnixTime::now();
        for name in ["localhost", "127.0.0.1", "::1"] {
            let sn = rustls::pki_types::ServerName::try_from(name).expect("server name");
            verifier
                .verify_server_cert(&cert.cert_der, &[], &sn, &[], now)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let other = rustls::pki_types::ServerName::try_from("example.com").expect("name");
        assert!(
            verifier
                .verify_server_cert(&cert.cert_der, &[], &other, &[], now)
                .is_err()
        );
    }

    #[test]
    fn spki_hash_matches_certificate() {
        let cert = TestCert::generate(&["localhost"]);
        // The SPKI DER must appear verbatim inside the certificate DER.
        let der: &[u8] = cert.cert_der.as_ref();
        assert!(der.windows(cert.spki_der.len()).any(|w| w == cert.spki_der));
        let again = TestCert::generate(&["localhost"]);
        assert_ne!(cert.spki_sha256(), again.spki_sha256());
    }

    #[test]
    fn writes_files_with_private_key_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = TestCert::generate(&["localhost"]);
        let (c, k) = cert.write_to(dir.path());
        assert_eq!(
            std::fs::read_to_string(c).expect("read cert"),
            cert.cert_pem
        );
        let meta = std::fs::metadata(&k).expect("stat key");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
}
